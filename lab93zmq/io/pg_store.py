"""A repeater server's store in PostgreSQL, shared by the servers of one service.

``--db postgresql://USER@HOST:PORT/DBNAME``: peewee over psycopg 3 (the
maintained PostgreSQL driver; psycopg2 only gets fixes), the same tables and
indexes as the SQLite inbox (``store_schema``), the same queries
(``store_base``, ``server_order``). The database's meta ``node_id`` is the
*service id*: every server opening the database numbers, welcomes and
publishes under it, so a client's marks are valid on each of them. Each
server also has an ``instance_id`` of its own, for its beacon.

The order is shared safely: a commit takes the service's order lock (an
advisory transaction lock) before it reads the head and numbers its posts,
and holds it until it commits. So numbers are given in commit order, with no
gaps and no number visible before a lower one: whatever a server reads of
the order is a prefix of it. (A PostgreSQL sequence would hand out numbers
outside the commit order: a client could see 14 before 13 is committed, and
a rolled-back commit would leave a hole that no one fills.) Inside the same
transaction ``pg_notify`` tells the other servers the new head; PostgreSQL
delivers it when the transaction commits (``OrderListener``).

Faults are sentences: a database out of reach is ``StoreUnavailable`` (the
server refuses posts and tries again; peewee reconnects on the next query).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import peewee as pw

from ..core.errors import StoreError, StoreFault, StoreUnavailable
from .server_order import ServerOrder
from .store_base import StoreBase
from .store_schema import SCHEMA_VERSION, columns, models

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
except ImportError:  # pragma: no cover - the [postgresql] extra is not installed
    psycopg = None

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3  # seconds a connection attempt may take (the server's loop waits on it)
ORDER_LOCK = 0x6C3933_0001  # the advisory lock key of the service's order ("l93", 1)
SETUP_LOCK = 0x6C3933_0002  # held while a server creates the tables


def where(url: str) -> str:
    """``url`` without its password, for sentences and logs."""
    try:
        parts = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - psycopg's ProgrammingError, or no psycopg at all
        return "(an unreadable PostgreSQL URL)"
    host = parts.get("host", "localhost")
    port = parts.get("port", "5432")
    return f"postgresql://{parts.get('user', '')}@{host}:{port}/{parts.get('dbname', '')}"


def _fault(url: str, error: BaseException) -> StoreError:
    text = " ".join(str(error).split()) or type(error).__name__
    if psycopg is not None and isinstance(error, psycopg.IntegrityError):
        return StoreError(f"the store refused a message: {text}")
    if isinstance(error, pw.IntegrityError):
        return StoreError(f"the store refused a message: {text}")
    connection: tuple[type[BaseException], ...] = (pw.OperationalError, pw.InterfaceError)
    if psycopg is not None:
        connection += (psycopg.OperationalError, psycopg.InterfaceError)
    if isinstance(error, connection):
        return StoreUnavailable(f"the PostgreSQL database {where(url)} is out of reach ({text})")
    return StoreError(f"the PostgreSQL database {where(url)} failed: {text}")


class _Postgres(pw.PostgresqlDatabase):
    """peewee's PostgreSQL, telling faults as sentences; a broken connection is dropped,
    so the next query connects again."""

    url = ""

    def _execute_cursor(self, sql: str, params: Any, **options: Any) -> Any:
        try:
            return super()._execute_cursor(sql, params, **options)
        except pw.IntegrityError:
            raise
        except (pw.DatabaseError, pw.InterfaceError) as error:
            if sql.startswith("ROLLBACK"):
                return None
            fault = _fault(self.url, error)
            if isinstance(fault, StoreUnavailable) and self.transaction_depth() == 0:
                self.drop()
            raise fault from None

    def rollback(self) -> None:
        try:
            super().rollback()
        except (pw.DatabaseError, pw.InterfaceError):
            pass  # a broken connection has no transaction left

    def commit(self) -> None:
        try:
            super().commit()
        except pw.IntegrityError:
            raise
        except (pw.DatabaseError, pw.InterfaceError) as error:
            raise _fault(self.url, error) from None

    def drop(self) -> None:
        """Forget the connection (it is broken); the next query opens a new one."""
        conn = self._state.conn
        self._state.reset()
        try:
            if conn is not None:
                conn.close()
        except Exception:  # noqa: BLE001 - a broken connection may fail to close, too
            pass


class PostgresStore(StoreBase, ServerOrder):
    """A repeater server's store in one PostgreSQL database (see the module docstring)."""

    def __init__(self, url: str) -> None:
        if psycopg is None:
            raise StoreError(
                "--db postgresql://... needs psycopg 3: pip install 'lab93zmq[postgresql]'"
            )
        self.url = url
        self.path = where(url)
        self.instance_id = os.urandom(16).hex()  # this server, in its beacon
        self._db = _Postgres(url, prefer_psycopg3=True, connect_timeout=CONNECT_TIMEOUT)
        self._db.url = url
        self._meta, self._message, self._outbox = models(self._db)
        self._columns = columns(self._message)
        try:
            with self.transaction():
                self._run("SELECT pg_advisory_xact_lock(?)", (SETUP_LOCK,))
                self._db.create_tables([self._meta, self._message, self._outbox])
                stored = self.get_meta("schema_version")
                if stored is None:
                    self.set_meta("schema_version", str(SCHEMA_VERSION))
                elif int(stored) > SCHEMA_VERSION:
                    raise StoreError(
                        f"the store {self.path} was written by a newer lab93-node (schema"
                        f" {stored}); this one reads schema {SCHEMA_VERSION}"
                    )
                node_id = self.get_meta("node_id")
                if node_id is None:
                    node_id = os.urandom(16).hex()
                    self.set_meta("node_id", node_id)
                self.node_id = node_id
        except StoreFault as fault:
            self._db.drop()
            raise StoreError(f"cannot open the store: {fault}") from None
        self.channel = f"lab93_{self.node_id}"

    def close(self) -> None:
        self._db.drop()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def verify(self) -> None:
        """Nothing to watch: there is no file (the database's faults are met by queries)."""

    def checkpoint(self) -> None:
        """PostgreSQL checkpoints by itself."""

    def checkpoint_soon(self) -> None:
        """PostgreSQL checkpoints by itself."""

    # -- the backend's part of StoreBase ---------------------------------------

    def _run(self, sql: str, params: Sequence = ()) -> Any:
        return self._db.execute_sql(sql.replace("?", "%s"), params)

    def _executemany(self, sql: str, rows: Sequence[tuple]) -> None:
        if not rows:
            return
        try:
            self._db.cursor().executemany(sql.replace("?", "%s"), rows)
        except (psycopg.Error, pw.DatabaseError, pw.InterfaceError) as error:
            raise _fault(self.url, error) from None

    def _arrivals(self, rows: int, server_seqs: Sequence[int | None]) -> list[int]:
        # Several servers insert: the shared order is the arrival order.
        return [seq or 0 for seq in server_seqs]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        outermost = self._db.transaction_depth() == 0
        try:
            with self._db.atomic():
                yield
        except StoreUnavailable:
            if outermost:
                self._db.drop()
            raise
        except pw.IntegrityError as error:
            raise _fault(self.url, error) from None
        except (psycopg.Error, pw.DatabaseError, pw.InterfaceError) as error:
            fault = _fault(self.url, error)
            if outermost and isinstance(fault, StoreUnavailable):
                self._db.drop()
            raise fault from None

    # -- the shared order ---------------------------------------------------------------

    def lock_order(self, server_id: str) -> int | None:
        self._run("SELECT pg_advisory_xact_lock(?)", (ORDER_LOCK,))
        return self.max_server_seq(server_id)

    def tell_order(self, server_id: str, head: int) -> None:
        self._run("SELECT pg_notify(?, ?)", (self.channel, str(head)))

    def listener(self) -> OrderListener:
        return OrderListener(self.url, self.channel)


class OrderListener:
    """A connection of its own that LISTENs for the order's commits; its socket is polled
    in the server's loop (``fileno``), so a commit on another server is told at once."""

    def __init__(self, url: str, channel: str) -> None:
        self.url = url
        self.channel = channel
        self._conn: Any = None

    def connect(self) -> bool:
        """Listen (again); False when the database is out of reach."""
        self.close()
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
            conn.execute(f'LISTEN "{self.channel}"')
        except psycopg.Error as error:
            log.info("cannot listen for the order: %s", _fault(self.url, error))
            return False
        self._conn = conn
        return True

    def fileno(self) -> int | None:
        return None if self._conn is None else self._conn.pgconn.socket

    def take(self) -> bool:
        """Read what the socket holds: True when a commit was told (or the connection
        broke: then the caller reads the order anyway, and connects again later)."""
        if self._conn is None:
            return False
        told = False
        try:
            pgconn = self._conn.pgconn
            pgconn.consume_input()
            while pgconn.notifies() is not None:
                told = True
        except psycopg.Error:
            self.close()
            return True
        return told

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None
