"""Catch-up between broadcast peers, room by room, and our BEAT. Pure.

Each room a node is in has its ``roomsync.RoomSync`` (version vectors, floors,
pulls, hold-back: see there); ``CatchUp`` holds them, sends our BEAT - every
interval, and early when our rooms changed - and answers a SYNC for a room we
are not in with an empty BATCH (we hold nothing of it the asker could want).

Every piece of state that depends on *which messages* a vector speaks of
lives in these two modules and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..inbox import BroadcastInbox, RoomState
from ..message import Message
from ..presence import BeaconSchedule
from .actions import Output, PublishFrames, SendToPeer, Verb, published_frames
from .actions import command_frames as frames_of
from .roomsync import RoomSync, SyncRequest


class CatchUp:
    """Every room's RoomSync, and when our BEAT is due."""

    def __init__(self, node_id: str, store: BroadcastInbox, interval: float, now: float,
                 listen: bool, current_topic: Callable[[str], Message | None] | None = None
                 ) -> None:
        self.node_id = node_id
        self.current_topic = current_topic
        self.store = store
        self.interval = float(interval)
        self.listen = listen
        self.beats = BeaconSchedule(interval, now)  # our BEAT: every interval, early on news
        self.rooms: dict[str, RoomSync] = {}

    def add(self, room: str, state: RoomState | None) -> RoomSync:
        """We are in ``room`` now (``state``: the inbox's record of it, if any)."""
        sync = self.rooms[room] = RoomSync(room, self.node_id, self.store, state, self.listen,
                                           self.interval, self.current_topic)
        return sync

    def drop(self, room: str) -> None:
        self.rooms.pop(room, None)

    def get(self, room: str | None) -> RoomSync | None:
        return self.rooms.get(room) if room is not None else None

    def forget(self, peer: str, rooms: Iterable[str] | None = None) -> None:
        """Its link ended (``rooms`` None), or it left these rooms."""
        for room in self.rooms if rooms is None else rooms:
            sync = self.rooms.get(room)
            if sync is not None:
                sync.forget(peer)

    def answer(self, peer: str, request: SyncRequest, now: float) -> list[Output]:
        """A SYNC for one of our rooms (``RoomSync.answer``), or an empty BATCH."""
        sync = self.rooms.get(request.room)
        if sync is not None:
            return sync.answer(peer, request, now)
        header = {"node": self.node_id, "room": request.room, "vector": {}}
        return [SendToPeer(peer, frames_of(Verb.BATCH, header))]

    def beat_soon(self) -> None:
        """Our rooms changed: BEAT as soon as the schedule allows."""
        self.beats.request_answer()

    def beat(self, now: float) -> list[Output]:
        """Our BEAT on the PUB when one is due: the rooms we are in, each with its digest
        (none for a send-only node, which is in no room as far as the others know)."""
        if not self.beats.due(now):
            return []
        self.beats.sent(now)
        rooms = {room: sync.digest() for room, sync in sorted(self.rooms.items())}
        header = {"node": self.node_id, "rooms": rooms if self.listen else {}}
        return [PublishFrames(published_frames(Verb.BEAT, header))]

    def due(self, now: float) -> list[Output]:
        outputs: list[Output] = []
        for sync in self.rooms.values():
            outputs += sync.due(now)
        return outputs

    def next_deadline(self) -> float:
        deadlines = [sync.next_deadline() for sync in self.rooms.values()]
        return min([self.beats.next_deadline(), *(d for d in deadlines if d is not None)])
