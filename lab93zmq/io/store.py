"""The inbox: every message a node has seen, its identity, and its outbox.

peewee over SQLite in WAL mode. One ``Inbox`` per node; it must be used from
one thread only (the actor that owns it). Each ``Inbox`` gets its own model
classes bound to its own database, so a server and its clients can live in one
test process without sharing state. What SQLite and PostgreSQL stores share is
in ``store_base.py`` (saving, reading, the outbox) and ``server_order.py``
(the repeater's order); a repeater server may use ``pg_store.PostgresStore``
instead (``open_store``).

Two numbering schemes meet here:

* ``origin``/``origin_seq``: the authoring node's own counter. Room messages
  and direct messages are counted separately, so the room sequence of an origin
  has no holes and catch-up can compare contiguous high-water marks.
* ``server_id``/``server_seq``: the order a repeater server gave a message.

Faults (``store_faults.py``) are raised as a sentence: a full or read-only
disk as ``StoreUnavailable`` (the caller refuses what it cannot store and goes
on), a damaged, deleted or replaced file as ``StoreLost`` (the node stops).
After each commit, and whenever the shell calls ``verify``, the path is
checked to still name the file the node opened.

An inbox is opened in a role (``role``: "server", "client", "broadcast"; None for a
reader such as ``--history``, which changes no index). It has the indexes every role
reads, and those of each role it has been opened in (``ROLE_INDEXES``; the roles
are kept in the meta table under ``roles``): a client's inbox is written without
the server's order indexes, and the same file opened later by ``--server`` gets
them then, and keeps them. An index of a role the inbox was never used in (an
inbox written before roles were kept has them all) is dropped when it opens.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import peewee as pw

from ..core.errors import StoreError, StoreFault
from ..core.message import Message
from ..core.rooms import DEFAULT_ROOM
from .checkpoint import AUTO_CHECKPOINT_PAGES, Checkpointer
from .paths import prepare_parent
from .room_store import RoomStore, room_model
from .server_order import COLUMNS, ServerOrder, from_row
from .signature_store import SignatureStore
from .store_base import StoreBase
from .store_faults import (
    DATABASE_ERRORS,
    INTEGRITY_ERRORS,
    FileWatch,
    damaged,
    is_damage,
    sqlite_fault,
)
from .store_schema import (
    ROLE_INDEX_NAMES,
    ROLE_INDEXES,
    ROOM_ORIGIN_INDEX,
    SCHEMA_VERSION,
    SQLITE_OUTBOX,
    TAIL_INDEX,
    columns,
    models,
)

__all__ = ["Inbox", "ROLES", "SCHEMA_VERSION", "ROOM_ORIGIN_INDEX", "damaged", "open_store",
           "utc_now"]

ROLES = tuple(ROLE_INDEXES)
ROLES_KEY = "roles"  # meta: the roles this inbox was opened in, comma-separated


class _Sqlite(pw.SqliteDatabase):
    """peewee's SQLite, telling faults as StoreFault sentences (``fault``), never as a
    rollback that failed after SQLite had already ended the transaction."""

    fault: Callable[[BaseException], StoreError] = staticmethod(StoreError)  # type: ignore

    def _execute_cursor(self, sql: str, params: Any, **options: Any) -> Any:
        try:
            return super()._execute_cursor(sql, params, **options)
        except INTEGRITY_ERRORS:
            raise
        except DATABASE_ERRORS as error:
            if sql.startswith("ROLLBACK"):
                return None  # the failed statement ended the transaction itself
            raise self.fault(error) from None

    def rollback(self) -> None:
        try:
            super().rollback()
        except DATABASE_ERRORS:
            pass  # as above: there was nothing left to roll back

    def commit(self) -> None:
        try:
            super().commit()
        except INTEGRITY_ERRORS:
            raise
        except DATABASE_ERRORS as error:
            raise self.fault(error) from None


class Inbox(SignatureStore, StoreBase, ServerOrder, RoomStore):
    """A node's inbox file. Open it, use it from one thread, close it."""

    def __init__(self, path: Path | str, *, new_node_id: bytes | None = None,
                 role: str | None = None) -> None:
        if role is not None and role not in ROLE_INDEXES:
            raise ValueError(f"an inbox role is one of {', '.join(ROLES)}, not {role!r}")
        self.path = Path(path)
        prepare_parent(self.path)
        self._watch: FileWatch | None = None
        self._checkpoints: Checkpointer | None = None  # a server's, from its first checkpoint_soon
        self._db = _Sqlite(
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
        self._db.fault = lambda error: sqlite_fault(self.path, error, self._watch)
        self._meta, self._message, self._outbox = models(self._db)
        self._room = room_model(self._db)
        self._columns = columns(self._message)
        try:
            self._db.connect()
            self._conn = self._db.connection()  # this inbox's one connection (one thread)
            self._watch = FileWatch(self.path)
            self._check_intact()
            with self._db.atomic():
                from_schema_1 = self._migrate()  # first the columns today's tables need
                self._create_tables()
                if role is not None:
                    self._shape_for(role)
                if from_schema_1:
                    self.stayed_in(DEFAULT_ROOM)  # 0.1.0's one room, caught up in full
                self._check_schema()
                self._make_signature_table()
                self.node_id = self._load_node_id(new_node_id)
            os.chmod(self.path, 0o600)
        except StoreError:
            self.close()
            raise
        except (*DATABASE_ERRORS, OSError) as error:
            self.close()
            if is_damage(error):
                raise damaged(self.path, str(error)) from None
            raise StoreError(f"cannot open the inbox {self.path}: {error}") from None
        # The newest row is the last one inserted (SQLite gives each the highest rowid
        # yet + 1) and carries the highest arrival: no index on arrival needed.
        row = self._run("SELECT arrival FROM message ORDER BY rowid DESC LIMIT 1").fetchone()
        self._arrival = 0 if row is None else row[0]
        self._queued = self._outbox.select(pw.fn.MAX(self._outbox.queued)).scalar() or 0

    # -- housekeeping ------------------------------------------------------

    def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.close()  # first: its connection must not be the file's last
            self._checkpoints = None
        self._db.close()
        if self._watch is not None:
            self._watch.close()

    def __enter__(self) -> Inbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def verify(self) -> None:
        """StoreLost when the path no longer names the file this inbox opened (deleted,
        or replaced by another); the shells call it on a timer."""
        if self._watch is not None:
            self._watch.check()

    def _check_intact(self) -> None:
        """SQLite's quick check (every page's structure; about 60 ms for 300,000
        messages), so a damaged file is named before the node says it is ready,
        not found by a query in the middle of serving."""
        rows = self._db.execute_sql("PRAGMA quick_check(1)").fetchall()
        verdict = rows[0][0] if rows else "no answer"
        if verdict != "ok":
            raise damaged(self.path, verdict.splitlines()[-1])

    def _create_tables(self) -> None:
        """The tables, and the indexes every role reads (of a role: ``_shape_for``)."""
        self._db.create_tables([self._meta, self._room])
        self._create_outbox()
        message = self._message
        message._schema.create_table(safe=True)
        for index in message._meta.fields_to_index():
            if index._name not in ROLE_INDEX_NAMES:
                self._db.execute(message._schema._create_index(index, safe=True))

    def _create_outbox(self) -> None:
        """The outbox WITHOUT ROWID (``SQLITE_OUTBOX``); an inbox's older outbox (a rowid
        table) is moved into one, row by row as it was."""
        row = self._run(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'outbox'"
        ).fetchone()
        if row is not None and "WITHOUT ROWID" in row[0].upper():
            return
        self._run(SQLITE_OUTBOX.format(name="outbox" if row is None else "outbox_moved"))
        if row is not None:
            self._run("INSERT INTO outbox_moved (message_id, queued)"
                      " SELECT message_id, queued FROM outbox")
            self._run("DROP TABLE outbox")
            self._run("ALTER TABLE outbox_moved RENAME TO outbox")

    def _shape_for(self, role: str) -> None:
        """The indexes of ``role`` and of the roles this inbox was used in before: made
        when missing; another role's (a file written before roles were kept) dropped."""
        recorded = self.get_meta(ROLES_KEY)
        roles = set(recorded.split(",")) if recorded else set()
        if role not in roles:
            roles.add(role)
            self.set_meta(ROLES_KEY, ",".join(sorted(roles)))
        wanted = {name for r in roles for name in ROLE_INDEXES.get(r, ())}
        present = {
            row[0] for row in self._run(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'message'"
            )
        }
        for name in sorted((present & ROLE_INDEX_NAMES) - wanted):
            self._run(f'DROP INDEX "{name}"')
        declared = {index._name: index for index in self._message._meta.fields_to_index()}
        for name in sorted(wanted - present):
            if name == TAIL_INDEX:
                self.index_tails()
            else:
                self._db.execute(self._message._schema._create_index(declared[name], safe=True))

    def _stored_schema(self) -> int | None:
        if not self._meta.table_exists():
            return None
        stored = self.get_meta("schema_version")
        return None if stored is None else int(stored)

    def _migrate(self) -> bool:
        """Bring an inbox written by an older lab93-node up to SCHEMA_VERSION, step by step;
        True when it was 0.1.0's (schema 1).

        Runs inside the opening transaction: a failure leaves the file as it was.
        """
        stored = self._stored_schema()
        if stored is None or stored >= SCHEMA_VERSION:
            return False
        from_schema_1 = stored == 1
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
        return from_schema_1

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

    # -- the backend's part of StoreBase ---------------------------------------
    #
    # Statements run on peewee's own connection (``Database.connection()``, opened and
    # closed by peewee), not through ``execute_sql``: that costs 22 us a statement
    # here against 4 us, and the client's inbox runs several per turn. Transactions
    # stay peewee's (``atomic``), so its depth and savepoints are the one truth.

    def _run(self, sql: str, params: Sequence = ()) -> Any:
        try:
            return self._conn.execute(sql, params)
        except INTEGRITY_ERRORS as error:
            raise StoreError(f"the inbox refused a message: {error}") from None
        except DATABASE_ERRORS as error:
            raise self._db.fault(error) from None

    def _executemany(self, sql: str, rows: Sequence[tuple]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except INTEGRITY_ERRORS as error:
            raise StoreError(f"the inbox refused a message: {error}") from None
        except DATABASE_ERRORS as error:
            raise self._db.fault(error) from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything done inside ``with inbox.transaction():`` commits together (or not
        at all); nested, a savepoint (peewee's ``atomic``). After the outermost commit,
        the file is checked to be still ours, so nothing is acknowledged into a file
        that was deleted or replaced."""
        outermost = self._db.transaction_depth() == 0
        try:
            with self._db.atomic():
                yield
        except INTEGRITY_ERRORS as error:
            raise StoreError(f"the inbox refused a message: {error}") from None
        except StoreFault:
            raise
        except DATABASE_ERRORS as error:  # a fault met outside a statement (a cursor's read)
            raise self._db.fault(error) from None
        if outermost:
            self.verify()

    def outbox(self) -> list[Message]:
        """Unacknowledged messages, in the order they were queued. CROSS JOIN keeps the
        outbox SQLite's outer loop (a search of the message key a row): left to choose,
        it walks every message and searches the outbox (WITHOUT ROWID) instead."""
        sql = (f"SELECT {COLUMNS} FROM outbox CROSS JOIN message ON message.id = message_id"
               " ORDER BY queued")
        return self._signed([from_row(row) for row in self._run(sql)])

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file now (a passive checkpoint).

        SQLite does this by itself inside the commit that fills the log to 1000
        pages, which stalls that commit for milliseconds; a caller with idle
        moments calls this in them instead, so the log rarely gets that far.
        """
        self._db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def checkpoint_soon(self) -> None:
        """``checkpoint``, in a thread of its own and its own connection (checkpoint.py),
        so the sync it makes never holds up the caller; started by the first call."""
        if self._checkpoints is None:
            # SQLite's own checkpoint, inside a commit, only if that thread falls behind.
            self._db.execute_sql(f"PRAGMA wal_autocheckpoint = {AUTO_CHECKPOINT_PAGES}")
            self._checkpoints = Checkpointer(self.path)
            self._checkpoints.start()
        self._checkpoints.request()


def open_store(where: str | Path) -> Any:
    """A repeater server's store: a PostgreSQL database for a ``postgresql://`` URL, else
    the SQLite inbox at that path."""
    if isinstance(where, str) and where.startswith(("postgresql://", "postgres://")):
        from .pg_store import PostgresStore  # psycopg: loaded only by servers that use it

        return PostgresStore(where)
    return Inbox(where, role="server")


def utc_now() -> datetime:
    """The wall clock, for the I/O shell only."""
    return datetime.now(timezone.utc)
