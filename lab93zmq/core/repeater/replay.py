"""What a client missed, pure: the server's answer to FETCH.

A FETCH names, for each room the client is in, where it stands, and the
last number it holds of its direct messages. A room it stands in names its
tip (``after``): the answer goes on from there, nothing left out. A room it
is joining names how much history it wants (``tail``; ``after`` the tip it
had when it left, if it was there before): the answer starts before the
room's last ``tail`` messages - or at its old tip, if that is later - and
brings the room's current topic along even when that is older (an entry
``[seq, null]``: outside the chain). Every other message comes with ``prev``,
the number before it in its own chain, so the client can tell it holds each
chain without holes. The answer is in server order and complete up to its
last number; ``more`` says a next page waits.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ProtocolError
from ..inbox import ServerInbox
from ..wire import Command, header_int
from .commands import BATCH_LIMIT, MAX_ROOMS, RepeaterVerb, room_field
from .commit import GroupCommit
from .directory import RoomDirectory

TAIL = 100  # a room's messages a first join gets
BATCH_BYTES = 4 * 1024 * 1024  # and at most this many payload bytes in one BATCH


@dataclass(frozen=True)
class Stand:
    """Where a FETCH says a client stands in one room."""

    after: int | None  # its tip (or, joining again, the tip it left with); None: never there
    tail: int | None  # joining: the room's last messages it wants; None: it stays in the room


def stands(header: dict) -> dict[str, Stand]:
    """The ``rooms`` of a FETCH header, checked; ProtocolError names what is wrong."""
    rooms = header.get("rooms")
    if not isinstance(rooms, dict) or len(rooms) > MAX_ROOMS:
        raise ProtocolError(f"header field 'rooms' must map at most {MAX_ROOMS} rooms")
    found: dict[str, Stand] = {}
    for room, stand in rooms.items():
        room_field({"rooms": room}, "rooms")
        if not isinstance(stand, dict):
            raise ProtocolError("each room of 'rooms' must map to {\"after\", \"tail\"}")
        after = None if stand.get("after") is None else header_int(stand, "after")
        tail = None if stand.get("tail") is None else header_int(stand, "tail")
        if after is None and tail is None:
            raise ProtocolError("a room of 'rooms' needs 'after', 'tail' or both")
        found[room] = Stand(after, tail)
    return found


class Replay:
    """Answers FETCH from the server's inbox."""

    def __init__(
        self,
        inbox: ServerInbox,
        commit: GroupCommit,
        directory: RoomDirectory,
        *,
        tail: int = TAIL,
        batch_limit: int = BATCH_LIMIT,
    ) -> None:
        self.inbox = inbox
        self.server_id = inbox.node_id
        self.commit = commit
        self.directory = directory
        self.tail = tail
        self.batch_limit = batch_limit

    def answer(self, header: dict, user: str) -> Command:
        """The BATCH for one FETCH ``header`` from a session of ``user``; ProtocolError
        names a bad field."""
        direct = header_int(header, "dm")
        limit = header.get("limit", self.batch_limit)
        if type(limit) is not int or limit < 1:
            raise ProtocolError("header field 'limit' must be a whole number >= 1")
        limit = min(limit, self.batch_limit)
        rooms = stands(header)
        starts = {room: self.start(room, stand) for room, stand in rooms.items()}
        found, more = self.inbox.visible_since(self.server_id, starts, direct, user, limit)
        items, payloads, size = [], [], 0
        # A joining room's topic, when it is older than where the room starts.
        for room, stand in rooms.items():
            topic = self.directory.topics.numbered(room) if stand.tail is not None else None
            if topic is not None and topic[0] is not None and topic[0] <= starts[room]:
                payload = topic[1].encode()
                items.append([topic[0], None])
                payloads.append(payload)
                size += len(payload)
        prevs = {("dm", None): direct, **{("room", r): start for r, start in starts.items()}}
        for seq, message in found:
            payload = message.encode()
            if payloads and size + len(payload) > BATCH_BYTES:
                more = True
                break
            size += len(payload)
            chain = ("dm", None) if message.is_direct else ("room", message.room)
            items.append([seq, prevs[chain]])
            prevs[chain] = seq
            payloads.append(payload)
        batch = {
            "rooms": starts,
            "dm": direct,
            "items": items,
            "more": more,
            "head": self.commit.head,
            "heads": {room: self.commit.room_head(room) for room in rooms},
            "dm_head": self.commit.dm_head(user),
        }
        return RepeaterVerb.BATCH.command(batch, payloads)

    def start(self, room: str, stand: Stand) -> int:
        """The number ``room``'s answer starts after."""
        if stand.tail is None:
            return stand.after
        start = self.inbox.room_tail_start(self.server_id, room, min(stand.tail, self.tail))
        if stand.after is None:
            return start
        # Back after a PART: from where it left, if that is later - and never past the
        # room's head (a server restored from an older copy may be behind it).
        return max(start, min(stand.after, self.commit.room_head(room)))
