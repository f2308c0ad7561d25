"""The inbox's side of the repeater: the server's order of messages, per chain.

A repeater server numbers every message it stores (``server_id``,
``server_seq``); these queries answer what its cores ask of that order - a
room's head and tail, what follows a client's tips, which posts are held -
and a client records the numbers its posts got. A mixin of ``store.Inbox``,
which owns the database, the models and the column list read here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import peewee as pw

from ..core.batching import chunks
from ..core.errors import StoreError, StoreFault
from ..core.message import TOPIC, Message

CHUNK = 500  # ids or numbers in one query: far below SQLite's bound-parameter limit
SERVER_SEQ = 10  # where ``Inbox._columns`` puts the server number, after a Message's fields
# ``store_schema.columns`` as plain SQL, for the replay's reads.
COLUMNS = (
    "id, author, recipient, subject, content, sent_at, origin, origin_seq, room, kind, server_seq"
)
# The rows of a room's part of the server order, as its index (message_room_server_seq) has them.
ROOM_ORDER = "recipient IS NULL AND server_seq IS NOT NULL"

Batch = Sequence[tuple[Message, "str | None", "int | None"]]


def placeholders(count: int) -> str:
    return ",".join("?" * count)


def from_row(row: tuple) -> Message:
    """A Message from the columns of ``Inbox._columns`` (validated when it was stored)."""
    return Message.trusted(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        datetime.fromisoformat(row[5]),
        row[6],
        row[7],
        row[8],
        row[9],
    )


class ServerOrder:
    """The server-order queries of an inbox (see the module docstring)."""

    _message: Any  # the message model class
    _columns: tuple

    def _run(self, sql: str, params: Sequence = ()) -> Any:
        raise NotImplementedError  # the backend's (store.Inbox, pg_store.PostgresStore)

    def _executemany(self, sql: str, rows: Sequence[tuple]) -> None:
        raise NotImplementedError

    def transaction(self) -> Any:
        raise NotImplementedError

    def held(self, server_id: str, ids: Iterable[str]) -> dict[str, int | None]:
        """Which of ``ids`` are stored: each with the number ``server_id`` gave it, or None.

        One query (per 500 ids) for what the server's dedupe and ``save_many``
        would each ask; with ``save_unknown`` it is the repeater's group commit.
        """
        found: dict[str, int | None] = {}
        for chunk in chunks(list(ids), CHUNK):
            sql = (
                "SELECT id, server_id, server_seq FROM message"
                f" WHERE id IN ({placeholders(len(chunk))})"
            )
            for mid, sid, seq in self._run(sql, chunk):
                found[mid] = seq if sid == server_id else None
        return found

    def max_server_seq(self, server_id: str) -> int:
        m = self._message
        # "IS NOT NULL" lets SQLite use the partial (server_id, server_seq) index.
        mine = (m.server_id == server_id) & m.server_seq.is_null(False)
        value = m.select(pw.fn.MAX(m.server_seq)).where(mine).scalar()
        return value or 0

    def room_head(self, server_id: str, room: str, below: int | None = None) -> int:
        """The server number of ``room``'s newest message (0: none); with ``below``, of its
        newest numbered below that (what came before a message in its chain)."""
        sql = "SELECT MAX(server_seq) FROM message WHERE room = ? AND server_id = ?"
        sql += f" AND {ROOM_ORDER}"
        params: tuple = (room, server_id)
        if below is not None:
            sql, params = sql + " AND server_seq < ?", (*params, below)
        return self._run(sql, params).fetchone()[0] or 0

    def direct_head(self, server_id: str, user: str, below: int | None = None) -> int:
        """The server number of the newest direct message to or from ``user`` (0: none);
        with ``below``, of the newest numbered below that."""
        m = self._message
        bound = (m.server_id == server_id) & m.server_seq.is_null(False)
        if below is not None:
            bound &= m.server_seq < below
        # Two queries, so each side can use its index.
        to_user = m.select(pw.fn.MAX(m.server_seq)).where(bound & (m.recipient == user)).scalar()
        from_user = (
            m.select(pw.fn.MAX(m.server_seq))
            .where(bound & m.recipient.is_null(False) & (m.author == user))
            .scalar()
        )
        return max(to_user or 0, from_user or 0)

    def room_tail_start(self, server_id: str, room: str, count: int) -> int:
        """The server number of ``room``'s newest message before its last ``count``
        (0: the room has no more than ``count``): where a first join starts."""
        sql = (
            "SELECT server_seq FROM message WHERE room = ? AND server_id = ?"
            f" AND {ROOM_ORDER} ORDER BY server_seq DESC LIMIT 1 OFFSET ?"
        )
        row = self._run(sql, (room, server_id, count)).fetchone()
        return 0 if row is None else row[0]

    def room_heads(self, server_id: str) -> dict[str, tuple[int, int]]:
        """Every room with messages numbered by ``server_id``: (messages, head) by name.

        One index search per room (a skip over the room index), not a walk of
        every message; counting walks each room's index entries, once.
        """
        first = (
            "SELECT room FROM message WHERE room > ? AND server_id = ?"
            f" AND {ROOM_ORDER} ORDER BY room LIMIT 1"
        )
        sizes = (
            "SELECT COUNT(*), MAX(server_seq) FROM message WHERE room = ? AND server_id = ?"
            f" AND {ROOM_ORDER}"
        )
        rooms: dict[str, tuple[int, int]] = {}
        room = ""
        while (row := self._run(first, (room, server_id)).fetchone()) is not None:
            room = row[0]
            count, head = self._run(sizes, (room, server_id)).fetchone()
            rooms[room] = (count, head)
        return rooms

    def visible_since(
        self,
        server_id: str,
        rooms: Mapping[str, int],
        direct_after: int,
        user: str,
        limit: int,
    ) -> tuple[list[tuple[int, Message]], bool]:
        """What ``user`` may see past its marks, in server order, and whether more is left.

        The messages of each room of ``rooms`` numbered above that room's mark,
        and the direct messages to or from ``user`` numbered above
        ``direct_after``; at most ``limit`` of them. The answer is complete up
        to its last number (nothing visible below it is left out), so a caller
        can page on by moving its marks.

        Two steps: the numbers first, from each chain's index alone (at most
        ``limit`` + 1 each), then the rows of the ``limit`` lowest - so twenty
        rooms cost twenty index searches, not twenty times the rows.
        """
        room_sql = (
            "SELECT server_seq FROM message WHERE room = ? AND server_id = ?"
            f" AND {ROOM_ORDER} AND server_seq > ? ORDER BY server_seq LIMIT ?"
        )
        to_sql = (
            "SELECT server_seq FROM message WHERE recipient = ? AND server_id = ?"
            " AND server_seq > ? ORDER BY server_seq LIMIT ?"
        )
        from_sql = (
            "SELECT server_seq FROM message WHERE author = ? AND server_id = ?"
            " AND recipient IS NOT NULL AND server_seq > ? ORDER BY server_seq LIMIT ?"
        )
        numbers: set[int] = set()
        for room, after in rooms.items():
            numbers.update(
                r[0] for r in self._run(room_sql, (room, server_id, after, limit + 1))
            )
        for sql in (to_sql, from_sql):  # a message to oneself is in both: counted once
            numbers.update(
                r[0] for r in self._run(sql, (user, server_id, direct_after, limit + 1))
            )
        ordered = sorted(numbers)
        chosen = ordered[:limit]
        found: list[tuple[int, Message]] = []
        for chunk in chunks(chosen, CHUNK):
            # Plain SQL: peewee's rows convert each column in Python (a third of a replay).
            sql = (
                f"SELECT {COLUMNS} FROM message WHERE server_id = ? AND server_seq IS NOT NULL"
                f" AND server_seq IN ({placeholders(len(chunk))})"
            )
            rows = self._run(sql, (server_id, *chunk))
            found += [(row[SERVER_SEQ], from_row(row)) for row in rows]
        found.sort(key=lambda item: item[0])
        return found, len(ordered) > limit

    def numbered_topic(self, server_id: str, room: str) -> tuple[int, Message] | None:
        """``room``'s winning topic message among those ``server_id`` numbered, with its
        number: the one a first join is told."""
        m = self._message
        query = (
            m.select(*self._columns)
            .where(
                (m.room == room)
                & (m.kind == TOPIC)
                & (m.server_id == server_id)
                & m.server_seq.is_null(False)
            )
            .order_by(m.sent_at.desc(), m.id.desc())
            .limit(1)
        )
        row = query.tuples().first()
        return None if row is None else (row[SERVER_SEQ], from_row(row))

    # -- the order shared by the servers of a service (pg_store overrides these) --------

    def lock_order(self, server_id: str) -> int | None:
        """Inside a commit's transaction: wait until no other server of the service numbers
        messages, and return the order's head as stored now; None when this server is
        the only one that writes its order (a SQLite file: ``InboxLock`` makes it so)."""
        return None

    def tell_order(self, server_id: str, head: int) -> None:
        """Inside a commit's transaction: tell the other servers, once it commits, that
        the order reached ``head`` (SQLite: no one to tell)."""

    def numbered_after(
        self, server_id: str, after: int, limit: int
    ) -> list[tuple[int, Message]]:
        """The messages numbered above ``after``, in order, at most ``limit``: what other
        servers of the service stored since this one last looked."""
        sql = (
            f"SELECT {COLUMNS} FROM message WHERE server_id = ? AND server_seq IS NOT NULL"
            " AND server_seq > ? ORDER BY server_seq LIMIT ?"
        )
        rows = self._run(sql, (server_id, after, limit))
        return [(row[SERVER_SEQ], from_row(row)) for row in rows]

    def set_server_seq(self, message_id: str, server_id: str, server_seq: int) -> None:
        """Record the order a server gave a message this node had already stored."""
        m = self._message
        try:
            m.update(server_id=server_id, server_seq=server_seq).where(m.id == message_id).execute()
        except pw.IntegrityError as error:
            raise StoreError(f"the inbox refused a server number: {error}") from None

    def set_server_seqs(self, server_id: str, numbers: Iterable[tuple[str, int]]) -> None:
        """``set_server_seq`` for many ``(message_id, server_seq)`` pairs, in one transaction."""
        rows = [(server_id, seq, mid) for mid, seq in numbers]
        table = self._message._meta.table_name
        sql = f"UPDATE {table} SET server_id = ?, server_seq = ? WHERE id = ?"
        try:
            with self.transaction():
                self._executemany(sql, rows)
        except StoreFault:
            raise
        except StoreError as error:
            raise StoreError(f"the inbox refused a server number: {error}") from None
