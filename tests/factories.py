"""Builders the tests share: fixed node ids, a fixed time, valid messages.

A plain module (not a test module, not conftest): tests import it by name.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from lab93zmq.core.message import Message, make_id

NODE_A = "a" * 32
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
