import sqlite3
import stat
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from factories import NODE_A, NODE_B, T0, make_message

from lab93zmq.core.errors import StoreError
from lab93zmq.io.store import SCHEMA_VERSION, Inbox

SERVER = "c" * 32


@pytest.fixture
def inbox(tmp_path):
    with Inbox(tmp_path / "inbox.db") as opened:
        yield opened


def test_saving_twice_is_a_visible_no_op(inbox):
    assert inbox.save(make_message(1)) is True
    assert inbox.save(make_message(1)) is False
    assert inbox.count() == 1


def test_batch_dedupes_against_store_and_itself(inbox):
    inbox.save(make_message(1))
    batch = [(make_message(s), None, None) for s in (1, 2, 2, 3)]
    assert inbox.save_many(batch) == [False, True, False, True]
    assert inbox.count() == 3


def test_batch_is_one_transaction(inbox):
    clash = make_message(2, origin=NODE_A)
    inbox.save(clash)
    # Same (origin, seq) under another id breaks the unique index: nothing of the batch stays.
    impostor = make_message(2, "other", origin=NODE_A, author="mallory")
    impostor = type(impostor)(**{**impostor.__dict__, "id": "f" * 32})
    with pytest.raises(StoreError):
        inbox.save_many([(make_message(5), None, None), (impostor, None, None)])
    assert make_message(5).id not in inbox
    assert inbox.save(make_message(6)) is True  # still usable afterwards


def test_saving_within_a_transaction_is_undone_with_it_and_dedupes_alike(inbox):
    inbox.save(make_message(1))
    batch = [(make_message(s), None, None) for s in (1, 2, 2, 3)]
    assert inbox.save_within(batch) == [False, True, False, True]  # no transaction: its own
    impostor = type(make_message(2))(**{**make_message(2).__dict__, "id": "f" * 32})
    with pytest.raises(StoreError), inbox.transaction():
        assert inbox.save_within([(make_message(5), None, None)]) == [True]
        inbox.save_within([(impostor, None, None)])  # (origin, seq) taken: refused
    assert make_message(5).id not in inbox and inbox.count() == 3
    with inbox.transaction():
        assert inbox.save_within([(make_message(6), None, None)]) == [True]
    assert make_message(6).id in inbox


def test_history_is_the_messages_order_not_arrival_and_limit_takes_newest(inbox):
    # Arrival 3, 1, 2 all written at T0: the same time, so in the order they came in.
    for seq in (3, 1, 2):
        inbox.save(make_message(seq))
    assert [m.origin_seq for m in inbox.history()] == [3, 1, 2]
    assert [m.origin_seq for m in inbox.history(2)] == [1, 2]
    # Written earlier, come in later (caught up from a peer): shown where it was written.
    late = replace(make_message(1, "written first", origin=NODE_B), sent_at=T0 - timedelta(hours=1))
    inbox.save(late)
    assert [m.content for m in inbox.history()][0] == "written first"
    assert [m.origin_seq for m in inbox.history(3)] == [3, 1, 2]


def test_restart_keeps_messages_identity_and_outbox(tmp_path):
    path = tmp_path / "inbox.db"
    with Inbox(path) as first:
        node_id = first.node_id
        first.save(make_message(1))
        first.queue(make_message(2, origin=node_id))
    with Inbox(path) as second:
        assert second.node_id == node_id
        assert second.get(make_message(1).id) == make_message(1)
        assert [m.origin_seq for m in second.outbox()] == [2]
        assert second.save(make_message(3)) is True
        assert [m.origin_seq for m in second.history()] == [1, 2, 3]


def test_file_is_wal_and_private(tmp_path):
    path = tmp_path / "inbox.db"
    Inbox(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "inbox.db"
    with Inbox(path) as inbox:
        inbox.set_meta("schema_version", str(SCHEMA_VERSION + 1))
    with pytest.raises(StoreError, match="newer lab93-node"):
        Inbox(path)


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "inbox.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the inbox"):
        Inbox(path)


def test_outbox_keeps_queue_order_until_acknowledged(inbox):
    for seq in (1, 2, 3):
        inbox.queue(make_message(seq, origin=inbox.node_id))
    inbox.queue(make_message(2, origin=inbox.node_id))  # queueing twice changes nothing
    assert [m.origin_seq for m in inbox.outbox()] == [1, 2, 3]
    assert inbox.acknowledge([make_message(1, origin=inbox.node_id).id, "0" * 32]) == 1
    assert [m.origin_seq for m in inbox.outbox()] == [2, 3]
    assert inbox.count() == 3  # acknowledged messages stay in the inbox


def test_origin_marks_are_contiguous_prefixes(inbox):
    for seq in (1, 2, 3, 5):
        inbox.save(make_message(seq, origin=NODE_A))
    for seq in (2, 3):
        inbox.save(make_message(seq, origin=NODE_B))
    inbox.save(make_message(1, origin=NODE_B, to="bob"))  # direct messages do not count
    assert inbox.origin_marks() == {NODE_A: 3, NODE_B: 0}
    assert [m.origin_seq for m in inbox.origin_after(NODE_A, 1, 10)] == [2, 3, 5]
    assert [m.origin_seq for m in inbox.origin_after(NODE_A, 1, 1)] == [2]


def test_room_and_direct_sequences_are_separate(inbox):
    me = inbox.node_id
    inbox.save(make_message(1, origin=me))
    inbox.save(make_message(1, origin=me, to="bob"))
    assert inbox.next_origin_seq(me, direct=False) == 2
    assert inbox.next_origin_seq(me, direct=True) == 2
    assert inbox.next_origin_seq(NODE_B, direct=False) == 1


def test_server_order_queries_hide_other_peoples_direct_messages(inbox):
    batch = [
        (make_message(1, "room 1"), SERVER, 1),
        (make_message(1, "to bob", author="alice", to="bob"), SERVER, 2),
        (make_message(1, "to carol", origin=NODE_B, author="dave", to="carol"), SERVER, 3),
        (make_message(2, "room 2"), SERVER, 4),
        (make_message(2, "from bob", author="bob", to="alice"), SERVER, 5),
    ]
    inbox.save_many(batch)
    visible, more = inbox.visible_since(SERVER, {"general": 0}, 0, "bob", 100)
    assert more is False
    seen_by_bob = [(seq, m.content) for seq, m in visible]
    assert seen_by_bob == [(1, "room 1"), (2, "to bob"), (4, "room 2"), (5, "from bob")]
    carol = inbox.visible_since(SERVER, {"general": 2}, 2, "carol", 100)[0]
    assert [seq for seq, _ in carol] == [3, 4]
    assert inbox.max_server_seq(SERVER) == 5
    assert inbox.held(SERVER, [make_message(2, "room 2").id, "0" * 32]) == {
        make_message(2, "room 2").id: 4
    }
    assert inbox.room_tail_start(SERVER, "general", 1) == 1  # the one before the last 1
    assert inbox.room_tail_start(SERVER, "general", 100) == 0
    assert inbox.room_heads(SERVER) == {"general": (2, 4)}


def test_server_order_queries_answer_per_room(inbox):
    batch = [
        (make_message(1, room="ops"), SERVER, 1),
        (make_message(1, room="dev"), SERVER, 2),
        (make_message(2, "old topic", room="ops", kind="topic"), SERVER, 3),
        (make_message(1, "to bob", to="bob"), SERVER, 4),
        (make_message(3, room="ops"), SERVER, 5),
        (make_message(2, room="dev"), SERVER, 6),
        (make_message(4, "new topic", room="ops", kind="topic"), SERVER, 7),
        (make_message(3, room="dev", kind="topic"), "e" * 32, 1),  # another server's
    ]
    later = batch[6][0]
    batch[6] = (type(later)(**{**later.__dict__, "sent_at": T0 + timedelta(seconds=1)}), SERVER, 7)
    inbox.save_many(batch)
    assert [inbox.room_head(SERVER, r) for r in ("ops", "dev", "none")] == [7, 6, 0]
    assert inbox.room_heads(SERVER) == {"dev": (2, 6), "ops": (4, 7)}
    assert inbox.room_tail_start(SERVER, "ops", 2) == 3  # ops' last 2 are 5 and 7
    assert inbox.room_tail_start(SERVER, "dev", 2) == 0
    found, more = inbox.visible_since(SERVER, {"ops": 3, "dev": 0}, 0, "carol", 3)
    assert [seq for seq, _ in found] == [2, 5, 6] and more  # a page of 3, in server order
    found, more = inbox.visible_since(SERVER, {"ops": 6, "dev": 6}, 0, "bob", 10)
    assert [seq for seq, _ in found] == [4, 7] and not more  # dev: nothing past 6
    assert inbox.numbered_topic(SERVER, "ops")[0] == 7
    assert inbox.current_topic("ops").content == "new topic"  # the latest (sent_at, id)
    assert inbox.numbered_topic(SERVER, "dev") is None  # only another server's
    assert inbox.current_topic("dev").content == "message 3"  # but the inbox holds it
    assert inbox.current_topic("none") is None
    assert [m.room for m in inbox.history(room="dev")] == ["dev", "dev", "dev"]
    assert [m.origin_seq for m in inbox.history(2, room="ops")] == [3, 4]


def test_group_commit_of_many_is_quick_enough_to_matter(tmp_path):
    # Not a timing assertion: checks the batch path stores all of a large batch.
    with Inbox(tmp_path / "inbox.db") as inbox:
        batch = [(make_message(s), SERVER, s) for s in range(1, 5001)]
        started = time.monotonic()
        assert all(inbox.save_many(batch))
        assert inbox.max_server_seq(SERVER) == 5000
        assert time.monotonic() - started < 60


def test_held_answers_stored_ids_with_this_servers_numbers(inbox):
    inbox.save_many(
        [
            (make_message(1), SERVER, 1),
            (make_message(2), "d" * 32, 1),  # numbered by another server
            (make_message(3), None, None),  # not numbered at all
        ]
    )
    ids = [make_message(s).id for s in (1, 2, 3, 4)]
    assert inbox.held(SERVER, ids) == {ids[0]: 1, ids[1]: None, ids[2]: None}
    assert inbox.held(SERVER, []) == {}
    many = [make_message(s).id for s in range(1, 1201)]  # more than one chunk of ids
    assert set(inbox.held(SERVER, many)) == set(ids[:3])


def test_save_unknown_trusts_the_callers_lookup(inbox):
    inbox.save(make_message(1))
    batch = [(make_message(s), None, None) for s in (1, 2, 2, 3)]
    known = inbox.held(SERVER, [m.id for m, _, _ in batch])
    assert inbox.save_unknown(batch, known) == [False, True, False, True]
    assert inbox.count() == 3
    assert [m.origin_seq for m in inbox.history()] == [1, 2, 3]


def test_save_unknown_refused_batch_leaves_nothing(inbox):
    inbox.save(make_message(2))
    impostor = make_message(2, "other", author="mallory")
    impostor = type(impostor)(**{**impostor.__dict__, "id": "f" * 32})
    with inbox.transaction():
        with pytest.raises(StoreError):
            inbox.save_unknown([(make_message(5), None, None), (impostor, None, None)], set())
        assert make_message(5).id not in inbox  # rolled back to before the batch
        assert inbox.save(make_message(6)) is True
    assert [m.origin_seq for m in inbox.history()] == [2, 6]


def test_withdraw_misnamed_takes_out_only_what_nothing_of_ours_follows(inbox):
    # Ours in general: 1 as alice, 2 as mallory (a hole if taken out: 3 follows), 3 as
    # alice, 4 and 5 as mallory; in ops only 1 as mallory; direct: one as mallory not
    # acknowledged, one acknowledged; and bob's message under his own name.
    general = [make_message(1), make_message(2, author="mallory"), make_message(3),
               make_message(4, author="mallory"), make_message(5, author="mallory")]
    ops = make_message(1, author="mallory", room="ops")
    waiting = make_message(1, author="mallory", to="bob")
    delivered = make_message(2, author="mallory", to="carol")
    theirs = make_message(4, author="bob", origin=NODE_B)
    for message in (*general, ops, theirs):
        inbox.save(message)
    inbox.queue_many([waiting, delivered])
    inbox.acknowledge([delivered.id])
    withdrawn = inbox.withdraw_misnamed(NODE_A, "alice")
    assert [m.id for m in withdrawn] == [general[3].id, general[4].id, ops.id, waiting.id]
    for message in withdrawn:
        assert message.id not in inbox
    assert inbox.outbox() == []
    assert inbox.next_origin_seq(NODE_A, direct=False) == 4  # no hole in our numbering
    assert inbox.next_origin_seq(NODE_A, direct=False, room="ops") == 1
    assert {general[1].id, delivered.id, theirs.id} <= {m.id for m in inbox.history()}
    assert inbox.withdraw_misnamed(NODE_A, "alice") == []
