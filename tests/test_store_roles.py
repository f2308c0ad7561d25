"""The inbox's shape per role: the indexes each role reads, and only those, kept across
opening the same file in another role and across the migration of older inboxes.

Every query a role runs is explained (``EXPLAIN QUERY PLAN``) against an inbox opened
in that role: each step over the message table must be an index SEARCH, so a role's
inbox that lacks an index its queries need fails here, not by a slow walk at a
million rows.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from factories import NODE_A, NODE_B, make_message

from lab93zmq.core.errors import StoreError
from lab93zmq.core.inbox import RoomState
from lab93zmq.io.store import ROLES, Inbox
from lab93zmq.io.store_schema import ROLE_INDEXES

SERVER = "c" * 32
DATA = Path(__file__).parent / "data"
# A real client inbox of 0.1.0 (schema 1) and one of the version before roles (schema 2),
# each written by that version's lab93-node: a server, alice posting and listening, bob
# posting (in schema 2 also in #ops, a topic there, and a direct message to alice),
# then alice's post with the server down, which stayed in her outbox.
CLIENT_0_1_0 = DATA / "client-inbox-0.1.0.db"
CLIENT_SCHEMA_2 = DATA / "client-inbox-schema-2.db"
# Every index every role has: the key, the origin numbering's two, the server number's
# (unique: a client keeps a clashing message without its number), a room's topic.
BASE = {"sqlite_autoindex_message_1", "message_room_origin_seq_by_room",
        "message_direct_origin_seq", "message_server_seq", "message_room_topic"}


def indexes(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'index'"
                          " AND tbl_name = 'message'").fetchall()
    finally:
        db.close()
    return {name for (name,) in rows}


def outbox_without_rowid(path: Path) -> bool:
    db = sqlite3.connect(path)
    try:
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'outbox'").fetchone()
    finally:
        db.close()
    return sql.endswith("WITHOUT ROWID")


def filled(path: Path, role: str) -> Inbox:
    inbox = Inbox(path, role=role)
    rows = [(make_message(s), SERVER, s) for s in range(1, 50)]
    rows += [(make_message(s, to="bob"), SERVER, 49 + s) for s in range(1, 5)]
    rows += [(make_message(1, room="ops", kind="topic"), SERVER, 60)]
    inbox.save_many(rows)
    inbox.queue_many([make_message(1, origin=NODE_B, room="ops")])
    return inbox


def server_calls(inbox: Inbox) -> dict[str, Callable[[], object]]:
    some_id = make_message(3).id
    return {
        "get": lambda: inbox.get(some_id),
        "held": lambda: inbox.held(SERVER, [some_id]),
        "max_server_seq": lambda: inbox.max_server_seq(SERVER),
        "room_head": lambda: inbox.room_head(SERVER, "general"),
        "direct_head": lambda: inbox.direct_head(SERVER, "bob"),
        "room_tail_start": lambda: inbox.room_tail_start(SERVER, "general", 100),
        "room_heads": lambda: inbox.room_heads(SERVER),
        "visible_since": lambda: inbox.visible_since(
            SERVER, {"general": 10, "ops": 0}, 10, "bob", 100
        ),
        "numbered_topic": lambda: inbox.numbered_topic(SERVER, "general"),
        "numbered_after": lambda: inbox.numbered_after(SERVER, 10, 100),
        "current_topic": lambda: inbox.current_topic("general"),
        "next_origin_seq": lambda: inbox.next_origin_seq(NODE_A, direct=False),
    }


def client_calls(inbox: Inbox) -> dict[str, Callable[[], object]]:
    """What a repeater client asks of its inbox (core.inbox.ClientInbox, its history)."""
    posted = make_message(1, origin=NODE_B, room="ops")
    return {
        "saving": lambda: inbox.save_many([(make_message(99), SERVER, 99)]),
        "queue_many": lambda: inbox.queue_many([make_message(2, origin=NODE_B, room="ops")]),
        "outbox": lambda: inbox.outbox(),
        "acknowledge": lambda: inbox.acknowledge([posted.id]),
        "set_server_seqs": lambda: inbox.set_server_seqs(SERVER, [(posted.id, 61)]),
        "set_server_seq": lambda: inbox.set_server_seq(posted.id, SERVER, 61),
        "marks": lambda: inbox.get_meta(f"repeater:{SERVER}:alice"),
        "current_topic": lambda: inbox.current_topic("ops"),
        "next_origin_seq": lambda: inbox.next_origin_seq(NODE_B, direct=False, room="ops"),
        "next_direct_seq": lambda: inbox.next_origin_seq(NODE_B, direct=True),
    }


def broadcast_calls(inbox: Inbox) -> dict[str, Callable[[], object]]:
    """What a broadcast node asks of its inbox (core.inbox.BroadcastInbox)."""
    return {
        "saving": lambda: inbox.save(make_message(99)),
        "origin_marks": lambda: inbox.origin_marks("general", {NODE_A: 10}),
        "origin_after": lambda: inbox.origin_after(NODE_A, 10, 100),
        "newest": lambda: inbox.newest("general", 100),
        "current_topic": lambda: inbox.current_topic("ops"),
        "next_origin_seq": lambda: inbox.next_origin_seq(NODE_A, direct=False),
        "next_direct_seq": lambda: inbox.next_origin_seq(NODE_A, direct=True),
        "outbox": lambda: inbox.outbox(),
        "acknowledge": lambda: inbox.acknowledge([make_message(1, to="bob").id]),
        "withdraw_misnamed": lambda: inbox.withdraw_misnamed(NODE_A, "alice"),
    }


CALLS = {"server": server_calls, "client": client_calls, "broadcast": broadcast_calls}
# Reads that walk a whole table by design: the outbox (all of it, in order), and a
# secure node's look, once at start, for its own misnamed messages (one pass over the
# messages, on main too: then along the arrival index, now a sort of what it finds).
WHOLE = {"outbox": ("t2", "outbox"), "withdraw_misnamed": ("m",)}


def plans(inbox: Inbox, calls: dict[str, Callable[[], object]]) -> dict[str, list[str]]:
    """For each call, the plan steps of every statement it ran that reads a table."""
    statements: list[str] = []
    connection = inbox._db.connection()
    connection.set_trace_callback(statements.append)
    used: dict[str, list[str]] = {}
    try:
        for name, call in calls.items():
            statements.clear()
            call()
            reads = [sql for sql in statements
                     if sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE"))]
            assert reads, name
            for sql in reads:
                plan = connection.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
                steps = [str(r[-1]) for r in plan if str(r[-1]).startswith(("SCAN", "SEARCH"))]
                assert steps, (name, sql)
                used.setdefault(name, []).extend(steps)
    finally:
        connection.set_trace_callback(None)
    return used


@pytest.mark.parametrize("role", ROLES)
def test_every_query_of_a_role_searches_an_index_of_its_own_inbox(tmp_path, role):
    """Table steps read "SCAN t1 ..." or "SEARCH t1 USING INDEX ..."; a bare "SEARCH t1"
    with no index walks the table too. Measured at a million rows, all of these stay
    under 3 ms (the closing note of #2)."""
    with filled(tmp_path / "inbox.db", role) as inbox:
        assert indexes(inbox.path) == BASE | set(ROLE_INDEXES[role])
        used = plans(inbox, CALLS[role](inbox))
    for name, steps in used.items():
        for step in steps:
            if name in WHOLE and step.startswith("SCAN"):
                assert step.split()[1] in WHOLE[name], (name, step)  # peewee's alias: t2
                continue
            assert step.startswith("SEARCH") and " USING " in step, (role, name, step)
    if role == "server":
        # The last direct message *from* a user has its own index: on the server order
        # index, a user who never sent one made SQLite walk every number.
        assert any("message_direct_author" in step for step in used["direct_head"])
        # Each room's part of the server order has its index, and so has each room's topic.
        for name in ("room_head", "room_tail_start", "room_heads", "visible_since"):
            assert any("message_room_server_seq" in step for step in used[name]), name
    if role == "broadcast":
        assert any("message_room_sent" in step for step in used["newest"])  # a tail's
    assert any("message_room_topic" in step for step in used["current_topic"])


def test_a_client_inbox_has_none_of_the_servers_order_indexes(tmp_path):
    with filled(tmp_path / "c.db", "client"):
        pass
    assert indexes(tmp_path / "c.db") == BASE
    # A number given twice is still refused on a client, all or nothing.
    with Inbox(tmp_path / "c.db", role="client") as inbox:
        with pytest.raises(StoreError, match="refused a server number"):
            inbox.set_server_seqs(SERVER, [(make_message(1).id, 7), (make_message(2).id, 7)])


def test_a_reader_changes_no_index(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(CLIENT_SCHEMA_2, path)
    before = indexes(path)
    with Inbox(path) as inbox:  # --history
        assert len(inbox.history()) == 6
        assert inbox.get_meta("roles") is None
    assert indexes(path) == before


@pytest.mark.parametrize("first, then", [("client", "server"), ("server", "client"),
                                         ("client", "broadcast"), ("broadcast", "client"),
                                         ("broadcast", "server")])
def test_an_inbox_opened_in_another_role_gets_its_indexes_and_keeps_the_first_ones(
    tmp_path, first, then
):
    path = tmp_path / "inbox.db"
    with filled(path, first):
        pass
    assert indexes(path) == BASE | set(ROLE_INDEXES[first])
    with Inbox(path, role=then) as inbox:
        assert inbox.count() == 55
        assert inbox.get_meta("roles") == ",".join(sorted({first, then}))
        used = plans(inbox, {"next": lambda: CALLS[then](inbox)["next_origin_seq"]()})
        assert all(step.startswith("SEARCH") for step in used["next"])
    both = BASE | set(ROLE_INDEXES[first]) | set(ROLE_INDEXES[then])
    assert indexes(path) == both
    with Inbox(path, role=first):  # and back: nothing dropped, nothing built again
        pass
    assert indexes(path) == both


def test_an_unknown_role_is_refused_before_the_file_is_touched(tmp_path):
    with pytest.raises(ValueError, match="an inbox role is one of server, client, broadcast"):
        Inbox(tmp_path / "x.db", role="relay")
    assert not (tmp_path / "x.db").exists()


# -- the migration of inboxes written before roles --------------------------------------


def test_a_0_1_0_client_inbox_opens_lean_with_its_messages_outbox_and_resume_point(tmp_path):
    path = tmp_path / "alice.db"
    shutil.copy(CLIENT_0_1_0, path)
    assert "message_direct_recipient" in indexes(path)  # 0.1.0 had them all
    assert not outbox_without_rowid(path)
    with Inbox(path, role="client") as inbox:
        node_id = inbox.node_id
        assert node_id == "296a0eabe79d03e517bcca4551ad386b"
        contents = [m.content for m in inbox.history()]
        assert contents == ["first from alice", "bob one", "bob two", "psst, alice",
                            "waits in the outbox"]
        assert [m.content for m in inbox.outbox()] == ["waits in the outbox"]
        assert inbox.held("f29ac2280ffe73c70b8aa2cc5d87ab20", [m.id for m in inbox.history()]) \
            == {m.id: seq for m, seq in zip(inbox.history(), (1, 2, 3, 4, None), strict=True)}
        # 0.1.0's marks for that server, where the client resumes from (one room then).
        assert inbox.get_meta("repeater:f29ac2280ffe73c70b8aa2cc5d87ab20:alice") \
            == '{"room": 3, "dm": 4}'
        assert inbox.next_origin_seq(node_id, direct=False) == 3
        assert inbox.room_states() == {"general": RoomState(True, False, {})}
    assert indexes(path) == BASE and outbox_without_rowid(path)
    with Inbox(path, role="client") as again:  # a second open changes nothing
        assert again.count() == 5 and len(again.outbox()) == 1
    assert indexes(path) == BASE


def test_a_schema_2_client_inbox_opens_lean_and_serves_later_as_a_server(tmp_path):
    path = tmp_path / "alice.db"
    shutil.copy(CLIENT_SCHEMA_2, path)
    server = "d970962a34126938b62b321676b86a72"
    with Inbox(path, role="client") as inbox:
        history = inbox.history()
        assert [(m.content, m.room) for m in history] == [
            ("first from alice", "general"), ("bob one", "general"), ("bob in ops", "ops"),
            ("psst, alice", None), ("ops is for operations", "ops"),
            ("waits in the outbox", "general")]
        assert [m.content for m in inbox.outbox()] == ["waits in the outbox"]
        assert inbox.get_meta(f"repeater:{server}:alice") \
            == '{"rooms": {"general": 2, "ops": 5}, "parted": {}, "dm": 4}'
        assert inbox.current_topic("ops").content == "ops is for operations"
        # What it stores from now on carries on from there: the next arrival, the numbers.
        assert inbox.save(make_message(1, origin=NODE_A), server, 6)
        assert inbox._arrival == 7
    assert indexes(path) == BASE and outbox_without_rowid(path)
    with Inbox(path, role="server") as serving:  # the same file, now a server's
        assert indexes(path) == BASE | set(ROLE_INDEXES["server"])
        assert serving.room_head(server, "ops") == 5
        assert serving.room_heads(server) == {"general": (3, 6), "ops": (2, 5)}
        assert serving.direct_head(server, "alice") == 4
        assert serving.count() == 7
