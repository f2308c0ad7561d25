"""Broadcast mode, sans-IO: what a node says to its peers and when. Pure.

``BroadcastSession`` is the whole behaviour of a broadcast node with the I/O
taken out: the shell (``io.broadcast_actor``) feeds it beacon datagrams, frames
from its sockets, posts from the front end and the time (``now``, monotonic
seconds), and carries out the actions (``actions.py``) it returns. It never
touches a socket or a clock; the inbox is injected (``core.inbox.BroadcastInbox``).

It is a facade: it parses, gates (flood cut-off, trust), routes each input to
the machine it concerns and combines what they return:

* ``watch.PeerWatch``        beacons, the live table, liveness, say-once notices
* ``links.Links``            each peer's link, one state table
* ``trust.KeyTrust``         secure mode: whom we link to, who speaks as whom
* ``gate.Gate``              bad input counted, and the flood cut-off
* ``membership.Membership``  our rooms, and the rooms each peer announced
* ``catchup.CatchUp``        each room's ``roomsync.RoomSync`` (vectors, floors,
                             SYNC/BATCH/HAVE, hold-back) and our BEAT
* ``topics.Topics``          each room's winning topic
* ``direct.DirectMessages``  the outbox, offers, ACKs
* ``posting.Posting``        our own posts, their numbers, "accepted"

and two mixins: ``requests.Requests``, the front end's requests (posts, rooms, topics,
who, accepted), and ``handlers.Handlers``, what it does with each command.

Sockets (the shell's): a PUB every peer subscribes to, a ROUTER every peer's
DEALER connects to; for each live broadcast peer a SUB on its PUB (subscribed
to the node topic and our rooms' topics) and a DEALER to its ROUTER. The
ROUTER only receives: an answer to a peer always goes over our own DEALER to
*its* ROUTER, so every exchange works the same in both directions.

Commands (frames as in ``wire.py``; every header carries ``"node"``, the
sender's node id; docs/PROTOCOL.rst, "Broadcast mode", has every field)::

    on the PUB, under the room's topic #room\n
      MSG    {node, room}            the room's messages the sender authored
      HAVE   {node, room, vector}    the sender's vector of the room
    on the PUB, under the node topic *
      BEAT   {node, rooms}           each room the sender is in -> its digest
      ROOMS  {node, rooms}           [{name, topic}]: the rooms it is in
    to a peer's ROUTER (over our DEALER)
      ROOMS  {node, rooms}           to a peer just linked
      SYNC   {node, room, vector, tail?, peek?}   "send me what I lack of it"
      BATCH  {node, room, vector, floors?}        what the asker lacks
      DM     {node}                  direct messages to the receiver's user
      ACK    {node, ids}             the receiver stored these direct messages
      BYE    {node}                  "I am leaving now" (a clean exit)

Bad input: each problem is a ``faults.Fault`` a parser or machine returns; the
facade counts it in ``stats`` (observability only), logs it, and strikes the
frame list's source once; a source past the flood limit is cut off for
``penalty`` seconds (its links closed, then linked again if still live).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .. import wire
from ..errors import ProtocolError
from ..events import Joined, Notice, Rejected
from ..inbox import BroadcastInbox
from ..message import Message
from ..presence import Beacon, BeaconKind, OldBeacon, Peer
from ..rooms import DEFAULT_ROOM
from .actions import (
    MODE,
    ConnectPeer,
    DisconnectPeer,
    Output,
    RouterPeer,
    SendToPeer,
    Verb,
    command_frames,
)
from .catchup import CatchUp
from .direct import DirectMessages
from .faults import Fault, rejected
from .gate import PENALTY, Gate
from .handlers import Handler, Handlers
from .headers import parse, published_messages
from .links import LinkEvent, Links, LinkState
from .membership import Membership
from .posting import Posting
from .requests import Requests
from .topics import Topics
from .trust import BeaconCheck, KeyTrust, Source, Trust
from .watch import PeerHeard, PeerWatch, WatchChange

log = logging.getLogger(__name__)

# What ``BroadcastSession.stats`` counts (dropped input, sends the shell had to drop,
# connections to live peers that dropped, what secure mode refused, older versions heard).
STAT_KEYS = ("bad_beacons", "bad_frames", "bad_messages", "misaddressed", "conflicts",
             "send_dropped", "links_dropped", "ignored_beacons", "leavings_doubted",
             "moves_refused", "spoofed", "cut_offs", "cut_off_frames", "handshakes_failed",
             "old_beacons", "unsolicited", "unproven")


def misnamed(message: Message, user: str) -> str:
    """Why a message an earlier run wrote under another name is not sent (it is deleted)."""
    text = message.content if len(message.content) <= 40 else message.content[:39] + "…"
    return (f"{text!r} is written as {message.author!r}, but a secure node speaks as its"
            f" key's name, {user!r}; it is taken out of the inbox")


class BroadcastSession(Requests):
    """One broadcast node's protocol state. Every method takes ``now`` and returns outputs.

    ``where`` names the beacon interfaces for status lines ("lo", "eth0"); ``rooms``
    are the rooms it starts in (the first is the current one); ``listen`` False is a
    send-only run (see ``membership.py``).
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
        rooms: Sequence[str] = (DEFAULT_ROOM,),
        listen: bool = True,
    ) -> None:
        self.trust = KeyTrust(trust, store.node_id, user)
        self.node_id = node_id = self.trust.node_id  # secure: our key's (signing.node_id_of)
        # Secure: what an earlier run wrote under another name than our key's would be
        # offered, and dropped as spoofed, at every meeting (and hold up our later posts):
        # taken out before our marks are read, and told at start.
        self._withdrawn = store.withdraw_misnamed(node_id, user) if trust is not None else []
        self.where = where
        interval = float(interval)
        # Every key exists from the start, so another thread may copy it safely.
        self.stats: Counter[str] = Counter(dict.fromkeys(STAT_KEYS, 0))
        announce = Beacon(BeaconKind.ANNOUNCE, node_id, MODE, router_port, pub_port, user,
                          self.trust.key)
        self.watch = PeerWatch(announce, interval, now, expiry_intervals, self.stats)
        self.peers = self.watch.peers
        self.links = Links(secure=trust is not None)
        self.membership = Membership(store, user, rooms, listen)
        self.topics = Topics(store)
        self.catchup = CatchUp(node_id, store, interval, now, listen, self.topics.current)
        self._joined_at_start: list[Joined] = []
        for room in self.membership.ours:
            state = self.membership.state(room)
            self.membership.start(room)
            self.catchup.add(room, state)
            self._joined_at_start.append(Joined(room, self.topics.event(room), state is None))
        self.direct = DirectMessages(node_id, user, store, interval)
        self.posting = Posting(node_id, user, store, interval, now, self.trust.seal)
        self.gate = Gate(self.trust, self.stats, penalty)
        self._greetings: dict[str, str] = {}  # linked, not announced yet: "joined", ...
        # Secure: greetings of persons who announced themselves before our handshake with
        # them completed; told once it does (a forged beacon's never is).
        self._greet_when_proven: dict[str, Notice] = {}
        # Secure: how long a link may take to complete its handshake before its address
        # counts as failed (``PeerTable.bar``) and another one is tried.
        self.proof_time = max(2.0 * interval, 1.0)
        # Every command but MSG (gathered and stored together by receive_many).
        self._handlers: dict[Verb, Handler] = {
            Verb.BEAT: Handlers._on_beat,
            Verb.HAVE: Handlers._on_have,
            Verb.ROOMS: Handlers._on_rooms,
            Verb.SYNC: Handlers._on_sync,
            Verb.BATCH: Handlers._on_batch,
            Verb.DM: Handlers._on_dm,
            Verb.ACK: Handlers._on_ack,
            Verb.BYE: Handlers._on_bye,
        }

    # -- the front end's requests ------------------------------------------

    def start(self, now: float) -> list[Output]:
        """Beacon at once and say we are looking; the rooms we are in (listening)."""
        joined: list[Output] = list(self._joined_at_start) if self.membership.listen else []
        withdrawn: list[Output] = [Rejected(m.id, misnamed(m, self.posting.user))
                                   for m in self._withdrawn]
        return self._refresh_status() + joined + withdrawn + self.tick(now)

    def stop(self, now: float) -> list[Output]:
        """A clean exit: BYE to every linked peer, then the LEAVING beacon (same ports as
        our ANNOUNCE). The BYE goes over the link, so a secure peer, which takes a LEAVING
        only as doubt, drops us at once all the same."""
        bye = command_frames(Verb.BYE, {"node": self.node_id})
        outputs: list[Output] = [SendToPeer(link.node_id, bye) for link in self.links.all_linked()]
        return outputs + [self.watch.leaving()]

    def scan(self, now: float, wall: datetime) -> list[dict[str, Any]]:
        """Every live instance heard, as ``--scan --json`` (``PeerWatch.scan``)."""
        return self.watch.scan(now, wall)

    # -- time ------------------------------------------------------------------

    def next_deadline(self) -> float:
        """When ``tick`` next has work to do (monotonic seconds)."""
        live_users = (link.user for link in self.links.all_linked())
        deadlines = [
            self.watch.next_deadline(), self.catchup.next_deadline(),
            self.posting.next_deadline(), self.direct.next_deadline(live_users),
            self.gate.next_deadline(),
            *(link.linked_at + self.proof_time for link in self.links.unproven()),
        ]
        return min(d for d in deadlines if d is not None)

    def tick(self, now: float) -> list[Output]:
        """Do what is due: expire peers, beacon, heartbeat, re-offer direct messages."""
        self.posting.tick(now)
        outputs = self._route(self.watch.expire(now), now)
        outputs += self._fail_unproven(now)
        outputs += self._end_penalties(now)
        outputs += self.watch.beacon(now)
        outputs += self.catchup.beat(now)
        outputs += self.catchup.due(now)
        outputs += self.direct.offer_due(self.links.all_linked(), now)
        outputs += self._check_accepted(now)
        return outputs + self._refresh_status()

    def interfaces_changed(self, where: str, now: float) -> list[Output]:
        """The shell's beacon interfaces changed (an address came or went): ``where``
        names them now. Beacon at once (a new interface's peers hear us), and say where."""
        self.where = where
        self.watch.discovery.schedule.request_answer()
        return self.watch.beacon(now) + self._refresh_status()

    # -- beacons -----------------------------------------------------------------

    def receive_beacon(self, data: bytes, address: str, now: float) -> list[Output]:
        """One datagram from the beacon port, with its source address.

        A broadcast node's beacon passes trust first: one we will not link to is
        named once; in secure mode a LEAVING is only doubt and a beacon moving a
        connected peer is refused (``KeyTrust.judge``). An older version's node
        is told once to upgrade.
        """
        beacon = self.watch.decode(data, address)
        if isinstance(beacon, OldBeacon):
            return self.watch.old(beacon, address, now)
        if beacon is None:
            return []
        if self.watch.of_a_peer(beacon):
            refusal = self.trust.refusal(beacon, address)
            if refusal is not None:
                return self.watch.refuse(beacon, address, refusal, now)
            known = self.peers.get(beacon.node_id)
            check = self.trust.judge(beacon, address, known, self.links.is_up(beacon.node_id))
            if check is not BeaconCheck.TAKE:
                return self._doubt(beacon, known, check, now)
        outputs = self._route(self.watch.take(beacon, address, now), now)
        outputs += self.watch.beacon(now)  # an answer may be due right away
        return outputs + self._check_accepted(now) + self._refresh_status()

    def _doubt(self, beacon: Beacon, known: Peer | None, check: BeaconCheck,
               now: float) -> list[Output]:
        """Secure mode: a beacon ``trust.judge`` would not take as it is."""
        if check is BeaconCheck.REFUSE_MOVE:
            self.watch.refuse_move(beacon, self.links.name(known), now)
        elif check is BeaconCheck.DOUBT:
            probe = self.watch.doubt(beacon, self.links.name(known), now)
            if probe is not None:
                self.links.apply(beacon.node_id, LinkEvent.LEAVING)
                return probe
        return []

    def _route(self, changes: list[WatchChange], now: float) -> list[Output]:
        """Act on what changed in the peer table."""
        outputs: list[Output] = []
        for change in changes:
            if isinstance(change, PeerHeard):
                outputs += self._joined(change.peer, now, change.verb)
            else:
                why = change.why and f"{self.links.name(change.peer)} {change.why}"
                outputs += self._unlink(change.peer.node_id, LinkEvent.GONE, why)
        return outputs

    def _joined(self, peer: Peer, now: float, verb: str) -> list[Output]:
        """A broadcast peer to link to: open our sockets to it and tell it our rooms; it is
        greeted once it announced its own (a pipeline, in no room, never is)."""
        if peer.mode != MODE:
            return []  # a repeater server: listed by /scan, not a chat peer
        named = self.trust.named(peer)
        if named is None:  # its key was removed from the directory meanwhile
            return []
        if self.gate.is_cut(self.trust.peer_source(named), now):
            self.links.apply(peer.node_id, LinkEvent.JOINED_CUT, named)
            return []  # cut off for flooding: _end_penalties links it again later
        joined = self.links.apply(peer.node_id, LinkEvent.JOINED, named)
        if joined is None:
            return []  # already linked (cannot happen: the table says it is new or changed)
        self._greetings[peer.node_id] = verb
        joined.link.linked_at = now
        outputs: list[Output] = [ConnectPeer(named, self._subscriptions()),
                                 self._rooms_to(peer.node_id)]
        pending = self.links.take_pending(peer.node_id)
        if pending.rooms is not None:
            outputs += self._announced(joined.link, pending.rooms, pending.rooms, now,
                                       pending.away)
        for request in pending.syncs:
            outputs += self.catchup.answer(peer.node_id, request, now)
        if pending.acks:
            outputs.append(self.direct.ack(peer.node_id, pending.acks))
        return outputs + self.direct.offer(joined.link, now)

    def _subscriptions(self) -> tuple[bytes, ...]:
        """What our SUBs subscribe to: the node topic, and each of our rooms' (listening)."""
        rooms = self.membership.announced()
        return (wire.NODE_TOPIC, *(wire.room_topic(room) for room in rooms))

    def _unlink(self, node_id: str, event: LinkEvent, notice: str | None) -> list[Output]:
        """Its link ends (GONE or CUT_OFF): close our sockets to it, if any were open. A
        peer that restarted (GONE, nothing to say) keeps its rooms on record, so its next
        announcement is no coming and going."""
        link = self.links.linked(node_id)
        user = link.user if link is not None else ""
        moved = self.links.apply(node_id, event)
        if moved is None or not moved.was_linked:
            return []
        self.catchup.forget(node_id)
        self._greetings.pop(node_id, None)
        self._greet_when_proven.pop(node_id, None)
        person = self.membership.is_person(node_id)
        quiet = event is LinkEvent.GONE and notice is None
        left = self.membership.forget(node_id, quiet)
        outputs: list[Output] = [DisconnectPeer(node_id)]
        outputs += self.membership.member_events(user, (), left)
        return outputs + [Notice(notice)] if notice and person else outputs

    # -- connections -----------------------------------------------------------------

    def on_link_down(self, node_id: str, now: float) -> list[Output]:
        """Our DEALER's connection to this peer dropped (the shell's socket monitor).

        A killed process's kernel closes its connections at once, so this is
        the first sign of a crash: gone unless it beacons within the link grace
        (``PeerWatch.link_down``). In secure mode only a link that was up counts
        (``links.SECURE_TRANSITIONS``): a failed handshake ends in a drop too.
        """
        if self.links.apply(node_id, LinkEvent.DROPPED) is None:
            return []
        return self.watch.link_down(node_id, now)

    def on_link_up(self, node_id: str, now: float) -> list[Output]:
        """Our DEALER's connection to this peer is (back) up (in secure mode: the peer
        proved it holds the key we pinned)."""
        moved = self.links.apply(node_id, LinkEvent.HANDSHAKE)
        self.watch.link_up(node_id)
        outputs: list[Output] = []
        if moved is not None and moved.link.peer is not None:
            self.peers.proven(node_id, moved.link.peer.address)
            greeting = self._greet_when_proven.pop(node_id, None)
            if greeting is not None:
                outputs.append(greeting)
        return outputs + self._refresh_status()

    def _fail_unproven(self, now: float) -> list[Output]:
        """Secure mode: links whose handshake did not complete within ``proof_time``. Their
        address never proved itself (a forged beacon's, or unreachable): drop the peer
        quietly and bar that address for it a while, so its beacons from elsewhere count."""
        outputs: list[Output] = []
        for link in self.links.unproven():
            if link.linked_at + self.proof_time > now or link.peer is None:
                continue
            self.stats["unproven"] += 1
            log.info("no handshake with %s (%s) at %s within %g s; trying elsewhere",
                     link.user, link.node_id[:8], link.peer.address, self.proof_time)
            self.peers.bar(link.node_id, link.peer.address, now)
            outputs += self._unlink(link.node_id, LinkEvent.GONE, None)
        return outputs

    def on_handshake_failed(self, node_id: str | None, problem: str, now: float) -> list[Output]:
        """A socket monitor saw a handshake fail: with this linked peer (our DEALER) or,
        ``node_id`` None, with someone connecting to our ROUTER or PUB. ``problem`` is
        ``security.handshake_problem``'s sentence."""
        link = self.links.linked(node_id) if node_id is not None else None
        return self.watch.handshake_failed(node_id, link.peer if link else None, problem, now)

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
        dropped. Consecutive MSGs of one room are stored in one transaction,
        which is what lets a node keep up with a busy room.
        """
        outputs: list[Output] = []
        gathered: list[Message] = []  # MSGs of ``gathering`` read in a row
        gathering: str | None = None
        for index, frames in enumerate(batch):
            peer = senders[index] if senders is not None else None
            link = self.links.linked(via) if via is not None else None
            source = self.gate.source(via, link.user if link else None, peer)
            if not self.gate.admits(source, now):
                continue
            faults: list[Fault] = []
            try:
                sender, verb, command, room = parse(frames, via, self.node_id)
                if self.trust.secure:
                    via_name = link.user if link else None
                    self.trust.check_sender(sender, via, via_name, peer.user_id if peer else None)
                self._alive(sender, now)
                if verb is Verb.MSG:
                    assert room is not None
                    messages, faults = self.trust.published(
                        sender, published_messages(command.payloads, room)
                    )
                    if room != gathering:
                        outputs += self._flush(gathering, gathered, via, now)
                        gathering = room
                    gathered += messages
                else:
                    outputs += self._flush(gathering, gathered, via, now)
                    handled, faults = self._handlers[verb](self, sender, command, now)
                    outputs += handled
            except ProtocolError as error:
                faults += rejected(via, error)
            if faults:
                outputs += self._judge(faults, source, now)
        outputs += self._flush(gathering, gathered, via, now)
        return outputs + self._check_accepted(now)

    def _alive(self, sender: str, now: float) -> None:
        """A command passed every check: the sender shows life."""
        self.watch.traffic(sender, now)
        if self.links.apply(sender, LinkEvent.SHOWED_LIFE) is not None:
            # Life over its authenticated link after a LEAVING: the LEAVING was forged.
            self.watch.link_up(sender)

    def _judge(self, faults: list[Fault], source: Source | None, now: float) -> list[Output]:
        """Count what one frame list did wrong (``Gate.judge``); a source cut off now has
        its links closed and is named once."""
        if not self.gate.judge(faults, source, now) or source is None:
            return []
        links = [link for link in self.links.all_linked()
                 if link.peer is not None and self.trust.peer_source(link.peer) == source]
        text = self.gate.cut_text(source, links[0].user if links else None)
        outputs: list[Output] = []
        for link in links:
            outputs += self._unlink(link.node_id, LinkEvent.CUT_OFF, None)
        return outputs + [Notice(text)]

    def _end_penalties(self, now: float) -> list[Output]:
        """Link again the live peers whose cut-off is over."""
        over = self.gate.over(now)
        outputs: list[Output] = []
        for link in self.links.in_state(LinkState.CUT) if over else []:
            peer = self.peers.get(link.node_id)
            if peer is not None and self.trust.peer_source(self.trust.linkable(peer)) in over:
                outputs += self._joined(peer, now, "is back; reconnected")
        return outputs

    # -- MSG -----------------------------------------------------------------------

    def _flush(self, room: str | None, messages: list[Message], via: str | None,
               now: float) -> list[Output]:
        """Store the MSGs of ``room`` gathered so far (and empty the list); pull from ``via``
        on a gap. A room we are not in (a late frame after /part) is dropped unread."""
        if not messages:
            return []
        sync = self.catchup.get(room)
        if sync is None or not sync.listen:
            messages.clear()
            return []
        taken = sync.take(messages, now)
        self.posting.saw_own(messages)
        self.stats["conflicts"] += len(taken.conflicts)
        messages.clear()
        outputs = taken.outputs + self._topics(taken.topics)
        if taken.gap and via is not None and self.links.linked(via):
            outputs += sync.pull(via, now)
        return outputs

    # -- what the front end sees ------------------------------------------------------

    def _refresh_status(self) -> list[Output]:
        return self.links.status_changed(self.where,
                                         lambda link: self.membership.is_person(link.node_id))

