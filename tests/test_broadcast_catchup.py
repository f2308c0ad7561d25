"""Room catch-up of broadcast mode (core/broadcast/catchup.py): vectors, pulls, hold-back.

Each test drives one ``CatchUp`` on a real inbox file with a fake clock.
"""

from __future__ import annotations

import pytest
from factories import NODE_A, NODE_B, make_message

from lab93zmq.core import wire
from lab93zmq.core.broadcast.actions import BATCH_MESSAGES, PublishFrames, SendToPeer, Verb
from lab93zmq.core.broadcast.catchup import (
    CatchUp,
    published_messages,
    room_messages,
    vector_of,
)
from lab93zmq.core.errors import ProtocolError
from lab93zmq.core.events import Incoming
from lab93zmq.io.store import Inbox

OURS = "0" * 32
PEER = "c" * 32
INTERVAL = 1.0


@pytest.fixture
def inbox(tmp_path):
    box = Inbox(tmp_path / "ours.db", new_node_id=bytes.fromhex(OURS))
    yield box
    box.close()


def sent(outputs: list) -> list[wire.Command]:
    return [wire.decode(o.frames) for o in outputs if isinstance(o, SendToPeer)]


def shown(outputs: list) -> list[str]:
    return [o.message.content for o in outputs if isinstance(o, Incoming)]


def test_one_sync_is_outstanding_per_peer_until_answered_or_timed_out(inbox):
    catchup = CatchUp(OURS, inbox, INTERVAL, 0.0)
    [sync] = sent(catchup.pull(PEER, 0.0))
    assert (sync.name, sync.header) == (Verb.SYNC, {"node": OURS, "vector": {}})
    assert catchup.pull(PEER, 1.0) == []  # still on its way
    assert catchup.pull(NODE_A, 1.0) != []  # another peer has its own
    assert sent(catchup.pull(PEER, catchup.pull_timeout))  # given up waiting: ask again
    catchup.answered(PEER, {}, catchup.vector(), 2.5)
    assert sent(catchup.pull(PEER, 2.5))  # answered: the next may go at once
    catchup.forget(PEER)
    assert sent(catchup.pull(PEER, 2.6))  # a link that ended forgets its pull


def test_a_sync_is_answered_with_what_the_asker_lacks_in_bounded_batches(inbox):
    total = BATCH_MESSAGES + 20
    inbox.save_many([(make_message(n, origin=NODE_A), None, None) for n in range(1, total + 1)])
    inbox.save_many([(make_message(1, origin=NODE_B), None, None)])
    catchup = CatchUp(OURS, inbox, INTERVAL, 0.0)
    [batch] = sent(catchup.answer(PEER, {NODE_A: 10, NODE_B: 1}, 0.0))
    assert batch.name == Verb.BATCH
    assert batch.header["vector"] == {NODE_A: total, NODE_B: 1}  # ours, for the asker
    seqs = [m.origin_seq for m in batch.messages()]
    assert seqs == list(range(11, 11 + BATCH_MESSAGES))  # NODE_B has nothing it lacks
    assert catchup.reported_mark(PEER, NODE_A) == 10  # what it said it holds


def test_an_asker_that_holds_more_than_we_do_is_pulled_from(inbox):
    catchup = CatchUp(OURS, inbox, INTERVAL, 0.0)
    names = [c.name for c in sent(catchup.answer(PEER, {NODE_A: 3}, 0.0))]
    assert names == [Verb.BATCH, Verb.SYNC]
    assert [c.name for c in sent(catchup.on_beat(NODE_B, {NODE_A: 3}, 0.0))] == [Verb.SYNC]
    assert catchup.on_beat(NODE_B, {}, 0.0) == []  # holds nothing we lack


def test_a_batch_that_made_progress_asks_for_more_only_while_the_peer_holds_more(inbox):
    catchup = CatchUp(OURS, inbox, INTERVAL, 0.0)
    catchup.pull(PEER, 0.0)
    before = catchup.vector()
    catchup.take([make_message(1, origin=NODE_A)], 0.0)
    assert [c.name for c in sent(catchup.answered(PEER, {NODE_A: 5}, before, 0.1))] == [
        Verb.SYNC
    ]
    catchup.pull(PEER, 0.2)
    assert catchup.answered(PEER, {NODE_A: 5}, catchup.vector(), 0.3) == []  # no progress
    catchup.take([make_message(2, origin=NODE_A)], 0.3)
    assert catchup.answered(PEER, {NODE_A: 2}, {NODE_A: 1}, 0.4) == []  # it has no more


def test_messages_ahead_of_a_gap_are_stored_at_once_and_shown_in_order(inbox):
    catchup = CatchUp(OURS, inbox, INTERVAL, 0.0)
    taken = catchup.take([make_message(1, "one", origin=NODE_A),
                          make_message(3, "three", origin=NODE_A)], 0.0)
    assert shown(taken.outputs) == ["one"] and taken.gap
    assert {m.content for m in inbox.history()} == {"one", "three"}
    taken = catchup.take([make_message(2, "two", origin=NODE_A)], 0.5)
    assert shown(taken.outputs) == ["two", "three"] and not taken.gap
    assert catchup.vector() == {NODE_A: 3}
    again = catchup.take([make_message(2, "two", origin=NODE_A)], 0.6)
    assert again.outputs == []  # a copy we hold shows nothing


def test_a_gap_nobody_fills_is_given_up_after_hold_for(inbox):
    catchup = CatchUp(OURS, inbox, INTERVAL, 0.0)
    catchup.take([make_message(2, "two", origin=NODE_A), make_message(4, "four", origin=NODE_A)],
                 0.0)
    assert catchup.release_overdue(catchup.hold_for - 0.01) == []
    assert shown(catchup.release_overdue(catchup.hold_for)) == ["two", "four"]
    assert catchup.release_overdue(99.0) == []


def test_the_beat_goes_every_interval_and_early_after_news(inbox):
    catchup = CatchUp(OURS, inbox, INTERVAL, 0.0)
    [beat] = catchup.beat(0.0)
    assert isinstance(beat, PublishFrames)
    assert wire.decode(beat.frames).header == {"node": OURS, "vector": {}}
    assert catchup.beat(0.5) == []
    catchup.take([make_message(1, origin=NODE_A)], 0.5)  # tell the author soon
    assert wire.decode(catchup.beat(0.5)[0].frames).header["vector"] == {NODE_A: 1}
    assert catchup.beat(1.0) == [] and catchup.beat(1.5) != []


def test_peers_reports_are_kept_per_peer_and_confirmed_is_the_highest_for_our_origin(inbox):
    catchup = CatchUp(OURS, inbox, INTERVAL, 0.0)
    catchup.heard(NODE_A, {OURS: 4})
    catchup.heard(NODE_B, {OURS: 2})
    assert (catchup.reported_mark(NODE_A, OURS), catchup.reported_mark(NODE_B, OURS)) == (4, 2)
    catchup.forget(NODE_A)
    assert catchup.reported_mark(NODE_A, OURS) == 0
    assert catchup.confirmed == 4  # held by a peer this run, even one gone since


def test_the_parsers_say_what_is_wrong():
    with pytest.raises(ProtocolError, match="'vector' is missing"):
        vector_of({})
    with pytest.raises(ProtocolError, match="bad vector"):
        vector_of({"vector": {"x": 1}})
    assert vector_of({"vector": {NODE_A: 2}}) == {NODE_A: 2}
    for payloads in ([], [make_message(1).encode()] * (BATCH_MESSAGES + 1)):
        with pytest.raises(ProtocolError, match="MSG carries"):
            published_messages(payloads)
    with pytest.raises(ProtocolError, match="direct message was published"):
        published_messages([make_message(1, to="bob").encode()])
    good = make_message(1)
    messages, faults = room_messages(NODE_B, [b"{}", good.encode(),
                                              make_message(2, to="bob").encode()], "a BATCH")
    assert messages == [good]
    assert [f.stat for f in faults] == ["bad_messages", "bad_messages"]
    assert "a direct message" in faults[1].text
