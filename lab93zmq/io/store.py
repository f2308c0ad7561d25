"""The inbox: every message a node has seen, its identity, and its outbox.

peewee over SQLite in WAL mode. One ``Inbox`` per node; it must be used from
one thread only (the actor that owns it). Each ``Inbox`` gets its own model
classes bound to its own database, so a server and its clients can live in one
test process without sharing state.

Two numbering schemes meet here:

* ``origin``/``origin_seq``: the authoring node's own counter. Room messages
  and direct messages are counted separately, so the room sequence of an origin
  has no holes and catch-up can compare contiguous high-water marks.
* ``server_id``/``server_seq``: the order a repeater server gave a message.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
from collections.abc import Container, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import peewee as pw

from ..core.errors import StoreError
from ..core.message import TOPIC, Message, time_text
from ..core.rooms import DEFAULT_ROOM
from .paths import prepare_parent
from .server_order import ServerOrder, from_row, placeholders

_from_tuple, _placeholders = from_row, placeholders  # the names this module grew up with

SCHEMA_VERSION = 2  # 2: rooms (message.room, message.kind; room numbering per room)
_CHUNK = 500  # stay far below SQLite's bound-parameter limit
ROOM_ORIGIN_INDEX = "message_room_origin_seq_by_room"


def _models(db: pw.Database) -> tuple[type[pw.Model], type[pw.Model], type[pw.Model]]:
    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Meta(Base):
        key = pw.CharField(primary_key=True)
        value = pw.TextField()

    class StoredMessage(Base):
        id = pw.CharField(primary_key=True, max_length=32)
        author = pw.CharField(max_length=64)
        recipient = pw.CharField(max_length=64, null=True)
        subject = pw.TextField(null=True)
        content = pw.TextField()
        sent_at = pw.CharField(max_length=40)  # ISO 8601 UTC: sorts as text
        origin = pw.CharField(max_length=32)
        origin_seq = pw.IntegerField()
        room = pw.CharField(max_length=32, null=True)  # null: a direct message
        kind = pw.CharField(max_length=16, null=True)  # null: chat; "topic"
        server_id = pw.CharField(max_length=32, null=True)
        server_seq = pw.IntegerField(null=True)
        # Local arrival order, for --history and "last N".
        arrival = pw.IntegerField(index=True)

        class Meta:
            table_name = "message"

    # An origin numbers each room apart (schema 1 had one room: origin, origin_seq).
    StoredMessage.add_index(
        StoredMessage.index(
            StoredMessage.room,
            StoredMessage.origin,
            StoredMessage.origin_seq,
            unique=True,
            where=StoredMessage.recipient.is_null(True),
            name=ROOM_ORIGIN_INDEX,
        )
    )
    StoredMessage.add_index(
        StoredMessage.index(
            StoredMessage.origin,
            StoredMessage.origin_seq,
            unique=True,
            where=StoredMessage.recipient.is_null(False),
            name="message_direct_origin_seq",
        )
    )
    StoredMessage.add_index(
        StoredMessage.index(
            StoredMessage.server_id,
            StoredMessage.server_seq,
            unique=True,
            where=StoredMessage.server_seq.is_null(False),
            name="message_server_seq",
        )
    )
    StoredMessage.add_index(
        StoredMessage.index(
            StoredMessage.recipient,
            StoredMessage.server_id,
            StoredMessage.server_seq,
            where=StoredMessage.recipient.is_null(False),
            name="message_direct_recipient",
        )
    )
    # A room's part of the server order: its head, its tail, what follows a tip.
    StoredMessage.add_index(
        StoredMessage.index(
            StoredMessage.room,
            StoredMessage.server_id,
            StoredMessage.server_seq,
            where=StoredMessage.recipient.is_null(True) & StoredMessage.server_seq.is_null(False),
            name="message_room_server_seq",
        )
    )
    # A room's topic messages, newest first: its current topic is the first.
    StoredMessage.add_index(
        StoredMessage.index(
            StoredMessage.room,
            StoredMessage.sent_at,
            StoredMessage.id,
            where=StoredMessage.kind.is_null(False),
            name="message_room_topic",
        )
    )
    # The "from" side of a user's direct messages; without it, finding the last
    # one of a user who never sent any walked the whole server order (0.27 s at
    # a million rows, on every HELLO).
    StoredMessage.add_index(
        StoredMessage.index(
            StoredMessage.author,
            StoredMessage.server_id,
            StoredMessage.server_seq,
            where=StoredMessage.recipient.is_null(False),
            name="message_direct_author",
        )
    )

    class Outbox(Base):
        """Messages this node authored that are not acknowledged yet."""

        message_id = pw.CharField(primary_key=True, max_length=32)
        queued = pw.IntegerField()  # order of queueing, so re-sends keep order

    return Meta, StoredMessage, Outbox


# The group-commit hot path: one executemany of plain tuples. peewee's
# insert_many builds the SQL row by row (~45 us a row here); this is ~10x less.
_INSERT = (
    "INSERT INTO message (id, author, recipient, subject, content, sent_at, origin,"
    " origin_seq, room, kind, server_id, server_seq, arrival)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _to_row(message: Message, server_id: str | None, server_seq: int | None, arrival: int) -> tuple:
    return (
        message.id,
        message.author,
        message.recipient,
        message.subject,
        message.content,
        time_text(message.sent_at),
        message.origin,
        message.origin_seq,
        message.room,
        message.kind,
        server_id,
        server_seq,
        arrival,
    )


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterable[Sequence]:
    """``items`` in slices of at most ``size`` (peewee's ``chunked`` pads each to ``size``)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Inbox(ServerOrder):
    """A node's inbox file. Open it, use it from one thread, close it."""

    def __init__(self, path: Path | str, *, new_node_id: bytes | None = None) -> None:
        self.path = Path(path)
        prepare_parent(self.path)
        self._db = pw.SqliteDatabase(
            str(self.path),
            pragmas={
                "journal_mode": "wal",
                # WAL + NORMAL is durable against a process crash (kill -9); only
                # a power cut may lose the last transactions.
                "synchronous": "normal",
                "foreign_keys": 1,
                "busy_timeout": 5000,
            },
            check_same_thread=False,  # opened by one thread, used by the actor thread
        )
        self._meta, self._message, self._outbox = _models(self._db)
        m = self._message
        # What reads select: a Message's fields, then its server number (SERVER_SEQ).
        self._columns = (
            m.id,
            m.author,
            m.recipient,
            m.subject,
            m.content,
            m.sent_at,
            m.origin,
            m.origin_seq,
            m.room,
            m.kind,
            m.server_seq,
        )
        try:
            self._db.connect()
            self._check_intact()
            with self._db.atomic():
                self._migrate()  # an older inbox first gets the columns today's tables need
                self._db.create_tables([self._meta, self._message, self._outbox])
                self._check_schema()
                self.node_id = self._load_node_id(new_node_id)
            os.chmod(self.path, 0o600)
        except StoreError:
            self._db.close()
            raise
        except (pw.DatabaseError, sqlite3.DatabaseError) as error:
            self._db.close()
            if _is_damage(error):
                raise damaged(self.path, str(error)) from None
            raise StoreError(f"cannot open the inbox {self.path}: {error}") from None
        self._arrival = self._message.select(pw.fn.MAX(self._message.arrival)).scalar() or 0
        self._queued = self._outbox.select(pw.fn.MAX(self._outbox.queued)).scalar() or 0

    # -- housekeeping ------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_intact(self) -> None:
        """SQLite's quick check (every page's structure; about 60 ms for 300,000
        messages), so a damaged file is named before the node says it is ready,
        not found by a query in the middle of serving."""
        rows = self._db.execute_sql("PRAGMA quick_check(1)").fetchall()
        verdict = rows[0][0] if rows else "no answer"
        if verdict != "ok":
            raise damaged(self.path, verdict.splitlines()[-1])

    def _stored_schema(self) -> int | None:
        if not self._meta.table_exists():
            return None
        stored = self.get_meta("schema_version")
        return None if stored is None else int(stored)

    def _migrate(self) -> None:
        """Bring an inbox written by an older lab93-node up to SCHEMA_VERSION, step by step.

        Runs inside the opening transaction: a failure leaves the file as it was.
        """
        stored = self._stored_schema()
        if stored is None or stored >= SCHEMA_VERSION:
            return
        if stored == 1:
            # 0.1.0 had one room: its room messages are in "general", numbered as before.
            self._db.execute_sql("ALTER TABLE message ADD COLUMN room VARCHAR(32)")
            self._db.execute_sql("ALTER TABLE message ADD COLUMN kind VARCHAR(16)")
            self._db.execute_sql(
                "UPDATE message SET room = ? WHERE recipient IS NULL", (DEFAULT_ROOM,)
            )
            self._db.execute_sql('DROP INDEX IF EXISTS "message_room_origin_seq"')
            stored = 2
        self.set_meta("schema_version", str(stored))

    def _check_schema(self) -> None:
        stored = self._stored_schema()
        if stored is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        elif stored > SCHEMA_VERSION:
            raise StoreError(
                f"the inbox {self.path} was written by a newer lab93-node "
                f"(schema {stored}); this one reads schema {SCHEMA_VERSION}"
            )

    def _load_node_id(self, new_node_id: bytes | None) -> str:
        node_id = self.get_meta("node_id")
        if node_id is None:
            node_id = (new_node_id or os.urandom(16)).hex()
            self.set_meta("node_id", node_id)
        return node_id

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._meta.get_or_none(self._meta.key == key)
        return default if row is None else row.value

    def set_meta(self, key: str, value: str) -> None:
        self._meta.replace(key=key, value=value).execute()

    # -- saving --------------------------------------------------------------

    def save(
        self, message: Message, server_id: str | None = None, server_seq: int | None = None
    ) -> bool:
        """Store one message; False when its id was already stored (a no-op)."""
        return self.save_many([(message, server_id, server_seq)])[0]

    def save_many(self, batch: Sequence[tuple[Message, str | None, int | None]]) -> list[bool]:
        """Store a batch in one transaction; for each item, whether it was new.

        A message whose id is already stored is skipped, as is a second copy
        within the batch itself.
        """
        if not batch:
            return []
        with self._db.atomic():
            return self._insert(batch, self._known_ids([m.id for m, _, _ in batch]))

    def _insert(
        self, batch: Sequence[tuple[Message, str | None, int | None]], known: Container[str]
    ) -> list[bool]:
        # The caller holds a transaction (or savepoint): a refused row undoes the batch.
        rows, fresh, seen = [], [], set()
        arrival = self._arrival
        for message, server_id, server_seq in batch:
            mid = message.id
            is_new = mid not in known and mid not in seen
            fresh.append(is_new)
            if is_new:
                seen.add(mid)
                arrival += 1
                rows.append(_to_row(message, server_id, server_seq, arrival))
        try:
            self._db.cursor().executemany(_INSERT, rows)
        except (pw.IntegrityError, sqlite3.IntegrityError) as error:
            raise StoreError(f"the inbox refused a message: {error}") from None
        self._arrival = arrival
        return fresh

    def _known_ids(self, ids: Iterable[str]) -> set[str]:
        known: set[str] = set()
        for chunk in _chunks(list(ids)):
            sql = f"SELECT id FROM message WHERE id IN ({_placeholders(len(chunk))})"
            known.update(row[0] for row in self._db.execute_sql(sql, chunk))
        return known

    # -- reading ---------------------------------------------------------------

    def get(self, message_id: str) -> Message | None:
        m = self._message
        row = m.select(*self._columns).where(m.id == message_id).tuples().first()
        return None if row is None else _from_tuple(row)

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
        came in. ``chat_only``: leave out topic messages (what people are shown: a
        topic message sets a topic, see ``current_topic``; it is not a line of the
        conversation)."""
        m = self._message
        query = m.select(*self._columns).order_by(m.sent_at.desc(), m.arrival.desc())
        if chat_only:
            query = query.where(m.kind.is_null())
        if isinstance(room, str):
            query = query.where(m.room == room)
        elif room is not None:
            query = query.where(m.room.in_(list(room)))
        if limit is not None:
            query = query.limit(limit)
        try:
            rows = list(query.tuples())
        except (pw.DatabaseError, sqlite3.DatabaseError) as error:
            if _is_damage(error):
                raise damaged(self.path, str(error)) from None
            raise
        return [_from_tuple(row) for row in reversed(rows)]

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
        return None if row is None else _from_tuple(row)

    def transaction(self):
        """Everything done inside ``with inbox.transaction():`` commits together (or not at all)."""
        return self._db.atomic()

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file now (a passive checkpoint).

        SQLite does this by itself inside the commit that fills the log to 1000
        pages, which stalls that commit for milliseconds; a caller with idle
        moments calls this in them instead, so the log rarely gets that far.
        """
        self._db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    # -- broadcast: per-origin sequences ------------------------------------------

    def next_origin_seq(self, origin: str, direct: bool, room: str = DEFAULT_ROOM) -> int:
        """The next number ``origin`` gives to a direct message, or to a message of ``room``."""
        m = self._message
        if direct:
            scope = m.recipient.is_null(False)
        else:
            scope = m.recipient.is_null(True) & (m.room == room)
        value = m.select(pw.fn.MAX(m.origin_seq)).where((m.origin == origin) & scope).scalar()
        return (value or 0) + 1

    def origin_marks(self, room: str = DEFAULT_ROOM) -> dict[str, int]:
        """For each origin, the highest n such that its messages 1..n of ``room`` are all here.

        Uses the (room, origin, origin_seq) index: for each origin, the first place
        where ``origin_seq`` stops matching its rank is the end of the prefix.
        """
        sql = """
            SELECT origin, COUNT(*), MAX(origin_seq) FROM message
            WHERE recipient IS NULL AND room = ? GROUP BY origin
        """
        marks: dict[str, int] = {}
        for origin, count, highest in self._db.execute_sql(sql, (room,)).fetchall():
            marks[origin] = highest if count == highest else self._contiguous(origin, room)
        return marks

    def _contiguous(self, origin: str, room: str) -> int:
        # Only reached when an origin has a hole: find the first missing number.
        sql = """
            SELECT origin_seq FROM message
            WHERE recipient IS NULL AND room = ? AND origin = ? ORDER BY origin_seq
        """
        expected = 1
        for (seq,) in self._db.execute_sql(sql, (room, origin)):
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
        return [_from_tuple(row) for row in query.tuples()]

    # -- outbox -------------------------------------------------------------------

    def queue(self, message: Message) -> None:
        """Store a message this node authored and keep it until acknowledged."""
        with self._db.atomic():
            self.save(message)
            if not self._outbox.select().where(self._outbox.message_id == message.id).exists():
                self._queued += 1
                self._outbox.insert(message_id=message.id, queued=self._queued).execute()

    def queue_many(self, messages: Sequence[Message]) -> None:
        """``queue`` for a batch, in one transaction (a front end's burst of lines)."""
        if not messages:
            return
        o = self._outbox
        with self._db.atomic():
            self.save_many([(m, None, None) for m in messages])
            queued: set[str] = set()
            for chunk in _chunks([m.id for m in messages]):
                query = o.select(o.message_id).where(o.message_id.in_(chunk))
                queued.update(row[0] for row in query.tuples())
            rows = []
            for message in messages:
                if message.id not in queued:
                    queued.add(message.id)
                    self._queued += 1
                    rows.append({"message_id": message.id, "queued": self._queued})
            for chunk in _chunks(rows, _CHUNK // 2):
                o.insert_many(chunk).execute()

    def outbox(self) -> list[Message]:
        """Unacknowledged messages, in the order they were queued."""
        m, o = self._message, self._outbox
        query = m.select(*self._columns).join(o, on=(o.message_id == m.id)).order_by(o.queued)
        return [_from_tuple(row) for row in query.tuples()]

    def acknowledge(self, message_ids: Iterable[str]) -> int:
        """Drop acknowledged messages from the outbox; how many were there."""
        removed = 0
        with self._db.atomic():
            for chunk in _chunks(list(message_ids)):
                removed += self._outbox.delete().where(self._outbox.message_id.in_(chunk)).execute()
        return removed

def _is_damage(error: Exception) -> bool:
    # SQLITE_CORRUPT's text; SQLITE_NOTADB ("file is not a database") is not damage
    # that .recover mends: that file was never an inbox.
    return "malformed" in str(error)


def damaged(path: Path, detail: str) -> StoreError:
    """The sentence for a damaged inbox: which file, and how to get back what it holds."""
    where = shlex.quote(str(path))
    saved = shlex.quote(f"{path}.recovered")
    return StoreError(
        f"the inbox {path} is damaged (SQLite: {detail}); recover what it holds with"
        f" 'sqlite3 {where} .recover | sqlite3 {saved}' and run with --db {saved}"
        " (or move that file in its place)"
    )


def utc_now() -> datetime:
    """The wall clock, for the I/O shell only."""
    return datetime.now(timezone.utc)
