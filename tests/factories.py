"""Builders the tests share: fixed node ids, a fixed time, valid messages.

A plain module (not a test module, not conftest): tests import it by name.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from lab93zmq.core.message import Message, make_id

NODE_A = "a" * 32
OURS = "0" * 32  # our own node, in the tests of one machine
NODE_B = "b" * 32
T0 = datetime(2026, 11, 24, 20, 1, 2, 123456, tzinfo=timezone.utc)


def make_message(
    seq: int = 1,
    content: str | None = None,
    *,
    origin: str = NODE_A,
    author: str = "alice",
    to: str | None = None,
    subject: str | None = None,
    room: str | None = None,
    kind: str | None = None,
) -> Message:
    """A valid message whose id is fixed by (origin, seq, to, room); ``room`` None is
    ``general`` for a room message."""
    tag = b"dm" if to else b"rm" if room is None else hashlib.sha256(room.encode()).digest()[:2]
    entropy = bytes.fromhex(origin[:8]) + seq.to_bytes(4, "big") + tag
    return Message(
        id=make_id(T0, entropy),
        author=author,
        recipient=to,
        subject=subject,
        content=content if content is not None else f"message {seq}",
        sent_at=T0,
        origin=origin,
        origin_seq=seq,
        room=room,
        kind=kind,
    )


# -- secure broadcast mode without real keys ------------------------------------------


def key_of(name: str) -> bytes:
    """The public key of key name ``name``: any 32 bytes will do, no handshake runs here."""
    return name.encode().ljust(32, b"#")


def fake_signature(name: str, data: bytes) -> bytes:
    """What key ``name`` "signs" ``data`` with in the pure tests: 64 bytes only it makes
    (the real Ed25519 is the shell's, ``io.signing``)."""
    digest = hashlib.sha256(b"fake ed25519\n" + name.encode() + b"\n" + data).digest()
    return digest + digest


def fake_trust(name: str, trusted: tuple[str, ...] | list[str], where: str = "keys/"):
    """A ``Trust`` for key name ``name`` whose authorized keys are ``trusted`` (key names):
    keys by ``key_of``, node ids derived from them, signatures by ``fake_signature``."""
    from lab93zmq.core.broadcast.trust import Author, Trust
    from lab93zmq.core.signing import node_id_of

    names = {key_of(peer): peer for peer in trusted}
    authors = {node_id_of(key_of(peer)): peer for peer in (*trusted, name)}

    def author_of(origin: str) -> Author | None:
        author = authors.get(origin)
        if author is None:
            return None
        return Author(author, lambda data, sig: sig == fake_signature(author, data))

    return Trust(key_of(name), names.get, where, lambda data: fake_signature(name, data),
                 author_of)
