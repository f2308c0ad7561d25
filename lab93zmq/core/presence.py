"""Discovery and presence, sans-IO: the beacon codec, the live-peer table, the beacon schedule.

Pure: nothing here touches a socket, a thread or a clock. The I/O edge
(``beacon.py``) hands over datagrams with their *source* address, and the
actor passes ``now`` (monotonic seconds) into every time-dependent call, so
expiry and rate limits are tested exactly.

The beacon datagram (all integers big-endian; see docs/PROTOCOL.rst)::

    offset size  field
         0    4  magic        b"L93B" (never ZRE's b"ZRE", so no cross-talk with Zyre)
         4    1  version      2 (1 was 0.1's: the same layout, no rooms)
         5    1  kind         1 ANNOUNCE, 2 LEAVING, 3 PROBE
         6    1  mode         0 none (PROBE only), 1 broadcast, 2 repeater
         7   16  node id      16 raw bytes (32 lowercase hex digits elsewhere)
        23    2  router port  u16; 1..65535 in ANNOUNCE and LEAVING
        25    2  pub port     u16; 1..65535 in ANNOUNCE and LEAVING
        27    2  user length  u16, 0..256 (bytes)
        29    n  user         UTF-8; a valid user name (empty only in PROBE)
    29 + n   32  key          optional: the node's CurveZMQ public key (secure mode)
    last     16  service      optional: the service id of a repeater sharing its store

The datagram is ``29 + n`` bytes, ``+ 32`` (secure), ``+ 16`` (a server of a
service) or ``+ 48`` (both); anything else is a ``BeaconError``. The key is a claim, not a
proof: a node trusts it only when it is in its authorized keys, and then only
a peer holding the matching secret key can complete the CURVE handshake.

A node of another version cannot talk with this one (its frames carry another
signature): a version 1 beacon, whose layout is the same, is read as an
``OldBeacon`` so its node can be told once, by name, to upgrade.
"""

from __future__ import annotations

import enum
import logging
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from . import z85
from .errors import MessageError, ProtocolError
from .limits import RateLimiter
from .message import MAX_NAME_CHARS, check_name
from .sighting import Sighting

log = logging.getLogger(__name__)
MAGIC = b"L93B"
VERSION = 2  # 2: rooms (1's layout, with an optional service id; the frames say 2 too)
# The lab93-node releases that spoke each older beacon version, for the upgrade sentence.
SPOKEN_BY = {1: "lab93-node 0.1"}
HEADER = struct.Struct(">4sBBB16sHHH")
HEADER_SIZE = HEADER.size  # 29
# A user name is at most MAX_NAME_CHARS characters of at most 4 UTF-8 bytes each.
MAX_USER_BYTES = 4 * MAX_NAME_CHARS
KEY_SIZE = 32  # a raw CurveZMQ public key
SERVICE_SIZE = 16  # a service id, raw
MAX_BEACON_SIZE = HEADER_SIZE + MAX_USER_BYTES + KEY_SIZE + SERVICE_SIZE

MODES = {0: "none", 1: "broadcast", 2: "repeater"}
_MODE_CODES = {name: code for code, name in MODES.items()}
_NODE_ID = re.compile(r"[0-9a-f]{32}\Z")


class BeaconError(ProtocolError):
    """A beacon datagram is not valid."""


@dataclass(frozen=True)
class OldBeacon:
    """A beacon of an older version (same layout): who sent it, to be told to upgrade."""

    version: int
    node_id: str
    mode: str
    user: str
    kind: int

    def sentence(self, address: str) -> str:
        """What a user hears, once per node: both versions, and what to do."""
        who = f"{self.user}'s node" if self.user else "a node"
        release = SPOKEN_BY.get(self.version)
        speaks = f"lab93 protocol {self.version}" + (f" ({release})" if release else "")
        return f"{who} at {address} speaks {speaks}; this node speaks {VERSION} — upgrade it"


class OldVersion(BeaconError):
    """A beacon of an older version; ``old`` says who sent it."""

    def __init__(self, old: OldBeacon) -> None:
        super().__init__(f"beacon version {old.version} (this node speaks {VERSION})")
        self.old = old


class BeaconKind(enum.IntEnum):
    """What a beacon says; the value is the wire byte."""

    ANNOUNCE = 1  # "I am here, reach me at these ports"
    LEAVING = 2  # "I am going away now; drop me"
    PROBE = 3  # "whoever is alive, announce yourself now" (--scan); never a peer


def is_node_id(value: object) -> bool:
    """True for a node id in its text form: 32 lowercase hex digits."""
    return isinstance(value, str) and _NODE_ID.match(value) is not None


@dataclass(frozen=True)
class Beacon:
    """One beacon, valid by construction: a bad field raises BeaconError."""

    kind: BeaconKind
    node_id: str
    mode: str
    router_port: int
    pub_port: int
    user: str
    key: bytes = b""  # raw 32-byte CurveZMQ public key of a secure node, else empty
    service: str = ""  # the service id of a repeater that is one of several, else empty

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) not in (0, KEY_SIZE):
            raise BeaconError(f"a beacon key is {KEY_SIZE} raw bytes or nothing")
        if self.service and not (is_node_id(self.service) and self.mode == "repeater"):
            raise BeaconError("a beacon's service id is a repeater's 32 lowercase hex digits")
        if not isinstance(self.kind, BeaconKind):
            raise BeaconError(f"unknown beacon kind {self.kind!r}")
        if not is_node_id(self.node_id):
            raise BeaconError("beacon node id must be 32 lowercase hex digits")
        if not isinstance(self.mode, str) or self.mode not in _MODE_CODES:
            raise BeaconError(f"unknown beacon mode {self.mode!r}")
        for name in ("router_port", "pub_port"):
            port = getattr(self, name)
            if type(port) is not int or not 0 <= port <= 0xFFFF:
                raise BeaconError(f"beacon {name} {port!r} is not a port number")
        if self.kind is BeaconKind.PROBE:
            # A prober is not reachable and not listed, so it needs no name
            # and no ports; whatever it carries is ignored.
            if not isinstance(self.user, str):
                raise BeaconError("beacon user name must be a string")
            if self.user:
                self._check_user()
            return
        if self.mode == "none":
            raise BeaconError(f"a {self.kind.name} beacon needs mode broadcast or repeater")
        if self.router_port == 0 or self.pub_port == 0:
            raise BeaconError(f"a {self.kind.name} beacon needs both ports (got port 0)")
        self._check_user()

    def _check_user(self) -> None:
        # The message name rule (at most MAX_NAME_CHARS characters) keeps the
        # encoded name within MAX_USER_BYTES.
        try:
            check_name(self.user, "user")
            self.user.encode("utf-8")
        except MessageError as exc:
            raise BeaconError(f"bad beacon user name: {exc.problem}") from None
        except UnicodeEncodeError:
            raise BeaconError("bad beacon user name: not valid Unicode text") from None

    @property
    def secure(self) -> bool:
        """True when the node runs in secure mode (its beacon carries its public key)."""
        return bool(self.key)

    def leaving(self) -> Beacon:
        """The LEAVING beacon that matches this ANNOUNCE (same node, ports, user and key)."""
        return replace(self, kind=BeaconKind.LEAVING)

    @classmethod
    def probe(cls, node_id: str, user: str = "") -> Beacon:
        """The one datagram ``--scan`` sends so live instances answer at once."""
        return cls(BeaconKind.PROBE, node_id, "none", 0, 0, user)

    def encode(self) -> bytes:
        user = self.user.encode("utf-8")
        head = HEADER.pack(
            MAGIC,
            VERSION,
            int(self.kind),
            _MODE_CODES[self.mode],
            bytes.fromhex(self.node_id),
            self.router_port,
            self.pub_port,
            len(user),
        )
        service = bytes.fromhex(self.service) if self.service else b""
        return head + user + self.key + service

    @classmethod
    def decode(cls, data: bytes) -> Beacon:
        """Parse one datagram; raises BeaconError saying what is wrong, never returns None."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BeaconError("beacon must be bytes")
        data = bytes(data)
        if len(data) < HEADER_SIZE:
            raise BeaconError(f"beacon too short ({len(data)} bytes, need at least {HEADER_SIZE})")
        magic, version, kind, mode, raw_id, router, pub, user_len = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise BeaconError(f"bad beacon magic {magic!r}")
        if version in SPOKEN_BY:
            raise OldVersion(_old(data, version, kind, mode, raw_id, user_len))
        if version != VERSION:
            raise BeaconError(f"unknown beacon version {version} (this node speaks {VERSION})")
        try:
            kind = BeaconKind(kind)
        except ValueError:
            raise BeaconError(f"unknown beacon kind {kind}") from None
        if mode not in MODES:
            raise BeaconError(f"unknown beacon mode {mode}")
        if user_len > MAX_USER_BYTES:
            raise BeaconError(f"beacon user length {user_len} is over {MAX_USER_BYTES} bytes")
        end = HEADER_SIZE + user_len
        extra = len(data) - end
        if extra not in (0, KEY_SIZE, SERVICE_SIZE, KEY_SIZE + SERVICE_SIZE):
            raise BeaconError(f"beacon is {len(data)} bytes but its header says {end} (+32, +16)")
        try:
            user = data[HEADER_SIZE:end].decode("utf-8")
        except UnicodeDecodeError:
            raise BeaconError("beacon user name is not valid UTF-8") from None
        key = data[end : end + KEY_SIZE] if extra >= KEY_SIZE else b""
        service = data[len(data) - SERVICE_SIZE :].hex() if extra % KEY_SIZE else ""
        return cls(kind, raw_id.hex(), MODES[mode], router, pub, user, key, service)


def _old(data: bytes, version: int, kind: int, mode: int, raw_id: bytes,
         user_len: int) -> OldBeacon:
    """What an older beacon says of its sender, as far as it can be read (a name that is
    not valid UTF-8 is left out); BeaconError when not even that."""
    end = HEADER_SIZE + user_len
    if mode not in MODES or user_len > MAX_USER_BYTES or len(data) not in (end, end + KEY_SIZE):
        raise BeaconError(f"a malformed beacon of version {version}")
    user = data[HEADER_SIZE:end].decode("utf-8", errors="replace")
    try:
        check_name(user, "user")
    except MessageError:
        user = ""
    return OldBeacon(version, raw_id.hex(), MODES[mode], user, kind)


def sighting(beacon: Beacon, address: str, last_seen: datetime) -> Sighting:
    """One live instance as ``--scan`` lists it."""
    key = z85.encode(beacon.key).decode("ascii") if beacon.key else None
    return Sighting(
        beacon.node_id, beacon.user, beacon.mode, address, beacon.router_port,
        beacon.pub_port, last_seen, key, beacon.service or None,
    )


def scan_json(beacon: Beacon, address: str, last_seen: datetime) -> dict[str, Any]:
    """One live instance as a ``--scan --json`` line: exactly DESIGN.md's contract,
    plus ``"key"`` (Z85 text) for a secure instance, so scripts can pin it."""
    return sighting(beacon, address, last_seen).to_json()


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
