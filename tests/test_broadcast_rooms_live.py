"""Rooms in broadcast mode through the actor's pipe, on real sockets on loopback: three
nodes in overlapping rooms (one away and back), JOIN/PART/ROOMS/TOPIC/WHO/HISTORY, MEMBER
events, a send-only run, and a version 1 node."""

from __future__ import annotations

import random
import socket
import threading

import pytest
import zmq
from broadcast_live import Live
from live import wait_for

from lab93zmq.core import wire
from lab93zmq.core.presence import Beacon, BeaconKind
from lab93zmq.io.actor import PipeKind

pytestmark = pytest.mark.timeout(60)


def listen_to_topics(live: Live) -> list[bytes]:
    """Record the topic of every frame list its SUBs deliver to its session (a snapshot
    list appended to by the actor's thread)."""
    topics: list[bytes] = []
    lock = threading.Lock()
    session = live.node.session
    receive_many = session.receive_many

    def recording(batch, now, via=None, senders=None):
        if via is not None:
            with lock:
                topics.extend(bytes(frames[0][len(wire.SIGNATURE):]) for frames in batch)
        return receive_many(batch, now, via, senders)

    session.receive_many = recording
    return topics


def history(live: Live, room: str | None = None) -> list[str]:
    messages = live.request(PipeKind.HISTORY, PipeKind.HISTORY_RESULT, room=room)["messages"]
    return sorted(m["content"] for m in messages if m.get("kind") is None)


def members(live: Live, room: str) -> list[str]:
    return live.request(PipeKind.WHO, PipeKind.WHO_RESULT, room=room)["users"]


def rooms(live: Live) -> dict[str, tuple[int, str | None, bool]]:
    listed = live.request(PipeKind.ROOMS, PipeKind.ROOMS_RESULT)["rooms"]
    return {r["name"]: (r["members"], r["topic"], r["joined"]) for r in listed}


def posted(live: Live) -> list[str]:
    return [m["content"] for b in live.of(PipeKind.POSTED) for m in b["messages"]]


def test_three_nodes_in_overlapping_rooms_one_away_and_back(cluster):
    alice = cluster.start("alice", rooms=("general", "ops"))
    bob = cluster.start("bob", rooms=("ops", "dev"))
    carol = cluster.start("carol", rooms=("general", "dev"))
    nodes = [alice, bob, carol]
    heard = listen_to_topics(carol)
    wait_for(nodes, lambda: all(n.connected_to(2) for n in nodes), "everyone linked")
    assert [b["room"] for b in alice.of(PipeKind.JOINED)] == ["general", "ops"]
    wait_for(nodes, lambda: members(alice, "ops") == ["alice", "bob"], "bob in #ops at alice")
    assert members(carol, "dev") == ["bob", "carol"]  # yourself included
    assert members(carol, "ops") == ["alice", "bob"]  # a room she is not in
    assert rooms(carol) == {"general": (2, None, True), "ops": (2, None, False),
                            "dev": (2, None, True)}

    said = {("alice", "ops"): alice.post("a in ops", room="ops"),
            ("alice", "general"): alice.post("a in general"),  # the current room
            ("bob", "dev"): bob.post("b in dev", room="dev"),
            ("carol", "dev"): carol.post("c in dev", room="dev")}
    wait_for(nodes, lambda: set(said.values()) <= (alice.accepted() | bob.accepted()
                                                   | carol.accepted()), "every post accepted")
    assert posted(alice) == ["a in ops", "a in general"]
    assert history(alice) == ["a in general", "a in ops"]
    assert history(bob) == ["a in ops", "b in dev", "c in dev"]
    assert history(carol) == ["a in general", "b in dev", "c in dev"]
    assert history(carol, "ops") == []
    assert wire.room_topic("ops") not in heard and wire.room_topic("dev") in heard

    # A topic in #ops: its members hear it, carol sees it in /rooms.
    alice.handle.request(PipeKind.TOPIC, room="ops", text="deploys at five")
    wait_for(nodes, lambda: bob.of(PipeKind.TOPIC), "bob to hear the topic")
    assert bob.of(PipeKind.TOPIC)[-1]["text"] == "deploys at five"
    assert bob.of(PipeKind.TOPIC)[-1]["by"] == "alice"
    wait_for(nodes, lambda: rooms(carol)["ops"][1] == "deploys at five", "the topic in /rooms")
    assert carol.of(PipeKind.TOPIC) == []

    # Carol joins #ops: its members are told, and she gets its tail and topic.
    carol.handle.request(PipeKind.JOIN, room="#Ops")
    wait_for(nodes, lambda: len(carol.of(PipeKind.JOINED)) == 3, "carol's JOINED")
    assert carol.of(PipeKind.JOINED)[-1]["room"] == "ops"
    assert carol.of(PipeKind.JOINED)[-1]["first"] is True
    wait_for(nodes, lambda: {"room": "ops", "user": "carol", "joined": True}
             in alice.of(PipeKind.MEMBER), "alice told that carol came")
    wait_for(nodes, lambda: "a in ops" in history(carol, "ops"), "the tail of #ops")
    wait_for(nodes, lambda: carol.of(PipeKind.TOPIC), "the topic, learned in catch-up")
    assert carol.of(PipeKind.TOPIC)[-1]["text"] == "deploys at five"

    # Bob goes away; everyone keeps talking; he comes back and misses nothing.
    bob.stop()
    wait_for(nodes, lambda: {"room": "dev", "user": "bob", "joined": False}
             in carol.of(PipeKind.MEMBER), "carol told that bob left #dev")
    away = [alice.post(f"ops while bob was away {n}", room="ops") for n in range(3)]
    alone = carol.post("dev while bob was away", room="dev")
    wait_for(nodes, lambda: set(away) <= alice.accepted(), "carol, in #ops now, holds them")
    assert alone not in carol.accepted()  # nobody else is in #dev now: it waits
    back = cluster.start("bob", rooms=("ops", "dev"))
    nodes = [alice, back, carol]
    wait_for(nodes, lambda: len(back.incoming()) == 4, "bob's catch-up")
    wait_for(nodes, lambda: alone in carol.accepted(), "bob, back in #dev, holds it")
    assert sorted(back.incoming()) == sorted(["dev while bob was away",
                                              *(f"ops while bob was away {n}" for n in range(3))])
    assert history(back, "general") == []  # never a room he is not in

    # Bob leaves #dev: carol is told; he stores nothing of it from now on.
    back.handle.request(PipeKind.PART, room="dev")
    wait_for(nodes, lambda: back.of(PipeKind.PARTED) == [{"room": "dev"}], "PARTED")
    wait_for(nodes, lambda: members(carol, "dev") == ["carol"], "bob out of #dev")
    late = carol.post("dev after bob left", room="dev")
    wait_for(nodes, lambda: late in carol.accepted() or rooms(carol)["dev"][0] == 1, "settled")
    assert "dev after bob left" not in history(back)


def test_a_send_only_run_posts_is_accepted_and_is_nobody_to_the_others(cluster):
    alice = cluster.start("alice", rooms=("ops",))
    bob = cluster.start("bob", rooms=("ops",))
    wait_for([alice, bob], lambda: alice.connected_to(1) and bob.connected_to(1), "linked")
    alice.post("older chat", room="ops")
    pipe = cluster.start("pipe", rooms=("ops",), listen=False)
    nodes = [alice, bob, pipe]
    wait_for(nodes, lambda: pipe.connected_to(2), "the pipeline sees both")
    lines = [pipe.post(f"log line {n}") for n in range(5)]  # to its current room, #ops
    wait_for(nodes, lambda: set(lines) <= pipe.accepted(), "the pipeline's lines accepted")
    wait_for(nodes, lambda: len(bob.incoming()) >= 6, "bob to hold them")
    assert pipe.incoming() == [] and history(pipe) == [f"log line {n}" for n in range(5)]
    assert pipe.of(PipeKind.JOINED) == []
    for node in (alice, bob):
        assert not [t for t in node.notices() if "pipe" in t]
        assert not [m for m in node.of(PipeKind.MEMBER) if m["user"] == "pipe"]
        assert "pipe" not in members(node, "ops") and node.connected_to(1)


def test_a_version_1_node_is_told_once_to_upgrade(cluster):
    alice = cluster.start("alice")
    old = bytearray(Beacon(BeaconKind.ANNOUNCE, "01" * 16, "broadcast", 5190, 40000,
                           "zoe").encode())
    old[4] = 1  # 0.1's beacon: the same layout, version 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for _ in range(5):
            udp.sendto(bytes(old), ("127.255.255.255", cluster.beacon_port))
        wait_for([alice], lambda: alice.node.stats.get("old_beacons", 0) == 5, "five heard")
    assert [t for t in alice.notices() if "protocol 1" in t] == [
        "zoe's node at 127.0.0.1 speaks lab93 protocol 1 (lab93-node 0.1); this node speaks"
        " 2 — upgrade it"
    ]


@pytest.mark.timeout(120)
def test_thirty_nodes_in_a_hundred_rooms_twenty_each_hold_exactly_their_rooms(cluster):
    """The issue's scale on real sockets: 30 nodes in one process, on a context of their
    own that may open the ~3,000 sockets they need (ZeroMQ's default is 1,023). Their
    linking takes some 21 intervals: one address introduces 8 new node ids at once, then
    one an interval (presence.NEWCOMER_BURST)."""
    rng = random.Random(7)
    names = [f"room{n:03d}" for n in range(100)]
    chosen = {f"n{i:02d}": tuple(sorted(rng.sample(names, 20))) for i in range(30)}
    want = {name: sorted(f"{other} in {room}" for other, rooms in chosen.items()
                         for room in rooms if room in chosen[name]) for name in chosen}
    ctx = zmq.Context()
    ctx.max_sockets = 8192
    try:
        nodes = {name: cluster.add(Live(cluster.config(name, rooms=rooms), ctx))
                 for name, rooms in chosen.items()}
        heard = {name: listen_to_topics(node) for name, node in nodes.items()}
        everyone = list(nodes.values())
        wait_for(everyone, lambda: all(n.connected_to(29) for n in everyone), "all linked", 60)
        for name, node in nodes.items():
            for room in chosen[name]:
                node.post(f"{name} in {room}", room=room)

        def all_arrived() -> bool:
            return all(sum(len(body["messages"]) for body in node.of(PipeKind.INCOMING))
                       == len(want[name]) - len(chosen[name]) for name, node in nodes.items())

        took = wait_for(everyone, all_arrived, "every room's messages", 60)
        print(f"30 nodes: every room's messages held {took:.2f} s after posting")
        for name, node in nodes.items():
            assert history(node) == want[name], name  # its rooms' messages, each once
            foreign = {wire.room_topic(r) for r in names if r not in chosen[name]}
            assert not foreign & set(heard[name]), name  # nothing of a room it is not in
    finally:
        cluster.close()
        ctx.term()
