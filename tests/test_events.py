"""The pipe form of protocol events (pure)."""

import pytest
from factories import make_message

from lab93zmq.core.events import Accepted, Incoming, Notice, Status, Users, pipe_form, pipe_forms


def test_a_run_of_incoming_messages_is_one_pipe_message_in_order():
    a, b, c = (make_message(n) for n in (1, 2, 3))
    forms = pipe_forms([Incoming(a), Incoming(b), Accepted(("x",)), Incoming(c), Notice("hi")])
    assert [kind for kind, _ in forms] == ["incoming", "accepted", "incoming", "notice"]
    assert forms[0][1] == {"messages": [a.to_wire_dict(), b.to_wire_dict()]}
    assert forms[2][1] == {"messages": [c.to_wire_dict()]}
    assert pipe_forms([]) == []


def test_every_event_has_its_pipe_form():
    assert pipe_form(Status(False, "down")) == ("status", {"connected": False, "detail": "down"})
    assert pipe_form(Users(("bob",))) == ("who_result", {"users": ["bob"], "connected": True})
    with pytest.raises(TypeError):
        pipe_form("not an event")
