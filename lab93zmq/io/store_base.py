"""What every store does the same way, SQLite file or PostgreSQL database.

Saving (one transaction a batch, a stored id skipped), reading (by id, the
history, a room's topic), the meta table, a node's own numbering, and the
outbox. A backend (``store.Inbox``, ``pg_store.PostgresStore``) opens the
database, declares the models (``store_schema.models``), and supplies
``_run`` and ``_executemany``, which take SQL written with ``?`` markers and
raise StoreError for a row that is refused, StoreFault for a store that fails.
A broadcast node's rooms (marks, tails, the ``room`` table) are the SQLite
inbox's alone: ``room_store.py``.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import peewee as pw

from ..core.errors import StoreError
from ..core.message import TOPIC, Message
from ..core.rooms import DEFAULT_ROOM
from .server_order import from_row, placeholders
from .store_schema import INSERT, QUEUE, chunks, to_row

Batch = Sequence[tuple[Message, "str | None", "int | None"]]


class StoreBase:
    """The backend-neutral half of a store (see the module docstring)."""

    node_id: str
    path: Path | str
    _db: pw.Database
    _meta: Any
    _message: Any
    _outbox: Any
    _columns: tuple
    _arrival: int = 0
    _queued: int = 0

    # -- what a backend supplies ------------------------------------------------

    def _run(self, sql: str, params: Sequence = ()) -> Any:
        """Execute ``sql`` (``?`` markers); the cursor."""
        raise NotImplementedError

    def _executemany(self, sql: str, rows: Sequence[tuple]) -> None:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[Any]:
        """Everything done inside ``with store.transaction():`` commits together (or not at all)."""
        raise NotImplementedError

    def _save_signatures(self, messages: Sequence[Message]) -> None:
        """Keep the signatures of new messages (a broadcast inbox's: ``signature_store``)."""

    def _signed(self, messages: list[Message]) -> list[Message]:
        """``messages`` with their signatures, where this store keeps any."""
        return messages

    def _arrivals(self, rows: int, server_seqs: Sequence[int | None]) -> list[int]:
        """The local arrival numbers of ``rows`` new rows (SQLite: this node's own count)."""
        first = self._arrival + 1
        self._arrival += rows
        return list(range(first, first + rows))

    # -- meta ---------------------------------------------------------------------
    #
    # The hot path is plain SQL, the same in SQLite and PostgreSQL (``?`` markers):
    # peewee's query building cost 60-70 us a query, more than SQLite's work.

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._run('SELECT value FROM meta WHERE "key" = ?', (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self._run(
            'INSERT INTO meta ("key", value) VALUES (?, ?)'
            ' ON CONFLICT ("key") DO UPDATE SET value = excluded.value',
            (key, value),
        )

    # -- saving ---------------------------------------------------------------------

    def save(
        self, message: Message, server_id: str | None = None, server_seq: int | None = None
    ) -> bool:
        """Store one message; False when its id was already stored (a no-op)."""
        return self.save_many([(message, server_id, server_seq)])[0]

    def save_many(self, batch: Batch) -> list[bool]:
        """Store a batch in one transaction; for each item, whether it was new.

        A message whose id is already stored is skipped, as is a second copy
        within the batch itself.
        """
        if not batch:
            return []
        with self.transaction():
            return self._insert(batch, self._known_ids([m.id for m, _, _ in batch]))

    def save_within(self, batch: Batch) -> list[bool]:
        """``save_many`` for a caller inside its own transaction that undoes all of it on
        StoreError (a burst of our own posts): no savepoint of its own, two statements
        less a burst (about 30 us; a short burst's largest cost)."""
        if not batch:
            return []
        if self._db.transaction_depth() == 0:
            return self.save_many(batch)
        return self._insert(batch, self._known_ids([m.id for m, _, _ in batch]))

    def save_unknown(
        self, batch: Batch, known: Container[str], *, savepoint: bool = True
    ) -> list[bool]:
        """``save_many`` for a caller that has looked the ids up already (``held``).

        ``known`` holds the ids of the batch that are stored; those are skipped
        without asking the database again, as is a second copy within the batch.
        ``savepoint=False``: the caller's transaction is left on StoreError (the
        group commit's is), so it undoes a refused batch; no savepoint is taken
        (two statements less per commit).
        """
        if not batch:
            return []
        if not savepoint and self._db.transaction_depth() > 0:
            return self._insert(batch, known)
        with self.transaction():
            return self._insert(batch, known)

    def _insert(self, batch: Batch, known: Container[str]) -> list[bool]:
        # The caller holds a transaction (or savepoint): a refused row undoes the batch.
        new: list[tuple[Message, str | None, int | None]] = []
        fresh, seen = [], set()
        for item in batch:
            mid = item[0].id
            is_new = mid not in known and mid not in seen
            fresh.append(is_new)
            if is_new:
                seen.add(mid)
                new.append(item)
        before = self._arrival
        arrivals = self._arrivals(len(new), [seq for _, _, seq in new])
        rows = [
            to_row(message, sid, seq, arrival)
            for (message, sid, seq), arrival in zip(new, arrivals, strict=True)
        ]
        try:
            self._executemany(INSERT, rows)
            self._save_signatures([message for message, _, _ in new])
        except StoreError:
            self._arrival = before
            raise
        return fresh

    def _known_ids(self, ids: Iterable[str]) -> set[str]:
        known: set[str] = set()
        for chunk in chunks(list(ids)):
            sql = f"SELECT id FROM message WHERE id IN ({placeholders(len(chunk))})"
            known.update(row[0] for row in self._run(sql, chunk))
        return known

    # -- reading ---------------------------------------------------------------------

    def get(self, message_id: str) -> Message | None:
        m = self._message
        row = m.select(*self._columns).where(m.id == message_id).tuples().first()
        return None if row is None else self._signed([from_row(row)])[0]

    def __contains__(self, message_id: str) -> bool:
        return self._message.select().where(self._message.id == message_id).exists()

    def count(self) -> int:
        return self._message.select().count()

    def history(
        self,
        limit: int | None = None,
        room: str | Sequence[str] | None = None,
        chat_only: bool = False,
    ) -> list[Message]:
        """The inbox oldest first, in the messages' own order: by ``sent_at``, and
        messages of the same microsecond in the order they came in; with ``limit``,
        the newest N; with ``room``, only that room's messages. Not arrival order: a
        message caught up from a peer is shown where it was written, not where it
        came in. ``chat_only``: leave out topic messages, keep chat and actions (what
        people are shown: a topic message sets a topic, see ``current_topic``; it is
        not a line of the conversation)."""
        m = self._message
        query = m.select(*self._columns).order_by(m.sent_at.desc(), m.arrival.desc())
        if chat_only:
            query = query.where(m.kind.is_null() | (m.kind != TOPIC))
        if isinstance(room, str):
            query = query.where(m.room == room)
        elif room is not None:
            query = query.where(m.room.in_(list(room)))
        if limit is not None:
            query = query.limit(limit)
        return [from_row(row) for row in reversed(list(query.tuples()))]

    def current_topic(self, room: str) -> Message | None:
        """``room``'s topic message that wins: the greatest (sent_at, id) of its topic
        messages in this inbox, or None when it has none."""
        m = self._message
        query = (
            m.select(*self._columns)
            .where((m.room == room) & (m.kind == TOPIC))
            .order_by(m.sent_at.desc(), m.id.desc())
            .limit(1)
        )
        row = query.tuples().first()
        return None if row is None else self._signed([from_row(row)])[0]

    # -- own numbering ----------------------------------------------------------------

    def next_origin_seq(self, origin: str, direct: bool, room: str = DEFAULT_ROOM) -> int:
        """The next number ``origin`` gives to a direct message, or to a message of ``room``."""
        m = self._message
        if direct:
            scope = m.recipient.is_null(False)
        else:
            scope = m.recipient.is_null(True) & (m.room == room)
        value = m.select(pw.fn.MAX(m.origin_seq)).where((m.origin == origin) & scope).scalar()
        return (value or 0) + 1

    # -- outbox -------------------------------------------------------------------------

    def queue(self, message: Message) -> None:
        """Store a message this node authored and keep it until acknowledged."""
        self.queue_many([message])

    def queue_many(self, messages: Sequence[Message]) -> None:
        """Store messages this node authored and keep them until acknowledged, in one
        transaction (a front end's burst of lines)."""
        if not messages:
            return
        # One transaction, no savepoint inside: a refused row undoes the whole burst. A
        # message queued already keeps its place (QUEUE does nothing for its id): no
        # look-up of the outbox first (about 1 us a line of a pipeline).
        with self.transaction():
            self._insert([(m, None, None) for m in messages],
                         self._known_ids([m.id for m in messages]))
            rows = []
            for message in messages:
                self._queued += 1
                rows.append((message.id, self._queued))
            self._executemany(QUEUE, rows)

    def outbox(self) -> list[Message]:
        """Unacknowledged messages, in the order they were queued."""
        m, o = self._message, self._outbox
        query = m.select(*self._columns).join(o, on=(o.message_id == m.id)).order_by(o.queued)
        return self._signed([from_row(row) for row in query.tuples()])

    def acknowledge(self, message_ids: Iterable[str]) -> int:
        """Drop acknowledged messages from the outbox; how many were there. Inside the
        caller's transaction (a client's commit of what came in) no savepoint of its own:
        a failure is the caller's to undo, and a DELETE leaves nothing half done."""
        ids = list(message_ids)
        if self._db.transaction_depth() > 0:
            return self._unqueue(ids)
        with self.transaction():
            return self._unqueue(ids)

    def _unqueue(self, message_ids: list[str]) -> int:
        removed = 0
        for chunk in chunks(message_ids):
            sql = f"DELETE FROM outbox WHERE message_id IN ({placeholders(len(chunk))})"
            removed += self._run(sql, chunk).rowcount
        return removed
