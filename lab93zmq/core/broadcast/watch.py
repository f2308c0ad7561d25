"""Who is out there, for a broadcast node: beacons in, the live table, probes. Pure.

``PeerWatch`` keeps the peer table (``presence.Discovery``: the broadcast
peers and repeaters we hear) and a table of the broadcast nodes we will not
link to (secure vs plain, a key we do not trust: ``/scan`` still lists them).
It turns what the table reports into ``PeerHeard`` / ``Departed`` changes for
the facade to act on, and says what the user should hear about nodes we
refuse and handshakes that fail - each once (``SayOnce``), and at most a few
a second per source address, so a forger inventing node ids gets no flood of
notices.

Liveness: a peer is dropped on BYE or LEAVING, after ``expiry_intervals``
silent intervals, or - when our connection to it dropped (``link_down``) -
when no beacon from it follows within 1.5 intervals; a PROBE (at most one per
interval / 10) asks live peers to answer at once.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..events import Notice
from ..limits import RateLimiter
from ..notices import SayOnce
from ..presence import (
    Beacon,
    BeaconKind,
    Discovery,
    OldBeacon,
    Peer,
    PeerChanged,
    PeerJoined,
    PeerLeft,
    PeerTable,
    PresenceEvent,
    peer_json,
)
from .actions import MODE, Output, SendBeacon
from .trust import Refusal

log = logging.getLogger(__name__)

NOTICE_BURST = 10  # notices about nodes we refuse, from everyone at once (then 1 an interval)



@dataclass(frozen=True)
class PeerHeard:
    """A broadcast peer (or a repeater) is in the table: link to it."""

    peer: Peer
    verb: str  # for the notice: "joined", "rejoined"


@dataclass(frozen=True)
class Departed:
    """A peer left the table: unlink it, and tell the user ``why`` (after its name)."""

    peer: Peer
    why: str | None  # "left", "is gone (silent for 5 s)"; None: say nothing


WatchChange = PeerHeard | Departed


class PeerWatch:
    """The live table, our beacon, and what to say about who is out there."""

    def __init__(self, announce: Beacon, interval: float, now: float, expiry_intervals: int,
                 stats: Counter[str]) -> None:
        self.node_id = announce.node_id
        self.discovery = Discovery(self.node_id, interval, now, announce, expiry_intervals)
        self.peers = self.discovery.table
        self.others = PeerTable(self.node_id, interval, expiry_intervals)
        self.stats = stats
        self._told = SayOnce()  # refused nodes, refused moves, handshake problems
        self._notices = RateLimiter(rate=1.0 / interval, burst=5)  # per source address
        # ... and from all addresses together, so forged ones cost few lines in total.
        self._all_notices = RateLimiter(rate=1.0 / interval, burst=NOTICE_BURST)
        self._probed: float | None = None  # when the last PROBE went out

    # -- beacons -------------------------------------------------------------------

    def decode(self, data: bytes, address: str) -> Beacon | OldBeacon | None:
        """One datagram from the beacon port (``Discovery.read``); None (counted) when it
        is not a beacon."""
        beacon = self.discovery.read(data, address)
        if beacon is None:
            self.stats["bad_beacons"] += 1
        return beacon

    def old(self, beacon: OldBeacon, address: str, now: float) -> list[Output]:
        """An older version's node: it can never talk with us (nor we with it); its user
        is told once, naming both versions (``OldBeacon.sentence``)."""
        self.stats["old_beacons"] += 1
        if beacon.kind != BeaconKind.ANNOUNCE:
            return []
        return self._say_once(("version", beacon.node_id), address, beacon.sentence(address), now)

    def of_a_peer(self, beacon: Beacon) -> bool:
        """A broadcast node's ANNOUNCE or LEAVING, not our own: a candidate chat peer."""
        return (beacon.kind is not BeaconKind.PROBE and beacon.mode == MODE
                and beacon.node_id != self.node_id)  # we hear our own broadcasts

    def take(self, beacon: Beacon, address: str, now: float) -> list[WatchChange]:
        """A beacon for the peer table: what changed."""
        return self._changes(self.discovery.take(beacon, address, now))

    def refuse(self, beacon: Beacon, address: str, refusal: Refusal, now: float) -> list[Output]:
        """A node we will not link to: listed by /scan only, and named once. A forgery
        (``Refusal.tell`` False) is neither listed nor named: logged at debug level."""
        self.stats["ignored_beacons"] += 1
        if not refusal.tell:
            log.debug("%s", refusal.text)
            return []
        self.others.on_beacon(beacon, address, now)
        if beacon.kind is not BeaconKind.ANNOUNCE:
            return []
        return self._say_once((beacon.node_id, refusal.reason), address, refusal.text, now)

    def doubt(self, leaving: Beacon, name: str, now: float) -> list[Output] | None:
        """A LEAVING from ``name`` we take only as doubt: gone unless it shows life within
        the link grace. None when it is not in the table."""
        if not self.peers.doubt(leaving.node_id, now, "unconfirmed"):
            return None
        self.stats["leavings_doubted"] += 1
        log.info("%s says LEAVING; gone unless it shows life within %g s",
                 name, self.peers.link_grace)
        return self._probe(now)

    def refuse_move(self, beacon: Beacon, name: str, now: float) -> None:
        """A beacon that would move ``name``, a connected peer, is dropped (logged once)."""
        self.stats["moves_refused"] += 1
        if self._told.due(("moved", beacon.node_id), now):
            log.warning("refused a beacon moving %s (%s) to ports %d/%d: it is connected "
                        "where it is", name, beacon.node_id[:8], beacon.router_port,
                        beacon.pub_port)

    def beacon(self, now: float) -> list[Output]:
        """Our ANNOUNCE, when it is due now."""
        due = self.discovery.beacon_due(now)
        return [SendBeacon(due)] if due is not None else []

    def leaving(self) -> SendBeacon:
        """Our LEAVING (same ports as our ANNOUNCE), for a clean exit."""
        assert self.discovery.announce is not None
        return SendBeacon(self.discovery.announce.leaving().encode())

    # -- signs of life ------------------------------------------------------------------

    def expire(self, now: float) -> list[WatchChange]:
        return self._changes(list(self.peers.expire(now)))

    def traffic(self, node_id: str, now: float) -> None:
        self.peers.on_traffic(node_id, now)

    def link_up(self, node_id: str) -> None:
        """Our connection to it is (back) up, or it showed life: no longer in doubt."""
        self.peers.on_link_up(node_id)

    def link_down(self, node_id: str, now: float) -> list[Output]:
        """Our connection to a linked peer dropped: gone unless it beacons within the link
        grace; a PROBE asks it to, at once."""
        if not self.peers.on_link_down(node_id, now):
            return []
        self.stats["links_dropped"] += 1
        return self._probe(now)

    def bye(self, node_id: str) -> list[WatchChange]:
        """It said goodbye over its connection: gone now."""
        left = self.peers.remove(node_id, "bye")
        return [Departed(left.peer, "left")] if left is not None else []

    def handshake_failed(
        self, node_id: str | None, peer: Peer | None, problem: str, now: float
    ) -> list[Output]:
        """A handshake failed with ``peer`` (our link to ``node_id``, None when not linked)
        or, ``node_id`` None, with someone connecting to us. Each distinct problem is
        told once per peer, and again only after ``notices.QUIET`` seconds: a peer retries
        every fraction of a second."""
        self.stats["handshakes_failed"] += 1
        if node_id is not None and peer is None:
            return []  # a peer we let go meanwhile
        if not self._told.due((node_id, problem), now):
            return []
        text = f"{peer.user}'s node at {peer.address}: {problem}" if peer else problem
        log.info("%s", text)  # the user hears it as a notice
        return [Notice(text)]

    # -- the front end's questions -----------------------------------------------------

    def scan(self, now: float, wall: datetime) -> list[dict[str, Any]]:
        """Every live instance heard (nodes and repeaters, also the broadcast nodes we
        do not chat with), as ``--scan --json``. These are the tables as they stand
        (every instance beacons each interval); no probe is sent. ``wall`` is the UTC
        time matching ``now``."""
        self.others.expire(now)
        heard = {peer.node_id: peer for peer in self.others.live()}
        heard.update((peer.node_id, peer) for peer in self.peers.live())
        listed = sorted(heard.values(), key=lambda p: (p.user, p.node_id))
        return [peer_json(peer, now, wall) for peer in listed]

    def next_deadline(self) -> float | None:
        return self.discovery.next_deadline()

    def _changes(self, events: Sequence[PresenceEvent]) -> list[WatchChange]:
        changes: list[WatchChange] = []
        for event in events:
            if isinstance(event, PeerJoined):
                changes.append(PeerHeard(event.peer, "joined"))
            elif isinstance(event, PeerChanged):
                changes += [Departed(event.previous, None), PeerHeard(event.peer, "rejoined")]
            elif isinstance(event, PeerLeft):
                changes.append(Departed(event.peer, self._why(event)))
        return changes

    def _why(self, left: PeerLeft) -> str:
        if left.reason == "lost":
            return f"is gone (connection lost, no beacon for {self.peers.link_grace:g} s)"
        if left.reason == "expired":
            return f"is gone (silent for {self.peers.timeout:g} s)"
        return "left"  # it said so (LEAVING, BYE), and nothing said otherwise

    def _probe(self, now: float) -> list[Output]:
        if self._probed is not None and now < self._probed + self.discovery.schedule.answer_gap:
            return []  # one probe answers for every link that dropped meanwhile
        self._probed = now
        return [SendBeacon(Beacon.probe(self.node_id).encode())]

    def _say_once(self, key: Hashable, address: str, text: str, now: float) -> list[Output]:
        if not self._told.due(key, now):
            return []
        if not (self._notices.allow(address, now) and self._all_notices.allow("*", now)):
            # One line per datagram would let a forger fill the log: debug level only.
            log.debug("%s (no notice: too many from %s)", text, address)
            return []
        log.info("%s", text)  # the user hears it as a notice; the log need not repeat it
        return [Notice(text)]
