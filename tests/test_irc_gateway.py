"""The gateway: several clients, routing, floods, long lines, bad bytes, and a fuzz that the
machine never raises on anything a client sends."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from irc_fakes import SERVER_BODY_BYTES, IRCNet, commands, texts

from lab93zmq.core.irc import boundary as b
from lab93zmq.core.irc.config import IRCConfig
from lab93zmq.core.irc.connection import COMMANDS
from lab93zmq.core.irc.gateway import Gateway
from lab93zmq.core.irc.lines import MAX_CLIENT_LINE_BYTES, parse


def test_two_irc_users_and_a_lab93_user_each_see_the_others_once():
    net = IRCNet()
    caps = "echo-message message-tags"
    net.register(1, "alice", caps)
    net.register(2, "bob", caps)
    net.send(1, "JOIN #ops")
    net.send(2, "JOIN #ops")
    net.deliver(*net.service.lab93_join("carol", "ops"))
    net.take(1)
    net.take(2)
    seen = {1: net.send(1, "PRIVMSG #ops :from alice")}  # its echo
    seen[2] = net.send(2, "PRIVMSG #ops :from bob")
    net.deliver(*net.service.lab93_post("carol", "from carol", room="ops"))
    for conn in (1, 2):
        got = texts(seen[conn] + net.take(conn))
        assert sorted(got) == ["from alice", "from bob", "from carol"]
    ids = {line for line in (message.id for message in net.service.messages)}
    assert len(ids) == 3


def test_a_reused_handle_is_a_bug_and_unknown_handles_are_ignored():
    gateway = Gateway()
    gateway.open("a", 0.0)
    with pytest.raises(ValueError):
        gateway.open("a", 0.0)
    assert gateway.receive("zz", b"NICK x\r\n", 0.0) == []
    assert gateway.lost("zz", 0.0) == []
    assert gateway.deliver(b.Registered("zz"), 0.0) == []
    assert len(gateway) == 1 and "a" in gateway


def test_events_for_a_closed_connection_are_dropped():
    net = IRCNet()
    net.hold = True
    net.connect(1)
    net.send(1, "NICK alice", "USER a 0 * :A", "QUIT")
    net.deliver(b.Registered(1))
    assert net.take(1) == []


def test_the_gateway_wakes_for_the_earliest_connection():
    net = IRCNet(IRCConfig(registration_timeout=10, ping_interval=100))
    assert net.gateway.next_deadline() is None
    net.register(1, "alice")
    net.now = 5
    net.connect(2)
    assert net.gateway.next_deadline() == 15
    net.tick(15)
    assert net.closed == {2: "Registration timed out"}
    assert net.gateway.next_deadline() == 100


def test_close_all_tells_every_client():
    net = IRCNet()
    net.register(1, "alice")
    net.connect(2)
    net.run(net.gateway.close_all("Server shutting down"))
    assert net.closed == {1: "Server shutting down", 2: "Server shutting down"}
    assert commands(net.take(1)) == ["ERROR"] and len(net.gateway) == 0
    assert net.service.requests[-1] == b.QuitRequest(1, "Server shutting down")


def test_a_flood_is_told_error_and_closed():
    net = IRCNet(IRCConfig(flood_burst=10, flood_rate=2))
    net.register(1, "alice")  # 3 lines of the burst
    got = net.send(1, *["PING x"] * 7)
    assert commands(got) == ["PONG"] * 7 and 1 not in net.closed
    got = net.send(1, "PING x", "PING y")
    assert commands(got) == ["ERROR"]
    assert net.closed[1] == "Excess flood"
    assert net.service.requests[-1] == b.QuitRequest(1, "Excess flood")


def test_a_client_within_the_rate_is_never_cut():
    net = IRCNet(IRCConfig(flood_burst=5, flood_rate=2))
    net.register(1, "alice")
    for step in range(200):
        net.now = step * 0.5
        assert commands(net.send(1, "PING x")) == ["PONG"]
    assert 1 not in net.closed


def test_a_line_over_512_bytes_is_417_and_the_connection_goes_on():
    net = IRCNet()
    net.register(1, "alice")
    net.send(1, "JOIN #ops")
    got = net.send(1, "PRIVMSG #ops :" + "x" * 600, "PING after")
    assert commands(got) == ["417", "PONG"]
    assert got[0].params == ("alice", "Input line was too long")
    assert not [r for r in net.service.requests if isinstance(r, b.PostRoom)]


def test_an_endless_line_is_one_417_and_bounded():
    net = IRCNet()
    net.register(1, "alice")
    got = []
    for _ in range(50):
        got += net.raw(1, b"y" * 1000)
    connection = net.gateway.connection(1)
    assert connection is not None and connection._splitter.buffered <= MAX_CLIENT_LINE_BYTES
    got += net.raw(1, b"\r\nPING ok\r\n")
    assert commands(got) == ["417", "PONG"]


def test_invalid_utf8_is_refused_with_a_sentence_and_nothing_is_posted():
    net = IRCNet()
    net.register(1, "alice")
    net.send(1, "JOIN #ops")
    got = net.raw(1, b"PRIVMSG #ops :caf\xe9\r\n")
    assert [(line.command, line.params[:2]) for line in got] == [
        ("FAIL", ("PRIVMSG", "INVALID_UTF8"))
    ]
    assert "UTF-8" in got[0].params[-1]
    assert not [r for r in net.service.requests if isinstance(r, b.PostRoom)]
    assert commands(net.raw(1, b"\xff\xfe\r\n")) == ["FAIL"]


def test_nul_and_nonsense_commands_are_answered():
    net = IRCNet()
    net.register(1, "alice")
    assert commands(net.raw(1, b"PRIVMSG #ops :a\x00b\r\n")) == ["400"]
    bad = net.raw(1, b"PRIV:MSG x\r\n")
    assert commands(bad) == ["421"] and bad[0].params[1] == "PRIVMSG"
    assert commands(net.raw(1, b":only-a-source\r\n")) == ["400"]


def test_every_command_in_the_table_is_answered_before_and_after_registration():
    for command in COMMANDS:
        net = IRCNet()
        net.connect(1)
        net.send(1, command)  # no parameters at all
        net.register(2, "alice")
        net.send(2, command)
        net.send(2, f"{command} #ops :x y")


def valid_server_lines(net: IRCNet) -> None:
    """Everything the gateway sent parsed back (IRCNet.run parses every line)."""
    for lines in net.inbox.values():
        for line in lines:
            assert parse(line.to_bytes(), max_body=SERVER_BODY_BYTES) == line


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=700), max_size=12))
def test_random_bytes_never_raise(chunks):
    net = IRCNet(IRCConfig(flood_burst=1000))
    net.register(1, "alice", "server-time message-tags batch echo-message")
    net.send(1, "JOIN #ops")
    net.connect(2)
    for chunk in chunks:
        net.raw(1, chunk)
        net.raw(2, chunk)
    net.tick(10_000)
    valid_server_lines(net)


words = st.one_of(
    st.sampled_from(["#ops", "#OPS", "#-x", "*", "0", "alice", "bob", "zo{eb}", ":", "+i", "-"]),
    st.sampled_from(["LS", "302", "REQ", "END", "LIST", "LATEST", "BEFORE", "TARGETS"]),
    st.sampled_from(["msgid=m0001", "msgid=m0001-2", "timestamp=2026-11-24T20:01:03.123Z", "5"]),
    st.text(
        alphabet=st.characters(blacklist_characters="\r\n\x00 ", blacklist_categories=["Cs"]),
        min_size=1,
        max_size=20,
    ),
)
lines = st.builds(
    lambda command, params, trailing: (
        " ".join([command, *params]) + (f" :{trailing}" if trailing is not None else "")
    ),
    st.sampled_from([*COMMANDS, "FOO", "001", "PRIVMSG", "CHATHISTORY", "CAP"]),
    st.lists(words, max_size=5),
    st.none()
    | st.text(
        alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=["Cs"]),
        max_size=60,
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(lines, max_size=25), st.booleans())
def test_random_irc_lines_never_raise(sent, register_first):
    net = IRCNet(IRCConfig(flood_burst=1000))
    net.deliver(*net.service.lab93_join("dave", "ops"))
    if register_first:
        net.register(1, "alice", "server-time message-tags batch echo-message draft/chathistory")
        net.send(1, "JOIN #ops")
    else:
        net.connect(1)
    net.register(2, "bob")
    net.send(2, "JOIN #ops")
    for line in sent:
        net.send(1, line)
    net.deliver(*net.service.lab93_post("dave", "still serving", room="ops"))
    assert "still serving" in texts(net.take(2))
    valid_server_lines(net)


def test_the_service_may_disconnect_a_client():
    net = IRCNet()
    net.register(1, "alice")
    net.deliver(b.Disconnect(1, "Removed by the operator"))
    got = net.take(1)
    assert [(line.command, line.params) for line in got] == [
        ("ERROR", ("Closing Link: alice (Removed by the operator)",))
    ]
    assert net.closed[1] == "Removed by the operator"
    assert net.service.requests[-1] == b.QuitRequest(1, "Removed by the operator")


def test_an_event_of_no_known_type_is_the_actors_bug():
    net = IRCNet()
    net.register(1, "alice")
    with pytest.raises(TypeError):
        net.gateway.deliver(b.SetAway(1, None), 0.0)
