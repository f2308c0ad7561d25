"""ZeroMQ frames <-> protocol commands, shared by repeater and broadcast mode. Pure.

Every protocol message (after a ROUTER's identity frame) is::

    frame 0  signature  b"L93" + one version byte (PROTOCOL_VERSION)
    frame 1  command    ASCII name, e.g. b"HELLO"
    frame 2  header     a UTF-8 JSON object (at most MAX_HEADER_BYTES)
    frame 3… payloads   zero or more encoded messages (Message.encode), so a
                        server can store and forward them without re-encoding

On a PUB, frame 0 may go on after the signature with a *topic*, so that a SUB
receives only what it subscribed to (ZeroMQ matches prefixes of frame 0):
``#`` + room + ``\n`` for a room's traffic (the ``\n`` stops ``#op`` matching
``#ops``), ``*`` for traffic of the node as a whole. ``decode_published``
reads such a frame list; ROUTER and DEALER frames carry the bare signature.

A frame list that breaks these rules raises ProtocolError naming what is wrong;
the caller logs it, answers with an error where it can, and keeps serving.
The commands themselves belong to each mode and are listed in docs/PROTOCOL.rst.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ProtocolError
from .message import MAX_WIRE_BYTES, Message
from .rooms import RoomError, check_room

PROTOCOL_VERSION = 2  # 2: rooms (topic frames on a PUB; see docs/PROTOCOL.rst)
MAGIC = b"L93"
SIGNATURE = MAGIC + bytes([PROTOCOL_VERSION])
MAX_HEADER_BYTES = 64 * 1024
MAX_PAYLOADS = 10_000
# No valid frame is bigger (a header, or one message); every socket facing the
# network sets ZeroMQ's MAXMSGSIZE to this, so a peer sending more is cut off
# by ZeroMQ before a byte of it is buffered in Python.
MAX_FRAME_BYTES = max(MAX_WIRE_BYTES, MAX_HEADER_BYTES) + 1024
MAX_COMMAND_CHARS = 16
# The largest whole number a header field may carry: SQLite's INTEGER, where
# sequence numbers and marks end up. A larger one is a protocol error here,
# not an OverflowError deep in the inbox.
MAX_HEADER_INT = 2**63 - 1
NODE_TOPIC = b"*"  # the topic of a node's own traffic on its PUB (not a room's)


def room_topic(room: str) -> bytes:
    """The topic of ``room``'s traffic on a PUB (after the signature): ``#ops\n``."""
    return b"#" + room.encode("ascii") + b"\n"


def subscription(topic: bytes) -> bytes:
    """What a SUB subscribes to for ``topic``: the signature, then the topic."""
    return SIGNATURE + topic


def topic_room(topic: bytes) -> str | None:
    """The room a topic names, None for ``NODE_TOPIC``; ProtocolError for anything else."""
    if topic == NODE_TOPIC:
        return None
    if len(topic) < 3 or topic[:1] != b"#" or topic[-1:] != b"\n":
        raise ProtocolError("a published command has no room or node topic")
    try:
        return check_room(topic[1:-1].decode("ascii"))
    except (UnicodeDecodeError, RoomError):
        raise ProtocolError("a published command names no valid room in its topic") from None


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


# NaN and Infinity are Python's extension, not JSON: a header carrying them is refused.
_HEADER_JSON = json.JSONDecoder(parse_constant=_not_json)


@dataclass(frozen=True)
class Command:
    """One decoded protocol message. ``payloads`` are still encoded messages."""

    name: str
    header: dict[str, Any] = field(default_factory=dict)
    payloads: tuple[bytes, ...] = ()

    def frames(self, topic: bytes = b"") -> list[bytes]:
        """The frame list; ``topic`` (on a PUB only) goes after the signature."""
        header = json.dumps(self.header, separators=(",", ":")).encode()
        return [SIGNATURE + topic, self.name.encode("ascii"), header, *self.payloads]

    def messages(self) -> list[Message]:
        """Decode every payload; MessageError (a ProtocolError) on the first bad one."""
        return [Message.decode(p) for p in self.payloads]


def command(
    name: str, header: dict[str, Any] | None = None, messages: Sequence[Message] = ()
) -> Command:
    """Build a Command, encoding ``messages`` as payload frames."""
    return Command(name, header or {}, tuple(m.encode() for m in messages))


def decode(frames: Sequence[bytes]) -> Command:
    """Parse frames; raises ProtocolError, never returns None."""
    if len(frames) < 3:
        raise ProtocolError(f"a command has at least 3 frames, this has {len(frames)}")
    signature = bytes(frames[0])
    if signature[:3] != MAGIC or len(signature) != 4:
        raise ProtocolError("not a lab93 command (bad signature frame)")
    if signature[3] != PROTOCOL_VERSION:
        raise ProtocolError(
            f"peer speaks protocol version {signature[3]}; this node speaks {PROTOCOL_VERSION}"
        )
    raw_name = bytes(frames[1])
    if not raw_name or len(raw_name) > MAX_COMMAND_CHARS or not raw_name.isalpha():
        raise ProtocolError("bad command name frame")
    name = raw_name.decode("ascii")
    raw_header = bytes(frames[2])
    if len(raw_header) > MAX_HEADER_BYTES:
        raise ProtocolError(f"{name} header is larger than {MAX_HEADER_BYTES} bytes")
    try:
        header = _HEADER_JSON.decode(raw_header.decode("utf-8")) if raw_header else {}
    except (UnicodeDecodeError, ValueError, RecursionError):  # nested too deep: not ours
        raise ProtocolError(f"{name} header is not UTF-8 JSON") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"{name} header is not a JSON object")
    if len(frames) - 3 > MAX_PAYLOADS:
        raise ProtocolError(f"{name} carries more than {MAX_PAYLOADS} messages")
    payloads = tuple(map(bytes, frames[3:]))  # bytes(b) is b itself: no copy
    if payloads and max(map(len, payloads)) > MAX_WIRE_BYTES:
        raise ProtocolError(f"{name} carries a message larger than {MAX_WIRE_BYTES} bytes")
    return Command(name, header, payloads)


def decode_published(frames: Sequence[bytes]) -> tuple[str | None, Command]:
    """Parse frames read from a SUB: the room their topic names (None: the node topic)
    and the command; raises ProtocolError, never returns None."""
    if not frames:
        raise ProtocolError("a command has at least 3 frames, this has 0")
    first = bytes(frames[0])
    command = decode([first[:4], *frames[1:]])
    return topic_room(first[4:]), command


def header_int(
    header: dict[str, Any], key: str, minimum: int = 0, maximum: int = MAX_HEADER_INT
) -> int:
    """A whole-number header field, checked; ProtocolError names the field."""
    value = header.get(key)
    if type(value) is not int or not minimum <= value <= maximum:
        raise ProtocolError(
            f"header field {key!r} must be a whole number from {minimum} to {maximum}"
        )
    return value
