"""The inbox's tables, shared by every store: one message table, meta, the outbox.

SQLite and PostgreSQL stores declare the same peewee models (``models``),
bound to their own database, and the same partial indexes: what a query of
``store_base.py`` or ``server_order.py`` asks is answered from an index on
either. ``to_row`` is the column order of the group commit's one INSERT.

A SQLite inbox has only the indexes of the roles it is used in (``ROLE_INDEXES``;
``store.Inbox``): every index costs each row written, and a client never asks
what the server's order indexes answer. PostgreSQL is a server's store: all of
them, always.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import peewee as pw

from ..core.message import Message

SCHEMA_VERSION = 2  # 2: rooms (message.room, message.kind; room numbering per room)
CHUNK = 500  # stay far below SQLite's bound-parameter limit
ROOM_ORIGIN_INDEX = "message_room_origin_seq_by_room"
TAIL_INDEX = "message_room_sent"  # a broadcast node's (room_store.index_tails); not a model's

# The indexes a role's queries read beyond those every inbox has (its key, the origin
# numbering's two, the server number's, a room's topic), by role. The server number's
# unique index is every role's: a client keeps a message whose number clashes with a
# held one without the number (``ClientLedger._save``), which that index tells it.
# Measured (bench/inbox_rows.py, batches of 100), a client's message is written 2.7 to
# 3.1 us faster without the server's order indexes it never reads (of 10 to 15).
ROLE_INDEXES: dict[str, tuple[str, ...]] = {
    # Room and direct chains of the server order, and the arrival order's index
    # (kept for the server as it was; ``Inbox`` no longer needs it at open).
    "server": ("message_arrival", "message_room_server_seq", "message_direct_recipient",
               "message_direct_author"),
    "client": (),
    "broadcast": (TAIL_INDEX,),  # a room's newest messages, for a first join's tail
}
ROLE_INDEX_NAMES = frozenset(name for names in ROLE_INDEXES.values() for name in names)


def _partial_index(model: type[pw.Model], name: str, *fields: pw.Field, where: pw.Expression,
                   unique: bool = False) -> None:
    """One partial index of ``model``: only the rows ``where`` holds for are in it."""
    model.add_index(model.index(*fields, unique=unique, where=where, name=name))


def models(db: pw.Database) -> tuple[type[pw.Model], type[pw.Model], type[pw.Model]]:
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
        origin_seq = pw.BigIntegerField()
        room = pw.CharField(max_length=32, null=True)  # null: a direct message
        kind = pw.CharField(max_length=16, null=True)  # null: chat; "topic"
        server_id = pw.CharField(max_length=32, null=True)
        server_seq = pw.BigIntegerField(null=True)  # PostgreSQL: bigint
        # Local arrival order, for --history and "last N".
        arrival = pw.BigIntegerField(index=True)

        class Meta:
            table_name = "message"

    m = StoredMessage
    # An origin numbers each room apart (schema 1 had one room: origin, origin_seq).
    _partial_index(m, ROOM_ORIGIN_INDEX, m.room, m.origin, m.origin_seq,
                   where=m.recipient.is_null(True), unique=True)
    _partial_index(m, "message_direct_origin_seq", m.origin, m.origin_seq,
                   where=m.recipient.is_null(False), unique=True)
    _partial_index(m, "message_server_seq", m.server_id, m.server_seq,
                   where=m.server_seq.is_null(False), unique=True)
    _partial_index(m, "message_direct_recipient", m.recipient, m.server_id, m.server_seq,
                   where=m.recipient.is_null(False))
    # A room's part of the server order: its head, its tail, what follows a tip.
    _partial_index(m, "message_room_server_seq", m.room, m.server_id, m.server_seq,
                   where=m.recipient.is_null(True) & m.server_seq.is_null(False))
    # A room's topic messages, newest first: its current topic is the first.
    _partial_index(m, "message_room_topic", m.room, m.sent_at, m.id,
                   where=m.kind.is_null(False))
    # The "from" side of a user's direct messages; without it, finding the last
    # one of a user who never sent any walked the whole server order (0.27 s at
    # a million rows, on every HELLO).
    _partial_index(m, "message_direct_author", m.author, m.server_id, m.server_seq,
                   where=m.recipient.is_null(False))

    class OutboxEntry(Base):
        """A message this node authored that is not acknowledged yet."""

        message_id = pw.CharField(primary_key=True, max_length=32)
        queued = pw.IntegerField()  # order of queueing, so re-sends keep order

        class Meta:
            table_name = "outbox"

    return Meta, StoredMessage, OutboxEntry


# The group-commit hot path: one executemany of plain tuples. peewee's
# insert_many builds the SQL row by row (~45 us a row here); this is ~10x less.
INSERT = (
    "INSERT INTO message (id, author, recipient, subject, content, sent_at, origin,"
    " origin_seq, room, kind, server_id, server_seq, arrival)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# SQLite's outbox has its key for its only b-tree (a rowid table keeps a second one for
# a text key): one b-tree less written when a line is queued and when it is acknowledged.
SQLITE_OUTBOX = (
    'CREATE TABLE IF NOT EXISTS "{name}" ("message_id" VARCHAR(32) NOT NULL PRIMARY KEY,'
    ' "queued" INTEGER NOT NULL) WITHOUT ROWID'
)

# A message queued already keeps its place in the outbox (SQLite and PostgreSQL alike).
QUEUE = "INSERT INTO outbox (message_id, queued) VALUES (?, ?) ON CONFLICT (message_id) DO NOTHING"


def to_row(message: Message, server_id: str | None, server_seq: int | None, arrival: int) -> tuple:
    return (
        message.id,
        message.author,
        message.recipient,
        message.subject,
        message.content,
        message.sent_text(),
        message.origin,
        message.origin_seq,
        message.room,
        message.kind,
        server_id,
        server_seq,
        arrival,
    )


def columns(m: type[pw.Model]) -> tuple:
    """What reads select: a Message's fields, then its server number (``SERVER_SEQ``)."""
    return (
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


def chunks(items: Sequence, size: int = CHUNK) -> Iterable[Sequence]:
    """``items`` in slices of at most ``size`` (peewee's ``chunked`` pads each to ``size``)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
