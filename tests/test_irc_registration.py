"""Registration: NICK, USER, PASS, CAP negotiation in every order, the welcome, liveness."""

from __future__ import annotations

import pytest
from irc_fakes import IRCNet, commands

from lab93zmq.core.irc import boundary as b
from lab93zmq.core.irc.config import IRCConfig


def registers(net: IRCNet) -> list[b.Register]:
    return [r for r in net.service.requests if isinstance(r, b.Register)]


@pytest.mark.parametrize(
    "order",
    [
        ("NICK alice", "USER a 0 * :Alice"),
        ("USER a 0 * :Alice", "NICK alice"),
    ],
)
def test_nick_and_user_in_either_order_register(order):
    net = IRCNet()
    net.connect(1)
    got = net.send(1, *order)
    assert registers(net) == [b.Register(1, "alice", "a", "Alice")]
    assert commands(got) == ["001", "002", "003", "004", "005", "005", "422"]
    assert got[0].params == ("alice", "Welcome to the lab93 Network, alice!lab93@lab93")
    assert all(line.source == "lab93.irc" for line in got)


def test_the_welcome_waits_for_the_service():
    net = IRCNet()
    net.hold = True
    net.connect(1)
    assert net.send(1, "NICK alice", "USER a 0 * :Alice") == []
    assert net.held == [b.Register(1, "alice", "a", "Alice")]
    net.release()
    assert commands(net.take(1))[:2] == ["001", "002"]


def test_isupport_is_honest():
    config = IRCConfig(history_limit=42, max_channels=7, topic_bytes=123)
    net = IRCNet(config)
    got = net.register(1, "alice")
    lines = [line for line in got if line.command == "005"]
    assert all(len(line.params) - 2 <= 13 for line in lines)
    assert all(line.params[-1] == "are supported by this server" for line in lines)
    tokens = dict(token.partition("=")[::2] for line in lines for token in line.params[1:-1])
    assert tokens["NICKLEN"] == "64"
    assert tokens["CHANNELLEN"] == "33"
    assert tokens["CHANTYPES"] == "#"
    assert tokens["CASEMAPPING"] == "ascii"
    assert tokens["CHATHISTORY"] == "42"
    assert tokens["CHANLIMIT"] == "#:7"
    assert tokens["TOPICLEN"] == "123"
    assert tokens["MSGREFTYPES"] == "msgid,timestamp"
    assert tokens["NETWORK"] == "lab93"
    assert "UTF8ONLY" in tokens and tokens["PREFIX"] == ""


def test_a_motd_is_sent_line_by_line():
    net = IRCNet(IRCConfig(motd=("Welcome to the LAN.", "Rooms: #general, #ops")))
    got = net.register(1, "alice")
    motd = [line for line in got if line.command in {"375", "372", "376"}]
    assert commands(motd) == ["375", "372", "372", "376"]
    assert motd[1].params[-1] == "- Welcome to the LAN."
    assert commands(net.send(1, "MOTD")) == ["375", "372", "372", "376"]


def test_cap_ls_holds_registration_until_cap_end():
    net = IRCNet()
    net.connect(1)
    got = net.send(1, "CAP LS 302", "NICK alice", "USER a 0 * :Alice")
    assert [line.params for line in got] == [
        ("*", "LS", "batch draft/chathistory echo-message message-tags server-time")
    ]
    assert registers(net) == []
    got = net.send(1, "CAP REQ :server-time echo-message")
    assert got[0].params == ("alice", "ACK", "server-time echo-message")
    assert registers(net) == []
    assert commands(net.send(1, "CAP END"))[0] == "001"
    assert len(registers(net)) == 1


def test_cap_req_without_ls_holds_registration_too():
    net = IRCNet()
    net.connect(1)
    net.send(1, "CAP REQ :batch", "NICK alice", "USER a 0 * :Alice")
    assert registers(net) == []
    net.send(1, "CAP END")
    assert len(registers(net)) == 1


def test_a_req_is_taken_whole_or_refused_whole():
    net = IRCNet()
    net.register(1, "alice")
    refused = net.send(1, "CAP REQ :server-time sasl")
    assert refused[0].params == ("alice", "NAK", "server-time sasl")
    assert net.send(1, "CAP LIST")[0].params == ("alice", "LIST", "")
    net.send(1, "CAP REQ :server-time batch")
    assert net.send(1, "CAP LIST")[0].params == ("alice", "LIST", "batch server-time")
    assert net.send(1, "CAP REQ :-batch")[0].params == ("alice", "ACK", "-batch")
    assert net.send(1, "CAP LIST")[0].params == ("alice", "LIST", "server-time")


def test_cap_errors_and_end_after_registration():
    net = IRCNet()
    net.connect(1)
    assert net.send(1, "CAP FOO")[0].params[:2] == ("*", "FOO")
    assert net.send(1, "CAP FOO")[0].command == "410"
    assert net.send(1, "CAP")[0].command == "461"
    assert net.send(1, "CAP REQ")[0].command == "461"
    net.send(1, "CAP END", "NICK alice", "USER a 0 * :A")
    assert len(registers(net)) == 1
    assert net.send(1, "CAP END") == []


def test_a_server_password_is_required():
    config = IRCConfig(password="sesame")
    for order in (
        ("PASS sesame", "NICK alice", "USER a 0 * :A"),
        ("NICK alice", "PASS sesame", "USER a 0 * :A"),
        ("CAP LS", "NICK alice", "USER a 0 * :A", "PASS sesame", "CAP END"),
    ):
        net = IRCNet(config)
        net.connect(1)
        got = net.send(1, *order)
        assert "001" in commands(got), order


@pytest.mark.parametrize("given", [(), ("PASS wrong",), ("PASS sesame2",), ("PASS Sesame",)])
def test_a_wrong_or_missing_password_is_refused_and_closed(given):
    net = IRCNet(IRCConfig(password="sesame"))
    net.connect(1)
    got = net.send(1, *given, "NICK alice", "USER a 0 * :A")
    assert commands(got) == ["464", "ERROR"]
    assert net.closed[1] == "Bad password"
    assert registers(net) == []
    assert net.gateway.registry.free_for("alice", 2)


def test_pass_and_user_after_registration_are_refused():
    net = IRCNet(IRCConfig(password="p"))
    net.connect(1)
    net.send(1, "PASS p", "NICK alice", "USER a 0 * :A")
    assert commands(net.send(1, "PASS p", "USER b 0 * :B")) == ["462", "462"]
    assert commands(net.send(1, "PASS")) == ["462"]
    net.connect(2)
    assert commands(net.send(2, "PASS", "USER x")) == ["461", "461"]


def test_commands_before_registration_are_451_but_ping_works():
    net = IRCNet()
    net.connect(1)
    assert commands(net.send(1, "JOIN #ops", "PRIVMSG #ops :hi", "NAMES")) == ["451"] * 3
    pong = net.send(1, "PING :token 1")
    assert pong[0].command == "PONG" and pong[0].params == ("lab93.irc", "token 1")
    assert commands(net.send(1, "PING")) == ["461"]
    assert commands(net.send(1, "FROBNICATE")) == ["421"]
    assert net.service.requests == []


def test_nick_errors():
    net = IRCNet()
    net.connect(1)
    assert commands(net.send(1, "NICK")) == ["431"]
    assert commands(net.send(1, "NICK :")) == ["431"]
    bad = net.send(1, "NICK zoë")
    assert bad[0].command == "432" and bad[0].params[1] == "zoë"
    assert commands(net.send(1, "NICK :two words")) == ["432"]
    assert net.send(1, "NICK :two words")[0].params[1] == "twowords"  # a parameter stays one word
    net.register(2, "alice")
    in_use = net.send(1, "NICK ALICE")
    assert in_use[0].command == "433" and in_use[0].params == (
        "*",
        "ALICE",
        "Nickname is already in use",
    )


def test_a_name_the_service_has_taken_is_433():
    net = IRCNet()
    net.deliver(b.NamesTaken(("Bob",)))
    net.connect(1)
    assert commands(net.send(1, "NICK bob")) == ["433"]
    net.deliver(b.NamesTaken(("Bob",), taken=False))
    assert net.send(1, "NICK bob") == []


def test_changing_nick_before_registration_frees_the_old_one():
    net = IRCNet()
    net.connect(1)
    net.send(1, "NICK alice", "NICK alicia")
    net.connect(2)
    assert net.send(2, "NICK alice") == []
    assert commands(net.send(2, "NICK alicia")) == ["433"]
    net.send(1, "NICK Alicia")  # the same name in other case: still its own
    assert commands(net.send(1, "USER a 0 * :A"))[0] == "001"
    assert registers(net)[-1].name == "Alicia"


def test_the_service_may_still_refuse_the_name_and_the_client_picks_another():
    net = IRCNet()
    net.service.lab93.add("carol")  # a lab93 user arrived: NamesTaken not yet heard
    net.connect(1)
    got = net.send(1, "NICK carol", "USER c 0 * :C")
    assert commands(got) == ["433"]
    assert got[0].params[1] == "carol"
    got = net.send(1, "NICK carol_")
    assert commands(got)[0] == "001"
    assert [r.name for r in registers(net)] == ["carol", "carol_"]


def test_a_refusal_that_is_not_about_the_name_closes():
    net = IRCNet()
    net.hold = True
    net.connect(1)
    net.send(1, "NICK alice", "USER a 0 * :A")
    net.deliver(b.RegisterRefused(1, "The server is full"))
    assert commands(net.take(1)) == ["ERROR"]
    assert net.closed[1] == "The server is full"
    assert 1 not in net.gateway


def test_lines_sent_while_registration_waits_are_handled_after():
    net = IRCNet()
    net.hold = True
    net.connect(1)
    assert net.send(1, "NICK alice", "USER a 0 * :A", "JOIN #ops", "PING x") != []  # PONG at once
    assert [type(r) for r in net.held] == [b.Register]
    net.release()
    assert [type(r) for r in net.held] == [b.JoinRoom]
    net.hold = False
    net.release()
    assert "JOIN" in commands(net.take(1))


def test_too_many_lines_while_registration_waits_close():
    net = IRCNet(IRCConfig(max_pending_lines=3))
    net.hold = True
    net.connect(1)
    net.send(1, "NICK alice", "USER a 0 * :A", "JOIN #a", "JOIN #b", "JOIN #c")
    assert 1 not in net.closed
    net.send(1, "JOIN #d")
    assert net.closed[1] == "Too many lines before registration"
    assert net.held[-1] == b.QuitRequest(1, "Too many lines before registration")


def test_nick_changes_after_registration_are_refused():
    net = IRCNet()
    net.register(1, "alice")
    assert net.send(1, "NICK alice") == []
    refused = net.send(1, "NICK bob")
    assert refused[0].command == "400" and refused[0].params[1] == "NICK"
    assert net.gateway.registry.free_for("bob", 2)


def test_quit_closes_and_tells_the_service():
    net = IRCNet()
    net.register(1, "alice")
    got = net.send(1, "QUIT :gone fishing")
    assert commands(got) == ["ERROR"]
    assert got[0].params == ("Closing Link: alice (Quit: gone fishing)",)
    assert net.closed[1] == "Quit: gone fishing"
    assert net.service.requests[-1] == b.QuitRequest(1, "Quit: gone fishing")
    assert net.gateway.registry.free_for("alice", 2)
    assert net.send(1, "PING x") == []  # nothing more once closed


def test_an_unregistered_quit_tells_the_service_nothing():
    net = IRCNet()
    net.connect(1)
    net.send(1, "NICK alice", "QUIT")
    assert net.closed[1] == "Quit"
    assert net.service.requests == []


def test_a_lost_socket_frees_the_nick_and_quits():
    net = IRCNet()
    net.register(1, "alice")
    net.run(net.gateway.lost(1, net.now))
    assert net.service.requests[-1] == b.QuitRequest(1, "Connection closed")
    assert 1 not in net.gateway and net.gateway.registry.free_for("alice", 2)
    assert net.take(1) == []


def test_registration_times_out():
    net = IRCNet(IRCConfig(registration_timeout=30))
    net.connect(1)
    net.send(1, "NICK alice")
    assert net.gateway.next_deadline() == 30
    net.tick(29.9)
    assert 1 not in net.closed
    net.tick(30)
    assert net.closed[1] == "Registration timed out"
    assert net.gateway.next_deadline() is None


def test_a_silent_client_is_pinged_then_closed():
    net = IRCNet(IRCConfig(ping_interval=100, ping_timeout=50))
    net.register(1, "alice")
    assert net.gateway.next_deadline() == 100
    net.tick(99)
    assert net.take(1) == []
    net.tick(100)
    ping = net.take(1)
    assert commands(ping) == ["PING"] and ping[0].params == ("lab93.irc",)
    assert net.gateway.next_deadline() == 150
    net.tick(149)
    assert 1 not in net.closed
    net.tick(150)
    assert net.closed[1] == "Ping timeout: 150 seconds"
    assert net.service.requests[-1] == b.QuitRequest(1, "Ping timeout: 150 seconds")


def test_any_line_proves_a_client_alive():
    net = IRCNet(IRCConfig(ping_interval=100, ping_timeout=50))
    net.register(1, "alice")
    net.tick(100)
    net.take(1)
    net.now = 120
    net.send(1, "PONG :lab93.irc")
    assert net.gateway.next_deadline() == 220
    net.tick(219)
    assert net.take(1) == [] and 1 not in net.closed
    net.now = 219
    net.send(1, "MODE alice")  # not a PONG, still alive
    net.tick(300)
    assert net.take(1) == []
    assert net.gateway.next_deadline() == 319
