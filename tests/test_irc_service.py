"""The IRC face's chat service on the real server core, with no socket: IRC users and lab93
clients in the same rooms.

The lab93 side is ``memnet.Net`` (a ServerCore on a real inbox, client
cores on theirs); the IRC side is core/irc's Gateway with ``IRCService``
attached to that same core, its lines parsed as a client would. Nothing is
echoed or delivered before the group commit: ``settle`` runs the net (which
flushes) and only then hands the service's news to the gateway.
"""

from __future__ import annotations

import os
from collections import deque
from datetime import timedelta

import pytest
from factories import T0
from memnet import Net

from lab93zmq.core.events import Incoming, Member, Topic, Users
from lab93zmq.core.irc import boundary as b
from lab93zmq.core.irc.config import IRCConfig
from lab93zmq.core.irc.gateway import Gateway
from lab93zmq.core.irc.lines import parse
from lab93zmq.core.message import ACTION, Message, make_id
from lab93zmq.core.repeater.irc_service import IRCService
from lab93zmq.core.wire import decode
from lab93zmq.io.irc_store import IRCHistory

pytestmark = pytest.mark.timeout(60)

CAPS = "echo-message server-time message-tags batch draft/chathistory"


class IRCSide:
    """One Gateway on the net's server core; ``lines[conn]``: what each client was sent."""

    def __init__(self, net: Net, reserved=tuple) -> None:
        self.net = net
        self.gateway = Gateway(IRCConfig())
        self.service = IRCService(net.server, IRCHistory(net.server_inbox), reserved)
        self.lines: dict[int, list] = {}
        self.closed: dict[int, str] = {}
        self.clock = T0
        self.requests: list[b.Request] = []
        self.act([])

    def act(self, outputs) -> None:
        work = deque(outputs)
        for _ in range(100_000):
            if not work:
                work.extend(o for e in self.service.take_events()
                            for o in self.gateway.deliver(e, self.net.now))
                if not work:
                    return
            output = work.popleft()
            if isinstance(output, b.SendLine):
                self.lines.setdefault(output.conn, []).append(parse(output.data, 4096))
            elif isinstance(output, b.Close):
                self.closed[output.conn] = output.reason
            else:
                self.requests.append(output)
                self.clock += timedelta(milliseconds=1)
                self.net.route(self.service.handle(output, self.clock, os.urandom(10)))
        raise AssertionError("the IRC side never went quiet")

    def settle(self) -> None:
        """Run the lab93 net (the group commit among it), then tell IRC what it did."""
        self.net.run()
        self.act([])

    def send(self, conn: int, *lines: str, settle: bool = True) -> list:
        data = b"".join(line.encode() + b"\r\n" for line in lines)
        self.act(self.gateway.receive(conn, data, self.net.now))
        if settle:
            self.settle()
        return self.take(conn)

    def take(self, conn: int) -> list:
        lines, self.lines[conn] = self.lines.get(conn, []), []
        return lines

    def register(self, conn: int, nick: str, caps: str = CAPS) -> list:
        self.act(self.gateway.open(conn, self.net.now))
        got = self.send(conn, f"CAP REQ :{caps}", f"NICK {nick}", "USER u 0 * :Real Name",
                        "CAP END")
        assert "001" in [line.command for line in got], got
        return got


def said(lines, command="PRIVMSG") -> list[tuple[str, str, str]]:
    """(nick, target, text) of each message line."""
    return [(line.source.split("!")[0], line.params[0], line.params[-1])
            for line in lines if line.command == command]


@pytest.fixture
def irc(net):
    return IRCSide(net)


def stored(net) -> list[Message]:
    return net.server_inbox.history(chat_only=False)


def test_an_irc_user_is_a_member_of_the_room_and_its_posts_are_stored_numbered_and_published(
        net, irc):
    alice = net.client("alice", rooms=["ops"])
    irc.register(1, "carol")
    joined = irc.send(1, "JOIN #ops")
    assert [line.command for line in joined][:1] == ["JOIN"]
    names = next(line for line in joined if line.command == "353")
    assert names.params[-1].split() == ["alice", "carol"]
    assert Member("ops", "carol", True) in alice.of(Member)
    assert net.server.users("ops") == ["alice", "carol"]
    assert net.server.users() == ["alice", "carol"]

    # Posted: nothing is echoed before the group commit stores it.
    before = irc.send(1, "PRIVMSG #ops :hello from irc", settle=False)
    assert before == [] and net.server.pending == 1
    irc.settle()
    echo = irc.take(1)
    [message] = [m for m in stored(net) if m.content == "hello from irc"]
    assert said(echo) == [("carol", "#ops", "hello from irc")]
    assert echo[0].tag("msgid") == message.id
    assert (message.author, message.room, message.origin) == ("carol", "ops", net.server.server_id)
    assert message.origin_seq == 1 and message.kind is None
    assert net.server.room_head("ops") > 0
    assert alice.incoming("ops") == ["hello from irc"]  # exactly once


def test_lab93_messages_reach_irc_once_with_their_subject_and_each_line(net, irc):
    alice = net.client("alice", rooms=["ops", "dev"])
    irc.register(1, "carol")
    irc.send(1, "JOIN #ops")
    alice.say("first", room="ops")
    alice.say("not for carol", room="dev")
    alice.apply(alice.core.submit(Message(
        id=make_id(T0, os.urandom(10)), author="alice", recipient=None, subject="lunch",
        content="pizza?\nor soup", sent_at=T0, origin=alice.inbox.node_id,
        origin_seq=alice.inbox.next_origin_seq(alice.inbox.node_id, False, "ops"), room="ops")))
    irc.settle()
    assert said(irc.take(1)) == [
        ("alice", "#ops", "first"),
        ("alice", "#ops", "[lunch] pizza?"),
        ("alice", "#ops", "or soup"),
    ]


def test_direct_messages_both_ways(net, irc):
    alice = net.client("alice", rooms=["ops"])
    irc.register(1, "carol")
    echo = irc.send(1, "PRIVMSG ALICE :psst")  # any case: the service names the user
    assert said(echo) == [("carol", "alice", "psst")]
    [direct] = [e.message for e in alice.of(Incoming) if e.message.is_direct]
    assert (direct.author, direct.recipient, direct.content) == ("carol", "alice", "psst")
    alice.say("back at you", to="carol")
    irc.settle()
    assert said(irc.take(1)) == [("alice", "carol", "back at you")]
    # Nobody by that name, here now or seen: 401, nothing stored.
    count = len(stored(net))
    assert [line.command for line in irc.send(1, "PRIVMSG nobody :hi")] == ["401"]
    assert len(stored(net)) == count


def test_topics_both_ways(net, irc):
    alice = net.client("alice", rooms=["ops"])
    irc.register(1, "carol")
    irc.send(1, "JOIN #ops")
    got = irc.send(1, "TOPIC #ops :standup at 10")
    assert [(line.command, line.params[-1]) for line in got] == [("TOPIC", "standup at 10")]
    assert any(t.text == "standup at 10" and t.by == "carol" for t in alice.of(Topic))
    alice.set_topic("ops", "standup at 11")
    irc.settle()
    got = irc.take(1)
    assert [(line.command, line.source.split("!")[0], line.params[-1]) for line in got] == [
        ("TOPIC", "alice", "standup at 11")]
    asked = irc.send(1, "TOPIC #ops")
    assert [(line.command, line.params[-1]) for line in asked][0] == ("332", "standup at 11")
    # A topic message is no history line.
    history = irc.send(1, "CHATHISTORY LATEST #ops * 10")
    assert said(history) == []


def test_lab93_users_join_part_and_quit_on_irc(net, irc):
    irc.register(1, "carol")
    irc.send(1, "JOIN #ops", "JOIN #dev")
    bob = net.client("bob", rooms=["ops", "dev"])
    irc.settle()
    assert [(line.command, line.params[0]) for line in irc.take(1)] == [
        ("JOIN", "#ops"), ("JOIN", "#dev")]
    bob.apply(bob.core.part("dev", net.now))
    irc.settle()
    assert [(line.command, line.params[0]) for line in irc.take(1)] == [("PART", "#dev")]
    bob.apply(bob.core.stop())  # BYE: its last session is gone
    irc.settle()
    assert [(line.command, line.source.split("!")[0]) for line in irc.take(1)] == [
        ("QUIT", "bob")]


def test_names_are_unique_across_irc_and_lab93(net, irc):
    net.client("alice", rooms=["ops"])
    irc.settle()
    irc.act(irc.gateway.open(1, net.now))
    got = irc.send(1, "NICK Alice", "USER u 0 * :x")
    assert "433" in [line.command for line in got]
    irc.register(2, "carol")
    # A lab93 client may not take an IRC user's name: refused, in one sentence.
    from lab93zmq.core.errors import SecurityError

    with pytest.raises(SecurityError, match="'carol' is in use here by an IRC user"):
        net.client("carol", rooms=["ops"])


def test_the_servers_own_name_and_reserved_names_are_taken(tmp_path):
    net = Net(tmp_path, user="opsbot")
    try:
        irc = IRCSide(net, reserved=lambda: ["dave"])
        for conn, nick in ((1, "OpsBot"), (2, "dave")):
            irc.act(irc.gateway.open(conn, net.now))
            got = irc.send(conn, f"NICK {nick}", "USER u 0 * :x")
            assert "433" in [line.command for line in got], nick
    finally:
        net.close()


def test_an_irc_action_is_stored_as_kind_action_and_a_lab93_action_is_ctcp_action(net, irc):
    alice = net.client("alice", rooms=["ops"])
    irc.register(1, "carol")
    irc.send(1, "JOIN #ops")
    echo = irc.send(1, "PRIVMSG #ops :\x01ACTION waves\x01")
    assert said(echo) == [("carol", "#ops", "\x01ACTION waves\x01")]
    [action] = [e.message for e in alice.of(Incoming) if e.message.author == "carol"]
    assert action.kind == ACTION and action.content == "waves"
    assert action.to_json()["kind"] == "action"
    alice.apply(alice.core.submit(Message(
        id=make_id(T0, os.urandom(10)), author="alice", recipient=None, subject=None,
        content="nods", sent_at=T0, origin=alice.inbox.node_id,
        origin_seq=alice.inbox.next_origin_seq(alice.inbox.node_id, False, "ops"), room="ops",
        kind=ACTION)))
    irc.settle()
    assert said(irc.take(1)) == [("alice", "#ops", "\x01ACTION nods\x01")]


def test_an_irc_user_leaving_is_a_member_leaving_for_lab93(net, irc):
    alice = net.client("alice", rooms=["ops"])
    irc.register(1, "carol")
    irc.send(1, "JOIN #ops")
    irc.send(1, "QUIT :bye")
    assert Member("ops", "carol", False) in alice.of(Member)
    assert net.server.users() == ["alice"] and net.server.users("ops") == ["alice"]
    members = [decode(c.frames()).header for c in net.published if c.name == "MEMBER"]
    assert {"room": "ops", "user": "carol", "joined": False} in [
        {k: h[k] for k in ("room", "user", "joined")} for h in members]


def test_a_lab93_client_away_while_irc_users_talk_catches_up_exactly_once(net, irc):
    alice = net.client("alice", rooms=["ops"])
    irc.register(1, "carol")
    irc.send(1, "JOIN #ops")
    alice.end.gone()  # away: its process ended
    for n in range(5):
        irc.send(1, f"PRIVMSG #ops :while you were out {n}")
    alice.restart()
    alice.connect()
    irc.settle()
    assert alice.incoming("ops") == [f"while you were out {n}" for n in range(5)]


def test_chathistory_from_the_store_by_msgid_and_time(net, irc):
    alice = net.client("alice", rooms=["ops"])
    irc.register(1, "carol")
    irc.send(1, "JOIN #ops")
    for n in range(6):
        alice.say(f"m{n}", room="ops")
    irc.settle()
    live = irc.take(1)
    ids = [line.tag("msgid") for line in live]
    assert len(ids) == 6

    def history(command):
        return [text for _, _, text in said(irc.send(1, command))]

    assert history("CHATHISTORY LATEST #ops * 3") == ["m3", "m4", "m5"]
    assert history(f"CHATHISTORY LATEST #ops msgid={ids[3]} 10") == ["m4", "m5"]
    assert history(f"CHATHISTORY BEFORE #ops msgid={ids[3]} 2") == ["m1", "m2"]
    assert history(f"CHATHISTORY AFTER #ops msgid={ids[3]} 5") == ["m4", "m5"]
    assert history(f"CHATHISTORY AROUND #ops msgid={ids[3]} 4") == ["m1", "m2", "m3", "m4"]
    assert history(f"CHATHISTORY BETWEEN #ops msgid={ids[0]} msgid={ids[4]} 10") == [
        "m1", "m2", "m3"]
    assert history(f"CHATHISTORY BETWEEN #ops msgid={ids[4]} msgid={ids[0]} 2") == ["m2", "m3"]
    assert history("CHATHISTORY BEFORE #ops timestamp=2100-01-01T00:00:00.000Z 2") == [
        "m4", "m5"]
    assert history("CHATHISTORY AFTER #ops timestamp=2100-01-01T00:00:00.000Z 2") == []
    assert history("CHATHISTORY LATEST #ops msgid=0123abc 5") == []  # never numbered here
    batch = irc.send(1, "CHATHISTORY LATEST #ops * 1")
    assert [line.command for line in batch] == ["BATCH", "PRIVMSG", "BATCH"]


def test_chathistory_of_direct_messages_and_targets(net, irc):
    alice = net.client("alice", rooms=["ops"])
    net.client("bob", rooms=["ops"])
    irc.register(1, "carol")
    irc.send(1, "JOIN #ops", "PRIVMSG alice :one", "PRIVMSG bob :not with alice")
    alice.say("two", to="carol")
    alice.say("alice and bob only", to="bob")
    irc.settle()
    irc.take(1)
    got = said(irc.send(1, "CHATHISTORY LATEST Alice * 10"))
    assert [(nick, text) for nick, _, text in got] == [("carol", "one"), ("alice", "two")]
    targets = irc.send(1, "CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00Z"
                          " timestamp=2100-01-01T00:00:00Z 10")
    named = sorted(line.params[1] for line in targets if line.command == "CHATHISTORY")
    assert named == ["alice", "bob"]  # no room of carol's has chat yet


def test_a_post_the_store_refuses_is_a_numeric_never_an_echo(net, irc, monkeypatch):
    from lab93zmq.core.errors import StoreError

    irc.register(1, "carol")
    irc.send(1, "JOIN #ops")

    def refuse(batch, known, **_):
        raise StoreError("the disk is full")

    monkeypatch.setattr(net.server_inbox, "save_unknown", refuse)
    got = irc.send(1, "PRIVMSG #ops :kept nowhere")
    assert said(got) == []
    assert [(line.command, line.params[1]) for line in got] == [("404", "#ops")]
    assert "the disk is full" in got[0].params[-1]
    assert not any(isinstance(e, b.Stored) for e in irc.service.take_events())


def test_a_post_of_an_irc_user_who_left_before_the_commit_is_stored_and_forgotten(net, irc):
    alice = net.client("alice", rooms=["ops"])
    irc.register(1, "carol")
    irc.send(1, "JOIN #ops")
    irc.send(1, "PRIVMSG #ops :last words", "QUIT :gone", settle=False)
    assert net.server.pending == 1 and not irc.service.users
    irc.settle()
    assert alice.incoming("ops") == ["last words"]
    assert irc.service._posts == {}  # nothing waits for an echo that cannot be sent


def test_away_is_one_thing_for_irc_users_and_lab93_users(net, irc):
    alice = net.client("alice", rooms=["ops"])
    irc.register(1, "carol")
    irc.send(1, "JOIN #ops")
    assert [line.command for line in irc.send(1, "AWAY :in a meeting")] == ["306"]
    alice.apply(alice.core.who(net.now, "ops"))
    net.run()
    assert alice.of(Users)[-1].away == (("carol", "in a meeting"),)  # lab93's /who shows it
    alice.apply(alice.core.set_away("lunch", net.now))
    net.run()
    whois = irc.send(1, "WHOIS alice")
    assert [(line.command, line.params[-1]) for line in whois if line.command == "301"] == [
        ("301", "lunch")]
    flags = {line.params[5]: line.params[6] for line in irc.send(1, "WHO #ops")
             if line.command == "352"}
    assert flags == {"alice": "G", "carol": "G"}
    # A PRIVMSG to the away lab93 user is answered with 301, as to an away IRC user;
    # a NOTICE is not (no automatic reply to a NOTICE), and both are delivered.
    told = irc.send(1, "PRIVMSG alice :are you there?")
    assert [(line.command, line.params[1:]) for line in told if line.command == "301"] == [
        ("301", ("alice", "lunch"))]
    assert not [line for line in irc.send(1, "NOTICE alice :fyi") if line.command == "301"]
    net.run()
    assert alice.incoming() == ["are you there?", "fyi"]
    irc.send(1, "AWAY")
    alice.apply(alice.core.set_away(None, net.now))
    net.run()
    assert not [line for line in irc.send(1, "WHOIS alice") if line.command == "301"]
    assert not [line for line in irc.send(1, "PRIVMSG alice :back?") if line.command == "301"]
    alice.apply(alice.core.who(net.now))
    net.run()
    assert alice.of(Users)[-1].away == ()
