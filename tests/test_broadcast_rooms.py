"""Rooms in broadcast mode, over the in-memory network with a fake clock (tests/memnet.py):
membership, topic frames, per-room catch-up, first joins and rejoins, topics, send-only
runs, and what an older version's node gets."""

from __future__ import annotations

import random
from datetime import timedelta

from factories import T0
from memnet import LanNode

from lab93zmq.core import wire
from lab93zmq.core.broadcast.actions import Verb
from lab93zmq.core.broadcast.roomsync import TAIL
from lab93zmq.core.events import Joined, Member, Notice, Parted, Rejected, Status, Topic
from lab93zmq.core.inbox import RoomState
from lab93zmq.core.presence import BeaconKind

INTERVAL = 1.0


def in_room(node: LanNode, room: str) -> list[str]:
    """The contents of ``room`` in ``node``'s inbox, sorted (topics left out)."""
    return node.contents(room)


def frames_of(node: LanNode, room: str) -> int:
    """How many frames of ``room``'s topic ``node``'s SUBs received."""
    return sum(1 for _, topic in node.received if topic == wire.room_topic(room))


def members(node: LanNode, room: str) -> tuple[str, ...]:
    return node.session.who(room).users


# -- membership -------------------------------------------------------------------------


def test_rooms_and_who_show_who_is_in_each_room_yourself_included(lan):
    alice = lan.node("alice", rooms=("general", "ops"))
    bob = lan.node("bob", rooms=("ops",))
    carol = lan.node("carol")
    lan.run(0.1)
    assert members(alice, "ops") == ("alice", "bob")
    assert members(carol, "ops") == ("alice", "bob")  # carol is not in it, but knows
    assert members(bob, "general") == ("alice", "carol")
    assert carol.session.who().users == ("alice", "bob", "carol")
    listed = {r.name: (r.members, r.joined) for r in carol.session.rooms().rooms}
    assert listed == {"general": (2, True), "ops": (2, False)}
    assert [r.name for r in carol.session.rooms().rooms] == ["general", "ops"]  # by name
    # Each was greeted once, and the status names the persons.
    assert carol.of(Status)[-1] == Status(True, "2 peers: alice, bob")
    assert [n.text for n in carol.of(Notice)] == ["alice joined from 198.18.93.1",
                                                   "bob joined from 198.18.93.2"]


def test_joining_and_leaving_a_room_tells_its_members_and_subscribes(lan):
    alice = lan.node("alice", rooms=("general", "ops"))
    bob = lan.node("bob")
    lan.run(0.1)
    assert bob.of(Member) == [Member("general", "alice", True)]  # met her there
    assert alice.of(Member) == [Member("general", "bob", True)]
    bob.join("ops")
    assert bob.of(Joined)[-1] == Joined("ops", None, True)
    assert alice.of(Member)[-1] == Member("ops", "bob", True)
    assert wire.room_topic("ops") in bob.topics
    alice.post("in ops", room="ops")
    assert bob.incoming() == ["in ops"]
    bob.join("ops")  # already in it: JOINED again, nothing else
    assert bob.of(Joined)[-1] == Joined("ops", None, False)
    assert len(alice.of(Member)) == 2
    bob.part("ops")
    assert bob.of(Parted) == [Parted("ops")]
    assert alice.of(Member)[-1] == Member("ops", "bob", False)
    assert wire.room_topic("ops") not in bob.topics
    alice.post("after bob left", room="ops")
    lan.run(2.0)
    assert "after bob left" not in bob.contents() and bob.incoming() == ["in ops"]
    assert bob.inbox.room_states()["ops"] == RoomState(False, True, {})


def test_a_peer_that_leaves_leaves_our_rooms_and_a_restart_is_no_coming_and_going(lan):
    alice, bob = lan.node("alice", rooms=("general", "ops")), lan.node("bob", rooms=("ops",))
    lan.run(0.1)
    assert alice.of(Member) == [Member("ops", "bob", True)]  # met him there
    bob.stop(clean=False)
    bob.router_port += 100  # restarted at once: new ports, same node id
    bob.start()
    lan.run(0.5)
    assert alice.of(Member) == [Member("ops", "bob", True)]  # no coming and going
    assert Notice("bob rejoined from 198.18.93.2") in alice.of(Notice)
    bob.stop()
    assert alice.of(Member)[-1] == Member("ops", "bob", False)
    assert Notice("bob left") in alice.of(Notice)


# -- topic frames: a room reaches only its members ---------------------------------------


def test_a_node_outside_a_room_receives_nothing_of_it(lan):
    alice = lan.node("alice", rooms=("general", "ops"))
    bob = lan.node("bob", rooms=("ops",))
    carol = lan.node("carol")  # general only
    lan.run(0.1)
    for n in range(20):
        alice.post(f"ops {n}", room="ops")
    alice.post("hello general")
    lan.run(3.0)
    assert frames_of(carol, "ops") == 0  # not one MSG or HAVE of #ops
    assert in_room(carol, "ops") == [] and carol.incoming() == ["hello general"]
    assert frames_of(bob, "ops") > 0 and frames_of(bob, "general") == 0
    assert in_room(bob, "ops") == sorted(f"ops {n}" for n in range(20))
    assert in_room(bob, "general") == []
    # What does reach carol from alice: the node topic and general's, nothing else.
    assert {topic for _, topic in carol.received} == {wire.NODE_TOPIC, wire.room_topic("general")}


def test_a_post_is_accepted_once_every_live_peer_in_its_room_holds_it(lan):
    alice = lan.node("alice", rooms=("general", "ops"))
    bob, carol = lan.node("bob", rooms=("ops",)), lan.node("carol")
    lan.run(1.5)
    lan.drop = lambda src, dst, name: dst is bob and name in (Verb.MSG, Verb.BATCH)
    in_ops = alice.post("for ops", room="ops")
    in_general = alice.post("for general")
    lan.run(0.5)
    assert in_general in alice.accepted()  # carol holds it; bob, not in general, is not asked
    assert in_ops not in alice.accepted()  # bob lacks it; carol is not in ops
    lan.drop = lambda *args: False
    lan.run(2.5)
    assert alice.accepted() == {in_ops, in_general}
    assert in_room(carol, "general") == ["for general"] and in_room(carol, "ops") == []


def test_a_post_to_a_room_nobody_else_is_in_is_kept_and_not_accepted(lan):
    alice, bob = lan.node("alice", rooms=("general", "ops")), lan.node("bob")
    lan.run(1.5)
    lonely = alice.post("anyone in ops?", room="ops")
    lan.run(3.0)
    assert lonely not in alice.accepted()
    bob.join("ops")
    lan.run(0.5)
    assert lonely in alice.accepted() and bob.incoming() == ["anyone in ops?"]


def test_a_post_to_a_room_we_are_not_in_is_refused_and_no_room_means_the_current_one(lan):
    alice = lan.node("alice", rooms=("ops", "general"))
    refused = alice.post("nope", room="dev")
    assert alice.of(Rejected) == [Rejected(refused, "not in #dev; join it first")]
    assert refused not in alice.inbox
    alice.post("to the current room")
    assert [m.room for m in alice.inbox.history()] == ["ops"]


# -- per-room catch-up ------------------------------------------------------------------


def test_a_node_away_and_back_misses_nothing_in_any_of_its_rooms(lan):
    alice = lan.node("alice", rooms=("general", "ops", "dev"))
    bob = lan.node("bob", rooms=("general", "ops"))
    lan.run(0.1)
    bob.stop()
    for n in range(150):  # more than a tail: bob stayed in both rooms, he gets all
        alice.post(f"g{n}")
        alice.post(f"o{n}", room="ops")
        alice.post(f"d{n}", room="dev")
    lan.run(1.0)
    bob.reopen()
    bob.start()
    lan.run(1.0)
    assert in_room(bob, "general") == sorted(f"g{n}" for n in range(150))
    assert in_room(bob, "ops") == sorted(f"o{n}" for n in range(150))
    assert in_room(bob, "dev") == []
    assert sorted(bob.incoming()) == sorted([f"g{n}" for n in range(150)]
                                            + [f"o{n}" for n in range(150)])


def test_a_late_first_join_gets_the_rooms_newest_hundred_and_its_topic_then_everything(lan):
    alice = lan.node("alice", rooms=("general", "ops"))
    lan.run(0.1)
    alice.set_topic("ops", "deploys at five")
    for n in range(150):
        lan.now += 0.001
        alice.post(f"o{n}", room="ops")
    dave = lan.node("dave")
    lan.run(0.1)
    dave.join("ops")
    lan.run(0.5)
    newest = [f"o{n}" for n in range(150 - TAIL, 150)]
    assert in_room(dave, "ops") == sorted(newest)
    assert dave.incoming() == newest  # in order
    assert dave.of(Topic)[-1].text == "deploys at five"  # learned with the tail
    assert dave.of(Joined)[-1] == Joined("ops", None, True)  # the topic was not known yet
    assert dave.session.rooms().rooms[1].topic == "deploys at five"
    alice.post("after dave came", room="ops")
    assert dave.incoming()[-1] == "after dave came"
    # Away and back: he stays in the room, so from now on he misses nothing.
    dave.stop()
    for n in range(120):
        alice.post(f"while away {n}", room="ops")
    dave.reopen()
    dave.rooms = ("general", "ops")  # restarted with --room ops too
    dave.start()
    lan.run(1.0)
    assert len([c for c in in_room(dave, "ops") if c.startswith("while away")]) == 120
    assert dave.of(Joined)[-1] == Joined("ops", Topic("ops", "deploys at five", "alice",
                                                      T0 + timedelta(seconds=0.1)), False)


def test_a_rejoin_after_part_gets_what_it_lacks_of_the_last_hundred(lan):
    alice = lan.node("alice", rooms=("general", "ops"))
    bob = lan.node("bob", rooms=("general", "ops"))
    lan.run(0.1)
    alice.post("o-first", room="ops")
    bob.part("ops")
    for n in range(300):
        alice.post(f"o{n}", room="ops")
    bob.join("ops")
    lan.run(0.5)
    assert in_room(bob, "ops") == sorted(["o-first", *(f"o{n}" for n in range(200, 300))])
    assert bob.of(Joined)[-1].first is False


def test_a_partition_heals_with_traffic_in_several_rooms(lan):
    a = lan.node("a", rooms=("general", "ops", "dev"))
    b = lan.node("b", rooms=("general", "ops"))
    c = lan.node("c", rooms=("ops", "dev"))
    lan.run(0.1)
    lan.cut = {frozenset("ac"), frozenset("bc")}
    lan.run(6.0)  # long enough to expire each other
    assert members(c, "ops") == ("c",) and members(a, "ops") == ("a", "b")
    for node in (a, b, c):
        for room in node.session.membership.ours:
            for n in range(3):
                node.post(f"{node.name} {room} {n}", room=room)
    lan.cut = set()
    lan.run(3.0)
    wrote = {(node.name, room) for node in (a, b, c) for room in node.session.membership.ours}
    for node in (a, b, c):
        for room in ("general", "ops", "dev"):
            expected = sorted(f"{who} {room} {n}" for who, r in wrote if r == room
                              for n in range(3))
            held = in_room(node, room)
            assert held == (expected if room in node.session.membership.ours else []), (
                node.name, room)
            assert len(held) == len(set(held))  # once


# -- topics ------------------------------------------------------------------------------


def test_a_topic_is_replicated_and_two_set_at_once_end_the_same_everywhere(lan):
    alice = lan.node("alice", rooms=("general", "ops"))
    bob = lan.node("bob", rooms=("ops",))
    carol = lan.node("carol")
    lan.run(0.1)
    alice.set_topic("ops", "first")
    assert carol.of(Topic) == []  # carol is not in ops: only /rooms shows its topic
    assert bob.of(Topic)[-1].text == alice.of(Topic)[-1].text == "first"
    assert {r.name: r.topic for r in carol.session.rooms().rooms}["ops"] == "first"
    # Two set in the same microsecond on a partitioned network: one rule decides.
    lan.cut = {frozenset(("alice", "bob"))}
    alice.set_topic("ops", "alice's")
    bob.set_topic("ops", "bob's")
    lan.cut = set()
    lan.run(6.0)
    winner = alice.session.topics.current("ops")
    assert winner == bob.session.topics.current("ops")
    assert winner.content in ("alice's", "bob's")
    assert alice.of(Topic)[-1].text == bob.of(Topic)[-1].text == winner.content
    # Set after seeing another: dated after it, so it wins whatever the clocks say.
    lan.now -= 100
    bob.set_topic("ops", "later, by a slow clock")
    assert alice.session.topics.current("ops").content == "later, by a slow clock"
    assert alice.session.topics.current("ops").sent_at > winner.sent_at
    topics = [m for m in alice.inbox.history(room="ops") if m.is_topic]
    assert len(topics) == 4 and "later, by a slow clock" not in alice.incoming()


# -- send-only runs ----------------------------------------------------------------------


def test_a_send_only_run_is_nobody_to_others_stores_nothing_and_is_accepted_by_peeks(lan):
    alice = lan.node("alice", rooms=("general", "ops"))
    bob = lan.node("bob", rooms=("ops",))
    lan.run(0.1)
    for n in range(5):
        alice.post(f"older {n}", room="ops")
    pipe = lan.node("pipe", rooms=("ops",), listen=False)
    lan.run(1.5)
    # Not announced: no greeting, no MEMBER, not in /who, not in the status line.
    for node in (alice, bob):
        assert not [n for n in node.of(Notice) if "pipe" in n.text]
        assert not [m for m in node.of(Member) if m.user == "pipe"]
        assert "pipe" not in node.session.who().users
        assert "pipe" not in node.of(Status)[-1].detail
    assert pipe.session.who("ops").users == ("alice", "bob")  # it is not in it itself
    assert wire.room_topic("ops") not in pipe.topics and frames_of(pipe, "ops") == 0
    sent = [pipe.post(f"line {n}", room="ops") for n in range(3)]
    lan.run(0.5)
    assert pipe.accepted() == set(sent)  # learned from the peers' answers to its peeks
    assert {"line 0", "line 1", "line 2"} <= set(in_room(bob, "ops"))
    assert in_room(pipe, "ops") == ["line 0", "line 1", "line 2"]  # its own, nothing else
    assert pipe.inbox.room_states() == {}  # the resume state is untouched


def test_a_send_only_run_offers_what_an_earlier_run_could_not_deliver(lan):
    pipe = lan.node("pipe", rooms=("ops",), listen=False)
    kept = pipe.post("nobody heard this", room="ops")
    lan.run(3.0)
    assert kept not in pipe.accepted()  # no peer in the room: kept for next time
    pipe.stop()
    alice = lan.node("alice", rooms=("ops",))
    lan.run(0.1)
    pipe.reopen()
    pipe.start()
    lan.run(0.5)
    assert in_room(alice, "ops") == ["nobody heard this"]  # alice pulled it after a peek


# -- another version ---------------------------------------------------------------------


def test_a_version_1_node_is_told_once_and_its_frames_are_dropped(lan):
    alice = lan.node("alice")
    old = lan.node("old", start=False)
    v1 = bytearray(old.beacon(BeaconKind.ANNOUNCE))
    v1[4] = 1  # 0.1's beacon: the same layout, version 1
    for _ in range(3):
        lan.perform(alice, alice.session.receive_beacon(bytes(v1), "198.18.93.7", lan.now))
    assert [n.text for n in alice.of(Notice)] == [
        "old's node at 198.18.93.7 speaks lab93 protocol 1 (lab93-node 0.1); this node speaks"
        " 2 — upgrade it"
    ]
    assert alice.session.peers.get(old.node_id) is None  # never a peer
    v1_sync = [b"L93\x01", b"SYNC", b'{"node": "' + old.node_id.encode() + b'", "vector": {}}']
    assert alice.session.receive(v1_sync, lan.now) == []
    assert alice.session.stats["bad_frames"] == 1 and alice.session.stats["old_beacons"] == 3


# -- scale ----------------------------------------------------------------------------


def test_thirty_nodes_in_a_hundred_rooms_twenty_each_hold_exactly_their_rooms(lan):
    rng = random.Random(11)
    names = [f"room{n:03d}" for n in range(100)]
    chosen = {f"n{i:02d}": tuple(sorted(rng.sample(names, 20))) for i in range(30)}
    nodes = {name: lan.node(name, rooms=rooms) for name, rooms in chosen.items()}
    lan.run(0.5)
    for name, node in nodes.items():
        for room in chosen[name]:
            node.post(f"{name} in {room}", room=room)
    lan.run(3.0)
    for name, node in nodes.items():
        expected = sorted(f"{other} in {room}" for other, rooms in chosen.items()
                          for room in rooms if room in chosen[name])
        assert node.contents() == expected, name  # its rooms' messages, each once
        foreign = {wire.room_topic(r) for r in names if r not in chosen[name]}
        assert not [topic for _, topic in node.received if topic in foreign], name
    for name, node in nodes.items():
        others = ", ".join(sorted(other for other in chosen if other != name))
        assert node.of(Status)[-1] == Status(True, f"29 peers: {others}")


def test_parting_every_room_leaves_posts_nowhere_to_go_until_a_join(lan):
    alice = lan.node("alice", rooms=("ops",))
    alice.part("ops")
    refused = alice.post("into the void")
    assert alice.of(Rejected) == [Rejected(refused, "not in any room; join it first")]
    alice.join("dev")
    alice.post("into dev")
    assert [m.room for m in alice.inbox.history()] == ["dev"]


def test_a_joining_node_takes_no_floors_from_a_send_only_peer(lan):
    alice = lan.node("alice", rooms=("general", "ops"))
    pipe = lan.node("pipe", rooms=("ops",), listen=False)
    lan.run(0.1)
    pipe.post("from the pipeline", room="ops")
    lan.run(0.5)
    assert in_room(alice, "ops") == ["from the pipeline"]  # pulled after its peek
    assert alice.room("ops").joining  # but nobody in #ops gave alice a tail yet
    assert alice.inbox.room_states()["ops"].floors is None
    bob = lan.node("bob", rooms=("ops",))
    lan.run(1.0)
    assert not alice.room("ops").joining  # bob did
    assert in_room(bob, "ops") == ["from the pipeline"]


def test_a_send_only_run_posts_to_any_room_it_is_told_to(lan):
    alice = lan.node("alice", rooms=("general", "ops"))
    pipe = lan.node("pipe", listen=False)  # started for #general
    lan.run(1.5)
    line = pipe.post("to #ops, as a piped /join ops chose", room="ops")
    lan.run(0.5)
    assert in_room(alice, "ops") == ["to #ops, as a piped /join ops chose"]
    assert line in pipe.accepted()
    assert wire.room_topic("ops") not in pipe.topics  # and it still subscribes to none
    listening = lan.node("listening")
    lan.run(0.1)
    refused = listening.post("nope", room="ops")  # a listening node joins first
    assert listening.of(Rejected) == [Rejected(refused, "not in #ops; join it first")]
