"""The repeater's commands, both ways, and the header fields they share. Pure.

One enum names every command; each side keeps a table from it to its
handlers (``ServerCore``, ``ClientCore``), so a name that is not in the
enum, or not in a side's table, is refused in one place. The frames are
``wire.py``'s envelope; docs/PROTOCOL.rst has the whole page::

    client -> server (DEALER -> ROUTER)
      HELLO  {"user", "node", "software"}       -> WELCOME
      FETCH  {"room": int|null, "dm": int, "limit"} -> BATCH
      POST   {} + messages                      -> ACK (stored ones), REJECT (invalid ones)
      WHO    {}                                 -> USERS
      PING   {}                                 heartbeat, no answer
      BYE    {}                                 the session ends now
    server -> client (ROUTER -> DEALER)
      WELCOME {"server", "pub_port", "heartbeat", "timeout", "head", "room_head", "dm_head"}
      BATCH   {"room", "dm", "items": [[seq, prev], ...], "more", "head", "room_head", "dm_head"}
              + messages
      DELIVER {"items": [[seq, prev], ...]} + direct messages, live
      ACK     {"items": [[id, seq], ...]}
      REJECT  {"items": [[id|null, reason], ...]}
      USERS   {"users": [...]}
      PING    {"head", "dm_head"}
      BYE     {}
      ERROR   {"code", "reason"}
    server PUB
      ROOM    {"server", "items": [[seq, prev], ...]} + room messages
      TICK    {"server", "head", "room_head"}
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import ProtocolError
from ..wire import MAGIC, MAX_HEADER_INT, PROTOCOL_VERSION, Command

HEARTBEAT = 1.0  # seconds between heartbeats, both ways
BATCH_LIMIT = 500  # messages in one BATCH, ROOM or DELIVER


class RepeaterVerb(str, enum.Enum):
    """Every repeater command name; the value is the name frame."""

    HELLO = "HELLO"
    FETCH = "FETCH"
    POST = "POST"
    WHO = "WHO"
    PING = "PING"
    BYE = "BYE"
    WELCOME = "WELCOME"
    BATCH = "BATCH"
    DELIVER = "DELIVER"
    ACK = "ACK"
    REJECT = "REJECT"
    USERS = "USERS"
    ERROR = "ERROR"
    ROOM = "ROOM"
    TICK = "TICK"

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


def error(code: ErrorCode, reason: str) -> Command:
    return RepeaterVerb.ERROR.command({"code": code.value, "reason": reason})


def refusal_code(frames: Sequence[bytes]) -> ErrorCode:
    """Why ``wire.decode`` refused these frames, as an ERROR code."""
    if frames:
        signature = bytes(frames[0])
        if len(signature) == 4 and signature[:3] == MAGIC and signature[3] != PROTOCOL_VERSION:
            return ErrorCode.VERSION
    return ErrorCode.MALFORMED


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


def numbered(command: Command) -> list[tuple[int, int, Any]]:
    """``(seq, prev, message)`` for each payload of a BATCH, DELIVER or ROOM."""
    messages = command.messages()
    entries = items(command.header, len(messages))
    return [(*seq_pair(item), message) for item, message in zip(entries, messages, strict=True)]
