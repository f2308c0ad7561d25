"""The repeater's commands, both ways, and the header fields they share. Pure.

One enum names every command; each side keeps a table from it to its
handlers (``ServerCore``, ``ClientCore``), so a name that is not in the
enum, or not in a side's table, is refused in one place. The frames are
``wire.py``'s envelope (protocol version 2); docs/PROTOCOL.rst has the whole
page::

    client -> server (DEALER -> ROUTER)
      HELLO  {"user", "node", "software", "rooms": [...], "listen", "away"?} -> WELCOME
      JOIN   {"room"}                                  (no answer)
      PART   {"room"}                                  (no answer)
      FETCH  {"rooms": {room: {"after", "tail"}}, "dm", "limit"} -> BATCH
      POST   {} + messages                     -> ACK (stored ones), REJECT (invalid ones)
      ROOMS  {}                                -> ROOMLIST (one or more pages)
      WHO    {"room"?}                         -> USERS
      AWAY   {"text": text | null}             away with text, or back; no answer
      PING   {}                                heartbeat, no answer
      BYE    {}                                the session ends now
    server -> client (ROUTER -> DEALER)
      WELCOME  {"server", "pub_port", "heartbeat", "timeout", "head", "heads", "dm_head"}
      BATCH    {"rooms", "dm", "items": [[seq, prev | null], ...], "more", "head",
                "heads", "dm_head"} + messages
      DELIVER  {"items": [[seq, prev], ...]} + direct messages, live
      ACK      {"items": [[id, seq], ...]}
      REJECT   {"items": [[id|null, reason], ...]}
      ROOMLIST {"rooms": [{"name", "users", "topic", "messages"}], "more"}
      USERS    {"room", "users": [...], "away": {user: text}}
      PING     {"head", "dm_head"}
      BYE      {}
      ERROR    {"code", "reason"}
    server PUB, each on its room's topic (frame 0 = signature + "#room\n")
      ROOM     {"server", "room", "items": [[seq, prev], ...]} + that room's messages
      TICK     {"server", "room", "head"}
      MEMBER   {"server", "room", "user", "joined"}
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import ProtocolError
from ..rooms import RoomError, check_room
from ..wire import MAGIC, MAX_HEADER_INT, PROTOCOL_VERSION, Command

HEARTBEAT = 1.0  # seconds between heartbeats, both ways
BATCH_LIMIT = 500  # messages in one BATCH, ROOM or DELIVER
# Rooms one session may be in (and a HELLO or FETCH may name): with room names of
# 32 characters and marks of 19 digits a BATCH header stays well under 64 KiB.
MAX_ROOMS = 256
LEGACY_VERSION = 1  # lab93-node 0.1: one room; told to upgrade in its own framing
LEGACY_SIGNATURE = MAGIC + bytes([LEGACY_VERSION])


class RepeaterVerb(str, enum.Enum):
    """Every repeater command name; the value is the name frame."""

    HELLO = "HELLO"
    JOIN = "JOIN"
    PART = "PART"
    FETCH = "FETCH"
    POST = "POST"
    ROOMS = "ROOMS"
    WHO = "WHO"
    AWAY = "AWAY"
    PING = "PING"
    BYE = "BYE"
    WELCOME = "WELCOME"
    BATCH = "BATCH"
    DELIVER = "DELIVER"
    ACK = "ACK"
    REJECT = "REJECT"
    ROOMLIST = "ROOMLIST"
    USERS = "USERS"
    ERROR = "ERROR"
    ROOM = "ROOM"
    TICK = "TICK"
    MEMBER = "MEMBER"

    @classmethod
    def of(cls, command: Command) -> RepeaterVerb | None:
        """The verb a decoded command names, or None when it names none of ours."""
        return cls._value2member_map_.get(command.name)  # type: ignore[return-value]

    def command(
        self, header: dict[str, Any] | None = None, payloads: Iterable[bytes] = ()
    ) -> Command:
        """This command with ``header`` and already encoded message ``payloads``."""
        return Command(self.value, header or {}, tuple(payloads))


class ErrorCode(str, enum.Enum):
    """The ``code`` of an ERROR reply."""

    MALFORMED = "malformed"  # not a lab93 command at all
    VERSION = "version"  # another protocol version
    UNKNOWN = "unknown-command"
    BAD_REQUEST = "bad-request"  # a known command with bad header fields
    HELLO_FIRST = "hello-first"  # no session: say HELLO (again)
    FORBIDDEN = "forbidden"  # secure mode: HELLO names another user than the client's key
    UNAVAILABLE = "unavailable"  # the store cannot be used now: posts are kept, sent again later


def error(code: ErrorCode, reason: str, **more: object) -> Command:
    return RepeaterVerb.ERROR.command({"code": code.value, "reason": reason, **more})


def refusal_code(frames: Sequence[bytes]) -> ErrorCode:
    """Why ``wire.decode`` refused these frames, as an ERROR code."""
    return ErrorCode.MALFORMED if other_version(frames) is None else ErrorCode.VERSION


def other_version(frames: Sequence[bytes]) -> int | None:
    """The protocol version these frames' signature names when it is a lab93 signature
    of another version than ours; None otherwise (ours, or not lab93 at all)."""
    if frames:
        signature = bytes(frames[0])
        if len(signature) == 4 and signature[:3] == MAGIC and signature[3] != PROTOCOL_VERSION:
            return signature[3]
    return None


def legacy_hello_node(frames: Sequence[bytes]) -> str | None:
    """The node id a protocol-1 HELLO names (best effort), None if it is not one."""
    if len(frames) != 3 or bytes(frames[0]) != LEGACY_SIGNATURE or bytes(frames[1]) != b"HELLO":
        return None
    try:
        node = json.loads(bytes(frames[2])).get("node")
    except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
        return None
    return node if isinstance(node, str) and len(node) <= 64 else None


def room_field(header: dict, key: str = "room") -> str:
    """A header field naming one room, checked (the wire form: no '#', lowercase)."""
    try:
        return check_room(header.get(key))
    except RoomError:
        raise ProtocolError(f"header field {key!r} must be a room name") from None


def rooms_field(header: dict, key: str = "rooms") -> list[str]:
    """A header field listing rooms: at most MAX_ROOMS room names, each once."""
    found = header.get(key)
    if not isinstance(found, list) or len(found) > MAX_ROOMS:
        raise ProtocolError(f"header field {key!r} must list at most {MAX_ROOMS} rooms")
    rooms = [room_field({key: room}, key) for room in found]
    if len(set(rooms)) != len(rooms):
        raise ProtocolError(f"header field {key!r} names a room twice")
    return rooms


def room_marks(header: dict, key: str) -> dict[str, int]:
    """A header field mapping rooms to whole numbers (BATCH ``rooms``, ``heads``)."""
    found = header.get(key)
    if not isinstance(found, dict) or len(found) > MAX_ROOMS:
        raise ProtocolError(f"header field {key!r} must map at most {MAX_ROOMS} rooms to numbers")
    for room, mark in found.items():
        room_field({key: room}, key)
        if type(mark) is not int or not 0 <= mark <= MAX_HEADER_INT:
            raise ProtocolError(f"header field {key!r} must map rooms to whole numbers")
    return found


def message_id(payload: bytes) -> str | None:
    """Best effort: the id of a payload that failed to decode, so a REJECT can name it."""
    try:
        value = json.loads(payload).get("id")
    except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, str) and len(value) <= 64 else None


def items(header: dict, count: int, width: int = 2) -> list[list]:
    """The ``items`` list of a header: ``count`` lists of ``width`` entries."""
    found = header.get("items")
    if not isinstance(found, list) or len(found) != count:
        raise ProtocolError(f"header field 'items' must list {count} entries")
    for item in found:
        if not isinstance(item, list) or len(item) != width:
            raise ProtocolError(f"each entry of 'items' must be a list of {width}")
    return found


def listed(header: dict, width: int = 2) -> list[list]:
    """The ``items`` list of a header whose length is not tied to payloads."""
    found = header.get("items")
    if not isinstance(found, list):
        raise ProtocolError("header field 'items' must be a list")
    return items(header, len(found), width)


def seq_pair(item: list) -> tuple[int, int]:
    """One ``[seq, prev]`` entry, checked."""
    seq, prev = item
    if type(seq) is not int or type(prev) is not int or not 0 <= prev < seq <= MAX_HEADER_INT:
        # The bound is the inbox's: a bigger number could not be stored.
        raise ProtocolError("an item must be [seq, prev] with 0 <= prev < seq < 2**63")
    return seq, prev


def numbered(command: Command, *, outside: bool = False) -> list[tuple[int, int | None, Any]]:
    """``(seq, prev, message)`` for each payload of a BATCH, DELIVER or ROOM; with
    ``outside`` (a BATCH) an entry may be ``[seq, null]``: a message sent outside its
    chain (a room's current topic, older than the tail a join starts from)."""
    messages = command.messages()
    entries = items(command.header, len(messages))
    out: list[tuple[int, int | None, Any]] = []
    for item, message in zip(entries, messages, strict=True):
        if outside and item[1] is None:
            out.append((seq_pair([item[0], 0])[0], None, message))
        else:
            out.append((*seq_pair(item), message))
    return out
