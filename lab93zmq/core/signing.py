"""What a message's signature covers, and the node id a key stands for. Pure.

Secure broadcast mode signs every message with its author node's Ed25519 key
(docs/PROTOCOL.rst, "Signed messages"). The signature itself is made and
checked in the I/O shell (``io.signing``, over ``cryptography``); the core only
says *which bytes* are signed (``signed_bytes``) and hands them to the
callables the shell injects (``core.broadcast.trust.Trust``).

The signed bytes are not the JSON a message travels in (key order, escapes and
unknown fields may differ between implementations and after a relay): they
are a fixed, length-prefixed list of the message's fields, so a second
implementation can rebuild them from any valid encoding of the message::

    b"lab93 signed message 2\\n"
    then for each of id, from, to, room, subject, content, sent_at, origin,
    seq, kind: a 4-byte big-endian length and that many bytes of UTF-8, or
    the 4 bytes ff ff ff ff for a null (or absent) field

``sent_at`` is written as the message form writes it in UTC
(``2026-11-24T20:01:02.123456+00:00``), ``seq`` in decimal digits.

A secure node's id is not random: it is the first 16 bytes of the SHA-256 of
``b"lab93 node id\\n"`` and its raw 32-byte CurveZMQ public key (``node_id_of``),
so a node id speaks for exactly one key and nobody can claim another's.
"""

from __future__ import annotations

import struct

from .digests import sha256
from .message import SIGNATURE_BYTES as SIGNATURE_BYTES
from .message import Message, time_text

SIGNED_PREFIX = b"lab93 signed message 2\n"
NODE_ID_PREFIX = b"lab93 node id\n"

SIGN_KEY_BYTES = 32  # an Ed25519 public key
_NULL = b"\xff\xff\xff\xff"
_LENGTH = struct.Struct(">I")


def signed_bytes(message: Message) -> bytes:
    """The bytes an Ed25519 signature of ``message`` covers (see the module docstring)."""
    parts = [SIGNED_PREFIX]
    for value in (message.id, message.author, message.recipient, message.room,
                  message.subject, message.content, time_text(message.sent_at),
                  message.origin, str(message.origin_seq), message.kind):
        if value is None:
            parts.append(_NULL)
        else:
            data = value.encode("utf-8")
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
    return b"".join(parts)


def node_id_of(key: bytes) -> str:
    """The node id of a secure node whose raw CurveZMQ public key is ``key``."""
    digest: bytes = sha256(NODE_ID_PREFIX + bytes(key)).digest()
    return digest[:16].hex()
