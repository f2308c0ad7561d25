"""Floods of garbage at live actors on loopback, while honest users chat through them.

A repeater server and a broadcast node each get thousands of random and
near-valid frame lists from a raw DEALER on their ROUTER, and thousands of
random datagrams on their beacon port (``-i lo``: 127.255.255.255 only),
interleaved with the honest traffic. Every honest message must arrive exactly
once, and the flooded actor must still serve afterwards. Ports are fresh per
test; every wait has a deadline and ends as soon as its condition holds.
"""

from __future__ import annotations

import json
import random
import socket
import time
from collections import Counter
from datetime import datetime, timezone

import pytest
import zmq
from live import WAIT, LiveActor, wait_for

from lab93zmq.core.message import Message, make_id
from lab93zmq.core.presence import NEWCOMER_BURST, Beacon, BeaconKind
from lab93zmq.core.wire import SIGNATURE
from lab93zmq.io.actor import PipeKind
from lab93zmq.io.broadcast_actor import BroadcastActor
from lab93zmq.io.config import NodeConfig
from lab93zmq.io.repeater_client import ClientActor
from lab93zmq.io.repeater_server import ServerActor

pytestmark = pytest.mark.timeout(60)

ROUNDS = 30  # the floods go out in this many rounds, honest posts between them
FRAMES = 3000  # garbage frame lists in all
DATAGRAMS = 3000  # garbage datagrams in all
NAMES = ["HELLO", "FETCH", "POST", "WHO", "PING", "BYE", "MSG", "BEAT", "SYNC", "BATCH", "DM",
         "ACK", "ROOM", "TICK", "WELCOME", "ERROR", "X"]


class Live(LiveActor):
    """One actor (started at once) and every event it sent to its front end."""

    def __init__(self, actor) -> None:
        super().__init__(actor)
        self.start()

    def incoming(self) -> Counter[str]:
        """The honest messages that arrived, each with how often.

        The flood's well-formed messages are left out: without secure mode
        anyone may post to an open repeater or relay a message to a broadcast
        node, so they may arrive too, and are counted in ``injected``. Each is
        written by "mallory" with content "mallory ...", and a mutation
        changes only one field, so one of the two always tells it apart.
        """
        return Counter(m["content"] for m in self._messages() if not _mallory(m))

    def injected(self) -> int:
        return sum(1 for m in self._messages() if _mallory(m))

    def _messages(self) -> list[dict]:
        return [m for b in self.of(PipeKind.INCOMING) for m in b["messages"]]

    def connected(self, detail: str = "") -> bool:
        statuses = self.of(PipeKind.STATUS)
        return bool(statuses) and statuses[-1]["connected"] and detail in statuses[-1]["detail"]


def _mallory(message: dict) -> bool:
    return message["from"] == "mallory" or message["content"].startswith("mallory")


# -- what the flood is made of ------------------------------------------------------------


def valid_message(rng: random.Random) -> Message:
    sent_at = datetime.now(timezone.utc)
    return Message(
        id=make_id(sent_at, rng.randbytes(10)), author="mallory", recipient=None, subject=None,
        content="mallory " + "x" * rng.randint(1, 50), sent_at=sent_at,
        origin=rng.randbytes(16).hex(),
        origin_seq=rng.randint(1, 5),
    )


def mutated_message(rng: random.Random) -> bytes:
    fields = valid_message(rng).to_wire_dict()
    key = rng.choice([*fields, "extra"])
    fields[key] = rng.choice([None, -1, 2**63, 2**70, "", "\ud800", " a b ", [], {}, 1.5,
                              "0001-01-01T00:00:00+01:00", "f" * 33, True])
    return json.dumps(fields).encode()


def random_header(rng: random.Random) -> bytes:
    values = [None, True, -1, 0, 1, 2**63, 2**70, 1e308, "", "x" * 40, [], {}, [[1, 0]],
              [[2**70, 0]], [["a" * 32, 1]], "a" * 32, rng.randbytes(16).hex(), {"a" * 32: 3},
              {"a" * 32: 2**70}, {"zz": 1}, "mallory", "\ud800"]
    keys = ["user", "node", "software", "room", "dm", "limit", "items", "vector", "ids",
            "server", "head", "room_head", "dm_head", "pub_port", "heartbeat", "timeout"]
    header = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, 6))}
    return json.dumps(header).encode()


def garbage_frames(rng: random.Random, node: str | None = None) -> list[bytes]:
    """Random frames, or an envelope that is almost right (``node``: a header naming it)."""
    kind = rng.random()
    if kind < 0.3:
        return [rng.randbytes(rng.randint(0, 80)) for _ in range(rng.randint(1, 6))]
    signature = SIGNATURE if kind < 0.9 else rng.choice([b"L93\x01", b"L93", b"ZRE\x01"])
    name = rng.choice(NAMES).encode() if rng.random() < 0.9 else rng.randbytes(rng.randint(0, 20))
    json_header = rng.random() < 0.8
    header = random_header(rng) if json_header else rng.randbytes(rng.randint(0, 30))
    if node is not None and rng.random() < 0.5:
        fields = json.loads(header) if json_header else {}
        header = json.dumps({**fields, "node": node}).encode()
    payloads = []
    for _ in range(rng.randint(0, 4)):
        pick = rng.random()
        if pick < 0.4:
            payloads.append(valid_message(rng).encode())
        elif pick < 0.8:
            payloads.append(mutated_message(rng))
        else:
            payloads.append(rng.randbytes(rng.randint(0, 100)))
    return [signature, name, header, *payloads]


def garbage_datagram(rng: random.Random, node_ids: list[str], fresh: float = 0.0) -> bytes:
    """Random bytes, or a beacon that is almost right.

    The beacons name a node of ``node_ids`` (an impostor with other ports:
    1 and 2, where nothing listens on loopback) or, with probability
    ``fresh``, a node id never seen. Mutations spare the node id field, so
    fresh ids come only from ``fresh``.
    """
    if rng.random() < 0.4:
        return rng.randbytes(rng.randint(0, 300))
    kind = rng.choice(list(BeaconKind))
    node = rng.randbytes(16).hex() if rng.random() < fresh else rng.choice(node_ids)
    if kind is BeaconKind.PROBE:
        return Beacon.probe(rng.randbytes(16).hex()).encode()  # a probe is never a peer
    beacon = Beacon(
        kind=kind, node_id=node, mode=rng.choice(["broadcast", "repeater"]),
        router_port=rng.choice([1, 2]), pub_port=rng.choice([1, 2]), user="mallory",
    )
    raw = bytearray(beacon.encode())
    for _ in range(rng.randint(0, 2)):
        where = rng.choice([*range(0, 7), *range(23, len(raw))])
        raw[where] = rng.randrange(256)
    return bytes(raw)


class Flooder:
    """A raw DEALER on a ROUTER and UDP sockets on the beacon port, sending garbage."""

    def __init__(self, router_port: int, beacon_port: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ctx = zmq.Context.instance()
        self.endpoint = f"tcp://127.0.0.1:{router_port}"
        self.dealer: zmq.Socket | None = None
        self.sessions: list[zmq.Socket] = []
        self.udp = []
        for _ in range(3):  # three source sockets: the limit is per source
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.bind(("127.0.0.1", 0))
            self.udp.append(sock)
        self.beacon_port = beacon_port
        self.frames_sent = self.datagrams_sent = self.replies = 0

    def new_session(self, hello: bool) -> None:
        """A fresh DEALER (a new identity on the ROUTER), maybe with a valid HELLO first,
        so the garbage also reaches the handlers behind the session check."""
        # The old session stays connected until close(): on a loaded box the server reads
        # a flood later than it is sent, and a DEALER closed meanwhile takes the frames the
        # ROUTER had not read with it - sparing that session its cut-off.
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.sessions.append(self.dealer)
        self.dealer.setsockopt(zmq.LINGER, 0)
        # A bounded wait: a ROUTER that stopped reading fails the test, it does not hang it.
        self.dealer.setsockopt(zmq.SNDTIMEO, int(WAIT * 1000))
        self.dealer.connect(self.endpoint)
        if hello:
            header = {"user": "mallory", "node": self.rng.randbytes(16).hex(), "software": "x"}
            self.dealer.send_multipart([SIGNATURE, b"HELLO", json.dumps(header).encode()])

    def frames(self, count: int, node: str | None = None) -> None:
        for _ in range(count):
            self.dealer.send_multipart(garbage_frames(self.rng, node))  # blocks at most WAIT
            self.frames_sent += 1
        while self.dealer.poll(0):  # ERROR answers: read them so they cost the server nothing
            self.dealer.recv_multipart()
            self.replies += 1

    def datagrams(self, count: int, node_ids: list[str], fresh: float = 0.0) -> None:
        for n in range(count):
            sock = self.udp[n % len(self.udp)]
            data = garbage_datagram(self.rng, node_ids, fresh)
            sock.sendto(data, ("127.255.255.255", self.beacon_port))
            self.datagrams_sent += 1

    def close(self) -> None:
        for dealer in self.sessions:
            dealer.close()
        for sock in self.udp:
            sock.close()


# -- the repeater server ----------------------------------------------------------------------


def test_a_repeater_server_flooded_with_garbage_delivers_every_honest_message_once(
    nodes, tmp_path, beacon_port
):
    server = Live(ServerActor(
        NodeConfig(user="hub", db_path=tmp_path / "server.db", address="127.0.0.1", port=0,
                   interfaces=("lo",), beacon_port=beacon_port, beacon_interval=0.5),
        heartbeat=0.2,
    ))
    nodes.append(server)
    port = server.actor.router_port

    def client(user: str) -> Live:
        config = NodeConfig(user=user, db_path=tmp_path / f"{user}.db", address="127.0.0.1",
                            port=port, beacon=False)
        live = Live(ClientActor(config, heartbeat=0.2, dead_after=0.8))
        nodes.append(live)
        return live

    alice, bob = client("alice"), client("bob")
    wait_for([alice, bob], lambda: alice.connected() and bob.connected(), "both connected")
    flooder = Flooder(port, beacon_port, seed=93)
    sent = {"alice": [], "bob": []}
    started = time.monotonic()
    try:
        for n in range(ROUNDS):
            # A session floods over two rounds, 200 frame lists: far more bad commands
            # than BAD_BURST plus what its bucket refills while a loaded box reads them.
            if n % 2 == 0:
                flooder.new_session(hello=n % 4 == 0)
            flooder.frames(FRAMES // ROUNDS)
            flooder.datagrams(DATAGRAMS // ROUNDS, [server.handle.node_id])
            sent["alice"].append(alice.post(f"alice {n}"))
            sent["bob"].append(bob.post(f"bob {n}"))
            if n % 10 == 0:
                sent["alice"].append(alice.post(f"alice to bob {n}", to="bob"))
            for live in (server, alice, bob):
                live.pump()
        flood_took = time.monotonic() - started
        took = wait_for(
            [server, alice, bob],
            lambda: set(sent["alice"]) <= alice.accepted() and set(sent["bob"]) <= bob.accepted()
            and sum(bob.incoming().values()) >= len(sent["alice"])
            and sum(alice.incoming().values()) >= len(sent["bob"]),
            "every honest post accepted and delivered",
        )
        # Still serving after the flood: a newcomer gets the room's history, live posts flow.
        carol = client("carol")
        wait_for([carol], carol.connected, "carol connected")
        last = alice.post("after the flood")
        wait_for([alice, bob, carol],
                 lambda: bob.incoming()["after the flood"] and carol.incoming()["after the flood"],
                 "a post after the flood")
        wait_for([alice], lambda: last in alice.accepted(), "the last post accepted")
    finally:
        flooder.close()
    expected_bob = Counter([f"alice {n}" for n in range(ROUNDS)]
                           + [f"alice to bob {n}" for n in range(0, ROUNDS, 10)]
                           + ["after the flood"])
    assert bob.incoming() == expected_bob  # every one, exactly once
    assert alice.incoming() == Counter(f"bob {n}" for n in range(ROUNDS))
    room = [f"alice {n}" for n in range(ROUNDS)] + [f"bob {n}" for n in range(ROUNDS)]
    assert set(carol.incoming()) == {*room, "after the flood"}
    assert max(carol.incoming().values()) == 1
    assert flooder.frames_sent == FRAMES and flooder.datagrams_sent == DATAGRAMS
    assert flooder.replies > 0  # the server read the garbage and answered some with ERROR
    # ... and cut every flooding session off: each sent far more than BAD_BURST bad
    # commands, and what came after went unanswered.
    stats = dict(server.actor.core.stats)
    assert stats["cut_off"] == ROUNDS // 2 and stats["ignored"] > 0, stats
    print(
        f"repeater: {FRAMES} garbage frame lists + {DATAGRAMS} datagrams in {flood_took:.2f} s "
        f"({FRAMES / flood_took:,.0f} frame lists/s), {flooder.replies} ERROR replies; "
        f"the honest traffic settled {took:.2f} s later; garbage posts shown to bob: "
        f"{bob.injected()}"
    )


# -- the broadcast node -----------------------------------------------------------------------


def broadcast_pair(nodes: list, tmp_path, beacon_port: int) -> tuple[Live, Live, int]:
    """alice and bob, broadcast nodes on lo that see each other, and their beacon port."""

    def node(user: str) -> Live:
        config = NodeConfig(user=user, db_path=tmp_path / f"{user}.db", address="127.0.0.1",
                            port=0, interfaces=("lo",), beacon_port=beacon_port,
                            beacon_interval=0.2)
        live = Live(BroadcastActor(config))
        nodes.append(live)
        return live

    alice, bob = node("alice"), node("bob")
    wait_for([alice, bob], lambda: alice.connected("1 peer") and bob.connected("1 peer"),
             "alice and bob see each other")
    return alice, bob, beacon_port


def test_a_broadcast_actor_flooded_with_garbage_delivers_every_honest_message_once(
    nodes, tmp_path, beacon_port
):
    alice, bob, beacon_port = broadcast_pair(nodes, tmp_path, beacon_port)
    ids = [alice.handle.node_id, bob.handle.node_id]
    flooder = Flooder(alice.actor.router_port, beacon_port, seed=94)
    sent = {"alice": [], "bob": []}
    started = time.monotonic()
    try:
        for n in range(ROUNDS):
            # Half the near-valid frames claim to come from bob.
            flooder.new_session(hello=False)
            flooder.frames(FRAMES // ROUNDS, node=bob.handle.node_id)
            flooder.datagrams(DATAGRAMS // ROUNDS, ids)
            sent["alice"].append(alice.post(f"alice {n}"))
            sent["bob"].append(bob.post(f"bob {n}"))
            if n % 10 == 0:
                sent["bob"].append(bob.post(f"bob to alice {n}", to="alice"))
            for live in (alice, bob):
                live.pump()
        flood_took = time.monotonic() - started
        took = wait_for(
            [alice, bob],
            lambda: set(sent["alice"]) <= alice.accepted() and set(sent["bob"]) <= bob.accepted()
            and sum(bob.incoming().values()) >= len(sent["alice"])
            and sum(alice.incoming().values()) >= len(sent["bob"]),
            "every honest post accepted and delivered",
        )
        # Still serving after the flood: one more each way.
        alice.post("alice after")
        bob.post("bob after")
        wait_for([alice, bob],
                 lambda: bob.incoming()["alice after"] and alice.incoming()["bob after"],
                 "a post each way after the flood")
    finally:
        flooder.close()
    assert alice.incoming() == Counter(
        [f"bob {n}" for n in range(ROUNDS)]
        + [f"bob to alice {n}" for n in range(0, ROUNDS, 10)] + ["bob after"]
    )  # every one, exactly once
    assert bob.incoming() == Counter([f"alice {n}" for n in range(ROUNDS)] + ["alice after"])
    # The flood's well-formed beacons under alice's and bob's ids (LEAVE among them, from
    # ports where nothing listens) can part the two for a moment on a loaded box - plain
    # mode cannot tell an impostor's beacon from a peer's - but the real beacons bring
    # each back to the other.
    wait_for([alice, bob],
             lambda: alice.connected("1 peer: bob") and bob.connected("1 peer: alice"),
             "alice and bob see each other again after the flood")
    assert flooder.frames_sent == FRAMES and flooder.datagrams_sent == DATAGRAMS
    print(
        f"broadcast: {FRAMES} garbage frame lists + {DATAGRAMS} datagrams in {flood_took:.2f} s "
        f"({FRAMES / flood_took:,.0f} frame lists/s); the honest traffic settled {took:.2f} s "
        f"later; relayed garbage messages shown: {alice.injected()}"
    )


def test_a_flood_of_fresh_node_ids_does_not_kill_a_broadcast_actor(nodes, tmp_path, beacon_port):
    alice, bob, beacon_port = broadcast_pair(nodes, tmp_path, beacon_port)
    rng = random.Random(95)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind(("127.0.0.1", 0))
        # One source, within BeaconSocket's burst of 400 - and far more than enough. In
        # rounds of 50 (fewer than a receive call takes, and than the kernel buffer holds),
        # each followed by a SCAN round trip: alice has read a round when she answers.
        for _ in range(8):
            for _ in range(50):
                beacon = Beacon(kind=BeaconKind.ANNOUNCE, node_id=rng.randbytes(16).hex(),
                                mode="broadcast", router_port=1, pub_port=2, user="mallory")
                sock.sendto(beacon.encode(), ("127.255.255.255", beacon_port))
            asked = len(alice.of(PipeKind.SCAN_RESULT))
            alice.handle.request(PipeKind.SCAN)
            wait_for([alice], lambda n=asked: len(alice.of(PipeKind.SCAN_RESULT)) > n, "a scan",
                     timeout=5.0)
    alice.post("still here")
    wait_for([alice, bob], lambda: bob.incoming()["still here"] == 1, "a post after the flood",
             timeout=5.0)
    # 400 fresh ids from one address, over about a second: a burst and a trickle got in.
    listed = alice.of(PipeKind.SCAN_RESULT)[-1]["beacons"]
    assert 1 < sum(1 for b in listed if b["user"] == "mallory") <= NEWCOMER_BURST + 10
