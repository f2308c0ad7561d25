"""/away: the rule for an away text, the command, and what each mode's core makes of it -
over the in-memory networks with a fake clock (tests/memnet.py, both adapters)."""

from __future__ import annotations

import pytest
from memnet import SERVER

from lab93zmq.core import commands, wire
from lab93zmq.core.away import (
    MAX_AWAY_CHARS,
    AwayNotices,
    AwayTextError,
    away_map,
    away_text,
    combined,
    who_line_names,
)
from lab93zmq.core.broadcast.actions import PublishFrames, Verb
from lab93zmq.core.broadcast.headers import announced_away
from lab93zmq.core.errors import ProtocolError
from lab93zmq.core.events import Users, from_pipe_form, pipe_form
from lab93zmq.core.repeater.commands import RepeaterVerb
from lab93zmq.core.repeater.outputs import ReplyTo

# -- the rule -----------------------------------------------------------------------------


def test_an_away_text_is_one_line_of_at_most_200_characters_and_blank_means_here():
    assert away_text("  lunch  ") == "lunch"
    assert away_text(None) is None and away_text("") is None and away_text("   ") is None
    assert away_text("x" * MAX_AWAY_CHARS) == "x" * MAX_AWAY_CHARS
    for bad in ("x" * (MAX_AWAY_CHARS + 1), "two\nlines", "bell\x07", "\ud800", 7, ["a"]):
        with pytest.raises(AwayTextError):
            away_text(bad)


def test_a_user_of_several_nodes_is_away_only_when_each_is():
    assert combined([]) is None
    assert combined(["lunch", None]) is None
    assert combined(["zzz", "lunch"]) == "lunch"
    assert away_map({"bob": "lunch", "carol": None, "dave": " "}) == {"bob": "lunch"}
    with pytest.raises(AwayTextError):
        away_map(["bob"])
    assert who_line_names(["alice", "bob"], {"bob": "lunch"}) == ["alice", "bob (away: lunch)"]


def test_the_sender_is_told_once_per_away_text_and_again_after_a_return():
    told = AwayNotices()
    assert told.notice("zed", "lunch") == "zed is away: lunch"
    assert told.notice("zed", "lunch") is None
    assert told.notice("zed", "meeting") == "zed is away: meeting"
    assert told.notice("zed", None) is None  # back
    assert told.notice("zed", "meeting") == "zed is away: meeting"
    assert told.notice("amy", "meeting") == "amy is away: meeting"  # per user


def test_the_away_command_sets_a_text_or_comes_back_and_refuses_a_bad_one():
    assert commands.parse_line("/away out to lunch") == commands.Away("out to lunch")
    assert commands.parse_line("/away") == commands.Away(None)
    assert commands.parse_line("/AWAY   ") == commands.Away(None)
    with pytest.raises(commands.CommandError, match="at most 200 characters; usage: /away"):
        commands.parse_line("/away " + "x" * 201)


def test_the_who_answer_carries_the_away_texts_over_the_pipe():
    users = Users(("alice", "bob"), True, "ops", (("bob", "lunch"),))
    kind, body = pipe_form(users)
    assert kind == "who_result" and body["away"] == {"bob": "lunch"}
    assert from_pipe_form(kind, body) == [users]
    del body["away"]  # an actor of before /away
    assert from_pipe_form(kind, body) == [Users(("alice", "bob"), True, "ops")]
    assert users.away_texts == {"bob": "lunch"}


# -- broadcast mode --------------------------------------------------------------------


def away(node, text):
    node.lan.perform(node, node.session.set_away(text))


def test_away_is_announced_with_the_rooms_and_shown_by_every_who(lan):
    alice, bob = lan.node("alice", rooms=("general", "ops")), lan.node("bob", rooms=("ops",))
    lan.run(0.1)
    away(bob, "out to lunch")
    lan.run(0.1)
    for node in (alice, bob):
        assert node.session.who().away == (("bob", "out to lunch"),)
        assert node.session.who("ops").away == (("bob", "out to lunch"),)
    assert alice.session.who("general").away == ()  # bob is not in it
    away(bob, None)
    lan.run(0.1)
    assert alice.session.who().away == () and bob.session.who().away == ()


def test_a_peer_met_later_learns_the_away_text_from_the_rooms_sent_when_linking(lan):
    bob = lan.node("bob")
    away(bob, "gone fishing")
    lan.run(0.1)
    carol = lan.node("carol")
    lan.run(0.5)
    assert carol.session.who().away == (("bob", "gone fishing"),)
    # A restarted node is here again until it says otherwise (the text is not kept).
    bob.stop(clean=False)
    bob.router_port += 100
    bob.start()
    lan.run(0.5)
    assert carol.session.who().away == ()


def test_the_same_text_twice_announces_nothing_and_a_send_only_run_announces_none(lan):
    alice = lan.node("alice")
    lan.run(0.1)
    away(alice, "brb")
    assert alice.session.set_away("brb") == []
    pipe = lan.node("pipe", listen=False)
    lan.run(0.1)
    assert pipe.session.set_away("brb") == []


def test_a_user_is_away_only_when_each_of_its_nodes_is(lan):
    desk, laptop = lan.node("desk", user="zed"), lan.node("laptop", user="zed")
    amy = lan.node("amy")
    lan.run(0.1)
    away(laptop, "on the train")
    lan.run(0.1)
    assert amy.session.who().away == ()  # zed is at the desk
    away(desk, "lunch")
    lan.run(0.1)
    assert amy.session.who().away == (("zed", "lunch"),)  # the first text by order


def test_our_rooms_carry_away_only_when_set_and_a_bad_one_is_a_protocol_error(lan):
    alice = lan.node("alice")
    lan.run(0.1)
    outputs = alice.session.set_away("brb")
    [published] = [o for o in outputs if isinstance(o, PublishFrames)]
    _, command = wire.decode_published(list(published.frames))
    assert command.name == Verb.ROOMS.value and command.header["away"] == "brb"
    outputs = alice.session.set_away(None)
    [published] = [o for o in outputs if isinstance(o, PublishFrames)]
    assert "away" not in wire.decode_published(list(published.frames))[1].header
    assert announced_away({}) is None and announced_away({"away": None}) is None
    with pytest.raises(ProtocolError, match="'away'"):
        announced_away({"away": "x\ny"})


# -- repeater mode --------------------------------------------------------------------


def who(client, room=None) -> Users:
    client.apply(client.core.who(client.net.now, room))
    client.net.run()
    return client.of(Users)[-1]


def test_the_server_keeps_each_users_away_text_and_users_carries_it(net):
    alice = net.client("alice", rooms=("ops",))
    bob = net.client("bob", rooms=("ops",))
    bob.apply(bob.core.set_away("out to lunch", net.now))
    net.run()
    assert who(alice).away == (("bob", "out to lunch"),)
    assert who(alice, "ops") == Users(("alice", "bob"), room="ops",
                                      away=(("bob", "out to lunch"),))
    bob.apply(bob.core.set_away(None, net.now))
    net.run()
    assert who(alice).away == ()


def test_the_away_text_survives_a_reconnect_in_the_hello_and_a_user_is_away_when_each_session_is(
        net):
    alice = net.client("alice")
    zed = net.client("zed")
    zed.apply(zed.core.set_away("gone fishing", net.now))
    net.run()
    zed.apply(zed.core.use_server(None, net.now))
    zed.apply(zed.core.use_server(SERVER, net.now))  # a new HELLO
    net.run()
    [hello] = [c for c in zed.sent if c.name == "HELLO"][-1:]
    assert hello.header["away"] == "gone fishing"
    assert who(alice).away == (("zed", "gone fishing"),)
    laptop = net.client("zed", db="laptop")  # here on another machine
    assert who(alice).away == ()
    laptop.apply(laptop.core.set_away("lunch", net.now))
    net.run()
    assert who(alice).away == (("zed", "gone fishing"),)  # the first text by order
    laptop.apply(laptop.core.stop())
    zed.apply(zed.core.stop())
    net.run()
    assert who(alice).away == ()  # gone: nothing is kept of a user with no session


def test_away_while_not_connected_goes_out_with_the_next_hello_and_send_only_says_none(net):
    alice = net.client("alice")
    zed = net.client("zed", connect=False)
    assert zed.core.set_away("later", net.now) == []  # no server yet
    zed.connect()
    assert who(alice).away == (("zed", "later"),)
    pipe = net.client("pipe", listen=False)
    assert pipe.core.set_away("x", net.now) == []


def test_a_bad_away_is_a_bad_request_and_an_old_servers_users_means_nobody_is_away(net):
    alice = net.client("alice")
    frames = RepeaterVerb.AWAY.command({"text": "a\nb"}).frames()
    out = net.server.receive(alice.identity, frames, net.now)
    [reply] = [o for o in out if isinstance(o, ReplyTo)]
    assert reply.command.header["code"] == "bad-request" and "'text'" in reply.command.header[
        "reason"]
    alice.core.rooms.who(None, True)
    assert alice.core.rooms.on_users({"room": None, "users": ["bob"]}) == [Users(("bob",))]
