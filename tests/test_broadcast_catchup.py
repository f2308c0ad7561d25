"""Room catch-up of broadcast mode (core/broadcast/roomsync.py, catchup.py, headers.py):
vectors and floors per room, pulls, tails, peeks, hold-back, HAVE and BEAT.

Each test drives one room's ``RoomSync`` (or the ``CatchUp`` over them) on a
real inbox file with a fake clock.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import NODE_A, NODE_B, OURS, T0, make_message

from lab93zmq.core import wire
from lab93zmq.core.broadcast.actions import BATCH_MESSAGES, PublishFrames, SendToPeer, Verb
from lab93zmq.core.broadcast.catchup import CatchUp
from lab93zmq.core.broadcast.headers import (
    announced_rooms,
    beat_rooms,
    published_messages,
    room_messages,
    sync_request,
    vector_of,
)
from lab93zmq.core.broadcast.roomsync import TAIL, RoomSync, SyncRequest
from lab93zmq.core.errors import ProtocolError
from lab93zmq.core.events import Incoming
from lab93zmq.core.inbox import RoomState
from lab93zmq.core.message import Message
from lab93zmq.core.sync import digest
from lab93zmq.io.store import Inbox

PEER = "c" * 32
INTERVAL = 1.0
STAYED = RoomState(joined=True, parted=False, floors={})  # in the room all along


def room(inbox: Inbox, state: RoomState | None = STAYED, listen: bool = True,
         name: str = "general") -> RoomSync:
    return RoomSync(name, OURS, inbox, state, listen, INTERVAL)


def sent(outputs: list) -> list[wire.Command]:
    return [wire.decode(o.frames) for o in outputs if isinstance(o, SendToPeer)]


def shown(outputs: list) -> list[str]:
    return [o.message.content for o in outputs if isinstance(o, Incoming)]


def later(message: Message, seconds: float) -> Message:
    return Message(**{**message.__dict__, "sent_at": T0 + timedelta(seconds=seconds)})


def test_one_sync_is_outstanding_per_peer_until_answered_or_timed_out(inbox):
    sync = room(inbox)
    [asked] = sent(sync.pull(PEER, 0.0))
    assert (asked.name, asked.header) == (
        Verb.SYNC, {"node": OURS, "room": "general", "vector": {}}
    )
    assert sync.pull(PEER, 1.0) == []  # still on its way
    assert sync.pull(NODE_A, 1.0) != []  # another peer has its own
    assert sent(sync.pull(PEER, sync.pull_timeout))  # given up waiting: ask again
    sync.on_batch(PEER, {}, None, [], 2.5)
    assert sent(sync.pull(PEER, 2.5))  # answered: the next may go at once
    sync.forget(PEER)
    assert sent(sync.pull(PEER, 2.6))  # a link that ended forgets its pull


def test_a_sync_is_answered_with_what_the_asker_lacks_of_its_room_in_bounded_batches(inbox):
    total = BATCH_MESSAGES + 20
    inbox.save_many([(make_message(n, origin=NODE_A), None, None) for n in range(1, total + 1)])
    inbox.save_many([(make_message(1, origin=NODE_B), None, None),
                     (make_message(1, origin=NODE_B, room="ops"), None, None)])
    sync = room(inbox)
    [batch] = sent(sync.answer(PEER, SyncRequest("general", {NODE_A: 10, NODE_B: 1}), 0.0))
    assert batch.name == Verb.BATCH
    assert batch.header == {"node": OURS, "room": "general",
                            "vector": {NODE_A: total, NODE_B: 1}}  # ours, for the asker
    seqs = [m.origin_seq for m in batch.messages()]
    assert seqs == list(range(11, 11 + BATCH_MESSAGES))  # NODE_B has nothing it lacks
    assert sync.reported_mark(PEER, NODE_A) == 10  # what it said it holds
    assert {m.room for m in batch.messages()} == {"general"}  # never another room's


def test_a_sync_for_a_room_we_are_not_in_gets_an_empty_batch(inbox):
    inbox.save(make_message(1, room="ops"))
    catchup = CatchUp(OURS, inbox, INTERVAL, 0.0, listen=True)
    catchup.add("general", STAYED)
    [batch] = sent(catchup.answer(PEER, SyncRequest("ops", {}), 0.0))
    assert batch.header == {"node": OURS, "room": "ops", "vector": {}} and not batch.payloads


def test_an_asker_or_a_have_that_holds_more_than_we_do_is_pulled_from(inbox):
    sync = room(inbox)
    names = [c.name for c in sent(sync.answer(PEER, SyncRequest("general", {NODE_A: 3}), 0.0))]
    assert names == [Verb.BATCH, Verb.SYNC]
    assert [c.name for c in sent(sync.on_have(NODE_B, {NODE_A: 3}, 0.0))] == [Verb.SYNC]
    assert sync.on_have(NODE_B, {}, 0.0) == []  # holds nothing we lack


def test_a_batch_that_made_progress_asks_for_more_only_while_the_peer_holds_more(inbox):
    sync = room(inbox)
    sync.pull(PEER, 0.0)
    taken = sync.on_batch(PEER, {NODE_A: 5}, None, [make_message(1, origin=NODE_A)], 0.1)
    assert [c.name for c in sent(taken.outputs)] == [Verb.SYNC]
    assert sync.on_batch(PEER, {NODE_A: 5}, None, [], 0.3).outputs == []  # no progress
    sync.pull(PEER, 0.35)  # only an answer to a SYNC of ours is taken
    taken = sync.on_batch(PEER, {NODE_A: 2}, None, [make_message(2, origin=NODE_A)], 0.4)
    assert sent(taken.outputs) == []  # it has no more


def test_messages_ahead_of_a_gap_are_stored_at_once_and_shown_in_order(inbox):
    sync = room(inbox)
    taken = sync.take([make_message(1, "one", origin=NODE_A),
                       make_message(3, "three", origin=NODE_A)], 0.0)
    assert shown(taken.outputs) == ["one"] and taken.gap
    assert {m.content for m in inbox.history()} == {"one", "three"}
    taken = sync.take([make_message(2, "two", origin=NODE_A)], 0.5)
    assert shown(taken.outputs) == ["two", "three"] and not taken.gap
    assert sync.vector() == {NODE_A: 3}
    again = sync.take([make_message(2, "two", origin=NODE_A)], 0.6)
    assert again.outputs == []  # a copy we hold shows nothing


def test_a_gap_nobody_fills_is_given_up_after_hold_for(inbox):
    sync = room(inbox)
    sync.take([make_message(2, "two", origin=NODE_A), make_message(4, "four", origin=NODE_A)],
              0.0)
    assert shown(sync.due(sync.hold_for - 0.01)) == []
    assert shown(sync.due(sync.hold_for)) == ["two", "four"]
    assert sync.due(99.0) == []


def test_topic_messages_are_counted_but_never_shown(inbox):
    sync = room(inbox)
    topic = make_message(1, "deploys at 5", origin=NODE_A, kind="topic")
    taken = sync.take([topic, make_message(2, "chat", origin=NODE_A)], 0.0)
    assert shown(taken.outputs) == ["chat"] and taken.topics == [topic]
    assert sync.vector() == {NODE_A: 2}


def test_a_have_goes_soon_after_news_and_at_most_once_per_tenth_of_an_interval(inbox):
    sync = room(inbox)
    assert sync.next_deadline() is None
    sync.take([make_message(1, origin=NODE_A)], 0.5)
    [have] = sync.due(0.5)
    assert isinstance(have, PublishFrames)
    assert wire.decode_published(have.frames) == (
        "general", wire.Command(Verb.HAVE, {"node": OURS, "room": "general",
                                            "vector": {NODE_A: 1}})
    )
    sync.take([make_message(2, origin=NODE_A)], 0.52)
    assert sync.due(0.52) == [] and sync.next_deadline() == pytest.approx(0.6)
    assert len(sync.due(0.6)) == 1
    # A send-only node stores nothing of the room and says nothing of it.
    quiet = room(inbox, listen=False, name="dev")
    quiet.published(1)
    assert quiet.due(5.0) == []


def test_the_beat_names_our_rooms_with_digests_every_interval_and_early_after_a_change(inbox):
    catchup = CatchUp(OURS, inbox, INTERVAL, 0.0, listen=True)
    general, ops = catchup.add("general", STAYED), catchup.add("ops", STAYED)
    ops.take([make_message(1, origin=NODE_A, room="ops")], 0.0)
    [beat] = catchup.beat(0.0)
    assert wire.decode_published(beat.frames) == (None, wire.Command(Verb.BEAT, {
        "node": OURS, "rooms": {"general": digest({}), "ops": digest({NODE_A: 1})}}))
    assert beat.frames[0] == wire.SIGNATURE + b"*"
    assert catchup.beat(0.5) == []
    catchup.drop("ops")
    catchup.beat_soon()  # our rooms changed
    [beat] = catchup.beat(0.5)
    assert wire.decode_published(beat.frames)[1].header["rooms"] == {"general": general.digest()}
    assert catchup.beat(1.0) == [] and catchup.beat(1.5) != []
    sending = CatchUp(OURS, inbox, INTERVAL, 0.0, listen=False)
    sending.add("general", None)
    [beat] = sending.beat(0.0)  # a send-only node is in no room as far as anyone knows
    assert wire.decode_published(beat.frames)[1].header == {"node": OURS, "rooms": {}}


def test_a_digest_like_ours_confirms_one_like_its_report_is_no_news_another_pulls(inbox):
    sync = room(inbox)
    sync.published(1)
    sync.published(2)
    assert sync.on_digest(PEER, digest({OURS: 2}), 0.0) == []
    assert sync.reported_mark(PEER, OURS) == 2  # it holds what we hold, our posts too
    sync.on_have(PEER, {OURS: 2, NODE_A: 1}, 0.1)  # a pull goes; not answered
    assert sync.on_digest(PEER, digest({OURS: 2, NODE_A: 1}), 0.2) == []  # on its way
    assert sent(sync.on_digest(PEER, digest({OURS: 2, NODE_A: 1}), 2.2))  # lost: again
    sync.on_batch(PEER, {OURS: 2, NODE_A: 1}, None, [make_message(1, origin=NODE_A)], 2.3)
    assert sync.on_digest(PEER, digest({OURS: 2, NODE_A: 1}), 2.4) == []  # as ours now
    # Something it holds that it never reported: the digest says so.
    assert [c.name for c in sent(sync.on_digest(PEER, digest({OURS: 2, NODE_A: 2}), 2.5))] == [
        Verb.SYNC
    ]


def test_reports_are_kept_per_peer_and_confirmed_is_the_highest_for_our_origin(inbox):
    sync = room(inbox)
    sync.heard(NODE_A, {OURS: 4})
    sync.heard(NODE_B, {OURS: 2})
    assert (sync.reported_mark(NODE_A, OURS), sync.reported_mark(NODE_B, OURS)) == (4, 2)
    sync.forget(NODE_A)
    assert sync.reported_mark(NODE_A, OURS) == 0
    assert sync.confirmed == 4  # held by a peer this run, even one gone since


# -- first joins, rejoins, tails and floors -------------------------------------------------


def test_a_tail_is_the_newest_the_asker_lacks_with_the_topic_and_floors_for_every_origin(inbox):
    old_topic = later(make_message(1, "the topic", origin=NODE_B, kind="topic"), 0)
    inbox.save(old_topic)
    for n in range(1, 151):  # NODE_A wrote 150, the newest last
        inbox.save(later(make_message(n, origin=NODE_A), n))
    for n in range(2, 6):  # NODE_B wrote 4 more, long ago
        inbox.save(later(make_message(n, origin=NODE_B), 0.1 * n))
    inbox.save(later(make_message(6, "b recent", origin=NODE_B), 149.5))
    sync = room(inbox)
    request = SyncRequest("general", {NODE_A: 120}, tail=TAIL)
    [batch] = sent(sync.answer(PEER, request, 0.0))
    # The newest 100: A's 52..150 and B's 6; the asker holds A's up to 120.
    assert batch.header["floors"] == {NODE_A: 51, NODE_B: 5}
    contents = [m.content for m in batch.messages()]
    assert contents[0] == "the topic"  # the topic with every tail, however old
    assert [m.origin_seq for m in batch.messages()[1:] if m.origin == NODE_A] == list(
        range(121, 151)
    )
    assert "b recent" in contents


def test_a_first_join_asks_every_peer_for_a_tail_and_keeps_the_lowest_floors(inbox):
    sync = room(inbox, state=None)
    assert sync.joining
    [asked] = sent(sync.meet(PEER, 0.0))
    assert asked.header["tail"] == TAIL
    sent(sync.meet(NODE_B, 0.0))
    taken = sync.on_batch(PEER, {NODE_A: 150, OURS: 9}, {NODE_A: 50, OURS: 7},
                          [make_message(n, origin=NODE_A) for n in range(51, 61)], 0.1)
    assert not sync.joining  # given a tail: from now on every pull is a plain one
    assert shown(taken.outputs) == [f"message {n}" for n in range(51, 61)]
    assert sync.floors == {NODE_A: 50}  # never one for our own origin
    assert inbox.room_states()["general"] == RoomState(True, False, {NODE_A: 50})
    # Another tail of the same join: an origin's floor is the lowest any gave.
    sync.on_batch(NODE_B, {NODE_A: 150, "e" * 32: 40}, {NODE_A: 30, "e" * 32: 40}, [], 0.2)
    assert sync.floors == {NODE_A: 30, "e" * 32: 40}
    assert sync.vector()[NODE_A] == 60 and sync.vector()["e" * 32] == 40
    # Floors that came in a batch we did not ask a tail of are no floors at all.
    sync.on_batch(PEER, {"f" * 32: 9}, {"f" * 32: 9}, [], 0.3)
    assert "f" * 32 not in sync.floors
    assert "tail" not in sent(sync.pull(PEER, 5.0))[0].header


def test_a_rejoin_is_given_a_tail_again_and_never_goes_below_its_old_floors(inbox):
    sync = room(inbox, state=RoomState(joined=False, parted=True, floors={NODE_A: 80}))
    assert sync.joining and sync.vector() == {NODE_A: 80}
    [asked] = sent(sync.pull(PEER, 0.0))
    assert asked.header["tail"] == TAIL and asked.header["vector"] == {NODE_A: 80}
    sync.on_batch(PEER, {NODE_A: 300, NODE_B: 9}, {NODE_A: 60, NODE_B: 9}, [], 0.1)
    assert sync.floors == {NODE_A: 80, NODE_B: 9}


def test_a_room_we_stayed_in_is_caught_up_in_full_from_its_marks(inbox):
    inbox.save_many([(make_message(n, origin=NODE_A), None, None) for n in (11, 12)])
    sync = room(inbox, state=RoomState(True, False, {NODE_A: 10}))
    assert not sync.joining and sync.vector() == {NODE_A: 12}
    assert "tail" not in sent(sync.pull(PEER, 0.0))[0].header


def test_a_send_only_node_peeks_until_every_peer_holds_its_posts_and_stores_nothing(inbox):
    sync = room(inbox, state=None, listen=False)
    assert not sync.joining
    sync.published(1)
    sync.want_peeks([PEER], 0.0)
    assert sync.next_deadline() == pytest.approx(0.1)
    [peek] = sent(sync.due(0.1))
    assert peek.header == {"node": OURS, "room": "general", "vector": {OURS: 1}, "peek": True}
    # Not yet held: asked again soon; the messages of a batch are never stored.
    sync.on_batch(PEER, {NODE_A: 4}, None, [make_message(1, origin=NODE_A)], 0.2)
    assert inbox.count() == 0
    assert sent(sync.due(0.35))
    sync.on_batch(PEER, {OURS: 1, NODE_A: 4}, None, [], 0.4)
    assert sync.reported_mark(PEER, OURS) == 1 and sync.next_deadline() is None


def test_a_peek_is_answered_with_our_vector_only_and_the_peeker_is_pulled_from(inbox):
    inbox.save(make_message(1, origin=NODE_A))
    sync = room(inbox)
    outputs = sync.answer(PEER, SyncRequest("general", {PEER: 3}, peek=True), 0.0)
    batch, pull = sent(outputs)
    assert batch.header == {"node": OURS, "room": "general", "vector": {NODE_A: 1}}
    assert batch.payloads == () and pull.name == Verb.SYNC  # its posts are wanted


# -- the fields of commands ---------------------------------------------------------


def test_the_readers_say_what_is_wrong():
    with pytest.raises(ProtocolError, match="'vector' is missing"):
        vector_of({})
    with pytest.raises(ProtocolError, match="bad vector"):
        vector_of({"vector": {"x": 1}})
    assert vector_of({"vector": {NODE_A: 2}}) == {NODE_A: 2}
    assert sync_request({"room": "ops", "vector": {}, "tail": 100}) == SyncRequest(
        "ops", {}, 100
    )
    for bad in ({"vector": {}}, {"room": "#ops", "vector": {}},
                {"room": "ops", "vector": {}, "tail": 0},
                {"room": "ops", "vector": {}, "tail": True},
                {"room": "ops", "vector": {}, "peek": 1}):
        with pytest.raises(ProtocolError):
            sync_request(bad)
    assert beat_rooms({"rooms": {"ops": "0123456789abcdef"}}) == {"ops": "0123456789abcdef"}
    for bad in ({}, {"rooms": []}, {"rooms": {"ops": "xyz"}}, {"rooms": {"#o": "0" * 16}}):
        with pytest.raises(ProtocolError):
            beat_rooms(bad)
    assert announced_rooms({"rooms": [{"name": "ops", "topic": None}]}) == {"ops": None}
    for bad in ({"rooms": {}}, {"rooms": [7]}, {"rooms": [{"name": "ops", "topic": 5}]},
                {"rooms": [{"name": "o p", "topic": None}]}):
        with pytest.raises(ProtocolError):
            announced_rooms(bad)
    for payloads in ([], [make_message(1).encode()] * (BATCH_MESSAGES + 1)):
        with pytest.raises(ProtocolError, match="MSG carries"):
            published_messages(payloads, "general")
    with pytest.raises(ProtocolError, match="direct message was published"):
        published_messages([make_message(1, to="bob").encode()], "general")
    with pytest.raises(ProtocolError, match="of #ops was published on #general"):
        published_messages([make_message(1, room="ops").encode()], "general")
    good = make_message(1)
    messages, faults = room_messages(NODE_B, [b"{}", good.encode(),
                                              make_message(2, to="bob").encode(),
                                              make_message(3, room="ops").encode()],
                                     "general", "a BATCH")
    assert messages == [good]
    assert [f.stat for f in faults] == ["bad_messages"] * 3
    assert "a direct message" in faults[1].text and "#ops" in faults[2].text
