"""Rooms in repeater mode: the cores over the in-memory network, with a fake clock.

Membership, per-room catch-up, a client joining late, two topics set at
once, part and rejoin, send-only runs, clients and servers of protocol 1.
Every client and the server work on real inboxes (``memnet.Net``);
``ClientEnd.feed`` is everything a client's SUB received, so "never receives
a room it is not in" is checked on the wire, not only in what it shows.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from memnet import SERVER

from lab93zmq.core.events import (
    Joined,
    Member,
    Notice,
    Parted,
    RoomList,
    Status,
    Topic,
    Users,
)
from lab93zmq.core.repeater.admission import upgrade_sentence
from lab93zmq.core.repeater.client import Phase
from lab93zmq.core.repeater.commands import LEGACY_SIGNATURE, RepeaterVerb
from lab93zmq.core.repeater.ledger import state_key
from lab93zmq.core.repeater.outputs import FollowRooms, PublishRoom, ReplyTo, SendToServer
from lab93zmq.core.wire import Command, decode

pytestmark = pytest.mark.timeout(60)


def rooms_seen(client) -> set[str]:
    """Every room whose traffic reached the client's SUB."""
    return {room for room, _ in client.end.feed}


def stored_rooms(client) -> Counter:
    return Counter(m.room for m in client.inbox.history() if m.origin != client.inbox.node_id)


# -- membership ----------------------------------------------------------------------------


def test_each_client_gets_the_rooms_it_is_in_and_nothing_of_the_others(net):
    alice = net.client("alice", rooms=("ops",))
    bob = net.client("bob", rooms=("ops", "dev"))
    carol = net.client("carol", rooms=("dev",))
    for n in range(3):
        alice.say(f"ops {n}", room="ops")
        carol.say(f"dev {n}", room="dev")
    bob.say("general news")  # a room none of them is in
    net.run()
    assert alice.incoming() == []  # carol wrote dev only, bob general
    assert bob.incoming("ops") == ["ops 0", "ops 1", "ops 2"]
    assert bob.incoming("dev") == ["dev 0", "dev 1", "dev 2"]
    assert carol.incoming() == []
    assert rooms_seen(alice) == {"ops"} and rooms_seen(carol) == {"dev"}
    assert rooms_seen(bob) == {"ops", "dev"}
    assert stored_rooms(bob) == Counter({"ops": 3, "dev": 3})
    assert "general" not in stored_rooms(alice) | stored_rooms(carol)
    assert net.server.users("ops") == ["alice", "bob"]
    assert net.server.users("dev") == ["bob", "carol"]


def test_who_is_in_a_room_and_who_comes_and_goes(net):
    alice = net.client("alice", rooms=("ops",))
    bob = net.client("bob", rooms=("dev",))
    assert alice.of(Member) == []  # bob came to dev: not a room of hers
    carol = net.client("carol", rooms=("ops", "dev"))
    assert alice.of(Member) == [Member("ops", "carol", True)]
    assert bob.of(Member) == [Member("dev", "carol", True)]
    assert carol.of(Member) == []  # her own coming is JOINED's, not MEMBER's
    alice.apply(alice.core.who(net.now, "ops"))
    alice.apply(alice.core.who(net.now))
    net.run()
    assert alice.of(Users) == [
        Users(("alice", "carol"), room="ops"),
        Users(("alice", "bob", "carol")),
    ]
    carol.apply(carol.core.part("ops", net.now))
    net.run()
    assert alice.of(Member)[-1] == Member("ops", "carol", False)
    assert bob.of(Member) == [Member("dev", "carol", True)]  # still in dev
    bob.apply(bob.core.join("ops", net.now))
    net.run()
    assert alice.of(Member)[-1] == Member("ops", "bob", True)
    bob.apply(bob.core.stop())  # BYE: gone from every room at once
    net.run()
    assert alice.of(Member)[-1] == Member("ops", "bob", False)
    assert carol.of(Member)[-1] == Member("dev", "bob", False)


def test_a_second_session_of_a_user_and_a_reconnect_are_no_news(net):
    alice = net.client("alice", rooms=("ops",))
    net.client("bob", rooms=("ops",))
    laptop = net.client("bob", db="laptop", rooms=("ops",))
    assert alice.of(Member) == [Member("ops", "bob", True)]  # bob once, not per session
    laptop.apply(laptop.core.stop())
    net.run()
    assert alice.of(Member) == [Member("ops", "bob", True)]  # his other session is still in
    alice.apply(alice.core.use_server(None, net.now))
    alice.apply(alice.core.use_server(SERVER, net.now))  # the same node says HELLO anew
    net.run()
    bob = net.clients["bob"]
    assert [e for e in bob.events if isinstance(e, Member)] == []  # alice never "left"
    assert net.server.users("ops") == ["alice", "bob"]


def test_the_server_ticks_each_room_someone_is_in_on_its_topic(net):
    net.client("alice", rooms=("ops", "dev"))
    net.published.clear()
    net.advance(1.0)
    ticks = {c.header["room"]: c.header for c in net.published if c.name == "TICK"}
    assert set(ticks) == {"ops", "dev"}  # not general: no one is in it
    assert ticks["ops"] == {"server": net.server.server_id, "room": "ops", "head": 0}


# -- catching up per room ---------------------------------------------------------------------


def test_a_client_that_was_away_gets_exactly_what_it_missed_in_each_room(net):
    alice = net.client("alice", rooms=("ops", "dev"))
    bob = net.client("bob", rooms=("ops", "dev"))
    alice.say("before", room="ops")
    net.run()
    bob.restart()
    for n in range(5):
        alice.say(f"ops {n}", room="ops")
        alice.say(f"dev {n}", room="dev")
        alice.say(f"elsewhere {n}", room="other")
    alice.say("psst", to="bob")
    net.run()
    bob.events.clear()
    bob.connect()
    assert bob.incoming("ops") == [f"ops {n}" for n in range(5)]
    assert bob.incoming("dev") == [f"dev {n}" for n in range(5)]
    assert bob.incoming() == [m for n in range(5) for m in (f"ops {n}", f"dev {n}")] + ["psst"]
    bob.events.clear()
    bob.restart()
    bob.connect()
    assert bob.incoming() == []  # back once more: nothing twice
    marks = json.loads(bob.inbox.get_meta(state_key(net.server.server_id, "bob")))
    assert marks == {"rooms": {"ops": 14, "dev": 15}, "parted": {}, "dm": 17}


def test_a_lost_publication_in_one_room_is_fetched_by_that_rooms_tick(net):
    alice = net.client("alice", rooms=("ops", "dev"))
    bob = net.client("bob", rooms=("ops", "dev"))
    net.lose_pub["bob"] = lambda cmd: cmd.name == "ROOM" and cmd.header["room"] == "dev"
    alice.say("in ops", room="ops")
    alice.say("in dev", room="dev")
    net.run()
    assert bob.incoming() == ["in ops"]
    del net.lose_pub["bob"]
    net.advance(1.0)  # the TICK of dev says head 2, past bob's dev tip
    assert bob.incoming() == ["in ops", "in dev"]


def test_a_client_joining_late_gets_the_last_100_of_that_room_and_its_topic(net):
    alice = net.client("alice", rooms=("ops", "dev"))
    alice.set_topic("ops", "deploys only")
    for n in range(150):
        alice.say(f"ops {n}", room="ops")
    for n in range(20):
        alice.say(f"dev {n}", room="dev")
    net.run()
    carol = net.client("carol", rooms=("dev",))
    assert carol.incoming() == [f"dev {n}" for n in range(20)]  # fewer than 100: all
    carol.events.clear()
    carol.apply(carol.core.join("ops", net.now))
    assert carol.of(Joined) == []  # held for the server's answer, which brings the topic
    net.run()
    [joined] = carol.of(Joined)
    topic = joined.topic  # older than the tail, and still told: by JOINED, not again
    assert (joined.room, joined.first) == ("ops", True) and carol.of(Topic) == []
    assert (topic.room, topic.text, topic.by) == ("ops", "deploys only", "alice")
    assert carol.events.index(joined) < min(  # the join before what it brought
        i for i, e in enumerate(carol.events) if type(e).__name__ == "Incoming")
    assert carol.incoming() == [f"ops {n}" for n in range(50, 150)]
    assert carol.inbox.current_topic("ops").content == "deploys only"
    carol.apply(carol.core.join("ops", net.now))  # again: only JOINED, with the topic now
    assert carol.of(Joined)[-1] == Joined("ops", topic, False)
    assert "ops" in rooms_seen(carol)


def test_a_topic_in_the_tail_is_told_in_its_place_among_the_messages(net):
    alice = net.client("alice", rooms=("ops",))
    alice.say("before", room="ops")
    alice.set_topic("ops", "deploys on friday")
    alice.say("after", room="ops")
    net.run()
    carol = net.client("carol", rooms=("dev",))
    net.run()
    carol.events.clear()
    carol.apply(carol.core.join("ops", net.now))
    net.run()
    told = [e.message.content if type(e).__name__ == "Incoming" else e
            for e in carol.events if isinstance(e, (Joined, Topic)) or hasattr(e, "message")]
    topic = Topic("ops", "deploys on friday", "alice", alice.inbox.current_topic("ops").sent_at)
    assert told == [Joined("ops", topic, True), "before", topic, "after"]
    assert carol.incoming() == ["before", "after"]


def test_a_join_held_for_the_answer_is_answered_when_parted_first(net):
    alice = net.client("alice", rooms=("ops",))
    alice.set_topic("ops", "deploys on friday")
    net.run()
    carol = net.client("carol", rooms=("dev",))
    net.run()
    carol.events.clear()
    out = carol.core.join("ops", net.now)  # not answered yet: held
    assert not [o for o in out if isinstance(o, Joined)]
    parted = carol.core.part("ops", net.now)  # parted before the answer: JOINED, then PARTED
    assert [type(o).__name__ for o in parted if isinstance(o, (Joined, Parted))] == [
        "Joined", "Parted"]


def test_a_new_client_gets_its_direct_messages_and_the_tail_of_each_room(make_net):
    net = make_net(tail=10)
    alice = net.client("alice", rooms=("ops", "dev"))
    alice.say("early note", to="carol")
    for n in range(25):
        alice.say(f"ops {n}", room="ops")
        alice.say(f"dev {n}", room="dev")
    net.run()
    carol = net.client("carol", rooms=("ops", "dev"))
    assert carol.incoming("ops") == [f"ops {n}" for n in range(15, 25)]
    assert carol.incoming("dev") == [f"dev {n}" for n in range(15, 25)]
    assert carol.incoming()[0] == "early note"


def test_part_then_rejoin_gets_only_what_it_lacks_of_the_last_100(net):
    alice = net.client("alice", rooms=("ops",))
    bob = net.client("bob", rooms=("ops",))
    alice.say("before", room="ops")
    net.run()
    bob.apply(bob.core.part("ops", net.now))
    net.run()
    assert bob.of(Parted) == [Parted("ops")]
    assert bob.end.topics == frozenset()
    for n in range(30):
        alice.say(f"while away {n}", room="ops")
    net.run()
    assert bob.incoming() == ["before"] and rooms_seen(bob) == {"ops"}
    before = len(bob.end.feed)
    net.advance(1.0)
    assert len(bob.end.feed) == before  # no TICK of ops reaches him either
    bob.restart()  # a part survives a restart (bob's marks keep his tip in "parted")
    bob.connect()
    bob.apply(bob.core.join("ops", net.now))
    [joined] = bob.of(Joined)
    assert joined.first is False
    net.run()
    assert bob.incoming() == ["before"] + [f"while away {n}" for n in range(30)]
    bob.apply(bob.core.part("ops", net.now))
    for n in range(150):  # more than 100 while away: only the last 100
        alice.say(f"long gone {n}", room="ops")
    net.run()
    bob.events.clear()
    bob.apply(bob.core.join("ops", net.now))
    net.run()
    assert bob.incoming() == [f"long gone {n}" for n in range(50, 150)]


def test_a_room_left_out_of_a_run_is_resumed_in_full_when_it_is_back(net):
    alice = net.client("alice", rooms=("ops", "dev"))
    bob = net.client("bob", rooms=("ops", "dev"))
    alice.say("dev 0", room="dev")
    net.run()
    bob.restart(rooms=("ops",))  # started without dev: dev's tip is kept
    bob.connect()
    for n in range(1, 151):
        alice.say(f"dev {n}", room="dev")
    net.run()
    assert bob.incoming() == ["dev 0"]
    bob.restart(rooms=("ops", "dev"))  # dev again: all he missed, not the last 100
    bob.connect()
    assert bob.incoming("dev") == ["dev 0"] + [f"dev {n}" for n in range(1, 151)]


def test_joining_while_disconnected_subscribes_now_and_tells_the_server_on_hello(net):
    alice = net.client("alice", rooms=("ops",))
    bob = net.client("bob", rooms=("ops",), connect=False)
    out = bob.core.join("dev", net.now)
    assert out[0] == FollowRooms(frozenset({"ops", "dev"}))
    assert not [o for o in out if isinstance(o, SendToServer)]  # not connected yet
    bob.apply(out)
    alice.say("dev news", room="dev")
    net.run()
    bob.connect()
    hello = decode(bob.sent[0].frames())
    assert hello.header["rooms"] == ["ops", "dev"] and hello.header["listen"] is True
    assert bob.incoming() == ["dev news"] and net.server.users("dev") == ["bob"]


# -- topics ------------------------------------------------------------------------------


def test_two_topics_set_at_once_end_the_same_everywhere(net):
    alice = net.client("alice", rooms=("ops",))
    bob = net.client("bob", rooms=("ops",))
    carol = net.client("carol", rooms=("ops",))
    # At the same instant, neither having seen the other's: both are dated alike.
    alice.set_topic("ops", "alice's topic")
    bob.set_topic("ops", "bob's topic")
    net.run()
    mine = {c.user: c.of(Topic)[0].text for c in (alice, bob)}
    assert mine == {"alice": "alice's topic", "bob": "bob's topic"}  # each told its own at once
    topics = [m for m in net.server_inbox.history() if m.is_topic]
    winner = max(topics, key=lambda m: (m.sent_at, m.id))
    for c in (alice, bob, carol):
        assert c.inbox.current_topic("ops") == winner  # one rule, one topic everywhere
        assert c.of(Topic)[-1].text == winner.content
    assert net.server.topic("ops").text == winner.content
    # Carol saw both at once; she is told the winner only (the other never won for her).
    assert [t.text for t in carol.of(Topic)] == [winner.content]
    dave = net.client("dave", rooms=("ops",))  # a first join learns the winner
    assert [t.text for t in dave.of(Topic)] == [winner.content]


def test_a_topic_set_after_seeing_another_wins_even_with_an_earlier_clock(net):
    alice = net.client("alice", rooms=("ops",))
    bob = net.client("bob", rooms=("ops",))
    net.now += 100.0  # alice's topic is dated 100 s later than bob's clock will be
    alice.set_topic("ops", "first")
    net.run()
    net.now -= 100.0  # bob's clock is behind; he has seen "first"
    bob.set_topic("ops", "second")
    net.run()
    first, second = (alice.inbox.current_topic("ops"), bob.inbox.current_topic("ops"))
    assert first == second and second.content == "second"
    assert second.sent_at > [m for m in alice.inbox.history() if m.content == "first"][0].sent_at
    assert alice.of(Topic)[-1].text == "second"
    assert [m.content for m in alice.inbox.history() if not m.is_topic] == []  # not messages


def test_a_topic_that_cannot_be_one_is_a_sentence(net):
    alice = net.client("alice", rooms=("ops",))
    alice.set_topic("ops", "two\nlines")
    [notice] = alice.of(Notice)
    assert notice.text.startswith("cannot set the topic of #ops: not a valid topic:")
    assert alice.inbox.outbox() == [] and alice.of(Topic) == []


def test_rooms_lists_every_room_with_its_people_and_topic(net):
    alice = net.client("alice", rooms=("ops",))
    net.client("bob", rooms=("ops", "dev"))
    alice.set_topic("ops", "deploys")
    alice.say("a word in quiet", room="quiet")  # a room with messages and no one in it
    net.run()
    alice.apply(alice.core.ask_rooms(net.now))
    net.run()
    [listing] = alice.of(RoomList)
    assert [(r.name, r.members, r.topic, r.joined) for r in listing.rooms] == [
        ("dev", 1, None, False),
        ("ops", 2, "deploys", True),
        ("quiet", 0, None, False),
    ]
    offline = net.client("carol", rooms=("ops", "new"), connect=False)
    offline.apply(offline.core.ask_rooms(net.now))  # not connected: what it knows
    [mine] = offline.of(RoomList)
    assert [(r.name, r.joined) for r in mine.rooms] == [("new", True), ("ops", True)]


def test_a_long_room_list_comes_in_pages_that_each_fit_a_header(make_net):
    net = make_net()
    alice = net.client("alice", rooms=("ops",))
    rooms = [f"room{n:03d}" for n in range(120)]
    for room in rooms:
        alice.set_topic(room, "ü" * 390)  # six bytes a character once JSON escapes it
    net.run()
    net.replies.clear()
    alice.apply(alice.core.ask_rooms(net.now))
    net.run()
    pages = [c for _, c in net.replies if c.name == "ROOMLIST"]
    assert len(pages) > 1 and [p.header["more"] for p in pages][-1] is False
    assert all(len(p.frames()[2]) < 64 * 1024 for p in pages)
    [listing] = alice.of(RoomList)
    assert [r.name for r in listing.rooms] == sorted([*rooms, "ops"])


# -- send-only runs -----------------------------------------------------------------------


def test_a_send_only_run_posts_but_receives_stores_and_moves_nothing(net):
    alice = net.client("alice", rooms=("ops",))
    bob = net.client("bob", rooms=("ops",))
    bob.say("seen by bob", room="ops")
    net.run()
    bob.restart()
    alice.say("missed by bob", room="ops")
    alice.say("psst", to="bob")
    net.run()
    sender = net.client("bob", db="bob", rooms=("ops",), listen=False)  # bob's inbox
    mid = sender.say("from the pipe", room="ops").id
    net.run()
    alice.say("while he sends", room="ops")
    net.run()
    assert mid in sender.accepted()
    assert [c.name for c in sender.sent] == ["HELLO", "POST"]  # no FETCH
    assert decode(sender.sent[0].frames()).header == {
        "user": "bob", "node": sender.inbox.node_id, "software": "", "rooms": [],
        "listen": False,
    }
    assert sender.end.subscribed is None and sender.end.feed == []  # no room feed at all
    assert sender.incoming() == [] and [m.content for m in sender.inbox.history()] == [
        "seen by bob", "from the pipe"
    ]
    # Bob's first run came and went (the sender's HELLO, from his node, ended that
    # lingering session); the sender itself is never announced.
    assert alice.of(Member) == [Member("ops", "bob", True), Member("ops", "bob", False)]
    assert net.server.users("ops") == ["alice"]
    marks = json.loads(sender.inbox.get_meta(state_key(net.server.server_id, "bob")))
    assert marks["rooms"] == {"ops": 1}  # as bob's last listening run left them
    # Even a server that sent it something would not make it store a thing.
    stray = [m for m in alice.inbox.history() if m.content == "psst"][0]
    deliver = RepeaterVerb.DELIVER.command({"items": [[99, 0]]}, [stray.encode()])
    batch = RepeaterVerb.BATCH.command(
        {"rooms": {"ops": 0}, "dm": 0, "items": [[99, 0]], "more": False}, [stray.encode()]
    )
    for command in (deliver, batch):
        sender.apply(sender.core.receive(command.frames(), net.now))
    sender.apply(sender.core.flush(net.now))
    assert stray.id not in sender.inbox and sender.incoming() == []
    sender.apply(sender.core.join("dev", net.now))
    assert sender.of(Notice)[-1].text == "a send-only run joins no room; not joining #dev"
    sender.restart(rooms=("ops",))  # the next run that listens: everything it missed
    sender.connect()
    assert sender.incoming() == ["missed by bob", "psst", "while he sends"]


# -- old versions ----------------------------------------------------------------------------


V1_HELLO = [LEGACY_SIGNATURE, b"HELLO", b'{"user": "old", "node": "' + b"a" * 32 + b'"}']


def test_a_version_1_client_is_told_in_its_own_framing_once_a_minute(net):
    [reply] = net.server.receive(b"old", V1_HELLO, net.now)
    assert isinstance(reply, ReplyTo) and reply.legacy
    frames = reply.frames()
    assert frames[0] == b"L93\x01" and frames[1] == b"ERROR"  # what 0.1.0 can read
    header = json.loads(frames[2])
    assert header == {"code": "version", "reason": upgrade_sentence(1)}
    assert "protocol 2" in header["reason"] and "protocol 1 (lab93-node 0.1)" in header["reason"]
    assert net.server.receive(b"old2", V1_HELLO, net.now + 30) == []  # the same node, again
    ping = [LEGACY_SIGNATURE, b"PING", b"{}"]
    assert net.server.receive(b"old", ping, net.now + 30) == []  # no ERROR for each PING
    assert len(net.server.receive(b"old", V1_HELLO, net.now + 60)) == 1  # a minute later
    other = V1_HELLO[:2] + [b'{"user": "old", "node": "' + b"b" * 32 + b'"}']
    assert len(net.server.receive(b"other", other, net.now + 30)) == 1  # another node
    assert net.server.users() == [] and net.server.cut_off(net.now) == []


def test_a_client_meeting_a_version_1_server_says_so_once_and_keeps_trying(net):
    alice = net.client("alice", connect=False)
    alice.apply(alice.core.use_server(SERVER, net.now))
    net.to_server.clear()  # the old server answers instead of ours
    refusal = Command("ERROR", {"code": "version", "reason": "peer speaks protocol version 2"})
    frames = [LEGACY_SIGNATURE, *refusal.frames()[1:]]
    sentence = (
        f"the repeater at {SERVER} speaks lab93 protocol 1 (lab93-node 0.1); this lab93-node"
        " speaks protocol 2 (rooms): upgrade the repeater"
    )
    alice.apply(alice.core.receive(frames, net.now))
    assert alice.of(Notice) == [Notice(sentence)]
    assert alice.of(Status)[-1] == Status(False, sentence)
    alice.apply(alice.core.tick(net.now + 3.0))  # no WELCOME: HELLO again, the same sentence
    alice.apply(alice.core.receive(frames, net.now + 3.0))
    assert alice.of(Notice) == [Notice(sentence)]
    assert alice.of(Status)[-1] == Status(False, sentence)
    assert [s.detail for s in alice.of(Status)].count(sentence) == 1
    assert alice.core.phase is Phase.HELLO
    net.to_server.clear()
    alice.apply(alice.core.tick(net.now + 6.0))
    net.run()  # the server was upgraded meanwhile: ours answers
    assert alice.core.connected and alice.of(Status)[-1].connected is True


# -- bad room traffic -------------------------------------------------------------------------


def test_room_traffic_on_the_wrong_topic_is_dropped(net):
    alice = net.client("alice", rooms=("ops",))
    bob = net.client("bob", rooms=("ops", "dev"))
    message = bob.say("dev only", room="dev")
    net.to_server.clear()
    header = {"server": net.server.server_id, "room": "ops", "items": [[1, 0]]}
    forged = PublishRoom(RepeaterVerb.ROOM.command(header, [message.encode()]), "ops")
    alice.apply(alice.core.receive_pub(forged.frames(), net.now))  # a dev message on #ops
    header = {**header, "room": "dev"}
    wrong = PublishRoom(RepeaterVerb.ROOM.command(header, [message.encode()]), "ops")
    alice.apply(alice.core.receive_pub(wrong.frames(), net.now))  # header and topic differ
    alice.apply(alice.core.flush(net.now))
    assert alice.incoming() == [] and message.id not in alice.inbox


def test_a_bad_join_or_who_gets_an_error_and_the_session_goes_on(net):
    alice = net.client("alice", rooms=("ops",))
    for header in ({"room": "#ops"}, {"room": 7}, {}):
        [out] = net.server.receive(alice.identity, Command("JOIN", header).frames(), net.now)
        assert out.command.header["code"] == "bad-request"
    [out] = net.server.receive(alice.identity, Command("WHO", {"room": "A B"}).frames(), net.now)
    assert out.command.header["code"] == "bad-request"
    hello = {"user": "mallory", "node": "c" * 32, "rooms": ["ops", "ops"]}
    [out] = net.server.receive(b"m", Command("HELLO", hello).frames(), net.now)
    assert "names a room twice" in out.command.header["reason"]
    assert net.server.users("ops") == ["alice"]


def test_a_part_before_any_welcome_is_kept_for_the_server_last_used(net):
    net.client("alice", rooms=("ops",))
    bob = net.client("bob", rooms=("ops",))
    bob.restart()
    bob.apply(bob.core.part("ops", net.now))  # the server is not there (yet)
    bob.apply(bob.core.flush(net.now))
    marks = json.loads(bob.inbox.get_meta(state_key(net.server.server_id, "bob")))
    assert marks == {"rooms": {}, "parted": {"ops": 0}, "dm": 0}
    bob.restart(rooms=())
    out = bob.core.join("ops", net.now)
    assert [o.first for o in out if isinstance(o, Joined)] == [False]  # known, though offline


def test_a_flood_of_version_1_frames_is_cut_off_like_any_other(net):
    from lab93zmq.core.repeater.admission import BAD_BURST

    replies = 0
    for n in range(BAD_BURST + 20):  # a new node id each time: each would be "due"
        hello = [LEGACY_SIGNATURE, b"HELLO", b'{"node": "%032x"}' % n]
        replies += len(net.server.receive(b"spoofer", hello, net.now))
    assert replies == BAD_BURST and net.server.cut_off(net.now) == [b"spoofer"]


def test_a_send_only_run_records_its_posts_numbers_under_the_server(net):
    sender = net.client("bot", rooms=("ops",), listen=False)
    message = sender.say("alert", room="ops")
    net.run()
    assert sender.inbox.held(net.server.server_id, [message.id]) == {message.id: 1}


def test_a_welcome_whose_heads_are_no_map_follows_no_head(net):
    alice = net.client("alice", rooms=("ops",))
    alice.say("mine", room="ops")
    net.run()
    tips = alice.core.catchup.chains.marks()
    header = {"server": net.server.server_id, "pub_port": 1, "heads": "not a map"}
    alice.apply(alice.core.receive(Command("WELCOME", header).frames(), net.now))
    assert alice.core.connected and alice.core.catchup.chains.marks() == tips
