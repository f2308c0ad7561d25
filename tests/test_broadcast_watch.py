"""Who is out there, for a broadcast node (core/broadcast/watch.py): beacons, liveness, notices."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

from factories import NODE_A, NODE_B

from lab93zmq.core.broadcast.trust import Refusal
from lab93zmq.core.broadcast.watch import Departed, PeerHeard, PeerWatch
from lab93zmq.core.events import Notice
from lab93zmq.core.notices import QUIET
from lab93zmq.core.presence import Beacon, BeaconKind

OURS = "0" * 32
INTERVAL = 1.0


def watch() -> PeerWatch:
    announce = Beacon(BeaconKind.ANNOUNCE, OURS, "broadcast", 5000, 6000, "alice")
    return PeerWatch(announce, INTERVAL, 0.0, 5, Counter())


def beacon(node_id: str = NODE_B, kind: BeaconKind = BeaconKind.ANNOUNCE, **changes) -> Beacon:
    fields = dict(mode="broadcast", router_port=5001, pub_port=6001, user="bob")
    fields.update(changes)
    return Beacon(kind, node_id, **fields)


def test_garbage_is_counted_and_our_own_beacons_and_probes_are_no_peers():
    w = watch()
    assert w.decode(b"L93B" + bytes(40), "198.18.93.9") is None
    assert w.stats["bad_beacons"] == 1
    assert w.of_a_peer(beacon())
    assert not w.of_a_peer(beacon(OURS))
    assert not w.of_a_peer(Beacon.probe(NODE_B))
    assert not w.of_a_peer(beacon(mode="repeater"))


def test_what_changes_in_the_table_comes_out_as_arrivals_and_departures():
    w = watch()
    [joined] = w.take(beacon(), "198.18.93.2", 0.0)
    assert joined == PeerHeard(w.peers.get(NODE_B), "joined")
    assert w.take(beacon(), "198.18.93.2", 0.5) == []
    departed, rejoined = w.take(beacon(router_port=7000), "198.18.93.2", 0.6)  # restarted
    assert departed.why is None and departed.peer.router_port == 5001
    assert rejoined.verb == "rejoined" and rejoined.peer.router_port == 7000
    [left] = w.take(beacon(kind=BeaconKind.LEAVING, router_port=7000), "198.18.93.2", 0.7)
    assert left == Departed(rejoined.peer, "left")
    w.take(beacon(NODE_A), "198.18.93.1", 1.0)
    [bye] = w.bye(NODE_A)
    assert bye.why == "left" and w.bye(NODE_A) == []


def test_silence_and_lost_links_expire_with_their_reasons():
    w = watch()
    w.take(beacon(), "198.18.93.2", 0.0)
    w.take(beacon(NODE_A), "198.18.93.1", 0.0)
    probe = w.link_down(NODE_A, 1.0)
    assert Beacon.decode(probe[0].data).kind is BeaconKind.PROBE
    assert w.link_down(NODE_A, 1.0) == []  # one probe answers for every drop meanwhile
    assert w.stats["links_dropped"] == 2
    assert [d.why for d in w.expire(2.5)] == ["is gone (connection lost, no beacon for 1.5 s)"]
    assert [d.why for d in w.expire(5.0)] == ["is gone (silent for 5 s)"]
    assert w.link_down(NODE_B, 6.0) == []  # not a peer (any more)


def test_a_leaving_taken_as_doubt_is_left_unless_life_shows():
    w = watch()
    w.take(beacon(), "198.18.93.2", 0.0)
    leaving = beacon(kind=BeaconKind.LEAVING)
    assert Beacon.decode(w.doubt(leaving, "bob", 1.0)[0].data).kind is BeaconKind.PROBE
    assert w.stats["leavings_doubted"] == 1
    w.link_up(NODE_B)  # life: the LEAVING was forged
    assert w.expire(3.0) == []
    w.doubt(leaving, "bob", 3.0)
    assert [d.why for d in w.expire(4.5)] == ["left"]
    assert w.doubt(leaving, "bob", 5.0) is None  # gone: nothing to doubt


def test_a_refused_node_is_named_once_per_reason_and_listed_by_scan():
    w = watch()
    refusal = Refusal("plain", "bob's node runs without --secure")
    assert w.refuse(beacon(), "198.18.93.2", refusal, 0.0) == [Notice(refusal.text)]
    assert w.refuse(beacon(), "198.18.93.2", refusal, 1.0) == []
    assert w.refuse(beacon(), "198.18.93.2", Refusal("other", "x"), 1.0) == [Notice("x")]
    assert w.refuse(beacon(), "198.18.93.2", refusal, QUIET) == [Notice(refusal.text)]
    assert w.refuse(beacon(NODE_A, BeaconKind.LEAVING), "198.18.93.1", refusal, 0.0) == []
    assert w.stats["ignored_beacons"] == 5
    wall = datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert [(b["user"], b["node"]) for b in w.scan(QUIET, wall)] == [("bob", NODE_B)]
    assert w.peers.get(NODE_B) is None  # not a peer: listed, never linked


def test_a_forger_inventing_node_ids_gets_a_few_notices_not_a_flood():
    w = watch()
    told = []
    for n in range(50):
        node_id = f"{n + 1:032x}"
        told += w.refuse(beacon(node_id), "198.18.93.66", Refusal("plain", node_id), 0.0)
    assert len(told) == 5  # the burst per address; the rest is logged only


def test_a_handshake_problem_is_told_once_per_peer_and_problem_and_named():
    w = watch()
    w.take(beacon(), "198.18.93.2", 0.0)
    bob = w.peers.get(NODE_B)
    assert w.handshake_failed(NODE_B, bob, "no key", 0.0) == [
        Notice("bob's node at 198.18.93.2: no key")
    ]
    assert w.handshake_failed(NODE_B, bob, "no key", 1.0) == []
    assert w.handshake_failed(None, None, "no key", 1.0) == [Notice("no key")]
    assert w.handshake_failed(NODE_A, None, "no key", 1.0) == []  # not linked (any more)
    assert w.stats["handshakes_failed"] == 4


def test_our_beacon_is_due_at_once_then_each_interval_and_leaving_matches_it():
    w = watch()
    [first] = w.beacon(0.0)
    assert Beacon.decode(first.data).kind is BeaconKind.ANNOUNCE
    assert w.beacon(0.5) == [] and w.beacon(1.0) != []
    leaving = Beacon.decode(w.leaving().data)
    assert (leaving.kind, leaving.router_port, leaving.pub_port) == (BeaconKind.LEAVING, 5000, 6000)
