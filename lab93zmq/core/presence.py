"""Discovery and presence, sans-IO: the live-peer table, the beacon schedule, and
``Discovery``, where beacons are read. Pure.

Nothing here touches a socket, a thread or a clock. The I/O edge
(``beacon.py``) hands over datagrams with their *source* address, and the
actor passes ``now`` (monotonic seconds) into every time-dependent call, so
expiry and rate limits are tested exactly. The datagram itself is
``beacons.py``'s (its names are here too, for the callers that know them
from here).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from .beacons import HEADER_SIZE as HEADER_SIZE
from .beacons import KEY_SIZE as KEY_SIZE
from .beacons import MAX_BEACON_SIZE as MAX_BEACON_SIZE
from .beacons import MODES as MODES
from .beacons import SERVICE_SIZE as SERVICE_SIZE
from .beacons import VERSION as VERSION
from .beacons import Beacon, BeaconError, BeaconKind, OldBeacon, OldVersion, scan_json
from .beacons import is_node_id as is_node_id
from .beacons import sighting as sighting
from .limits import RateLimiter

log = logging.getLogger(__name__)


def peer_json(peer: Peer, now: float, wall: datetime) -> dict[str, Any]:
    """A peer of the live table as ``scan_json``; ``wall`` is the UTC time matching ``now``."""
    announce = Beacon(
        BeaconKind.ANNOUNCE, peer.node_id, peer.mode, peer.router_port, peer.pub_port, peer.user,
        peer.key, peer.service,
    )
    seen = wall - timedelta(seconds=max(0.0, now - peer.last_seen))
    return scan_json(announce, peer.address, seen)


# -- the live-peer table ---------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """A live peer as this node knows it.

    ``address`` is where its beacons come from (``recvfrom``), never what a
    beacon claims. ``last_seen`` is monotonic seconds of the last sign of life
    (beacon or traffic); ``address_seen`` the last beacon from ``address``.
    """

    node_id: str
    user: str
    mode: str
    address: str
    router_port: int
    pub_port: int
    last_seen: float
    address_seen: float
    key: bytes = b""  # its CurveZMQ public key as its beacon says (secure mode), else empty
    service: str = ""  # a repeater's service id, when it is one of several (else empty)

    @property
    def endpoint(self) -> tuple[str, int, int]:
        """What the actor connects to; when it changes, reconnect."""
        return (self.address, self.router_port, self.pub_port)


@dataclass(frozen=True)
class PeerJoined:
    peer: Peer


@dataclass(frozen=True)
class PeerChanged:
    """A known peer now has another endpoint, name, mode or key (e.g. it restarted)."""

    peer: Peer
    previous: Peer


@dataclass(frozen=True)
class PeerLeft:
    peer: Peer
    # "leaving" (it said so), "bye" (it said so over its connection), "expired"
    # (silent too long), "lost" (its connection dropped and no beacon came within
    # the link grace) or "unconfirmed" (a LEAVING put it in doubt, see ``doubt``,
    # and no sign of life followed)
    reason: str


@dataclass(frozen=True)
class ProbeSeen:
    """Someone ran --scan; answer with a beacon soon. The prober is not a peer."""

    node_id: str
    address: str


PresenceEvent = PeerJoined | PeerChanged | PeerLeft | ProbeSeen


def wants_answer(events: Iterable[PresenceEvent]) -> bool:
    """True when these events call for an immediate beacon: a newcomer, a restart or a probe."""
    return any(isinstance(e, (PeerJoined, PeerChanged, ProbeSeen)) for e in events)


# After our connection to a peer drops, how long (in intervals) a beacon from it may take.
LINK_GRACE_INTERVALS = 1.5
# Every live peer costs its owner sockets (a broadcast node opens three per peer), so
# a table takes at most MAX_PEERS, and one address may introduce NEWCOMER_BURST new
# node ids at once, then one per NEWCOMER_INTERVALS intervals: a host runs a few
# nodes, not hundreds, and forged beacons with fresh ids cannot fill the table.
MAX_PEERS = 256
NEWCOMER_BURST = 8
NEWCOMER_INTERVALS = 1.0
# Secure mode: a (node id, address) whose handshake never completed is not tried again
# for BAR_INTERVALS intervals, twice as long after each further failure (at most
# MAX_BAR_INTERVALS); at most MAX_BARRED such pairs are remembered.
BAR_INTERVALS = 4.0
MAX_BAR_INTERVALS = 64.0
MAX_BARRED = 1024


class PeerTable:
    """Who is alive, fed with decoded beacons and signs of traffic, aged by ``now``.

    A peer is gone after ``expiry_intervals * interval`` seconds without a
    beacon or traffic, or at once when it sends LEAVING. When the owner
    reports that its connection to a peer dropped (``on_link_down``: a killed
    process's kernel closes its TCP connections at once), the peer is also
    gone if no beacon from it arrives within ``link_grace`` seconds (default
    1.5 intervals: a live peer's next periodic beacon is due at most one
    interval after the drop, and half an interval more absorbs scheduling
    jitter) - so a connection that only blipped does not drop a live peer;
    ``on_link_up`` (reconnected) clears the doubt too. A silent peer whose
    connections stay up (a partition) still takes the full ``timeout``.
    """

    def __init__(
        self,
        own_id: str,
        interval: float,
        expiry_intervals: int = 5,
        link_grace: float | None = None,
        max_peers: int = MAX_PEERS,
    ) -> None:
        if not is_node_id(own_id):
            raise ValueError("own_id must be 32 lowercase hex digits")
        if not interval > 0:
            raise ValueError("the beacon interval must be positive")
        if type(expiry_intervals) is not int or expiry_intervals < 1:
            raise ValueError("expiry_intervals must be a whole number from 1 up")
        self.own_id = own_id
        self.interval = float(interval)
        self.timeout = self.interval * expiry_intervals
        if link_grace is None:
            link_grace = LINK_GRACE_INTERVALS * self.interval
        self.link_grace = float(link_grace)
        if not 0 < self.link_grace <= self.timeout:
            raise ValueError("link_grace must be positive and at most the expiry timeout")
        self._peers: dict[str, Peer] = {}
        self.max_peers = max_peers
        self._newcomers = RateLimiter(1.0 / (NEWCOMER_INTERVALS * self.interval), NEWCOMER_BURST)
        self.refused = 0  # newcomers turned away (the table was full, or their address busy)
        # node id -> (gone at, unless it shows life first; the PeerLeft reason then)
        self._doubted: dict[str, tuple[float, str]] = {}
        # (node id, address) -> (ignored until, failures so far): see ``bar``
        self._barred: dict[tuple[str, str], tuple[float, int]] = {}
        self.barred_beacons = 0  # beacons ignored for a barred address

    def __len__(self) -> int:
        return len(self._peers)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._peers

    def get(self, node_id: str) -> Peer | None:
        """The live peer with this id, or None when it is not (or no longer) live."""
        return self._peers.get(node_id)

    def live(self) -> list[Peer]:
        """Every live peer, sorted by user name then node id (what /who and /scan show)."""
        return sorted(self._peers.values(), key=lambda p: (p.user, p.node_id))

    def on_beacon(self, beacon: Beacon, address: str, now: float) -> list[PresenceEvent]:
        """Take one decoded beacon that came from ``address``; return what changed."""
        if beacon.node_id == self.own_id:
            return []  # we hear our own broadcasts
        if beacon.kind is BeaconKind.PROBE:
            return [ProbeSeen(beacon.node_id, address)]
        known = self._peers.get(beacon.node_id)
        if beacon.kind is BeaconKind.LEAVING:
            # Only the instance on record may take itself away: a late LEAVING
            # from before a restart (other ports) must not drop the new one.
            if known is None or _ports(known) != (beacon.router_port, beacon.pub_port):
                return []
            self._drop(beacon.node_id)
            return [PeerLeft(known, "leaving")]
        if self._barred and self._is_barred(beacon.node_id, address, now):
            self.barred_beacons += 1
            return []
        if known is None and not self._welcome(address, now):
            return []
        self._doubted.pop(beacon.node_id, None)  # it beacons: alive, whatever its links do
        return self._announce(beacon, address, now, known)

    def _welcome(self, address: str, now: float) -> bool:
        """May a node id never seen before join from ``address``? (see MAX_PEERS)"""
        if len(self._peers) >= self.max_peers or not self._newcomers.allow(address, now):
            self.refused += 1
            return False
        return True

    def _announce(
        self, beacon: Beacon, address: str, now: float, known: Peer | None
    ) -> list[PresenceEvent]:
        fresh = Peer(
            node_id=beacon.node_id,
            user=beacon.user,
            mode=beacon.mode,
            address=address,
            router_port=beacon.router_port,
            pub_port=beacon.pub_port,
            last_seen=now,
            address_seen=now,
            key=beacon.key,
            service=beacon.service,
        )
        if known is None:
            self._peers[beacon.node_id] = fresh
            return [PeerJoined(fresh)]
        if address != known.address and _ports(known) == _ports(fresh):
            # Same instance heard on another of its interfaces. Keep the
            # address on record while it still beacons, so a multi-homed peer
            # does not flap between addresses; move when it has gone quiet.
            if now - known.address_seen < 2 * self.interval:
                self._peers[beacon.node_id] = replace(known, last_seen=max(known.last_seen, now))
                return []
        self._peers[beacon.node_id] = fresh
        if (known.endpoint, known.user, known.mode, known.key) == (
            fresh.endpoint,
            fresh.user,
            fresh.mode,
            fresh.key,
        ):
            return []
        return [PeerChanged(fresh, known)]

    def on_traffic(self, node_id: str, now: float) -> bool:
        """Any frame from a peer counts as life. False when the peer is not in the table."""
        known = self._peers.get(node_id)
        if known is None:
            return False
        if now > known.last_seen:
            self._peers[node_id] = replace(known, last_seen=now)
        return True

    def on_link_down(self, node_id: str, now: float) -> bool:
        """Our connection to this peer dropped: unless it beacons within ``link_grace``
        seconds (or the link comes back), it is gone. False when it is not in the table.

        Only the first drop counts until a beacon or ``on_link_up`` clears it,
        so a connection that keeps failing cannot postpone the verdict.
        """
        return self.doubt(node_id, now, "lost")

    def doubt(self, node_id: str, now: float, reason: str) -> bool:
        """Gone unless it shows life (a beacon, ``on_link_up``) within ``link_grace``;
        ``expire`` then reports it with ``reason``. False when it is not in the table.
        The first doubt counts until cleared, so repeating one cannot postpone it."""
        if node_id not in self._peers:
            return False
        self._doubted.setdefault(node_id, (now + self.link_grace, reason))
        return True

    def remove(self, node_id: str, reason: str) -> PeerLeft | None:
        """Drop a peer now (e.g. it said goodbye over its connection); None when unknown."""
        peer = self._peers.get(node_id)
        if peer is None:
            return None
        self._drop(node_id)
        return PeerLeft(peer, reason)

    def bar(self, node_id: str, address: str, now: float) -> PeerLeft | None:
        """Secure mode: no handshake ever completed with this peer at ``address`` (a forged
        beacon's, or one it cannot be reached at). Drop it, and ignore its beacons from
        that address for a while (longer after each failure), so beacons from another
        address - where it may really be - are heard. None when it was not in the table."""
        _, failures = self._barred.get((node_id, address), (0.0, 0))
        if len(self._barred) >= MAX_BARRED:
            self._barred = {pair: bar for pair, bar in self._barred.items() if bar[0] > now}
            while len(self._barred) >= MAX_BARRED:
                del self._barred[min(self._barred, key=lambda pair: self._barred[pair][0])]
        span = min(BAR_INTERVALS * 2 ** failures, MAX_BAR_INTERVALS) * self.interval
        self._barred[(node_id, address)] = (now + span, failures + 1)
        return self.remove(node_id, "unproven")

    def _is_barred(self, node_id: str, address: str, now: float) -> bool:
        bar = self._barred.get((node_id, address))
        return bar is not None and now < bar[0]

    def proven(self, node_id: str, address: str) -> None:
        """A handshake completed with it at ``address``: its failures there are forgotten."""
        self._barred.pop((node_id, address), None)

    def on_link_up(self, node_id: str) -> None:
        """Our connection to this peer is (back) up: forget a drop reported before."""
        self._doubted.pop(node_id, None)

    def expire(self, now: float) -> list[PeerLeft]:
        """Drop every peer silent for ``timeout`` seconds or more, or lost (see above)."""
        gone = []
        for peer in self._peers.values():
            doubted = self._doubted.get(peer.node_id)
            if now >= peer.last_seen + self.timeout:
                gone.append(PeerLeft(peer, "expired"))
            elif doubted is not None and now >= doubted[0]:
                gone.append(PeerLeft(peer, doubted[1]))
        gone.sort(key=lambda left: (left.peer.last_seen, left.peer.node_id))
        for left in gone:
            self._drop(left.peer.node_id)
        return gone

    def next_deadline(self) -> float | None:
        """When ``expire`` next has work to do; None with no peers."""
        if not self._peers:
            return None
        silent = min(p.last_seen for p in self._peers.values()) + self.timeout
        return min([silent, *(gone_at for gone_at, _ in self._doubted.values())])

    def _drop(self, node_id: str) -> None:
        del self._peers[node_id]
        self._doubted.pop(node_id, None)


def _ports(peer: Peer) -> tuple[int, int]:
    return (peer.router_port, peer.pub_port)


# -- when to beacon --------------------------------------------------------


class BeaconSchedule:
    """When the next beacon is due: every ``interval``, and at once for a newcomer or probe.

    A node beacons at once when it starts (the first beacon is due at
    ``now``). ``request_answer`` asks for an early beacon so a newcomer sees
    us in far less than one interval. Answers are rate-limited to one per
    ``answer_gap`` (default ``interval / 10``) counted from the last *answer*
    - the start-up and periodic beacons do not count - so a newcomer that
    starts just after us is answered at once, and a burst of newcomers or
    probes costs at most ten datagrams per interval (plus the periodic one).
    Any beacon sent restarts the periodic timer. Answering says nothing about
    anyone's liveness.
    """

    def __init__(self, interval: float, now: float, answer_gap: float | None = None) -> None:
        if not interval > 0:
            raise ValueError("the beacon interval must be positive")
        self.interval = float(interval)
        self.answer_gap = self.interval / 10 if answer_gap is None else float(answer_gap)
        if not 0 <= self.answer_gap <= self.interval:
            raise ValueError("answer_gap must be between 0 and the interval")
        self._periodic_due = now
        self._last_sent: float | None = None
        self._last_answer: float | None = None
        self._answer_wanted = False

    def request_answer(self) -> None:
        """A newcomer or a probe was seen: beacon as soon as the rate limit allows."""
        self._answer_wanted = True

    def next_deadline(self) -> float:
        """When the next beacon is due (monotonic seconds); use it as a poll timeout."""
        due = self._periodic_due
        if self._answer_wanted and self._last_sent is not None:
            # Before the first beacon nothing is earlier than the start-up one.
            # Otherwise answer now (the last beacon's time is past) unless an
            # answer went out less than answer_gap ago.
            earliest = self._last_sent
            if self._last_answer is not None:
                earliest = max(earliest, self._last_answer + self.answer_gap)
            due = min(due, earliest)
        return due

    def due(self, now: float) -> bool:
        """True when a beacon should go out now."""
        return now >= self.next_deadline()

    def sent(self, now: float) -> None:
        """Record that a beacon went out at ``now`` (an answer, if one was wanted)."""
        if self._answer_wanted:
            self._last_answer = now
        self._last_sent = now
        self._periodic_due = now + self.interval
        self._answer_wanted = False


# -- what a beaconing actor does with beacons -----------------------------------------


class Discovery:
    """The beacon work every actor shares, pure: the live table, and (for an actor
    that announces itself) when its beacon is due, early for a newcomer or probe.

    ``take`` puts one decoded beacon in the table; ``beacon_due`` is the datagram
    to send now, if one is due. What an actor does with the events is its own.
    """

    def __init__(
        self,
        own_id: str,
        interval: float,
        now: float,
        announce: Beacon | None = None,
        expiry_intervals: int = 5,
    ) -> None:
        self.table = PeerTable(own_id, interval, expiry_intervals)
        self.schedule = BeaconSchedule(interval, now)
        self.announce = announce

    def take(self, beacon: Beacon, address: str, now: float) -> list[PresenceEvent]:
        """One decoded beacon from ``address``: what changed in the table."""
        events = self.table.on_beacon(beacon, address, now)
        if self.announce is not None and wants_answer(events):
            self.schedule.request_answer()
        return events

    def hear(self, data: bytes, address: str, now: float) -> list[PresenceEvent]:
        """One datagram from ``address``, decoded (``read``) and taken: what changed (an
        older version's beacon changes nothing)."""
        beacon = self.read(data, address)
        return self.take(beacon, address, now) if isinstance(beacon, Beacon) else []

    @staticmethod
    def read(data: bytes, address: str) -> Beacon | OldBeacon | None:
        """One datagram from ``address`` as a beacon: the one place a beacon is decoded.
        An older version's is an ``OldBeacon``; one that is not a beacon is logged and
        dropped (None)."""
        try:
            return Beacon.decode(data)
        except OldVersion as old:
            return old.old
        except BeaconError as exc:
            log.debug("dropped a datagram from %s: %s", address, exc)
            return None

    def beacon_due(self, now: float) -> bytes | None:
        """Our ANNOUNCE, when it is due now (and then counted as sent), else None."""
        if self.announce is None or not self.schedule.due(now):
            return None
        self.schedule.sent(now)
        return self.announce.encode()

    def next_deadline(self) -> float | None:
        """When the table expires someone or our beacon is due; None with neither."""
        deadlines = [self.table.next_deadline()]
        if self.announce is not None:
            deadlines.append(self.schedule.next_deadline())
        return min([d for d in deadlines if d is not None], default=None)
