"""What a client missed, pure: the server's answer to FETCH.

A FETCH names the last number the client holds in each of its chains (its
*tips*); the answer is the next messages it may see, in server order, each
with ``prev`` in its own chain, so the client can tell it holds the chain
without holes. A client that has never seen this server sends no room tip and
starts from the last ``tail`` room messages (like IRC's channel history).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ProtocolError
from ..inbox import ServerInbox
from ..wire import Command, header_int
from .commands import BATCH_LIMIT, RepeaterVerb

TAIL = 100  # room messages a never-seen client gets
BATCH_BYTES = 4 * 1024 * 1024  # and at most this many payload bytes in one BATCH
ROOM, DIRECT = "room", "dm"  # the chains a FETCH names, by their header field


@dataclass(frozen=True)
class Heads:
    """Where the server's numbering stands, as every BATCH tells it."""

    head: int
    room_head: int
    dm_head: int


class Replay:
    """Answers FETCH from the server's inbox."""

    def __init__(
        self, inbox: ServerInbox, *, tail: int = TAIL, batch_limit: int = BATCH_LIMIT
    ) -> None:
        self.inbox = inbox
        self.server_id = inbox.node_id
        self.tail = tail
        self.batch_limit = batch_limit

    def answer(self, header: dict, user: str, heads: Heads) -> Command:
        """The BATCH for one FETCH ``header`` from a session of ``user``; ProtocolError
        names a bad field."""
        after = {DIRECT: header_int(header, "dm")}
        limit = header.get("limit", self.batch_limit)
        if type(limit) is not int or limit < 1:
            raise ProtocolError("header field 'limit' must be a whole number >= 1")
        limit = min(limit, self.batch_limit)
        after[ROOM] = (
            self.room_start() if header.get("room") is None else header_int(header, "room")
        )
        found, more = self.inbox.visible_since(
            self.server_id, after[ROOM], after[DIRECT], user, limit
        )
        prevs = dict(after)
        items, payloads, size = [], [], 0
        for seq, message in found:
            payload = message.encode()
            if payloads and size + len(payload) > BATCH_BYTES:
                more = True
                break
            size += len(payload)
            chain = DIRECT if message.is_direct else ROOM
            items.append([seq, prevs[chain]])
            prevs[chain] = seq
            payloads.append(payload)
        batch = {
            "room": after[ROOM],
            "dm": after[DIRECT],
            "items": items,
            "more": more,
            "head": heads.head,
            "room_head": heads.room_head,
            "dm_head": heads.dm_head,
        }
        return RepeaterVerb.BATCH.command(batch, payloads)

    def room_start(self) -> int:
        """For a client new to this server: the number before the last ``tail`` room
        messages, where its room chain starts."""
        start = self.inbox.room_tail_start(self.server_id, self.tail)
        return self.inbox.last_seqs(self.server_id, None, through=start)[0]
