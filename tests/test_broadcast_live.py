"""Several broadcast actors in one process, on loopback only (``broadcast_live``).

Every node binds 127.0.0.1 and beacons only to 127.255.255.255 (``-i lo``) on
a beacon port chosen per test; waits end as soon as their condition holds, and
a check that something did *not* happen waits for evidence that it would have
by then (more beacons heard, later traffic taken), never for a fixed time.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone

import pytest
import zmq
from broadcast_live import INTERVAL, Cluster, Live
from live import wait_for
from procs import reserved_tcp_port

from lab93zmq.core import wire
from lab93zmq.core.broadcast.actions import SendBeacon, SendToPeer, Verb
from lab93zmq.core.message import Message, make_id
from lab93zmq.core.presence import Beacon, BeaconKind
from lab93zmq.core.sync import digest
from lab93zmq.io.actor import PipeKind
from lab93zmq.io.store import Inbox

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def router_port():
    """A TCP port held for the test, that both nodes ask for: only one can listen on it."""
    with reserved_tcp_port() as held:
        yield held


def test_two_nodes_find_each_other_in_a_fraction_of_an_interval(tmp_path, beacon_port, router_port):
    cluster = Cluster(tmp_path, beacon_port)
    # A long interval, so that "answered at once" and "heard at the next periodic
    # beacon" are seconds apart: the check holds on a busy machine too.
    cluster_interval = 5.0
    try:
        port = router_port
        configs = [
            replace(cluster.config(user, port=port), beacon_interval=cluster_interval)
            for user in ("alice", "bob")
        ]
        alice = cluster.add(Live(configs[0]))
        # Bob starts right after alice's start-up beacon: a start-up beacon is no
        # answer, so the answer rate limit (interval / 10) does not delay him.
        started = time.monotonic()
        bob = cluster.add(Live(configs[1]))
        wait_for(cluster.nodes, lambda: alice.connected_to(1) and bob.connected_to(1))
        took = time.monotonic() - started
        print(f"discovery took {took * 1000:.1f} ms (interval {cluster_interval:g} s)")
        # Answered at once, not at alice's next periodic beacon (one interval away).
        # The bench measures how fast; a test only checks which way it happened.
        assert took < cluster_interval / 2
        # Both asked for port: the first got it, the second an ephemeral one.
        assert alice.node.router_port == port and bob.node.router_port not in (0, port)
        assert alice.notices() == ["bob joined from 127.0.0.1"]
        assert alice.request(PipeKind.WHO, PipeKind.WHO_RESULT) == {
            "room": None, "users": ["alice", "bob"], "connected": True,  # yourself included
            "away": {},
        }
        table = alice.request(PipeKind.SCAN, PipeKind.SCAN_RESULT)["beacons"]
        assert [(b["user"], b["mode"], b["address"], b["router"], b["pub"]) for b in table] == [
            ("bob", "broadcast", "127.0.0.1", bob.node.router_port, bob.node.pub_port)
        ]
        assert table[0]["node"] == bob.handle.node_id
    finally:
        cluster.close()


def test_three_nodes_chat_and_every_post_is_accepted(cluster):
    nodes = [cluster.start(user) for user in ("alice", "bob", "carol")]
    wait_for(nodes, lambda: all(n.connected_to(2) for n in nodes))
    sent = {n.user: [n.post(f"{n.user} says {i}") for i in range(5)] for n in nodes}
    took = wait_for(nodes, lambda: all(set(sent[n.user]) <= n.accepted() for n in nodes))
    print(f"15 posts among 3 nodes accepted in {took * 1000:.0f} ms")
    for node in nodes:
        expected = sorted(f"{u} says {i}" for u in sent if u != node.user for i in range(5))
        assert sorted(node.incoming()) == expected  # exactly once each
    history = nodes[0].request(PipeKind.HISTORY, PipeKind.HISTORY_RESULT, limit=3)["messages"]
    assert len(history) == 3


def test_a_returning_node_catches_up_even_from_an_author_who_left(cluster):
    alice, bob, carol = (cluster.start(u) for u in ("alice", "bob", "carol"))
    nodes = [alice, bob, carol]
    wait_for(nodes, lambda: all(n.connected_to(2) for n in nodes))
    bob.stop()
    wait_for(nodes, lambda: alice.connected_to(1) and carol.connected_to(1))
    alice.post("alice while bob was away")
    ids = [carol.post(f"carol {i}") for i in range(3)]
    wait_for(nodes, lambda: set(ids) <= carol.accepted())
    carol.stop()  # the author leaves before bob returns
    wait_for(nodes, lambda: "carol left" in alice.notices())
    back = cluster.start("bob")
    assert back.handle.node_id == bob.handle.node_id  # the identity lives in the inbox
    took = wait_for([alice, back], lambda: len(back.incoming()) == 4)
    print(f"catch-up of 4 messages took {took * 1000:.0f} ms")
    assert sorted(back.incoming()) == ["alice while bob was away", "carol 0", "carol 1", "carol 2"]


def test_catch_up_of_many_messages(cluster):
    total = 2000
    with Inbox(cluster.tmp_path / "bob.db") as inbox:
        inbox.stayed_in("general")  # bob was in the room all along: he misses nothing
    alice_db = cluster.tmp_path / "alice.db"
    with Inbox(alice_db) as inbox:
        origin = inbox.node_id
        now = datetime.now(timezone.utc)
        inbox.save_many([
            (Message(make_id(now, os.urandom(10)), "alice", None, None, f"m{n}", now, origin,
                     n + 1), None, None)
            for n in range(total)
        ])
    alice = cluster.start("alice")
    started = time.monotonic()
    bob = cluster.start("bob")
    took = wait_for([alice, bob], lambda: len(bob.incoming()) >= total, timeout=30)
    print(f"catch-up of {total} messages took {took:.2f} s")
    assert len(set(bob.incoming())) == total
    assert time.monotonic() - started < 20


def test_direct_messages_reach_only_the_addressee_and_wait_for_it(cluster):
    alice, carol = cluster.start("alice"), cluster.start("carol")
    wait_for([alice, carol], lambda: alice.connected_to(1))
    dm = alice.post("psst, bob", to="bob")
    wait_for([alice], lambda: any("bob is not online" in t for t in alice.notices()))
    assert dm not in alice.accepted()
    bob = cluster.start("bob")
    wait_for([alice, bob, carol], lambda: dm in alice.accepted())
    wait_for([bob], lambda: bob.incoming() == ["psst, bob"])
    reply = bob.post("hi alice", to="alice")
    wait_for([alice, bob, carol], lambda: reply in bob.accepted())
    # alice's node acknowledges before it tells its front end: wait for that too.
    wait_for([alice], lambda: alice.incoming() == ["hi alice"])
    carol_history = carol.request(PipeKind.HISTORY, PipeKind.HISTORY_RESULT, limit=100)["messages"]
    assert carol_history == [] and carol.incoming() == []


def test_garbage_datagrams_and_frames_do_not_stop_service(cluster):
    alice, bob = cluster.start("alice"), cluster.start("bob")
    wait_for([alice, bob], lambda: alice.connected_to(1) and bob.connected_to(1))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        udp.bind(("127.0.0.1", 0))
        for data in (b"", b"\x00" * 54, b"L93B" + os.urandom(40), os.urandom(2000)):
            udp.sendto(data, ("127.255.255.255", cluster.beacon_port))
    ctx = zmq.Context.instance()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    try:
        dealer.connect(f"tcp://127.0.0.1:{alice.node.router_port}")
        garbage = [
            [b"hello"],
            [wire.SIGNATURE, b"SYNC", b"[]"],
            [wire.SIGNATURE, Verb.SYNC.value.encode(),
             b'{"node": "' + b"f" * 32 + b'", "vector": 5}'],
            [wire.SIGNATURE, b"DM", b'{"node": "' + b"f" * 32 + b'"}', os.urandom(100)],
            [os.urandom(64) for _ in range(5)],
        ]
        for frames in garbage:
            dealer.send_multipart(frames)
        wait_for([alice], lambda: alice.node.stats.get("bad_frames", 0) >= 4)
    finally:
        dealer.close()
    wait_for([alice], lambda: alice.node.stats.get("bad_beacons", 0) >= 3)
    message = bob.post("still here?")
    wait_for([alice, bob], lambda: message in bob.accepted())
    # "accepted" can be read before the receiver's front end hears of it: wait for that too.
    wait_for([alice], lambda: alice.incoming() == ["still here?"])


def test_a_stopped_node_is_dropped_at_once_and_a_killed_one_when_its_link_drops(cluster):
    alice, bob, dave, carol = (cluster.start(u) for u in ("alice", "bob", "dave", "carol"))
    nodes = [alice, bob, dave, carol]
    wait_for(nodes, lambda: all(n.connected_to(3) for n in nodes))
    # A clean stop sends BYE and LEAVING; each alone must drop the node at once (with
    # neither, its dropped connection would say "is gone" after the link grace).
    bob.leave_with_only(SendToPeer)
    bob.stop()
    dave.leave_with_only(SendBeacon)
    dave.stop()
    wait_for(nodes, lambda: {"bob left", "dave left"} <= set(alice.notices()))
    assert not [n for n in alice.notices() if "gone" in n]
    # "Kill" carol: her thread ends without BYE or LEAVING; closing her sockets
    # drops alice's connection to her, as a killed process's kernel would.
    dropped = alice.node.stats["links_dropped"]  # bob's or dave's may race their goodbye
    started = time.monotonic()
    carol.die()
    gone = f"carol is gone (connection lost, no beacon for {1.5 * INTERVAL:g} s)"
    wait_for([alice], lambda: gone in alice.notices() and not alice.connected_to(1))
    took = time.monotonic() - started
    print(f"a killed node was dropped after {took:.2f} s (1.5 intervals after its link dropped)")
    assert alice.node.stats["links_dropped"] == dropped + 1
    assert alice.of(PipeKind.STATUS)[-1] == {
        "connected": False, "detail": "no broadcast peers left on lo",
    }


def test_a_post_with_nobody_around_is_not_accepted_and_says_why(cluster):
    alice = cluster.start("alice")
    message = alice.post("anyone?")
    wait_for([alice], lambda: bool(alice.of(PipeKind.STATUS)))
    assert alice.of(PipeKind.STATUS)[0] == {
        "connected": False, "detail": "no broadcast peers heard yet on lo",
    }
    bob = cluster.start("bob")
    wait_for([alice, bob], lambda: message in alice.accepted())
    wait_for([bob], lambda: bob.incoming() == ["anyone?"])


def test_frames_from_an_old_protocol_version_are_dropped(cluster):
    alice = cluster.start("alice")
    ctx = zmq.Context.instance()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    try:
        dealer.connect(f"tcp://127.0.0.1:{alice.node.router_port}")
        frames = wire.command("SYNC", {"node": "f" * 32, "vector": {}}).frames()
        frames[0] = b"L93\x09"
        dealer.send_multipart(frames)
        wait_for([alice], lambda: alice.node.stats.get("bad_frames", 0) == 1)
    finally:
        dealer.close()


class FakePeer:
    """A peer played by the test: raw beacons, a ROUTER and a PUB on loopback."""

    def __init__(self, beacon_port: int) -> None:
        self.beacon_port = beacon_port
        self.node_id = "ab" * 16
        self.ctx = zmq.Context.instance()
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.linger = 0
        self.pub_port = self.pub.bind_to_random_port("tcp://127.0.0.1")
        self.router: zmq.Socket | None = None
        self.router_port = 0
        self.monitor: zmq.Socket | None = None
        self.open_router()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.udp.bind(("127.0.0.1", 0))
        self.beaconing = True
        self._last = 0.0

    def open_router(self) -> None:
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.linger = 0
        if self.router_port:
            self.router.bind(f"tcp://127.0.0.1:{self.router_port}")
        else:
            self.router_port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.monitor = self.router.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self.monitor.linger = 0

    def close_router(self) -> None:
        """What alice sees when a process dies: the connection closes."""
        self.router.disable_monitor()
        self.monitor.close()
        self.router.close()

    def handshaken(self) -> bool:
        return bool(self.monitor.poll(0))

    def tick(self) -> None:
        """Beacon every INTERVAL / 4 while ``beaconing``, and say she is in #general (called
        from wait_for's loop)."""
        if self.beaconing and time.monotonic() >= self._last + INTERVAL / 4:
            self._last = time.monotonic()
            beacon = Beacon(
                BeaconKind.ANNOUNCE, self.node_id, "broadcast", self.router_port, self.pub_port,
                "mallory",
            )
            self.udp.sendto(beacon.encode(), ("127.255.255.255", self.beacon_port))
            beat = {"node": self.node_id, "rooms": {"general": digest({})}}
            self.pub.send_multipart(wire.Command("BEAT", beat).frames(wire.NODE_TOPIC))

    def close(self) -> None:
        self.udp.close()
        self.pub.close()
        if not self.router.closed:
            self.close_router()


def test_a_dropped_link_drops_a_peer_only_if_its_beacons_stop_too(cluster):
    alice = cluster.start("alice")
    mallory = FakePeer(cluster.beacon_port)
    try:
        def until(done: Callable[[], bool]) -> float:
            return wait_for([alice], lambda: mallory.tick() or done())

        until(lambda: alice.connected_to(1) and mallory.handshaken())
        # The connection drops but mallory keeps beaconing: a blip, she stays.
        mallory.close_router()
        until(lambda: alice.node.stats["links_dropped"] == 1)
        dropped = time.monotonic()
        # Alice took her beacons after the grace ended, and she is still a peer.
        until(lambda: alice.heard_since(mallory.node_id, dropped + 2 * INTERVAL))
        assert alice.connected_to(1)
        assert not [n for n in alice.notices() if "gone" in n]
        # Her ROUTER comes back (alice's DEALER reconnects), then she dies for real:
        # the connection drops and no beacon follows.
        mallory.open_router()
        until(mallory.handshaken)
        mallory.beaconing = False
        mallory.close_router()
        took = until(lambda: any("mallory is gone" in n for n in alice.notices()))
        print(f"a dead peer was dropped {took:.2f} s after its connection closed")
        assert alice.notices()[-1] == (
            f"mallory is gone (connection lost, no beacon for {1.5 * INTERVAL:g} s)"
        )
        assert alice.node.stats["links_dropped"] == 2
    finally:
        mallory.close()


def test_a_burst_of_posts_arrives_whole_and_in_order(cluster):
    alice, bob = cluster.start("alice"), cluster.start("bob")
    wait_for([alice, bob], lambda: alice.connected_to(1) and bob.connected_to(1))
    # Queued on the pipe faster than the actor takes them: stored in a few
    # transactions and published as MSGs of up to 200 messages.
    ids = [alice.post(f"line {n}") for n in range(1000)]
    took = wait_for([alice, bob], lambda: set(ids) <= alice.accepted(), timeout=30)
    print(f"1000 posts in a burst accepted in {took * 1000:.0f} ms")
    wait_for([bob], lambda: len(bob.incoming()) >= 1000)
    assert bob.incoming() == [f"line {n}" for n in range(1000)]
    assert alice.node.stats["bad_frames"] == bob.node.stats["bad_frames"] == 0
