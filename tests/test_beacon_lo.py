"""Real UDP beacons, on loopback only (127.255.255.255), a fresh port per test."""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from datetime import datetime

import pytest
import zmq

from lab93zmq.core.limits import RateLimiter
from lab93zmq.core.presence import (
    Beacon,
    BeaconError,
    BeaconKind,
    PeerJoined,
    PeerTable,
    wants_answer,
)
from lab93zmq.io.beacon import MAX_DRAIN, RECV_SIZE, BeaconSocket, BeaconSocketError
from lab93zmq.io.interfaces import BeaconTarget
from lab93zmq.io.scan import scan

pytestmark = pytest.mark.timeout(30)

LO = BeaconTarget("lo", "127.0.0.1", "127.255.255.255")
ALICE = "a1" * 16
BOB = "b0" * 16
CAROL = "c4" * 16
WAIT = 5.0  # generous upper bound; every wait ends as soon as its event happens


@pytest.fixture
def port(beacon_port) -> int:
    """The test's own beacon port (held by conftest's ``beacon_port``)."""
    return beacon_port


def announce(node: str, user: str, router: int = 5190, pub: int = 40000) -> Beacon:
    return Beacon(BeaconKind.ANNOUNCE, node, "broadcast", router, pub, user)


def receive_until(beacons: BeaconSocket, done, timeout: float = WAIT) -> list[tuple[bytes, str]]:
    """Collect datagrams until ``done(collected)`` is true; fail at the timeout."""
    collected: list[tuple[bytes, str]] = []
    deadline = time.monotonic() + timeout
    while not done(collected):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; got {collected!r}"
        readable, _, _ = select.select(beacons.filenos(), [], [], remaining)
        for fd in readable:
            collected.extend(beacons.receive(fd))
    return collected


def has(data: bytes):
    return lambda collected: any(d == data for d, _ in collected)


def raw_broadcast(port: int, *datagrams: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind(("127.0.0.1", 0))
        for data in datagrams:
            sock.sendto(data, ("127.255.255.255", port))


def test_two_sockets_on_one_port_hear_each_other_through_a_zmq_poller(port):
    with BeaconSocket([LO], port) as a, BeaconSocket([LO], port) as b:
        poller = zmq.Poller()
        owner = {}
        for name, beacons in (("a", a), ("b", b)):
            for fd in beacons.filenos():
                poller.register(fd, zmq.POLLIN)
                owner[fd] = (name, beacons)
        from_a = announce(ALICE, "alice").encode()
        from_b = announce(BOB, "bob").encode()
        assert a.send(from_a) == 1 and b.send(from_b) == 1
        heard: dict[str, set[bytes]] = {"a": set(), "b": set()}
        sources = set()
        deadline = time.monotonic() + WAIT
        while any(len(got) < 2 for got in heard.values()):
            assert time.monotonic() < deadline, heard
            for fd, _event in poller.poll(timeout=100):
                name, beacons = owner[fd]
                for data, source in beacons.receive(fd):
                    heard[name].add(data)
                    sources.add(source)
        # Both hear both, their own beacon included (the peer table ignores it).
        assert heard == {"a": {from_a, from_b}, "b": {from_a, from_b}}
        assert sources == {"127.0.0.1"}


def test_two_nodes_discover_each_other_at_once(port):
    """A newcomer's first beacon is answered at once, well within one interval."""
    start = time.monotonic()
    with BeaconSocket([LO], port) as a, BeaconSocket([LO], port) as b:
        table_a, table_b = PeerTable(ALICE, 1.0), PeerTable(BOB, 1.0)
        a.send(announce(ALICE, "alice").encode())  # A was already running
        b.send(announce(BOB, "bob").encode())  # B starts and beacons at once

        def feed(beacons, table, other):
            got = receive_until(beacons, lambda c: any(d == other for d, _ in c))
            events = []
            for data, source in got:
                events += table.on_beacon(Beacon.decode(data), source, time.monotonic())
            return events

        events_a = feed(a, table_a, announce(BOB, "bob").encode())
        assert any(isinstance(e, PeerJoined) and e.peer.user == "bob" for e in events_a)
        assert wants_answer(events_a)
        a.send(announce(ALICE, "alice").encode())  # A answers the newcomer
        events_b = feed(b, table_b, announce(ALICE, "alice").encode())
        assert [p.user for p in table_b.live()] == ["alice"]
        assert table_b.get(ALICE).address == "127.0.0.1"
        assert wants_answer(events_b)
    assert time.monotonic() - start < 1.0


def test_garbage_is_received_raw_then_dropped_and_service_continues(port):
    valid = announce(ALICE, "alice").encode()
    garbage = [b"", b"ZRE\x01" + bytes(50), b"L93B\x01" + bytes(49), b"\xff" * 54, b"x" * 2000]
    with BeaconSocket([LO], port) as listener:
        raw_broadcast(port, *garbage, valid)
        got = receive_until(listener, has(valid))
        kept = []
        for data, _source in got:
            assert len(data) <= RECV_SIZE  # an oversized datagram arrives truncated
            try:
                kept.append(Beacon.decode(data))
            except BeaconError:
                pass
        assert kept == [announce(ALICE, "alice")]
        assert len(got) == len(garbage) + 1
        # Still serving after the garbage.
        again = announce(BOB, "bob").encode()
        raw_broadcast(port, again)
        receive_until(listener, has(again))


def test_listener_hears_only_broadcasts(port):
    marker = announce(ALICE, "alice").encode()
    with BeaconSocket([LO], port) as listener:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.sendto(b"unicast", ("127.0.0.1", port))
        raw_broadcast(port, marker)
        got = receive_until(listener, has(marker))
        assert [d for d, _ in got] == [marker]


def test_a_failed_send_is_logged_not_raised(port, caplog):
    with BeaconSocket([LO], port) as beacons, caplog.at_level(logging.DEBUG, "lab93zmq.io.beacon"):
        too_big = b"x" * 70000  # larger than any UDP datagram: EMSGSIZE
        assert beacons.send(too_big) == 0
        assert beacons.send(too_big) == 0
        assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.DEBUG]
        assert beacons.send(announce(ALICE, "alice").encode()) == 1


def test_a_port_that_cannot_be_shared_is_a_clear_error():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hog:
        hog.bind(("127.255.255.255", 0))  # no SO_REUSEADDR: exclusive
        port = hog.getsockname()[1]
        with pytest.raises(BeaconSocketError, match=rf"listen for beacons on lo .*:{port}"):
            BeaconSocket([LO], port)


def test_close_is_idempotent(port):
    beacons = BeaconSocket([LO], port)
    assert len(beacons.filenos()) == 1
    beacons.close()
    beacons.close()
    assert beacons.filenos() == []


class Responder(threading.Thread):
    """A tiny bounded stand-in node: answers each PROBE with these datagrams."""

    def __init__(self, port: int, answers: list[bytes]) -> None:
        super().__init__(daemon=True)
        self.beacons = BeaconSocket([LO], port)  # listening before the scan starts
        self.answers = answers
        self.stop = threading.Event()
        self.probes = 0

    def run(self) -> None:
        deadline = time.monotonic() + WAIT
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                readable, _, _ = select.select(self.beacons.filenos(), [], [], 0.05)
                for fd in readable:
                    for data, _source in self.beacons.receive(fd):
                        try:
                            beacon = Beacon.decode(data)
                        except BeaconError:
                            continue
                        if beacon.kind is BeaconKind.PROBE:
                            self.probes += 1
                            for answer in self.answers:
                                self.beacons.send(answer)
        finally:
            self.beacons.close()


def test_scan_lists_who_answers_its_probe(port):
    answers = [
        announce(CAROL, "carol").encode(),
        announce(BOB, "bob", pub=1).encode(),
        Beacon(BeaconKind.LEAVING, CAROL, "broadcast", 5190, 40000, "carol").encode(),
        announce(BOB, "bob", pub=2).encode(),  # the latest beacon wins
        Beacon(BeaconKind.ANNOUNCE, ALICE, "repeater", 5191, 40001, "alice").encode(),
        b"garbage",
    ]
    responder = Responder(port, answers)
    responder.start()
    try:
        started = time.monotonic()
        found = scan([LO], port, timeout=0.5, user="scanner")
        elapsed = time.monotonic() - started
    finally:
        responder.stop.set()
        responder.join(WAIT)
    assert responder.probes == 1
    assert 0.5 <= elapsed < 2.0
    assert [(s.node, s.user, s.mode, s.pub) for s in found] == [
        (ALICE, "alice", "repeater", 40001),
        (BOB, "bob", "broadcast", 2),
    ]
    for sighting in found:
        assert sighting.address == "127.0.0.1"
        assert isinstance(sighting.last_seen, datetime) and sighting.last_seen.tzinfo
        assert sighting.key is None  # neither runs --secure
    assert found[0].to_json() == {
        "node": ALICE,
        "user": "alice",
        "mode": "repeater",
        "address": "127.0.0.1",
        "router": 5191,
        "pub": 40001,
        "last_seen": found[0].last_seen.isoformat(timespec="microseconds"),
    }
    assert datetime.fromisoformat(found[0].to_json()["last_seen"]).utcoffset() is not None


def test_scan_with_nobody_there_returns_nothing_at_the_timeout(port):
    started = time.monotonic()
    assert scan([LO], port, timeout=0.2) == []
    assert 0.2 <= time.monotonic() - started < 1.5


def test_a_flood_from_one_socket_is_cut_off_and_honest_beacons_still_get_through(port, caplog):
    """5,000 datagrams from one source socket, 50 honest beacons from another on the same
    host: every honest one arrives, the flood is cut to its rate, one warning names it.

    Sent in rounds of 100 that fit the listener's kernel buffer, each drained before
    the next, so what is dropped is dropped by the rate limit, not by the kernel.
    """
    honest = announce(BOB, "bob").encode()
    rounds, per_round = 50, 100
    with BeaconSocket([LO], port) as listener, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flooder, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as node, \
            caplog.at_level(logging.INFO, "lab93zmq.io.beacon"):
        for sock in (flooder, node):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.bind(("127.0.0.1", 0))
        flood_port = flooder.getsockname()[1]
        got: list[bytes] = []
        started = time.monotonic()
        for n in range(rounds):
            for i in range(per_round):
                flooder.sendto(b"flood %d" % (n * per_round + i), ("127.255.255.255", port))
            node.sendto(honest, ("127.255.255.255", port))
            expected_reads = (n + 1) * (per_round + 1)
            deadline = time.monotonic() + WAIT
            while len(got) + listener.rate_limited < expected_reads:  # this round drained
                assert time.monotonic() < deadline, (len(got), listener.rate_limited)
                readable, _, _ = select.select(listener.filenos(), [], [], 0.1)
                for fd in readable:
                    got.extend(data for data, _source in listener.receive(fd))
        elapsed = time.monotonic() - started
    flood_kept = [d for d in got if d.startswith(b"flood")]
    assert got.count(honest) == rounds  # not one honest beacon lost
    assert len(flood_kept) + listener.rate_limited == rounds * per_round
    # The burst, then the rate: everything else from that socket was dropped unread.
    assert len(flood_kept) <= listener.limiter.burst + listener.limiter.rate * elapsed + 1
    assert listener.rate_limited > 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"127.0.0.1:{flood_port}" in warnings[0]
    print(
        f"flood: {rounds * per_round} datagrams in {elapsed * 1000:.0f} ms "
        f"({rounds * per_round / elapsed:,.0f}/s); kept {len(flood_kept)}, "
        f"dropped {listener.rate_limited}; honest {got.count(honest)}/{rounds}"
    )


def test_dropped_datagrams_do_not_use_up_a_receive_call(port):
    """A receive call keeps at most MAX_DRAIN datagrams, but reads past the ones the rate
    limit drops, so a flood is drained faster than it is kept. 200 datagrams fit the
    kernel buffer, so all are queued before the first call."""
    with BeaconSocket([LO], port, limiter=RateLimiter(rate=1, burst=10), clock=lambda: 0.0) \
            as limited, BeaconSocket([LO], port, limiter=RateLimiter(rate=1, burst=1000)) \
            as generous:
        raw_broadcast(port, *[b"datagram %d" % n for n in range(200)])
        [fd] = limited.filenos()
        kept = limited.receive(fd)
        assert [d for d, _ in kept] == [b"datagram %d" % n for n in range(10)]
        assert limited.rate_limited == 190  # all read in one call, the rest dropped
        assert limited.receive(fd) == []
        [fd] = generous.filenos()
        assert len(generous.receive(fd)) == MAX_DRAIN
        assert generous.rate_limited == 0


def test_update_opens_new_targets_closes_gone_ones_and_keeps_the_rest(port):
    lo = BeaconTarget("lo", "127.0.0.1", "127.255.255.255")
    with BeaconSocket([], port) as beacons:  # nothing usable yet: nothing open
        assert beacons.filenos() == [] and beacons.send(b"x") == 0
        added, removed = beacons.update([lo])
        assert added == beacons.filenos() and removed == []
        raw_broadcast(port, b"hello")
        assert has(b"hello")(receive_until(beacons, has(b"hello")))
        assert beacons.update([lo]) == ([], [])  # unchanged: the same sockets
        gone = beacons.filenos()
        assert beacons.update([]) == ([], gone) and beacons.filenos() == []
        assert beacons.receive(gone[0]) == []  # a descriptor closed since the poll
