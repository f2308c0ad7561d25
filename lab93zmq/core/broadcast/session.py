"""Broadcast mode, sans-IO: what a node says to its peers and when. Pure.

``BroadcastSession`` is the whole behaviour of a broadcast node with the I/O
taken out: the shell (``io.broadcast_actor``) feeds it beacon datagrams, frames
from its sockets, posts from the front end and the time (``now``, monotonic
seconds), and carries out the actions (``actions.py``) it returns. It never
touches a socket or a clock; the inbox is injected (``core.inbox.BroadcastInbox``).

It is a facade: it parses, gates (flood cut-off, trust), routes each input to
the machine it concerns and combines what they return:

* ``watch.PeerWatch``       beacons, the live table, liveness, say-once notices
* ``links.Links``           each peer's link, one state table
* ``trust.KeyTrust``        secure mode: whom we link to, who speaks as whom
* ``gate.Gate``             bad input counted, and the flood cut-off
* ``catchup.CatchUp``       version vectors, SYNC/BATCH/BEAT, hold-back
* ``direct.DirectMessages`` the outbox, offers, ACKs
* ``posting.Posting``       our own posts, their numbers, "accepted"

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
      BYE    {node}          "I am leaving now": sent on a clean exit just before
                             the LEAVING beacon, over the authenticated link

Bad input: each problem is a ``faults.Fault`` a parser or machine returns; the
facade counts it in ``stats`` (observability only), logs it, and strikes the
frame list's source once; a source past the flood limit is cut off for
``penalty`` seconds (its links closed, then linked again if still live).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from .. import wire
from ..authoring import Draft
from ..errors import ProtocolError
from ..events import Notice, Posted
from ..inbox import BroadcastInbox
from ..message import Message
from ..presence import Beacon, BeaconKind, Peer, is_node_id
from .actions import (
    MODE,
    Channel,
    ConnectPeer,
    DisconnectPeer,
    Output,
    RouterPeer,
    SendToPeer,
    Verb,
    command_frames,
    verb_on,
)
from .catchup import CatchUp, Taken, published_messages, room_messages, vector_of
from .direct import DirectMessages, ack_ids
from .faults import Fault, rejected
from .gate import PENALTY, Gate
from .links import LinkEvent, Links, LinkState
from .posting import Authored, DirectPost, Posting, RoomPosts
from .trust import BeaconCheck, KeyTrust, Source, Trust
from .watch import Arrived, Change, PeerWatch

# What ``BroadcastSession.stats`` counts (dropped input, sends the shell had to drop,
# connections to live peers that dropped, and what secure mode refused).
STAT_KEYS = ("bad_beacons", "bad_frames", "bad_messages", "misaddressed", "conflicts",
             "send_dropped", "links_dropped", "ignored_beacons", "leavings_doubted",
             "moves_refused", "spoofed", "cut_offs", "cut_off_frames", "handshakes_failed")

# A command's handler: what to send and show, and what was wrong with it.
Handled = tuple[list[Output], list[Fault]]
Handler = Callable[[str, wire.Command, float], Handled]


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
        self.node_id = node_id = store.node_id
        self.where = where
        interval = float(interval)
        self.trust = KeyTrust(trust, node_id, user)
        # Every key exists from the start, so another thread may copy it safely.
        self.stats: Counter[str] = Counter(dict.fromkeys(STAT_KEYS, 0))
        announce = Beacon(BeaconKind.ANNOUNCE, node_id, MODE, router_port, pub_port, user,
                          self.trust.key)
        self.watch = PeerWatch(announce, interval, now, expiry_intervals, self.stats)
        self.peers = self.watch.peers
        self.links = Links(secure=trust is not None)
        self.catchup = CatchUp(node_id, store, interval, now)
        self.direct = DirectMessages(node_id, user, store, interval)
        self.posting = Posting(node_id, user, store, interval, now)
        self.gate = Gate(self.trust, self.stats, penalty)
        # Every command but MSG (gathered and stored together by receive_many).
        self._handlers: dict[Verb, Handler] = {
            Verb.BEAT: self._on_beat,
            Verb.SYNC: self._on_sync,
            Verb.BATCH: self._on_batch,
            Verb.DM: self._on_dm,
            Verb.ACK: self._on_ack,
            Verb.BYE: self._on_bye,
        }

    # -- the front end's requests ------------------------------------------

    def start(self, now: float) -> list[Output]:
        """Beacon at once and say we are looking."""
        return self._refresh_status() + self.tick(now)

    def stop(self, now: float) -> list[Output]:
        """A clean exit: BYE to every linked peer, then the LEAVING beacon (same ports as
        our ANNOUNCE). The BYE goes over the link, so a secure peer, which takes a LEAVING
        only as doubt, drops us at once all the same."""
        bye = command_frames(Verb.BYE, {"node": self.node_id})
        outputs: list[Output] = [SendToPeer(link.node_id, bye) for link in self.links.all_linked()]
        return outputs + [self.watch.leaving()]

    def post(self, draft: Draft, now: float) -> list[Output]:
        """Author one message (room or direct), store it and send it (see ``post_many``)."""
        return self.post_many([draft], now)

    def post_many(self, drafts: Sequence[Draft], now: float) -> list[Output]:
        """Author a burst of posts, store them and send them, in posting order: the
        room posts of a run in one transaction, published together (``Posting``)."""
        outputs: list[Output] = []
        for authored in self.posting.author(drafts):
            outputs += self._send_authored(authored, now)
        return outputs + self._check_accepted(now)

    def _send_authored(self, authored: Authored, now: float) -> list[Output]:
        """What to send for what was just authored and stored: Posted first, so the
        front end hears a post is durable before it hears it is accepted."""
        if isinstance(authored, RoomPosts):
            for message in authored.messages:
                self.catchup.published(message.origin_seq)
            return [Posted(authored.messages), *self.posting.publish(authored.messages)]
        if isinstance(authored, DirectPost):
            message = authored.message
            links = self.links.of_user(message.recipient)
            return [Posted((message,)), *self.direct.post(message, links, now)]
        return [authored]  # Rejected

    def who(self) -> list[str]:
        """The users of live broadcast peers, sorted, each once."""
        return sorted({link.user for link in self.links.counted()})

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
        ]
        return min(d for d in deadlines if d is not None)

    def tick(self, now: float) -> list[Output]:
        """Do what is due: expire peers, beacon, heartbeat, re-offer direct messages."""
        self.posting.tick(now)
        outputs = self._route(self.watch.expire(now), now)
        outputs += self._end_penalties(now)
        outputs += self.watch.beacon(now)
        outputs += self.catchup.beat(now)
        outputs += self.direct.offer_due(self.links.all_linked(), now)
        outputs += self.catchup.release_overdue(now)
        outputs += self._check_accepted(now)
        return outputs + self._refresh_status()

    # -- beacons -----------------------------------------------------------------

    def receive_beacon(self, data: bytes, address: str, now: float) -> list[Output]:
        """One datagram from the beacon port, with its source address.

        A broadcast node's beacon passes trust first: one we will not link to is
        named once; in secure mode a LEAVING is only doubt and a beacon moving a
        connected peer is refused (``KeyTrust.judge``).
        """
        beacon = self.watch.decode(data, address)
        if beacon is None:
            return []
        if self.watch.of_a_peer(beacon):
            refusal = self.trust.refusal(beacon, address)
            if refusal is not None:
                return self.watch.refuse(beacon, address, refusal, now)
            known = self.peers.get(beacon.node_id)
            check = self.trust.judge(beacon, known, self.links.is_up(beacon.node_id))
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

    def _route(self, changes: list[Change], now: float) -> list[Output]:
        """Act on what changed in the peer table."""
        outputs: list[Output] = []
        for change in changes:
            if isinstance(change, Arrived):
                outputs += self._joined(change.peer, now, change.verb)
            else:
                why = change.why and f"{self.links.name(change.peer)} {change.why}"
                outputs += self._unlink(change.peer.node_id, LinkEvent.GONE, why)
        return outputs

    def _joined(self, peer: Peer, now: float, verb: str) -> list[Output]:
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
        notice = Notice(f"{named.user} {verb} from {named.address}")
        outputs: list[Output] = [ConnectPeer(named), notice]
        outputs += self._pull(peer.node_id, now)
        early_sync, owed = self.links.take_pending(peer.node_id)
        if early_sync is not None:
            outputs += self.catchup.answer(peer.node_id, early_sync, now)
        if owed:
            outputs.append(self.direct.ack(peer.node_id, owed))
        return outputs + self.direct.offer(joined.link, now)

    def _unlink(self, node_id: str, event: LinkEvent, notice: str | None) -> list[Output]:
        """Its link ends (GONE or CUT_OFF): close our sockets to it, if any were open."""
        moved = self.links.apply(node_id, event)
        if moved is None or not moved.was_linked:
            return []
        self.catchup.forget(node_id)
        outputs: list[Output] = [DisconnectPeer(node_id)]
        return outputs + [Notice(notice)] if notice else outputs

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
        self.links.apply(node_id, LinkEvent.HANDSHAKE)
        self.watch.link_up(node_id)
        return self._refresh_status()

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
        dropped. Consecutive MSGs are stored in one transaction, which is what
        lets a node keep up with a busy room.
        """
        outputs: list[Output] = []
        room: list[Message] = []
        for index, frames in enumerate(batch):
            peer = senders[index] if senders is not None else None
            link = self.links.linked(via) if via is not None else None
            source = self.gate.source(via, link.user if link else None, peer)
            if not self.gate.admits(source, now):
                continue
            faults: list[Fault] = []
            try:
                sender, verb, command = parse(frames, via, self.node_id)
                if self.trust.secure:
                    via_name = link.user if link else None
                    self.trust.check_sender(sender, via, via_name, peer.user_id if peer else None)
                self._alive(sender, now)
                if verb is Verb.MSG:
                    messages, faults = self.trust.published(
                        sender, published_messages(command.payloads)
                    )
                    room += messages
                else:
                    outputs += self._flush(room, via, now)
                    handled, faults = self._handlers[verb](sender, command, now)
                    outputs += handled
            except ProtocolError as error:
                faults += rejected(via, error)
            if faults:
                outputs += self._judge(faults, source, now)
        outputs += self._flush(room, via, now)
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

    # -- commands ----------------------------------------------------------------

    def _flush(self, room: list[Message], via: str | None, now: float) -> list[Output]:
        """Store the MSGs gathered so far (and empty the list); pull from ``via`` on a gap."""
        if not room:
            return []
        taken = self._take(room, now)
        room.clear()
        if taken.gap and via is not None:
            taken.outputs += self._pull(via, now)
        return taken.outputs

    def _take(self, messages: list[Message], now: float) -> Taken:
        taken = self.catchup.take(messages, now)
        self.posting.saw_own(messages)
        self.stats["conflicts"] += len(taken.conflicts)
        return taken

    def _pull(self, node_id: str, now: float) -> list[Output]:
        return self.catchup.pull(node_id, now) if self.links.linked(node_id) else []

    def _on_beat(self, sender: str, command: wire.Command, now: float) -> Handled:
        vector = vector_of(command.header)
        if self.links.linked(sender) is None:
            return [], []
        return self.catchup.on_beat(sender, vector, now), []

    def _on_sync(self, sender: str, command: wire.Command, now: float) -> Handled:
        vector = vector_of(command.header)
        if self.links.linked(sender) is None:
            self.links.remember_sync(sender, vector)  # answered as soon as it joins
            return [], []
        return self.catchup.answer(sender, vector, now), []

    def _on_batch(self, sender: str, command: wire.Command, now: float) -> Handled:
        vector = vector_of(command.header)
        messages, faults = room_messages(sender, command.payloads, "a message in a BATCH")
        messages, spoofed = self.trust.filter(messages, sender)
        before = self.catchup.vector()
        outputs = self._take(messages, now).outputs
        if self.links.linked(sender) is not None:
            outputs += self.catchup.answered(sender, vector, before, now)
        return outputs, faults + spoofed

    def _on_dm(self, sender: str, command: wire.Command, now: float) -> Handled:
        linked = self.links.linked(sender) is not None
        got = self.direct.take(sender, command.payloads, self.trust.direct, linked)
        self.stats["conflicts"] += len(got.conflicts)
        if got.owed:
            self.links.owe_acks(sender, got.owed)
        return got.outputs, got.faults

    def _on_ack(self, sender: str, command: wire.Command, now: float) -> Handled:
        ids = ack_ids(command.header)
        link = self.links.linked(sender)
        if link is None:
            return [], []  # we cannot tell whose node it is; the next offer is acked again
        return self.direct.acknowledged(link.user, ids), []

    def _on_bye(self, sender: str, command: wire.Command, now: float) -> Handled:
        """The peer is leaving (a clean exit). In secure mode this arrived over its
        authenticated link, bound to its key, so unlike a LEAVING it cannot be forged."""
        departed = self.watch.bye(sender)
        if not departed:
            return [], []
        return self._route(departed, now) + self._refresh_status(), []

    # -- what the front end sees ------------------------------------------------------

    def _check_accepted(self, now: float) -> list[Output]:
        """Room posts every peer that counts holds (``Posting.accepted``)."""
        if not self.posting.waiting:
            return []
        marks = [self.catchup.reported_mark(link.node_id, self.node_id)
                 for link in self.links.counted()]
        return self.posting.accepted(now, marks, self.catchup.confirmed)

    def _refresh_status(self) -> list[Output]:
        return self.links.status_changed(self.where)


def parse(frames: Sequence[bytes], via: str | None, own_id: str) -> tuple[str, Verb, wire.Command]:
    """The sender, verb and command of one frame list from the ROUTER (``via`` None) or
    from ``via``'s SUB, checked; ProtocolError otherwise."""
    channel = Channel.ROUTER if via is None else Channel.PUB
    command = wire.decode(frames)
    sender = command.header.get("node")
    if not is_node_id(sender):
        raise ProtocolError("header field 'node' must be 32 lowercase hex digits")
    if via is not None and sender != via:
        raise ProtocolError(f"{command.name} on {via[:8]}'s PUB claims node {sender[:8]}")
    verb = verb_on(command.name, channel)
    if verb is None:
        raise ProtocolError(f"unexpected {command.name} on the {channel.value} socket")
    if sender == own_id:
        raise ProtocolError("a command carrying our own node id")
    return sender, verb, command
