"""Broadcast mode's I/O shell: the actor that owns the sockets and drives ``BroadcastSession``.

One thread, one ``zmq.Poller``, whose timeout is the session's next deadline.
It polls the front end's pipe, the ROUTER, one SUB per live peer and the UDP
beacon sockets (by file descriptor). Everything it reads goes into the
session with ``now``; everything the session returns is carried out here.
Every decision lives in ``core.broadcast`` (``session.py``, the facade). The
front end's requests (``actor.py`` lists them: POST, JOIN, PART, ROOMS, TOPIC,
WHO, HISTORY, SCAN) are dispatched by ``_ANSWERS``; a TOPIC's id and time are
made here (the clock and randomness live in the shell).

Sockets, all with ``LINGER=0``:

* PUB, bound to an ephemeral port on ``config.address``: our room messages
  and what we hold of each room under the room's topic, heartbeats and our
  rooms under the node topic (ZeroMQ filters by topic here: a peer not in a
  room gets nothing of it).
* ROUTER, bound to ``config.port`` on ``config.address`` when free, else to
  an ephemeral port: what peers send us (sync, direct messages, acks). It
  never sends.
* per live broadcast peer: a SUB on its PUB, subscribed to the topics the
  session names (``ConnectPeer``, ``Subscribe``, ``Unsubscribe``: every SUB
  follows our rooms), and a DEALER to its ROUTER (``SNDHWM`` bounded, sends
  never block: ``zmq.Again`` drops that one command for that peer, and the
  protocol's retries repair it). Both close when the peer leaves or expires.
* per DEALER, its socket monitor (an inproc PAIR): a dropped connection
  (``EVENT_DISCONNECTED``: a killed peer's kernel closes it at once) goes to
  ``session.on_link_down``, a completed handshake to ``session.on_link_up``,
  a failed one (``security.HANDSHAKE_EVENTS``) to
  ``session.on_handshake_failed``; the ROUTER and the PUB have a monitor for
  failed handshakes too (the server side).

Every socket facing the network sets ``MAXMSGSIZE`` (the PUB too: it reads
its subscribers' subscriptions). The interfaces are read again every interval.

Secure mode (``config.secure``): the network sockets live in a context of
this node's own, because a ZAP handler serves a whole context and tests run
several nodes in one process. A ``KeyAuthenticator`` for the authorized keys
starts before anything binds and stops at the end. The ROUTER and the PUB are
CURVE servers with our key pair; each peer's SUB and DEALER is a CURVE client
pinned to the key in that peer's beacon, so only that key's holder completes
the handshake. ROUTER frames carry the ``User-Id`` the authenticator set (the
key's name); the session checks it against the sender's node id, and every
message's Ed25519 signature (``secure_broadcast.broadcast_trust``).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import zmq

from ..core import wire
from ..core.authoring import Draft
from ..core.away import AwayTextError, away_text
from ..core.broadcast.actions import (
    ConnectPeer,
    DisconnectPeer,
    Output,
    PublishFrames,
    RouterPeer,
    SendBeacon,
    SendToPeer,
    Subscribe,
    Unsubscribe,
)
from ..core.broadcast.session import BroadcastSession
from ..core.broadcast.trust import Trust
from ..core.errors import ConfigError, Lab93Error
from ..core.message import make_id
from ..core.rooms import RoomError, room_name
from . import security, sockets
from .actor import Actor, PipeKind, PipeMessage, drain_requests, send, send_events
from .beacon import BeaconSocket
from .config import EXPIRY_INTERVALS, NodeConfig, SecureConfig
from .handshake import HandshakeMonitor
from .history import answer_history, answer_outbox
from .interfaces import describe, resolve, usable
from .secure_broadcast import broadcast_trust
from .store import Inbox, utc_now
from .store_edge import StoreEdge

log = logging.getLogger(__name__)

PEER_SNDHWM = 100  # commands queued for one peer (a BATCH is <= 1 MiB) before drops
DRAIN = 100  # messages read from one socket per loop turn, so none starves the others
DRAIN_FRAMES = 1_000  # and at most about this many frames (a MSG or BATCH carries up to 200)
# What a DEALER's monitor reports: the connection dropped / a handshake completed or failed.
LINK_EVENTS = zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | security.HANDSHAKE_EVENTS
REREAD_INTERFACES = 1.0  # seconds between looks at the host's interfaces (at least an interval)
BYE_LINGER_MS = 200  # how long closing DEALERs may still deliver our BYE on a clean exit
PIPE_DRAIN = 500  # front-end requests per loop turn: a burst of posts is one transaction


class BroadcastActor(Actor):
    """Broadcast mode's actor: ``ActorHandle(BroadcastActor(config)).start()``.

    After READY, ``router_port``, ``pub_port`` and ``node_id`` are set, and
    ``stats`` counts what was dropped (for tests and ``-v`` logs).
    """

    name = "broadcast-node"  # the thread, and what a start-up error calls it

    def __init__(
        self,
        config: NodeConfig,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self._monotonic = monotonic
        self._wall = wall
        self.router_port = 0
        self.pub_port = 0
        self.node_id: str | None = None
        self.session: BroadcastSession | None = None
        self._peers: dict[str, _PeerSockets] = {}

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.session.stats) if self.session else {}

    # -- the thread -------------------------------------------------------------

    def run(self, ctx: zmq.Context, pipe: zmq.Socket) -> None:
        config = self.config
        secure = config.secure
        targets, waiting = usable(config.interfaces)  # InterfaceError before anything opens
        if not targets:
            resolve(config.interfaces)  # nothing to beacon on: its sentence, as at any start
        for sentence in waiting:
            log.warning("%s It is used as soon as it can be.", sentence)
        where = describe(targets)
        inbox = Inbox(config.db_path, role="broadcast")  # with its tails' index
        owned: list[zmq.Socket] = []
        beacons: BeaconSocket | None = None
        # A ZAP handler serves a whole context: a secure node gets one of its own.
        net = zmq.Context() if secure is not None else ctx
        auth: Any = None  # zap.KeyAuthenticator, imported only in secure mode
        trust: Trust | None = None
        clean = False
        servers: list[HandshakeMonitor] = []  # failed handshakes on the ROUTER's and PUB's side
        try:
            if secure is not None:
                from .zap import KeyAuthenticator  # asyncio: only secure nodes load it

                authorized = security.AuthorizedKeys(secure.authorized_keys)
                trust = broadcast_trust(secure, authorized, config.user)
                auth = KeyAuthenticator(net, authorized)
                auth.start()  # before anything binds: no connection is ever unauthenticated
            router = self._socket(net, zmq.ROUTER, owned, secure)
            self.router_port = self._bind_router(router)
            pub = self._socket(net, zmq.PUB, owned, secure, sndhwm=10_000)
            self.pub_port = sockets.bind(pub, config.address, 0)
            for sock, name in ((router, "the ROUTER"), (pub, "the PUB")):
                servers.append(HandshakeMonitor(sock, secure=secure is not None, side="server",
                                                where=name))
            beacons = BeaconSocket(targets, config.beacon_port)
            now = self._monotonic()
            session = self.session = BroadcastSession(
                inbox,
                config.user,
                self.router_port,
                self.pub_port,
                config.beacon_interval,
                now,
                where=where,
                expiry_intervals=EXPIRY_INTERVALS,
                trust=trust,
                rooms=config.rooms,
                listen=config.listen,
            )
            self.node_id = session.node_id  # secure: its key's (core.signing.node_id_of)
            poller = zmq.Poller()
            poller.register(pipe, zmq.POLLIN)
            poller.register(router, zmq.POLLIN)
            for monitor in servers:
                poller.register(monitor.socket, zmq.POLLIN)
            for fd in beacons.filenos():
                poller.register(fd, zmq.POLLIN)
            detail = (
                f"broadcast node {session.node_id[:8]} as {config.user} on {where}: "
                f"router {config.address}:{self.router_port}, pub port {self.pub_port}"
                + (f", secure (key {secure.keys.public.decode()})" if secure else "")
            )
            send(pipe, PipeKind.READY, node_id=session.node_id, detail=detail)
            io = _Sockets(net, pipe, pub, beacons, poller, self._peers, session, secure)
            io.server_monitors = {monitor.socket: monitor for monitor in servers}
            io.perform(session.start(now))
            self._serve(io, router, inbox)
            io.perform(session.stop(self._monotonic()))
            clean = True
            dropped = {key: n for key, n in session.stats.items() if n}
            if dropped:
                log.info("dropped while running: %s", dropped)
        finally:
            for link in self._peers.values():
                if clean:  # the BYEs just queued may still go out
                    link.dealer.linger = BYE_LINGER_MS
                link.close()
            self._peers.clear()
            if beacons is not None:
                beacons.close()
            for monitor in servers:
                monitor.close()  # before the socket it watches
            for sock in owned:
                sock.close()
            inbox.close()
            if auth is not None:
                auth.stop()
            if net is not ctx:
                net.term()  # waits at most BYE_LINGER_MS for the BYEs
        send(pipe, PipeKind.STOPPED)

    def _serve(self, io: _Sockets, router: zmq.Socket, inbox: Inbox) -> None:
        session = io.session
        secure = self.config.secure is not None
        store = StoreEdge(inbox, None, self._monotonic())  # the watch on the inbox file
        reread = self._monotonic() + (every := max(REREAD_INTERFACES, self.config.beacon_interval))
        while True:
            deadlines = [session.next_deadline(), store.next_deadline(), reread]
            ready = io.poller.poll(sockets.poll_timeout(deadlines, self._monotonic()))
            now = self._monotonic()
            store.tick(now)  # StoreLost: the inbox file is gone, and the node stops
            for item, _event in ready:
                if item is io.pipe:
                    if not self._requests(io, inbox, now):
                        return
                elif item is router:
                    # A ROUTER prepends the sender's identity frame; we answer over DEALERs.
                    batch, senders = _drain_router(router, secure)
                    io.perform(session.receive_many(batch, now, senders=senders))
                elif item in io.server_monitors:
                    io.server_events(item, now)
                elif isinstance(item, int):
                    for data, address in io.beacons.receive(item):
                        io.perform(session.receive_beacon(data, address, now))
                elif item in io.sub_owner:
                    node_id = io.sub_owner[item]
                    batch = [received.frames for received in _drain(item)]
                    io.perform(session.receive_many(batch, now, via=node_id))
                elif item in io.monitor_owner:
                    io.link_events(item, now)
            if now >= reread:  # after the ready list: it may name a listener closed here
                reread = now + every
                self._reread_interfaces(io, now)
            io.perform(session.tick(self._monotonic()))

    def _reread_interfaces(self, io: _Sockets, now: float) -> None:
        """Beacon on the interfaces as they are now (``interfaces.usable``)."""
        try:
            targets, _ = usable(self.config.interfaces, missing_ok=True)
        except (OSError, ValueError) as error:  # netifaces could not read them this time
            log.debug("cannot read the interfaces: %s", error)
            targets = io.beacons.targets
        if set(targets) == set(io.beacons.targets):
            return
        added, removed = io.beacons.update(targets)
        for fd in removed:  # before the added: a descriptor number may be used again
            io.poller.unregister(fd)
        for fd in added:
            io.poller.register(fd, zmq.POLLIN)
        io.perform(io.session.interfaces_changed(describe(io.beacons.targets), now))

    def _requests(self, io: _Sockets, inbox: Inbox, now: float) -> bool:
        """The front end's waiting requests, in order; False on STOP.

        A burst of posts (a pasted or piped block, a benchmark) becomes one
        ``post_many``: one transaction for all of it, not one per line.
        """
        posts: list[Draft] = []
        for request in drain_requests(io.pipe, PIPE_DRAIN):
            if request.kind is PipeKind.POST:
                body = request.body
                try:
                    posts.append(Draft.from_body(body))
                except (KeyError, TypeError, Lab93Error) as error:
                    io.event(PipeKind.REJECTED, id=str(body.get("id")), reason=f"bad post: {error}")
                continue
            if posts:  # what was posted before this request comes first
                io.perform(io.session.post_many(posts, now))
                posts = []
            if not self._request(io, inbox, request, now):
                return False
        if posts:
            io.perform(io.session.post_many(posts, now))
        return True

    def _request(self, io: _Sockets, inbox: Inbox, request: PipeMessage, now: float) -> bool:
        """One front-end request other than POST; False on STOP."""
        if request.kind is PipeKind.STOP:
            return False
        answer = _ANSWERS.get(request.kind)
        if answer is None:
            log.warning("ignored a %s request", request.kind.value)
        else:
            answer(self, io, inbox, request.body, now)
        return True

    def _scan(self, io: _Sockets, inbox: Inbox, body: dict[str, Any], now: float) -> None:
        io.event(PipeKind.SCAN_RESULT, beacons=io.session.scan(now, self._wall()))

    def _who(self, io: _Sockets, inbox: Inbox, body: dict[str, Any], now: float) -> None:
        room = body.get("room")
        if room is None:
            io.perform([io.session.who()])
        elif (name := _room(io, room)) is not None:
            io.perform([io.session.who(name)])

    def _join(self, io: _Sockets, inbox: Inbox, body: dict[str, Any], now: float) -> None:
        room = _room(io, body.get("room"))
        if room is not None:
            io.perform(io.session.join(room, now))

    def _part(self, io: _Sockets, inbox: Inbox, body: dict[str, Any], now: float) -> None:
        room = _room(io, body.get("room"))
        if room is not None:
            io.perform(io.session.part(room, now))

    def _rooms(self, io: _Sockets, inbox: Inbox, body: dict[str, Any], now: float) -> None:
        io.perform([io.session.rooms()])

    def _topic(self, io: _Sockets, inbox: Inbox, body: dict[str, Any], now: float) -> None:
        room, text = _room(io, body.get("room")), body.get("text")
        if room is None:
            return
        if not isinstance(text, str):
            io.event(PipeKind.NOTICE, text="a topic is text")
            return
        sent_at = self._wall()
        message_id = make_id(sent_at, os.urandom(10))
        io.perform(io.session.set_topic(room, text, message_id, sent_at, now))

    def _away(self, io: _Sockets, inbox: Inbox, body: dict[str, Any], now: float) -> None:
        try:
            io.perform(io.session.set_away(away_text(body.get("text"))))
        except AwayTextError as error:
            io.event(PipeKind.NOTICE, text=str(error))

    def _history(self, io: _Sockets, inbox: Inbox, body: dict[str, Any], now: float) -> None:
        io.event(PipeKind.HISTORY_RESULT, **answer_history(inbox, body))

    def _outbox(self, io: _Sockets, inbox: Inbox, body: dict[str, Any], now: float) -> None:
        io.event(PipeKind.OUTBOX_RESULT, **answer_outbox(inbox))

    # -- binding -------------------------------------------------------------------

    def _socket(
        self, ctx: zmq.Context, kind: int, owned: list[zmq.Socket], secure: SecureConfig | None,
        sndhwm: int | None = None,
    ) -> zmq.Socket:
        """A bound socket facing the network (``sockets.tune``), a CURVE server if secure."""
        sock = sockets.tune(ctx.socket(kind), sndhwm=sndhwm)
        owned.append(sock)
        if secure is not None:
            security.make_server(sock, secure.keys)
        return sock

    def _bind_router(self, router: zmq.Socket) -> int:
        port = self.config.port
        if port:
            try:
                return sockets.bind(router, self.config.address, port)
            except ConfigError as error:
                if not isinstance(error.__cause__, zmq.ZMQError) or (
                    error.__cause__.errno != errno.EADDRINUSE
                ):
                    raise
                log.info("port %d is taken; the ROUTER binds an ephemeral port", port)
        return sockets.bind(router, self.config.address, 0)


# The front end's questions (every request but POST and STOP) and what answers each.
_Answer = Callable[["BroadcastActor", "_Sockets", Inbox, dict[str, Any], float], None]
_ANSWERS: dict[PipeKind, _Answer] = {
    PipeKind.SCAN: BroadcastActor._scan,
    PipeKind.WHO: BroadcastActor._who,
    PipeKind.HISTORY: BroadcastActor._history,
    PipeKind.OUTBOX: BroadcastActor._outbox,
    PipeKind.JOIN: BroadcastActor._join,
    PipeKind.PART: BroadcastActor._part,
    PipeKind.ROOMS: BroadcastActor._rooms,
    PipeKind.TOPIC: BroadcastActor._topic,
    PipeKind.AWAY: BroadcastActor._away,
}


def _room(io: _Sockets, text: object) -> str | None:
    """The room a request names (``#Ops`` is ``ops``); None, and a notice saying why, when
    it names none."""
    try:
        return room_name(text)
    except RoomError as error:
        io.event(PipeKind.NOTICE, text=str(error))
        return None


def _drain(sock: zmq.Socket) -> list[sockets.Drained]:
    """What is waiting on a SUB or the ROUTER, bounded (DRAIN, DRAIN_FRAMES)."""
    return list(sockets.drain(sock, DRAIN, DRAIN_FRAMES))


def _drain_router(sock: zmq.Socket, secure: bool) -> tuple[list[list[bytes]], list[RouterPeer]]:
    """What is waiting on the ROUTER, without the identity frame, and who sent each: its
    routing id and, in secure mode, the ``User-Id`` the ZAP handler gave its connection
    (the name of its key)."""
    batch: list[list[bytes]] = []
    senders: list[RouterPeer] = []
    for received in _drain(sock):
        frames = received.frames
        if len(frames) > 1:
            batch.append(frames[1:])
            senders.append(RouterPeer(frames[0], received.user_id if secure else None))
    return batch, senders


class _PeerSockets:
    """The sockets of one linked peer: a SUB on its PUB, a DEALER to its ROUTER, and the
    DEALER's monitor (its drops and handshakes)."""

    def __init__(self, sub: zmq.Socket, dealer: zmq.Socket, monitor: HandshakeMonitor | None,
                 ) -> None:
        self.sub = sub
        self.dealer = dealer
        self.monitor = monitor

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
        self.sub.close()
        self.dealer.close()


class _Sockets:
    """Carries out the session's outputs on the real sockets."""

    def __init__(
        self,
        ctx: zmq.Context,
        pipe: zmq.Socket,
        pub: zmq.Socket,
        beacons: BeaconSocket,
        poller: zmq.Poller,
        peers: dict[str, _PeerSockets],
        session: BroadcastSession,
        secure: SecureConfig | None = None,
    ) -> None:
        self.ctx = ctx
        self.secure = secure
        self.server_monitors: dict[zmq.Socket, HandshakeMonitor] = {}
        self.pipe = pipe
        self.pub = pub
        self.beacons = beacons
        self.poller = poller
        self.peers = peers
        self.session = session
        self.sub_owner: dict[zmq.Socket, str] = {}
        self.monitor_owner: dict[zmq.Socket, str] = {}

    def event(self, kind: PipeKind, **body: Any) -> None:
        send(self.pipe, kind, **body)

    def perform(self, outputs: list[Output]) -> None:
        """Carry out each action (``_ACTIONS``, by its type); events go to the front end."""
        events = []
        for output in outputs:
            act = _ACTIONS.get(type(output))
            if act is None:
                events.append(output)
            else:
                act(self, output)
        send_events(self.pipe, events)

    def _beacon(self, output: SendBeacon) -> None:
        self.beacons.send(output.data)

    def _publish(self, output: PublishFrames) -> None:
        self._send(self.pub, output.frames, "the PUB")

    def _send_to(self, output: SendToPeer) -> None:
        link = self.peers.get(output.node_id)
        if link is None:
            log.debug("no link to %s for a send", output.node_id[:8])
        else:
            self._send(link.dealer, output.frames, output.node_id[:8])

    def link_events(self, monitor: zmq.Socket, now: float) -> None:
        """What a DEALER's monitor reported: its connection dropped, came (back) up, or
        its handshake failed."""
        node_id = self.monitor_owner.get(monitor)
        link = self.peers.get(node_id) if node_id is not None else None
        if link is None or link.monitor is None:
            return
        for event, value in link.monitor.events():
            if self.monitor_owner.get(monitor) is None:
                return  # its peer was disconnected by an earlier event
            if event == zmq.EVENT_DISCONNECTED:
                log.debug("the connection to %s dropped", node_id[:8])
                self.perform(self.session.on_link_down(node_id, now))
                continue
            problem = link.monitor.problem(event, value)  # a success resets its count
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.perform(self.session.on_link_up(node_id, now))
            elif problem is not None:
                self.perform(self.session.on_handshake_failed(node_id, problem, now))

    def server_events(self, monitor: zmq.Socket, now: float) -> None:
        """What the ROUTER's or the PUB's monitor reported: how a handshake ended."""
        for problem in self.server_monitors[monitor].problems():
            self.perform(self.session.on_handshake_failed(None, problem, now))

    def _send(self, sock: zmq.Socket, frames: tuple[bytes, ...], where: str) -> None:
        try:
            sockets.send_frames(sock, frames)
        except zmq.Again:
            self.session.stats["send_dropped"] += 1
            log.debug("send to %s dropped: its queue is full", where)

    def _connect(self, connect: ConnectPeer) -> None:
        """Open this peer's SUB and DEALER (and the DEALER's monitor)."""
        peer = connect.peer
        self._disconnect(peer.node_id)
        try:
            sub = sockets.tune(self.ctx.socket(zmq.SUB))
        except zmq.ZMQError as error:  # e.g. out of sockets: this peer goes unlinked
            log.warning("cannot open a socket for %s at %s: %s", peer.user, peer.address, error)
            return
        try:
            dealer = sockets.tune(self.ctx.socket(zmq.DEALER), sndhwm=PEER_SNDHWM, sndtimeo=0)
        except zmq.ZMQError as error:
            sub.close(linger=0)
            log.warning("cannot open a socket for %s at %s: %s", peer.user, peer.address, error)
            return
        if self.secure is not None:
            for sock in (sub, dealer):
                # Pinned to the key its beacon carries, which the session checked is
                # authorized: only that key's holder can complete the handshake.
                security.make_client(sock, self.secure.keys, peer.key)
        for topic in connect.topics:
            sub.setsockopt(zmq.SUBSCRIBE, wire.subscription(topic))
        monitor = None
        try:
            monitor = HandshakeMonitor(dealer, secure=self.secure is not None, side="client",
                                       where=f"{peer.user} at {peer.address}", events=LINK_EVENTS)
            sockets.connect(sub, sockets.tcp(peer.address, peer.pub_port))
            sockets.connect(dealer, sockets.tcp(peer.address, peer.router_port))
        except zmq.ZMQError as error:
            log.warning("cannot connect to %s at %s: %s", peer.user, peer.address, error)
            _PeerSockets(sub, dealer, monitor).close()
            return
        self.peers[peer.node_id] = _PeerSockets(sub, dealer, monitor)
        self.sub_owner[sub] = peer.node_id
        self.poller.register(sub, zmq.POLLIN)
        self.monitor_owner[monitor.socket] = peer.node_id
        self.poller.register(monitor.socket, zmq.POLLIN)
        log.info("connected to %s (%s) at %s", peer.user, peer.node_id[:8], peer.address)

    def _close(self, output: DisconnectPeer) -> None:
        self._disconnect(output.node_id)

    def _subscribe(self, output: Subscribe) -> None:
        for link in self.peers.values():
            for topic in output.topics:
                link.sub.setsockopt(zmq.SUBSCRIBE, wire.subscription(topic))

    def _unsubscribe(self, output: Unsubscribe) -> None:
        for link in self.peers.values():
            for topic in output.topics:
                link.sub.setsockopt(zmq.UNSUBSCRIBE, wire.subscription(topic))

    def _disconnect(self, node_id: str) -> None:
        link = self.peers.pop(node_id, None)
        if link is None:
            return
        self.poller.unregister(link.sub)
        self.sub_owner.pop(link.sub, None)
        if link.monitor is not None:
            self.poller.unregister(link.monitor.socket)
            self.monitor_owner.pop(link.monitor.socket, None)
        link.close()


# What the shell does for each action the session returns.
_ACTIONS: dict[type, Callable[[_Sockets, Any], None]] = {
    SendBeacon: _Sockets._beacon,
    PublishFrames: _Sockets._publish,
    SendToPeer: _Sockets._send_to,
    ConnectPeer: _Sockets._connect,
    DisconnectPeer: _Sockets._close,
    Subscribe: _Sockets._subscribe,
    Unsubscribe: _Sockets._unsubscribe,
}
