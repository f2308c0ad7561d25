"""Broadcast mode, sans-IO: what a node says to its peers and when. Pure.

``BroadcastSession`` is the whole behaviour of a broadcast node with the I/O
taken out: the shell (``node.py``) feeds it beacon datagrams, frames from its
sockets, posts from the front end and the time (``now``, monotonic seconds),
and carries out the *actions* it returns. It never touches a socket or a
clock; the inbox is injected (``core.inbox.BroadcastInbox``).

Sockets (the shell's): a PUB every peer subscribes to, a ROUTER every peer's
DEALER connects to; for each live broadcast peer a SUB on its PUB and a DEALER
to its ROUTER. The ROUTER only receives: an answer to a peer always goes over
our own DEALER to *its* ROUTER, so every exchange works the same in both
directions.

Commands (frames as in ``wire.py``; every header carries ``"node"``, the
sender's node id; see docs/PROTOCOL.rst, "Broadcast mode")::

    on the PUB (to every subscriber)
      MSG    {node}          1..BATCH_MESSAGES payloads: room messages the sender
                             authored, in its numbering order (a burst of posts
                             goes out as one MSG)
      BEAT   {node, vector}  the sender's version vector, every interval and
                             soon after it stored new room messages
    to a peer's ROUTER (over our DEALER)
      SYNC   {node, vector}  "this is what I hold; send me what I lack"
      BATCH  {node, vector}  0..BATCH_MESSAGES payloads: room messages the
                             asker lacks, and the answerer's own vector
      DM     {node}          1..BATCH_MESSAGES payloads: direct messages to
                             the receiver's user
      ACK    {node, ids}     the receiver stored these direct messages

Catch-up is pull-based: a node sends SYNC to a peer when they meet, when a
live MSG shows a gap in an origin's sequence, and when a BEAT (or a SYNC)
shows the peer holds more of some origin than it does. It keeps at most one
SYNC outstanding per peer and asks again at once after a BATCH that made
progress while the peer still holds more, so a long catch-up goes in bounded
batches with flow control. Every node answers SYNC from everything it holds,
so messages of authors who have left are relayed too.

      BYE    {node}          "I am leaving now": sent on a clean exit just before
                             the LEAVING beacon, over the authenticated link

Liveness: the peer table (``presence.PeerTable``) drops a peer on BYE or
LEAVING, after 5 silent intervals, or - told by the shell's socket monitor
through ``on_link_down`` that our DEALER's connection to it dropped - when no
beacon from it follows within 1.5 intervals (a PROBE asks live peers to answer
at once).

Secure mode (``trust`` given; see ``Trust`` and docs/PROTOCOL.rst, "Secure
broadcast"): beacons carry our public key; only peers whose beacon key is
authorized are connected to (pinned to that key), the others are named once
in a notice and ignored; a peer's name is its key's name; a node id is bound
to a name only by authenticated traffic, and a message whose origin is bound
to another name than its ``from`` is dropped as spoofed; LEAVING (a bare UDP
datagram anyone can forge) only puts a peer in doubt; a beacon that would move
a peer we hear over its authenticated link is refused; a source of too many
bad frames is cut off for a while.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from .. import wire, z85
from ..errors import MessageError, ProtocolError, StoreError
from ..events import Accepted, Event, Incoming, Notice, Rejected, Status
from ..inbox import BroadcastInbox
from ..limits import RateLimiter
from ..message import Message
from ..presence import (
    Beacon,
    BeaconError,
    BeaconSchedule,
    Discovery,
    Kind,
    Peer,
    PeerChanged,
    PeerJoined,
    PeerLeft,
    PeerTable,
    is_node_id,
    peer_json,
)
from ..sync import SequenceTracker, SyncError, decode_vector, encode_vector, wanted_from

log = logging.getLogger(__name__)

MODE = "broadcast"
BATCH_MESSAGES = 200  # messages in one BATCH or DM command
BATCH_BYTES = 1 << 20  # and about this many bytes of payload
MAX_ACK_IDS = 10_000
PENDING_LIMIT = 256  # strangers whose SYNC or owed ACK we keep until they beacon
DUPLICATE = "a message with this id is already in the inbox"

# Command names (frame 1).
MSG, BEAT, SYNC, BATCH, DM, ACK, BYE = "MSG", "BEAT", "SYNC", "BATCH", "DM", "ACK", "BYE"
PUB, ROUTER = "pub", "router"
# What ``BroadcastSession.stats`` counts (dropped input, sends the shell had to drop,
# connections to live peers that dropped, and what secure mode refused).
STAT_KEYS = ("bad_beacons", "bad_frames", "bad_messages", "misaddressed", "conflicts",
             "send_dropped", "links_dropped", "ignored_beacons", "leavings_doubted",
             "moves_refused", "spoofed", "cut_offs", "cut_off_frames", "handshakes_failed")
# A source of bad input (frames that do not parse, bad or spoofed messages; each frame
# list counts once) may send FLOOD_BURST of them, then FLOOD_RATE a second; past that
# it is cut off for ``penalty`` seconds. An honest peer sends none at all.
FLOOD_BURST = 20
FLOOD_RATE = 2.0
PENALTY = 30.0
MAX_BOUND = 4096  # node ids bound to key names (only authorized keys can add any)
MAX_REMEMBERED = 1024  # (node, reason) notices already given, least recent forgotten
PROBLEM_QUIET = 60.0  # a handshake problem is told again only after this long


# -- what the shell must do ------------------------------------------------


@dataclass(frozen=True)
class SendBeacon:
    """Broadcast this datagram on every beacon interface."""

    data: bytes


@dataclass(frozen=True)
class Publish:
    """Send these frames on the PUB socket."""

    frames: tuple[bytes, ...]


@dataclass(frozen=True)
class SendTo:
    """Send these frames over the DEALER connected to this peer's ROUTER (never block)."""

    node_id: str
    frames: tuple[bytes, ...]


@dataclass(frozen=True)
class Connect:
    """Open a SUB to ``tcp://address:pub_port`` and a DEALER to ``tcp://address:router_port``."""

    peer: Peer


@dataclass(frozen=True)
class Disconnect:
    """Close this peer's SUB and DEALER."""

    node_id: str


@dataclass(frozen=True)
class Trust:
    """Secure mode as the session sees it; the shell builds it from ``SecureConfig``.

    ``name_of`` maps a raw public key to the name it speaks as, None when it is
    not authorized (``security.AuthorizedKeys.name_of``, which re-reads the
    directory when it changes); ``where`` names that directory in notices.
    """

    key: bytes  # our raw 32-byte public key, announced in our beacons
    name_of: Callable[[bytes], str | None]
    where: str


@dataclass(frozen=True)
class RouterPeer:
    """Who sent a frame list to our ROUTER: its connection's routing id and, in secure
    mode, the ``User-Id`` the ZAP handler gave it (the name of its key)."""

    conn: bytes
    user_id: str | None = None


# Events for the front end are events.py's, shared with repeater mode.
Action = SendBeacon | Publish | SendTo | Connect | Disconnect
Output = Action | Event


class Draft(Protocol):
    """A front end's post (``actor.Post``): an id, a recipient, and how to become a Message."""

    id: str
    to: str | None

    def author(self, user: str, origin: str, origin_seq: int) -> Message: ...


@dataclass
class _Link:
    """What we know about one connected broadcast peer."""

    peer: Peer  # in secure mode ``user`` is its key's name, not what its beacon says
    vector: dict[str, int] | None = None  # its last reported holdings
    pull_since: float | None = None  # our SYNC to it still unanswered since then
    up: bool = False  # our DEALER's handshake with it succeeded and has not dropped since
    authenticated: bool = False  # a handshake with it ever succeeded


def _vector_of(header: Mapping[str, Any]) -> dict[str, int]:
    if "vector" not in header:
        raise ProtocolError("header field 'vector' is missing")
    try:
        return decode_vector(header["vector"])
    except SyncError as error:
        raise ProtocolError(f"bad vector: {error}") from None


def _behind(theirs: Mapping[str, int], mine: Mapping[str, int]) -> bool:
    """True when ``theirs`` holds some origin further than ``mine``."""
    return any(mark > mine.get(origin, 0) for origin, mark in theirs.items())


def _hold_deadline(held: dict[int, tuple[Message, float]]) -> float:
    return min(until for _, until in held.values())


class BroadcastSession:
    """One broadcast node's protocol state. Every method takes ``now`` and returns outputs.

    ``where`` names the beacon interfaces for status lines ("lo", "eth0").
    """

    def __init__(
        self,
        store: BroadcastInbox,
        user: str,
        router_port: int,
        pub_port: int,
        interval: float,
        now: float,
        where: str = "the network",
        expiry_intervals: int = 5,
        trust: Trust | None = None,
        penalty: float = PENALTY,
    ) -> None:
        self.store = store
        self.trust = trust
        self.node_id = store.node_id
        self.user = user
        self.where = where
        self.interval = float(interval)
        self.started = now
        self._discovery_due: float | None = now + self.interval
        self.discovery = Discovery(
            self.node_id,
            self.interval,
            now,
            Beacon(
                Kind.ANNOUNCE, self.node_id, MODE, router_port, pub_port, user,
                trust.key if trust is not None else b"",
            ),
            expiry_intervals,
        )
        # The parts of it this session reads by name, as before it was shared.
        self.peers = self.discovery.table
        self.beacons = self.discovery.schedule
        self._announce = self.discovery.announce
        # Broadcast nodes heard but not chatted with (secure vs plain, a key we do not
        # trust): not peers, but /scan still lists them - it shows who is out there.
        self.others = PeerTable(self.node_id, self.interval, expiry_intervals)
        self.beats = BeaconSchedule(self.interval, now)
        self.tracker = SequenceTracker(store.origin_marks())
        # The numbers our next room and direct message get; we are our origin's only author.
        self._next_seq = {
            False: store.next_origin_seq(self.node_id, direct=False),
            True: store.next_origin_seq(self.node_id, direct=True),
        }
        self.pull_timeout = max(2 * self.interval, 0.5)
        # How long a message that arrived ahead of a gap waits for the gap to fill.
        self.hold_for = max(2 * self.interval, 1.0)
        self._held: dict[str, dict[int, tuple[Message, float]]] = {}  # origin -> seq -> held
        self.resend_after = max(2 * self.interval, 0.5)
        # Every key exists from the start, so another thread may copy it safely.
        self.stats: Counter[str] = Counter(dict.fromkeys(STAT_KEYS, 0))
        # Secure mode: node id -> the key name authenticated traffic showed it speaks as.
        # Our own origin speaks as our user, so nobody can relay messages in our name.
        self._bound: dict[str, str] = {self.node_id: user} if trust is not None else {}
        self._leave_doubted: set[str] = set()  # in doubt by a LEAVING, not by a lost link
        self._said: OrderedDict[tuple[str, Hashable], None] = OrderedDict()  # notices given
        self._notices = RateLimiter(rate=1.0 / self.interval, burst=5)  # per source address
        self._problems: OrderedDict[tuple[str | None, str], float] = OrderedDict()
        self._flood = RateLimiter(rate=FLOOD_RATE, burst=FLOOD_BURST)
        self.penalty = max(float(penalty), FLOOD_BURST / FLOOD_RATE)  # the bucket refills
        self._cut: dict[Hashable, float] = {}  # flood source -> ignored until
        self._strikes = 0  # bad input seen so far (per frame list, see _strike)
        self._links: dict[str, _Link] = {}
        self._stranger_syncs: dict[str, dict[str, int]] = {}
        self._owed_acks: dict[str, set[str]] = {}
        self._pending_room: dict[str, int] = {}  # post id -> origin seq, this run
        self._pending_direct: set[str] = set()
        # Direct messages this node authored and nobody acknowledged, oldest first.
        self._outbox: dict[str, Message] = {
            m.id: m for m in store.outbox() if m.is_direct and m.origin == self.node_id
        }
        self._offered: dict[str, float] = {}  # direct message id -> last offered
        self._status: Status | None = None
        self._ever_connected = False
        self._probed: float | None = None  # when on_link_down last sent a PROBE
        self._confirmed = 0  # the highest mark for our origin any peer reported, this run
        self._handlers = {
            (PUB, MSG): None,  # gathered and stored together by receive_many
            (PUB, BEAT): self._on_beat,
            (ROUTER, SYNC): self._on_sync,
            (ROUTER, BATCH): self._on_batch,
            (ROUTER, DM): self._on_dm,
            (ROUTER, ACK): self._on_ack,
            (ROUTER, BYE): self._on_bye,
        }

    # -- the front end's requests ------------------------------------------

    def start(self, now: float) -> list[Output]:
        """Beacon at once and say we are looking."""
        return self._refresh_status() + self.tick(now)

    def stop(self, now: float) -> list[Output]:
        """A clean exit: BYE to every linked peer, then the LEAVING beacon (same ports as
        our ANNOUNCE). The BYE goes over the link, so a secure peer, which takes a LEAVING
        only as doubt, drops us at once all the same."""
        bye = tuple(wire.command(BYE, {"node": self.node_id}).frames())
        outputs: list[Output] = [SendTo(node_id, bye) for node_id in self._links]
        return outputs + [SendBeacon(self._announce.leaving().encode())]

    def post(self, draft: Draft, now: float) -> list[Output]:
        """Author one message (room or direct), store it and send it (see ``post_many``)."""
        return self.post_many([draft], now)

    def post_many(self, drafts: Sequence[Draft], now: float) -> list[Output]:
        """Author a burst of posts, store them and send them, in posting order.

        The room posts are numbered and stored in one transaction, then
        published together (a MSG carries up to BATCH_MESSAGES). A number is
        used only once its message is stored, so this node's room sequence
        never has a hole (peers' contiguous marks depend on that): if the
        inbox refuses any of the burst (an id it already holds), nothing of
        it is kept and the posts are stored one by one instead.
        """
        outputs: list[Output] = []
        room: list[Draft] = []
        for draft in drafts:
            if draft.to is None:
                room.append(draft)
                continue
            outputs += self._post_room(room, now)
            room = []
            outputs += self._post_one(draft, now)
        outputs += self._post_room(room, now)
        return outputs + self._check_accepted(now)

    def _post_room(self, drafts: Sequence[Draft], now: float) -> list[Output]:
        if len(drafts) <= 1:
            return [out for draft in drafts for out in self._post_one(draft, now)]
        rejected: list[Output] = []
        authored: list[tuple[Draft, Message]] = []
        seen: set[str] = set()
        for draft in drafts:
            if draft.id in seen:
                rejected.append(Rejected(draft.id, DUPLICATE))
                continue
            seq = self._next_seq[False] + len(authored)
            try:
                authored.append((draft, draft.author(self.user, self.node_id, seq)))
            except MessageError as error:
                rejected.append(Rejected(draft.id, str(error)))
                continue
            seen.add(draft.id)
        try:
            with self.store.transaction():
                fresh = self.store.save_many([(m, None, None) for _, m in authored])
                if not all(fresh):
                    raise StoreError(DUPLICATE)  # roll the whole burst back
        except StoreError:
            # Rare: one by one, so each refused post is named and numbers stay contiguous.
            return rejected + [out for draft, _ in authored for out in self._post_one(draft, now)]
        self._next_seq[False] += len(authored)
        return rejected + self._publish([message for _, message in authored])

    def _post_one(self, draft: Draft, now: float) -> list[Output]:
        direct = draft.to is not None
        try:
            message = draft.author(self.user, self.node_id, self._next_seq[direct])
            if direct:
                self.store.queue(message)
            elif not self.store.save(message):
                raise StoreError(DUPLICATE)
        except (MessageError, StoreError) as error:
            return [Rejected(draft.id, str(error))]
        self._next_seq[direct] += 1
        if direct:
            return self._post_direct(message, now)
        return self._publish([message])

    def _publish(self, messages: Sequence[Message]) -> list[Output]:
        """Our room messages, stored: MSGs of at most BATCH_MESSAGES / about BATCH_BYTES.

        Each is pending until every live peer holds it.
        """
        header = {"node": self.node_id}
        outputs: list[Output] = []
        payloads: list[bytes] = []
        size = 0
        for message in messages:
            self.tracker.observe(self.node_id, message.origin_seq)
            self._pending_room[message.id] = message.origin_seq
            data = message.encode()
            if payloads and (len(payloads) == BATCH_MESSAGES or size + len(data) > BATCH_BYTES):
                outputs.append(Publish(tuple(wire.Command(MSG, header, tuple(payloads)).frames())))
                payloads, size = [], 0
            payloads.append(data)
            size += len(data)
        if payloads:
            outputs.append(Publish(tuple(wire.Command(MSG, header, tuple(payloads)).frames())))
        return outputs

    def _post_direct(self, message: Message, now: float) -> list[Output]:
        self._pending_direct.add(message.id)
        outputs: list[Output] = []
        if message.recipient == self.user:
            # A note to self is delivered here; other nodes of ours get a copy if live.
            self.store.acknowledge([message.id])
            self._pending_direct.discard(message.id)
            outputs.append(Accepted((message.id,)))
            for link in self._links_of(self.user):
                outputs.append(self._dm_command(link.peer.node_id, [message]))
            return outputs
        self._outbox[message.id] = message
        links = self._links_of(message.recipient)
        if not links:
            outputs.append(
                Notice(f"{message.recipient} is not online; the message waits in the outbox")
            )
        for link in links:
            outputs.append(self._dm_command(link.peer.node_id, [message]))
            self._offered[message.id] = now
        return outputs

    def who(self) -> list[str]:
        """The users of live broadcast peers, sorted, each once."""
        return sorted({link.peer.user for link in self._chatting()})

    def scan(self, now: float, wall: datetime) -> list[dict[str, Any]]:
        """Every live instance heard (nodes and repeaters, also the broadcast nodes we
        do not chat with), as ``--scan --json``.

        These are the tables as they stand (every instance beacons each interval);
        no probe is sent. ``wall`` is the UTC time matching ``now``.
        """
        self.others.expire(now)
        heard = {peer.node_id: peer for peer in self.others.live()}
        heard.update((peer.node_id, peer) for peer in self.peers.live())
        listed = sorted(heard.values(), key=lambda p: (p.user, p.node_id))
        return [peer_json(peer, now, wall) for peer in listed]

    # -- time ------------------------------------------------------------------

    def next_deadline(self) -> float:
        """When ``tick`` next has work to do (monotonic seconds)."""
        deadlines = [self.beacons.next_deadline(), self.beats.next_deadline()]
        expiry = self.peers.next_deadline()
        if expiry is not None:
            deadlines.append(expiry)
        if self._pending_room and self._discovery_due is not None:
            deadlines.append(self._discovery_due)
        live_users = {link.peer.user for link in self._links.values()}
        offered = [
            self._offered.get(i, 0.0) for i, m in self._outbox.items() if m.recipient in live_users
        ]
        if offered:
            deadlines.append(min(offered) + self.resend_after)
        deadlines += [_hold_deadline(held) for held in self._held.values()]
        deadlines += self._cut.values()
        return min(deadlines)

    def tick(self, now: float) -> list[Output]:
        """Do what is due: expire peers, beacon, heartbeat, re-offer direct messages."""
        outputs: list[Output] = []
        if self._discovery_due is not None and now >= self._discovery_due:
            self._discovery_due = None
        for left in self.peers.expire(now):
            if left.reason == "unconfirmed":
                outputs += self._left(left.peer, f"{self._name(left.peer)} left")
                continue
            if left.reason == "lost":
                why = f"connection lost, no beacon for {self.peers.link_grace:g} s"
            else:
                why = f"silent for {self.peers.timeout:g} s"
            outputs += self._left(left.peer, f"{self._name(left.peer)} is gone ({why})")
        outputs += self._end_penalties(now)
        due = self.discovery.beacon_due(now)
        if due is not None:
            outputs.append(SendBeacon(due))
        if self.beats.due(now):
            outputs.append(Publish(self._beat_frames()))
            self.beats.sent(now)
        outputs += self._offer_due(now)
        outputs += self._release_overdue(now)
        outputs += self._check_accepted(now)
        return outputs + self._refresh_status()

    # -- beacons -----------------------------------------------------------------

    def receive_beacon(self, data: bytes, address: str, now: float) -> list[Output]:
        """One datagram from the beacon port, with its source address."""
        try:
            beacon = Beacon.decode(data)
        except BeaconError as error:
            self.stats["bad_beacons"] += 1
            log.debug("dropped a datagram from %s: %s", address, error)
            return []
        outputs: list[Output] = []
        if beacon.kind is not Kind.PROBE and beacon.mode == MODE and (
            beacon.node_id != self.node_id  # we hear our own broadcasts
        ):
            refused = self._refuse(beacon, address, now)
            if refused is not None:
                self.others.on_beacon(beacon, address, now)
                return refused
            if self.trust is not None:
                refused = self._doubt_beacon(beacon, now)
            if refused is not None:
                return refused
        events = self.discovery.take(beacon, address, now)
        for event in events:
            if isinstance(event, PeerJoined):
                outputs += self._joined(event.peer, now, "joined")
            elif isinstance(event, PeerChanged):
                outputs += self._left(event.previous, None)
                outputs += self._joined(event.peer, now, "rejoined")
            elif isinstance(event, PeerLeft):
                outputs += self._left(event.peer, f"{self._name(event.peer)} left")
        due = self.discovery.beacon_due(now)  # an answer may be due right away
        if due is not None:
            outputs.append(SendBeacon(due))
        return outputs + self._check_accepted(now) + self._refresh_status()

    def _refuse(self, beacon: Beacon, address: str, now: float) -> list[Output] | None:
        """None when a broadcast node's beacon may be taken; else what to say about it.

        A plain node and a secure one cannot talk (the handshake fails), and a secure
        node talks only to authorized keys: rather than connect and fail, say so once
        per node (and reason), and leave it out of the peer table.
        """
        if self.trust is None:
            if not beacon.key:
                return None
            reason: Hashable = "secure"
            text = (f"{beacon.user}'s node at {address} runs --secure; "
                    "run with --secure to chat with it")
        elif not beacon.key:
            reason = "plain"
            text = f"{beacon.user}'s node at {address} runs without --secure; it is ignored"
        elif self.trust.name_of(beacon.key) is None:
            reason = beacon.key
            text = (f"{beacon.user}'s node at {address} has a key not in {self.trust.where}: "
                    f"{z85.encode(beacon.key).decode('ascii')}; it is ignored")
        else:
            return None
        self.stats["ignored_beacons"] += 1
        if beacon.kind is not Kind.ANNOUNCE:
            return []
        return self._say_once(beacon.node_id, reason, address, text, now)

    def _say_once(
        self, node_id: str, reason: Hashable, address: str, text: str, now: float
    ) -> list[Output]:
        """A notice the first time ``(node_id, reason)`` comes up, at most a few a second
        per source address (a forger inventing node ids gets no flood of notices)."""
        said = (node_id, reason)
        if said in self._said:
            self._said.move_to_end(said)
            return []
        self._said[said] = None
        while len(self._said) > MAX_REMEMBERED:
            self._said.popitem(last=False)
        if not self._notices.allow(address, now):
            log.info("%s (no notice: too many from %s)", text, address)
            return []
        log.info("%s", text)  # the user hears it as a notice; the log need not repeat it
        return [Notice(text)]

    def _doubt_beacon(self, beacon: Beacon, now: float) -> list[Output] | None:
        """Secure mode: None when an authorized key's beacon may go to the peer table.

        A beacon is a bare UDP datagram anyone on the LAN can forge (a key in it
        is a claim, not a proof). Two forgeries matter while a peer is heard over
        its authenticated link: a LEAVING, which would cut us off from it, and an
        ANNOUNCE with other ports, key or name, which would move our link to an
        endpoint that cannot complete the handshake. So a LEAVING only puts the
        peer in doubt (like a dropped link: gone unless it shows life within the
        link grace; an honest leaver says BYE over its link first), and a beacon
        that would change a peer whose link is up is refused. A peer that really
        restarted closed its old connections, so its link is down and its new
        beacon is taken (at the latest its next one, an interval later).
        """
        known = self.peers.get(beacon.node_id)
        if known is None:
            return None
        if beacon.kind is Kind.LEAVING:
            if (known.router_port, known.pub_port) != (beacon.router_port, beacon.pub_port):
                return []  # not the instance on record (the table ignores it too)
            if not self.peers.doubt(beacon.node_id, now, "unconfirmed"):
                return []
            self._leave_doubted.add(beacon.node_id)
            self.stats["leavings_doubted"] += 1
            log.info("%s says LEAVING; gone unless it shows life within %g s",
                     self._name(known), self.peers.link_grace)
            return self._probe(now)
        link = self._links.get(beacon.node_id)
        moved = (known.router_port, known.pub_port, known.key, known.user) != (
            beacon.router_port, beacon.pub_port, beacon.key, beacon.user
        )
        if link is None or not link.up or not moved:
            return None
        self.stats["moves_refused"] += 1
        if ("moved", beacon.node_id) not in self._said:
            self._said[("moved", beacon.node_id)] = None
            log.warning(
                "refused a beacon moving %s (%s) to ports %d/%d: it is connected where it is",
                link.peer.user, beacon.node_id[:8], beacon.router_port, beacon.pub_port,
            )
        return []

    def _name(self, peer: Peer) -> str:
        """What a peer is called: its key's name once linked in secure mode, else its user."""
        link = self._links.get(peer.node_id)
        return link.peer.user if link is not None else peer.user

    def _joined(self, peer: Peer, now: float, verb: str) -> list[Output]:
        if peer.mode != MODE:
            return []  # a repeater server: listed by /scan, not a chat peer
        if self.trust is not None:
            name = self.trust.name_of(peer.key)
            if name is None:  # its key was removed from the directory meanwhile
                return []
            peer = replace(peer, user=name)  # names come from keys, not from beacons
        if self._is_cut(self._peer_source(peer), now):
            return []  # cut off for flooding: _end_penalties links it again later
        self._links[peer.node_id] = _Link(peer)
        self._ever_connected = True
        notice = Notice(f"{peer.user} {verb} from {peer.address}")
        outputs: list[Output] = [Connect(peer), notice]
        outputs += self._pull(peer.node_id, now)
        stranger = self._stranger_syncs.pop(peer.node_id, None)
        if stranger is not None:
            outputs += self._answer_sync(peer.node_id, stranger, now)
        owed = self._owed_acks.pop(peer.node_id, None)
        if owed:
            outputs.append(self._ack_command(peer.node_id, owed))
        outputs += self._offer(peer, now)
        return outputs

    def _left(self, peer: Peer, notice: str | None) -> list[Output]:
        self._leave_doubted.discard(peer.node_id)
        if self._links.pop(peer.node_id, None) is None:
            return []
        outputs: list[Output] = [Disconnect(peer.node_id)]
        if notice:
            outputs.append(Notice(notice))
        return outputs

    # -- connections -----------------------------------------------------------------

    def on_link_down(self, node_id: str, now: float) -> list[Output]:
        """Our DEALER's connection to this peer dropped (the shell's socket monitor).

        A killed process's kernel closes its connections at once, so this is
        the first sign of a crash. The peer stays live for ``link_grace``
        (1.5 intervals): a beacon from it in that time, or the connection
        coming back, keeps it; otherwise ``tick`` drops it. A PROBE goes out
        (at most one per interval / 10) so a live peer answers at once rather
        than at its next periodic beacon.
        """
        link = self._links.get(node_id)
        if link is None:
            return []
        if self.trust is not None and not link.up:
            # A CURVE handshake that failed also ends in a disconnect; only an
            # authenticated connection that dropped says anything about the peer.
            return []
        link.up = False
        self._leave_doubted.discard(node_id)  # now frames after the drop do not count
        if not self.peers.on_link_down(node_id, now):
            return []
        self.stats["links_dropped"] += 1
        return self._probe(now)

    def _probe(self, now: float) -> list[Output]:
        if self._probed is not None and now < self._probed + self.beacons.answer_gap:
            return []  # one probe answers for every link that dropped meanwhile
        self._probed = now
        return [SendBeacon(Beacon.probe(self.node_id).encode())]

    def on_link_up(self, node_id: str, now: float) -> list[Output]:
        """Our DEALER's connection to this peer is (back) up (in secure mode: the peer
        proved it holds the key we pinned)."""
        link = self._links.get(node_id)
        if link is not None:
            link.up = link.authenticated = True
        self._leave_doubted.discard(node_id)
        self.peers.on_link_up(node_id)
        return self._refresh_status()

    def on_handshake_failed(self, node_id: str | None, problem: str, now: float) -> list[Output]:
        """A socket monitor saw a handshake fail: with this linked peer (our DEALER) or,
        ``node_id`` None, with someone connecting to our ROUTER or PUB.

        ``problem`` is ``security.handshake_problem``'s sentence. Each distinct
        problem is logged and told once per peer, and again only after
        PROBLEM_QUIET seconds: a peer retries every fraction of a second.
        """
        self.stats["handshakes_failed"] += 1
        link = self._links.get(node_id) if node_id is not None else None
        if node_id is not None and link is None:
            return []  # a peer we let go meanwhile
        key = (node_id, problem)
        said = self._problems.get(key)
        if said is not None and now < said + PROBLEM_QUIET:
            return []
        self._problems[key] = now
        self._problems.move_to_end(key)
        while len(self._problems) > MAX_REMEMBERED:
            self._problems.popitem(last=False)
        if link is not None:
            text = f"{link.peer.user}'s node at {link.peer.address}: {problem}"
        else:
            text = problem
        log.info("%s", text)  # the user hears it as a notice
        return [Notice(text)]

    # -- frames --------------------------------------------------------------------

    def receive(
        self,
        frames: Sequence[bytes],
        now: float,
        via: str | None = None,
        sender: RouterPeer | None = None,
    ) -> list[Output]:
        """Frames from the ROUTER (``via`` None, identity frame removed; ``sender`` says who
        sent them) or from the SUB connected to peer ``via``. Bad input is counted, logged
        and dropped."""
        return self.receive_many([frames], now, via, None if sender is None else [sender])

    def receive_many(
        self,
        batch: Sequence[Sequence[bytes]],
        now: float,
        via: str | None = None,
        senders: Sequence[RouterPeer] | None = None,
    ) -> list[Output]:
        """Several frame lists read in a row from one socket, handled in order.

        ``senders`` (ROUTER only) matches ``batch`` item by item. In secure mode
        each must carry the ``User-Id`` of the connection, or the frames are
        dropped. Consecutive MSGs are stored in one transaction, which is what
        lets a node keep up with a busy room.
        """
        outputs: list[Output] = []
        room: list[Message] = []
        for index, frames in enumerate(batch):
            peer = senders[index] if senders is not None else None
            source = self._source(via, peer)
            if self._is_cut(source, now):
                self.stats["cut_off_frames"] += 1
                continue
            strikes = self._strikes
            parsed = self._parse(frames, now, via, peer)
            if parsed is not None:
                sender, command = parsed
                try:
                    if command.name == MSG:
                        room += self._room_messages(sender, command)
                    else:
                        outputs += self._flush(room, via, now)
                        outputs += self._handlers[(ROUTER if via is None else PUB, command.name)](
                            sender, command, now
                        )
                except ProtocolError as error:
                    self._dropped(via, error)
            if self._strikes != strikes:
                outputs += self._strike(source, now)
        outputs += self._flush(room, via, now)
        return outputs + self._check_accepted(now)

    def _parse(
        self, frames: Sequence[bytes], now: float, via: str | None, peer: RouterPeer | None
    ) -> tuple[str, wire.Command] | None:
        channel = ROUTER if via is None else PUB
        try:
            command = wire.decode(frames)
            sender = command.header.get("node")
            if not is_node_id(sender):
                raise ProtocolError("header field 'node' must be 32 lowercase hex digits")
            if via is not None and sender != via:
                raise ProtocolError(f"{command.name} on {via[:8]}'s PUB claims node {sender[:8]}")
            if (channel, command.name) not in self._handlers:
                raise ProtocolError(f"unexpected {command.name} on the {channel} socket")
            if sender == self.node_id:
                raise ProtocolError("a command carrying our own node id")
            if self.trust is not None:
                self._authenticate(sender, via, peer)
        except ProtocolError as error:
            self._dropped(via, error)
            return None
        self.peers.on_traffic(sender, now)
        if sender in self._leave_doubted:
            # Life over its authenticated link after a LEAVING: the LEAVING was forged.
            self._leave_doubted.discard(sender)
            self.peers.on_link_up(sender)
        return sender, command

    def _authenticate(self, sender: str, via: str | None, peer: RouterPeer | None) -> None:
        """Secure mode: the name the connection proved (our SUB's pinned key, or the
        ``User-Id`` of a ROUTER connection) must be the one ``sender`` is bound to.

        The first authenticated command binds a node id to its connection's key
        name, for this run; never a beacon, which anyone can forge.
        """
        if via is not None:
            link = self._links.get(via)
            if link is None:
                raise ProtocolError(f"a command on the SUB of {via[:8]}, no longer linked")
            name = link.peer.user
        else:
            name = peer.user_id if peer is not None else None
            if not name:
                raise ProtocolError("a command on the ROUTER without an authenticated key")
        bound = self._bound.get(sender)
        if bound is None:
            if len(self._bound) >= MAX_BOUND:
                raise ProtocolError("too many node ids bound to keys")
            self._bound[sender] = name
            log.info("node %s speaks as %s (authenticated)", sender[:8], name)
        elif bound != name:
            self._spoofed(f"{name}'s key sent a command as node {sender[:8]}, which is {bound}'s")
            raise ProtocolError("spoofed sender")

    def _authentic(self, message: Message, sender: str) -> bool:
        """Secure mode: False (and counted) when ``message`` claims a ``from`` its origin
        is not bound to.

        Messages of origins not bound to any name (a node we never met over an
        authenticated link) are taken as the peer that relays them says: every
        authorized peer is a trusted relayer. Once an origin is bound, no
        relayer can put another name on its messages.
        """
        if self.trust is None:
            return True
        bound = self._bound.get(message.origin)
        if bound is None or bound == message.author:
            return True
        self._spoofed(
            f"a message from {sender[:8]} says it is from {message.author!r}, but its origin "
            f"{message.origin[:8]} is {bound}"
        )
        return False

    def _spoofed(self, why: str) -> None:
        self.stats["spoofed"] += 1
        self._strikes += 1
        log.warning("dropped: spoofed sender: %s", why)

    def _dropped(self, via: str | None, error: ProtocolError) -> None:
        self.stats["bad_frames"] += 1
        self._strikes += 1
        log.info("dropped frames from %s: %s", via[:8] if via else "the ROUTER", error)

    def _bad_message(self, sender: str, what: str, error: object) -> None:
        self.stats["bad_messages"] += 1
        self._strikes += 1
        log.info("dropped %s from %s: %s", what, sender[:8], error)

    # -- flooding --------------------------------------------------------------------

    def _source(self, via: str | None, peer: RouterPeer | None) -> Hashable | None:
        """Whom bad input is held against: a key name in secure mode (whichever socket it
        came by), else the SUB's peer or the ROUTER connection."""
        if via is not None:
            link = self._links.get(via)
            if self.trust is not None and link is not None:
                return ("key", link.peer.user)
            return ("node", via)
        if peer is None:
            return None
        if self.trust is not None:
            return ("key", peer.user_id) if peer.user_id else None
        return ("conn", peer.conn)

    def _peer_source(self, peer: Peer) -> Hashable:
        return ("key", peer.user) if self.trust is not None else ("node", peer.node_id)

    def _is_cut(self, source: Hashable | None, now: float) -> bool:
        until = self._cut.get(source) if source is not None else None
        return until is not None and now < until

    def _strike(self, source: Hashable | None, now: float) -> list[Output]:
        """One frame list with bad input from ``source``: past the flood limit, cut it off.

        Cut off: our SUB and DEALER to it close, whatever it sends is ignored
        for ``penalty`` seconds (then it is linked again if still live), and this
        is logged and told once per cut-off.
        """
        if source is None or self._flood.allow(source, now) or self._is_cut(source, now):
            return []
        self._cut[source] = now + self.penalty
        self.stats["cut_offs"] += 1
        kind, who = source
        links = [
            link for link in list(self._links.values())
            if self._peer_source(link.peer) == source
        ]
        name = links[0].peer.user if links else (who if kind == "key" else "a connection")
        text = (f"{name} sent too many bad messages; ignored for {self.penalty:g} s")
        log.info("%s (%s)", text, source)  # the user hears it as a notice
        outputs: list[Output] = []
        for link in links:
            outputs += self._left(link.peer, None)
        return outputs + [Notice(text)]

    def _end_penalties(self, now: float) -> list[Output]:
        """Forget cut-offs that are over and link again the live peers they covered."""
        over = [source for source, until in self._cut.items() if now >= until]
        outputs: list[Output] = []
        for source in over:
            del self._cut[source]
            log.info("the cut-off of %s is over", source)
        if over:
            for peer in self.peers.live():
                if (peer.mode == MODE and peer.node_id not in self._links
                        and self._peer_source(self._linkable(peer)) in over):
                    outputs += self._joined(peer, now, "is back; reconnected")
        return outputs

    def _linkable(self, peer: Peer) -> Peer:
        """``peer`` named as its link would be (by its key in secure mode)."""
        if self.trust is None:
            return peer
        return replace(peer, user=self.trust.name_of(peer.key) or peer.user)

    def _room_messages(self, sender: str, command: wire.Command) -> list[Message]:
        """The room messages a MSG carries; ProtocolError (the whole MSG is dropped) otherwise.

        In secure mode a MSG carries only its publisher's own messages (it never
        relays others'), each under the name the publisher's key is bound to.
        """
        if not 1 <= len(command.payloads) <= BATCH_MESSAGES:
            raise ProtocolError(
                f"MSG carries {len(command.payloads)} messages, not 1 to {BATCH_MESSAGES}"
            )
        messages = [Message.decode(payload) for payload in command.payloads]
        if any(message.is_direct for message in messages):
            raise ProtocolError("a direct message was published to the room")
        if self.trust is not None:
            for message in messages:
                if message.origin != sender:
                    self._spoofed(f"{sender[:8]} published a message of {message.origin[:8]}")
                    raise ProtocolError("spoofed sender")
            messages = [m for m in messages if self._authentic(m, sender)]
        return messages

    def _flush(self, room: list[Message], via: str | None, now: float) -> list[Output]:
        """Store the MSGs gathered so far (and empty the list); pull from ``via`` on a gap."""
        if not room:
            return []
        outputs, gap = self._take(room, now)
        room.clear()
        if gap and via is not None:
            outputs += self._pull(via, now)
        return outputs

    def _on_beat(self, sender: str, command: wire.Command, now: float) -> list[Output]:
        vector = _vector_of(command.header)
        link = self._links.get(sender)
        if link is None:
            return []
        self._heard(link, vector)
        if _behind(vector, self.tracker.vector()):
            return self._pull(sender, now)
        return []

    def _on_sync(self, sender: str, command: wire.Command, now: float) -> list[Output]:
        vector = _vector_of(command.header)
        link = self._links.get(sender)
        if link is None:
            # Not heard its beacon yet: answer as soon as it joins.
            if sender in self._stranger_syncs or len(self._stranger_syncs) < PENDING_LIMIT:
                self._stranger_syncs[sender] = vector
            return []
        return self._answer_sync(sender, vector, now)

    def _answer_sync(self, sender: str, vector: dict[str, int], now: float) -> list[Output]:
        link = self._links[sender]
        self._heard(link, vector)
        mine = self.tracker.vector()
        payloads: list[bytes] = []
        size = 0
        wanted = wanted_from(vector, mine)
        for origin in sorted(wanted):
            room = BATCH_MESSAGES - len(payloads)
            if room <= 0 or size >= BATCH_BYTES:
                break
            for message in self.store.origin_after(origin, wanted[origin], room):
                data = message.encode()
                if payloads and size + len(data) > BATCH_BYTES:
                    break
                payloads.append(data)
                size += len(data)
        header = {"node": self.node_id, "vector": encode_vector(mine)}
        batch = wire.Command(BATCH, header, tuple(payloads))
        outputs: list[Output] = [SendTo(sender, tuple(batch.frames()))]
        if _behind(vector, mine):
            outputs += self._pull(sender, now)
        return outputs

    def _on_batch(self, sender: str, command: wire.Command, now: float) -> list[Output]:
        vector = _vector_of(command.header)
        messages = []
        for payload in command.payloads:
            try:
                message = Message.decode(payload)
            except MessageError as error:
                self._bad_message(sender, "a message in a BATCH", error)
                continue
            if message.is_direct:
                self._bad_message(sender, "a message in a BATCH", "a direct message")
                continue
            if self._authentic(message, sender):
                messages.append(message)
        before = self.tracker.vector()
        outputs, _gap = self._take(messages, now)
        link = self._links.get(sender)
        if link is None:
            return outputs
        self._heard(link, vector)
        link.pull_since = None
        progressed = self.tracker.vector() != before
        if progressed and _behind(vector, self.tracker.vector()):
            outputs += self._pull(sender, now)
        return outputs

    def _on_dm(self, sender: str, command: wire.Command, now: float) -> list[Output]:
        mine: list[Message] = []
        for payload in command.payloads:
            try:
                message = Message.decode(payload)
            except MessageError as error:
                self._bad_message(sender, "a direct message", error)
                continue
            if self.trust is not None and message.origin != sender:
                # Direct messages travel only from their author's node.
                self._spoofed(f"{sender[:8]} sent a direct message of {message.origin[:8]}")
                continue
            if not self._authentic(message, sender):
                continue
            if message.recipient != self.user:
                self.stats["misaddressed"] += 1
                log.info("dropped a direct message to %r from %s", message.recipient, sender[:8])
                continue
            mine.append(message)
        if not mine:
            return []
        outputs: list[Output] = [
            Incoming(m) for m, new in zip(mine, self._save(mine), strict=True) if new
        ]
        ids = {m.id for m in mine}
        if sender in self._links:
            outputs.append(self._ack_command(sender, ids))
        elif sender in self._owed_acks or len(self._owed_acks) < PENDING_LIMIT:
            self._owed_acks.setdefault(sender, set()).update(ids)
        return outputs

    def _on_ack(self, sender: str, command: wire.Command, now: float) -> list[Output]:
        ids = command.header.get("ids")
        if not isinstance(ids, list) or len(ids) > MAX_ACK_IDS:
            raise ProtocolError(f"header field 'ids' must be a list of at most {MAX_ACK_IDS} ids")
        link = self._links.get(sender)
        if link is None:
            return []  # we cannot tell whose node it is; the next offer is acked again
        user = link.peer.user
        done = [
            i for i in ids
            if isinstance(i, str) and i in self._outbox and self._outbox[i].recipient == user
        ]
        if not done:
            return []
        self.store.acknowledge(done)
        for message_id in done:
            del self._outbox[message_id]
            self._offered.pop(message_id, None)
        accepted = tuple(i for i in done if i in self._pending_direct)
        self._pending_direct.difference_update(accepted)
        return [Accepted(accepted)] if accepted else []

    def _on_bye(self, sender: str, command: wire.Command, now: float) -> list[Output]:
        """The peer is leaving (a clean exit). In secure mode this arrived over its
        authenticated link, bound to its key, so unlike a LEAVING it cannot be forged."""
        left = self.peers.remove(sender, "bye")
        if left is None:
            return []
        return self._left(left.peer, f"{self._name(left.peer)} left") + self._refresh_status()

    # -- helpers ---------------------------------------------------------------------

    def _take(self, messages: list[Message], now: float) -> tuple[list[Output], bool]:
        """Store room messages; INCOMING for the new ones; True when an origin has a gap.

        Each author's messages are shown in that author's order: one that
        arrives ahead of a gap is stored at once but held back until the gap is
        filled - or, if nobody can fill it, until ``hold_for`` has passed.
        """
        if not messages:
            return [], False
        fresh = self._save(messages)
        gap = False
        touched: dict[str, None] = {}  # origins in order of first appearance
        for message, new in zip(messages, fresh, strict=True):
            gap = self.tracker.observe(message.origin, message.origin_seq) or gap
            if message.origin == self.node_id:  # our own, from an older copy of this inbox
                self._next_seq[False] = max(self._next_seq[False], message.origin_seq + 1)
            if new:
                held = self._held.setdefault(message.origin, {})
                held[message.origin_seq] = (message, now + self.hold_for)
                touched[message.origin] = None
        if any(fresh):
            self.beats.request_answer()  # tell the authors soon that we hold them
        outputs: list[Output] = []
        for origin in touched:
            outputs += self._release(origin, everything=False)
        return outputs, gap

    def _release(self, origin: str, everything: bool) -> list[Output]:
        """INCOMING for the held messages of ``origin`` now in order (or all of them)."""
        held = self._held.get(origin)
        if not held:
            return []
        mark = self.tracker.mark(origin)
        ready = sorted(seq for seq in held if everything or seq <= mark)
        outputs: list[Output] = [Incoming(held.pop(seq)[0]) for seq in ready]
        if not held:
            del self._held[origin]
        return outputs

    def _release_overdue(self, now: float) -> list[Output]:
        """Give up waiting for a gap nobody filled: show what was held, in order."""
        outputs: list[Output] = []
        for origin in [o for o, held in self._held.items() if _hold_deadline(held) <= now]:
            log.info("showing %d messages of %s without the ones before them",
                     len(self._held[origin]), origin[:8])
            outputs += self._release(origin, everything=True)
        return outputs

    def _save(self, messages: list[Message]) -> list[bool]:
        try:
            return self.store.save_many([(m, None, None) for m in messages])
        except StoreError:
            pass  # one of them clashes (same origin and number, other id): go one by one
        fresh = []
        for message in messages:
            try:
                fresh.append(self.store.save(message))
            except StoreError as error:
                self.stats["conflicts"] += 1
                log.warning("kept the stored message over %s: %s", message.id, error)
                fresh.append(False)
        return fresh

    def _pull(self, node_id: str, now: float) -> list[Output]:
        """Send SYNC to a peer unless one is already on its way."""
        link = self._links.get(node_id)
        if link is None:
            return []
        if link.pull_since is not None and now < link.pull_since + self.pull_timeout:
            return []
        link.pull_since = now
        header = {"node": self.node_id, "vector": encode_vector(self.tracker.vector())}
        return [SendTo(node_id, tuple(wire.command(SYNC, header).frames()))]

    def _beat_frames(self) -> tuple[bytes, ...]:
        header = {"node": self.node_id, "vector": encode_vector(self.tracker.vector())}
        return tuple(wire.command(BEAT, header).frames())

    def _ack_command(self, node_id: str, ids: Iterable[str]) -> SendTo:
        header = {"node": self.node_id, "ids": sorted(ids)}
        return SendTo(node_id, tuple(wire.command(ACK, header).frames()))

    def _dm_command(self, node_id: str, messages: Sequence[Message]) -> SendTo:
        frames = wire.command(DM, {"node": self.node_id}, messages).frames()
        return SendTo(node_id, tuple(frames))

    def _links_of(self, user: str | None) -> list[_Link]:
        return [link for link in self._links.values() if link.peer.user == user]

    def _offer(self, peer: Peer, now: float) -> list[Output]:
        """Every unacknowledged direct message to this peer's user, in bounded batches."""
        waiting = [m for m in self._outbox.values() if m.recipient == peer.user]
        outputs: list[Output] = []
        for start in range(0, len(waiting), BATCH_MESSAGES):
            chunk = waiting[start:start + BATCH_MESSAGES]
            outputs.append(self._dm_command(peer.node_id, chunk))
            for message in chunk:
                self._offered[message.id] = now
        return outputs

    def _offer_due(self, now: float) -> list[Output]:
        """Re-offer direct messages still unacknowledged ``resend_after`` after the last try."""
        due = {
            m.recipient for i, m in self._outbox.items()
            if self._offered.get(i, 0.0) + self.resend_after <= now
        }
        outputs: list[Output] = []
        for link in list(self._links.values()):
            if link.peer.user in due:
                outputs += self._offer(link.peer, now)
        return outputs

    def _heard(self, link: _Link, vector: dict[str, int]) -> None:
        """A live peer reported what it holds."""
        link.vector = vector
        self._confirmed = max(self._confirmed, vector.get(self.node_id, 0))

    def _check_accepted(self, now: float) -> list[Output]:
        """Room posts every live peer holds, once discovery had one interval and a peer held them.

        Marks are contiguous, so every pending post numbered up to the lowest
        mark any live peer reported for our origin is held by all of them.
        When every peer has gone, the posts some peer reported holding before
        it went are accepted too: at least one peer holds them, and no live
        peer lacks them (a peer that leaves right after its last BEAT was
        lost on a SUB still connecting must not strand them).
        Pending posts are in numbering order (dict order = posting order).
        """
        if not self._pending_room or now < self.started + self.interval:
            return []
        # In secure mode a peer counts once it proved its key: a forged beacon's endpoint,
        # which never completes the handshake, must not hold every post back.
        links = [
            link for link in self._links.values() if self.trust is None or link.authenticated
        ]
        if links:
            floor = min((link.vector or {}).get(self.node_id, 0) for link in links)
        else:
            floor = self._confirmed
        done = []
        for message_id, seq in self._pending_room.items():
            if seq > floor:
                break
            done.append(message_id)
        for message_id in done:
            del self._pending_room[message_id]
        return [Accepted(tuple(done))] if done else []

    def _chatting(self) -> list[_Link]:
        """The links that count as peers one chats with: in secure mode, once the peer
        proved its key (a forged beacon's endpoint never does)."""
        if self.trust is None:
            return list(self._links.values())
        return [link for link in self._links.values() if link.authenticated]

    def _refresh_status(self) -> list[Output]:
        users = sorted(link.peer.user for link in self._chatting())
        if users:
            noun = "peer" if len(users) == 1 else "peers"
            status = Status(True, f"{len(users)} {noun}: {', '.join(users)}")
        elif self._ever_connected:
            status = Status(False, f"no broadcast peers left on {self.where}")
        else:
            status = Status(False, f"no broadcast peers heard yet on {self.where}")
        if status == self._status:
            return []
        self._status = status
        return [status]
