"""The inbox's rooms (io/room_store.py): marks counted from floors, a room's newest
messages and its topic, the ``room`` table."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import NODE_A, NODE_B, T0, make_message

from lab93zmq.core.inbox import RoomState
from lab93zmq.core.message import TOPIC, Message
from lab93zmq.io.store import Inbox


@pytest.fixture
def inbox(tmp_path):
    with Inbox(tmp_path / "inbox.db") as opened:
        yield opened


def at(message: Message, seconds: float) -> Message:
    """``message`` written ``seconds`` after T0."""
    fields = {**message.__dict__, "sent_at": T0 + timedelta(seconds=seconds)}
    return Message(**fields)


def test_marks_count_from_each_origins_floor(inbox):
    for seq in (3, 4, 5, 7):
        inbox.save(make_message(seq, room="ops"))
    inbox.save(make_message(1, origin=NODE_B, room="ops"))
    assert inbox.origin_marks("ops") == {NODE_A: 0, NODE_B: 1}  # nothing from 1 for A
    # A floor of 2: A's 3, 4, 5 follow it (7 is past a hole); below a floor counts as held.
    assert inbox.origin_marks("ops", {NODE_A: 2}) == {NODE_A: 5, NODE_B: 1}
    assert inbox.origin_marks("ops", {NODE_A: 5}) == {NODE_A: 5, NODE_B: 1}
    assert inbox.origin_marks("ops", {NODE_A: 6}) == {NODE_A: 7, NODE_B: 1}
    # An origin with a floor and nothing above it is at its floor.
    assert inbox.origin_marks("ops", {NODE_A: 9, "c" * 32: 4}) == {
        NODE_A: 9, NODE_B: 1, "c" * 32: 4
    }
    assert inbox.origin_marks("dev", {NODE_A: 0}) == {}
    assert inbox.origin_marks("general") == {}  # other rooms are not counted


def test_newest_is_by_time_then_id_and_per_room(inbox):
    inbox.save(at(make_message(1, "ops old", room="ops"), 1))
    inbox.save(at(make_message(2, "ops new", room="ops"), 3))
    inbox.save(at(make_message(1, "b's", origin=NODE_B, room="ops"), 2))
    inbox.save(at(make_message(3, "dev", room="dev"), 9))
    inbox.save(at(make_message(1, "direct", to="bob"), 10))
    assert [m.content for m in inbox.newest("ops", 2)] == ["ops new", "b's"]
    assert [m.content for m in inbox.newest("ops", 100)] == ["ops new", "b's", "ops old"]
    assert inbox.newest("none", 5) == []


def test_the_current_topic_is_the_latest_by_time_then_id(inbox):
    assert inbox.current_topic("ops") is None
    first = at(make_message(1, "first", room="ops", kind=TOPIC), 1)
    inbox.save(first)
    inbox.save(at(make_message(2, "not a topic", room="ops"), 5))
    assert inbox.current_topic("ops") == first
    # Two topics set in the same microsecond: the greater id wins, on every node.
    a = at(make_message(3, "one", room="ops", kind=TOPIC), 2)
    b = at(make_message(1, "two", origin=NODE_B, room="ops", kind=TOPIC), 2)
    inbox.save_many([(a, None, None), (b, None, None)])
    assert inbox.current_topic("ops") == max(a, b, key=lambda m: m.id)
    assert inbox.current_topic("dev") is None


def test_room_states_are_kept_and_replaced(tmp_path):
    path = tmp_path / "inbox.db"
    with Inbox(path) as inbox:
        assert inbox.room_states() == {}  # a new inbox was never in any room
        inbox.save_room_state("ops", RoomState(joined=True, parted=False, floors=None))
        inbox.save_room_state("dev", RoomState(True, False, {NODE_B: 7, NODE_A: 3}))
        inbox.save_room_state("ops", RoomState(False, True, {NODE_A: 1}))
    with Inbox(path) as again:
        assert again.room_states() == {
            "ops": RoomState(False, True, {NODE_A: 1}),
            "dev": RoomState(True, False, {NODE_A: 3, NODE_B: 7}),
        }
