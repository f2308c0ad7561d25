"""Secure broadcast against forged beacons, live on loopback (issue 16).

A keyless outsider can send any UDP datagram from any address of 127.0.0.0/8:
here it replays a real node's beacon from another address at 200 a second,
and floods beacons carrying an authorized key with invented node ids from 40
addresses. Every node binds 127.0.0.1 only, so nothing answers at the forged
addresses. Waits end as soon as their condition holds.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest
from broadcast_live import INTERVAL, announce_of, beacon_to
from live import wait_for

from lab93zmq.io.actor import PipeKind

pytestmark = pytest.mark.timeout(90)


class Forger:
    """A thread replaying ``beacon`` to ``port`` from ``source`` at ``rate`` a second."""

    def __init__(self, port: int, beacon, source: str, rate: float) -> None:
        self.data = beacon
        self.port, self.source, self.rate = port, source, rate
        self.sent = 0
        self._sent = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Forger:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        # Ten at a time every 10 / rate seconds: the rate holds whatever the scheduler does.
        while not self._stop.wait(10.0 / self.rate):  # bounded: __exit__ sets it
            for _ in range(10):
                beacon_to(self.port, self.data, self.source)
            with self._sent:
                self.sent += 10
                self._sent.notify_all()

    def wait_sent(self, count: int) -> None:
        """Until ``count`` more went out (it is racing when bob starts)."""
        with self._sent:
            target = self.sent + count
            assert self._sent.wait_for(lambda: self.sent >= target, 10), "it is not sending"


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_forged_beacon_race_at_200_a_second_never_wins(room):
    alice = room.start("alice", "bob")
    alice_id = alice.handle.node_id
    forged = announce_of(alice)  # her node id, key, ports and name, from another address
    with Forger(room.beacon_port, forged, "127.0.0.2", 200.0) as forger:
        for attempt in range(3):  # bob (re)starts three times while the forger runs
            forger.wait_sent(100)
            bob = room.start("bob", "alice")
            wait_for([alice, bob], lambda bob=bob: bob.connected_to(1) and alice.connected_to(1),
                     f"bob linked to alice, try {attempt + 1}")
            for n in range(10):
                alice.post(f"{attempt}: {n}")
            wait_for([alice, bob], lambda bob=bob: len(bob.incoming()) == 10)
            assert bob.incoming() == [f"{attempt}: {n}" for n in range(10)]
            assert bob.node.session.peers.get(alice_id).address == "127.0.0.1"
            assert [n for n in bob.notices() if "joined" in n] == [
                "alice joined from 127.0.0.1"]
            bob.stop()
            room.nodes.remove(bob)
        assert forger.sent >= 300  # it raced all along


def test_forged_beacons_with_an_authorized_key_cost_no_descriptors(room, caplog):
    alice = room.start("alice", "bob")
    bob = room.start("bob", "alice")
    wait_for([alice, bob], lambda: bob.connected_to(1) and alice.connected_to(1))
    before = open_descriptors()
    caplog.set_level(logging.INFO, logger="lab93zmq")
    logged = len(caplog.records)
    # 2,000 beacons in alice's key and name with invented node ids, from 40 addresses,
    # in bursts a UDP receive buffer holds (a datagram the kernel drops tests nothing).
    for burst in range(20):
        for n in range(100):
            beacon = announce_of(alice, node_id=os.urandom(16).hex())
            beacon_to(room.beacon_port, beacon, f"127.0.0.{10 + n % 40}")
        sent = 100 * (burst + 1)
        wait_for([alice, bob], lambda sent=sent: bob.node.stats["ignored_beacons"] >= 0.9 * sent,
                 "the forged beacons read and refused")
    alice.post("still here")
    wait_for([alice, bob], lambda: bob.incoming() == ["still here"])
    assert open_descriptors() <= before + 4  # nothing was opened for them
    assert len(caplog.records) - logged < 20  # nor a line logged for each
    assert [n for n in bob.notices() if "joined" in n] == ["alice joined from 127.0.0.1"]
    assert bob.request(PipeKind.WHO, PipeKind.WHO_RESULT)["users"] == ["alice", "bob"]
    bob.post("and me")
    wait_for([alice, bob], lambda: alice.incoming() == ["and me"])
    settled = time.monotonic()
    wait_for([alice, bob], lambda: bob.heard_since(alice.handle.node_id, settled + INTERVAL))
    assert bob.connected_to(1)
