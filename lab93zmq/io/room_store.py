"""The inbox's rooms, for broadcast mode: each room's marks, its newest messages, and
whether this node is in it (the ``room`` table). A mixin of ``store.Inbox`` (a
broadcast node keeps a SQLite inbox), which owns the database and the models.

A room's *marks* are per origin: the highest ``n`` such that the inbox holds
all of that origin's messages of the room from its *floor* + 1 up to ``n``.
The floor (0 unless set) is where a node's interest in a room begins: on its
first join of a room it is given the room's newest messages only (a *tail*),
and the part older than that tail is below its floors, never asked for
(see core/broadcast/catchup.py). A room's row in the ``room`` table:

* ``name``: the room (primary key);
* ``joined``: this node is in the room: it stays in it across restarts, and
  catches up in full from its marks when it comes back;
* ``parted``: it was in the room and left it (``/part``); a later join is a
  *rejoin* (given what it lacks of the tail again);
* ``floors``: a JSON object ``{origin: floor}``, or NULL while no tail has
  been given yet (a first join that met nobody in the room so far).

A room without a row was never joined by this inbox (a send-only run, which
only posts, writes none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import peewee as pw

from ..core.inbox import RoomState
from ..core.message import Message
from ..core.rooms import DEFAULT_ROOM
from .server_order import from_row
from .store_schema import TAIL_INDEX


def room_model(db: pw.Database) -> type[pw.Model]:
    """The ``room`` table's model, bound to ``db``."""

    class Room(pw.Model):
        name = pw.CharField(primary_key=True, max_length=32)
        joined = pw.BooleanField(default=False)
        parted = pw.BooleanField(default=False)
        floors = pw.TextField(null=True)  # JSON {origin: floor}; NULL: no tail given yet

        class Meta:
            database = db
            table_name = "room"

    return Room


# What ``newest`` selects: a Message's fields, then the server number, as ``Inbox._columns``.
COLUMNS = ("id, author, recipient, subject, content, sent_at, origin, origin_seq, room, kind,"
           " server_seq")


class RoomStore:
    """What ``store.Inbox`` answers about rooms (it provides the attributes below)."""

    _message: type[pw.Model]
    _room: type[pw.Model]
    _columns: tuple

    def _signed(self, messages: list[Message]) -> list[Message]:
        raise NotImplementedError  # signature_store.SignatureStore's

    def _run(self, sql: str, params: Sequence = ()) -> Any:
        raise NotImplementedError  # store.Inbox's

    # -- each room's marks and messages -------------------------------------------

    def origin_marks(
        self, room: str = DEFAULT_ROOM, floors: Mapping[str, int] | None = None
    ) -> dict[str, int]:
        """For each origin, its mark in ``room`` counted from its floor (``floors``; 0 when
        absent): the highest n such that its messages floor+1..n are all here, and at
        least the floor. Uses the (room, origin, origin_seq) index."""
        floors = floors or {}
        sql = """
            SELECT origin, COUNT(*), MAX(origin_seq) FROM message
            WHERE recipient IS NULL AND room = ? GROUP BY origin
        """
        marks = {origin: floor for origin, floor in floors.items() if floor > 0}
        for origin, count, highest in self._run(sql, (room,)).fetchall():
            floor = floors.get(origin, 0)
            if floor:
                count, highest = self._above(room, origin, floor)
            if highest is None:
                continue  # nothing above its floor
            if count == highest - floor:
                marks[origin] = highest
            else:
                marks[origin] = self._contiguous(room, origin, floor)
        return marks

    def _above(self, room: str, origin: str, floor: int) -> tuple[int, int | None]:
        sql = """
            SELECT COUNT(*), MAX(origin_seq) FROM message
            WHERE recipient IS NULL AND room = ? AND origin = ? AND origin_seq > ?
        """
        count, highest = self._run(sql, (room, origin, floor)).fetchone()
        return count, highest

    def _contiguous(self, room: str, origin: str, floor: int) -> int:
        # Only reached when an origin has a hole above its floor: find the first one.
        sql = """
            SELECT origin_seq FROM message WHERE recipient IS NULL AND room = ? AND origin = ?
            AND origin_seq > ? ORDER BY origin_seq
        """
        expected = floor + 1
        for (seq,) in self._run(sql, (room, origin, floor)):
            if seq != expected:
                break
            expected += 1
        return expected - 1

    def origin_after(
        self, origin: str, after_seq: int, limit: int, room: str = DEFAULT_ROOM
    ) -> list[Message]:
        """Messages of ``room`` by ``origin`` numbered above ``after_seq``, in order."""
        m = self._message
        query = (
            m.select(*self._columns)
            .where(
                (m.room == room)
                & (m.origin == origin)
                & m.recipient.is_null(True)
                & (m.origin_seq > after_seq)
            )
            .order_by(m.origin_seq)
            .limit(limit)
        )
        return self._signed([from_row(row) for row in query.tuples()])

    def index_tails(self) -> None:
        """Index each room's messages by time, for ``newest`` (a broadcast node's inbox
        only, made when it opens one: ``Inbox(path, role="broadcast")``; a repeater
        server never answers a tail, and every index slows each insert).
        Not (room, sent_at, id): a burst of posts of one microsecond would land at random
        places of it (the id is random), which made storing a busy room 80 % slower."""
        self._run(f"CREATE INDEX IF NOT EXISTS {TAIL_INDEX} ON message (room, sent_at)"
                  " WHERE recipient IS NULL")

    def newest(self, room: str, count: int) -> list[Message]:
        """The newest ``count`` messages of ``room`` by (sent_at, id), newest first. Plain
        SQL: every first join asks each peer in the room for it."""
        sql = f"""
            SELECT {COLUMNS} FROM message WHERE recipient IS NULL AND room = ?
            ORDER BY sent_at DESC, id DESC LIMIT ?
        """
        return self._signed([from_row(row) for row in self._run(sql, (room, count))])

    # -- whether this node is in each room --------------------------------------------

    def room_states(self) -> dict[str, RoomState]:
        """Every room this inbox was ever in, with its state."""
        states = {}
        for name, joined, parted, floors in self._room.select(
            self._room.name, self._room.joined, self._room.parted, self._room.floors
        ).tuples():
            states[name] = RoomState(bool(joined), bool(parted),
                                     None if floors is None else json.loads(floors))
        return states

    def save_room_state(self, room: str, state: RoomState) -> None:
        """Write ``room``'s state (its row made or replaced)."""
        floors = None if state.floors is None else json.dumps(dict(sorted(state.floors.items())))
        self._room.replace(name=room, joined=state.joined, parted=state.parted,
                           floors=floors).execute()

    def stayed_in(self, room: str) -> None:
        """This inbox was in ``room`` from its very first message on (0.1.0's one room):
        joined, with no floors, so it is caught up in full."""
        self.save_room_state(room, RoomState(joined=True, parted=False, floors={}))
