"""The pipe form of protocol events (pure)."""

import pytest
from factories import T0, make_message

from lab93zmq.core.events import (
    Accepted,
    Incoming,
    Joined,
    Member,
    Notice,
    Parted,
    RoomInfo,
    RoomList,
    Status,
    Topic,
    Users,
    pipe_form,
    pipe_forms,
)


def test_a_run_of_incoming_messages_is_one_pipe_message_in_order():
    a, b, c = (make_message(n) for n in (1, 2, 3))
    forms = pipe_forms([Incoming(a), Incoming(b), Accepted(("x",)), Incoming(c), Notice("hi")])
    assert [kind for kind, _ in forms] == ["incoming", "accepted", "incoming", "notice"]
    assert forms[0][1] == {"messages": [a.to_wire_dict(), b.to_wire_dict()]}
    assert forms[2][1] == {"messages": [c.to_wire_dict()]}
    assert pipe_forms([]) == []


def test_every_event_has_its_pipe_form():
    assert pipe_form(Status(False, "down")) == ("status", {"connected": False, "detail": "down"})
    assert pipe_form(Users(("bob",))) == (
        "who_result", {"room": None, "users": ["bob"], "connected": True, "away": {}}
    )
    assert pipe_form(Users(("bob",), room="ops"))[1]["room"] == "ops"
    topic = Topic.of(make_message(1, "deploy at 5", room="ops", kind="topic"))
    at = "2026-11-24T20:01:02.123456+00:00"
    assert topic.at == T0
    assert pipe_form(topic) == (
        "topic", {"room": "ops", "text": "deploy at 5", "by": "alice", "at": at}
    )
    assert pipe_form(Joined("ops", topic, True)) == (
        "joined", {"room": "ops", "topic": {"text": "deploy at 5", "by": "alice", "at": at},
                   "first": True},
    )
    assert pipe_form(Joined("dev", None, False))[1] == {"room": "dev", "topic": None,
                                                        "first": False}
    assert pipe_form(Parted("ops")) == ("parted", {"room": "ops"})
    assert pipe_form(Member("ops", "bob", False)) == (
        "member", {"room": "ops", "user": "bob", "joined": False}
    )
    rooms = RoomList((RoomInfo("dev", 0, None, False), RoomInfo("ops", 2, "deploy", True)))
    assert pipe_form(rooms) == ("rooms_result", {"rooms": [
        {"name": "dev", "members": 0, "topic": None, "joined": False},
        {"name": "ops", "members": 2, "topic": "deploy", "joined": True},
    ]})
    with pytest.raises(TypeError):
        pipe_form("not an event")


def test_every_rooms_event_comes_back_from_its_pipe_form():
    from lab93zmq.core.events import from_pipe_form

    topic = Topic.of(make_message(1, "deploy at 5", room="ops", kind="topic"))
    events = [
        topic,
        Joined("ops", topic, True),
        Joined("dev", None, False),
        Parted("ops"),
        Member("ops", "bob", False),
        RoomList((RoomInfo("dev", 0, None, False), RoomInfo("ops", 2, "deploy", True))),
        Users(("alice", "bob"), room="ops"),
        Users(("alice",), connected=False),
    ]
    for event in events:
        assert from_pipe_form(*pipe_form(event)) == [event]
