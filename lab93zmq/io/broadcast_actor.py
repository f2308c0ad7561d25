"""Broadcast mode's I/O shell: the actor that owns the sockets and drives ``BroadcastSession``.

One thread, one ``zmq.Poller``, whose timeout is the session's next deadline.
It polls the front end's pipe, the ROUTER, one SUB per live peer and the UDP
beacon sockets (by file descriptor). Everything it reads goes into the
session with ``now``; everything the session returns is carried out here.
Every decision lives in ``core.broadcast`` (``session.py``, the facade).

Sockets, all with ``LINGER=0``:

* PUB, bound to an ephemeral port on ``config.address``: our room messages
  and heartbeats.
* ROUTER, bound to ``config.port`` on ``config.address`` when free, else to
  an ephemeral port: what peers send us (sync, direct messages, acks). It
  never sends.
* per live broadcast peer: a SUB on its PUB and a DEALER to its ROUTER
  (``SNDHWM`` bounded, sends never block: ``zmq.Again`` drops that one
  command for that peer, and the protocol's retries repair it). Both close
  when the peer leaves or expires.
* per DEALER, its socket monitor (an inproc PAIR): a dropped connection
  (``EVENT_DISCONNECTED``: a killed peer's kernel closes it at once) goes to
  ``session.on_link_down``, a completed handshake to ``session.on_link_up``,
  a failed one (``security.HANDSHAKE_EVENTS``) to
  ``session.on_handshake_failed``; the ROUTER and the PUB have a monitor for
  failed handshakes too (the server side).

Every socket facing the network sets ``MAXMSGSIZE`` (the PUB too: it reads
its subscribers' subscriptions).

Secure mode (``config.secure``): the network sockets live in a context of
this node's own, because a ZAP handler serves a whole context and tests run
several nodes in one process. A ``KeyAuthenticator`` for the authorized keys
starts before anything binds and stops at the end. The ROUTER and the PUB are
CURVE servers with our key pair; each peer's SUB and DEALER is a CURVE client
pinned to the key in that peer's beacon - which the session only links to
when the key is authorized - so only the holder of that secret key can
complete the handshake. Frames read from the ROUTER carry the ``User-Id`` the
authenticator set (the key's name); the session binds node ids to it.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import zmq

from ..core.authoring import Draft
from ..core.broadcast.actions import (
    ConnectPeer,
    DisconnectPeer,
    Output,
    PublishFrames,
    RouterPeer,
    SendBeacon,
    SendToPeer,
)
from ..core.broadcast.session import BroadcastSession
from ..core.broadcast.trust import Trust
from ..core.errors import ConfigError, Lab93Error, ProtocolError
from ..core.wire import MAX_FRAME_BYTES
from . import security, sockets
from .actor import Actor, PipeKind, PipeMessage, send, send_events
from .beacon import BeaconSocket
from .config import EXPIRY_INTERVALS, NodeConfig, SecureConfig
from .history import answer_outbox
from .interfaces import resolve
from .store import Inbox, utc_now

log = logging.getLogger(__name__)

PEER_SNDHWM = 100  # commands queued for one peer (a BATCH is <= 1 MiB) before drops
DRAIN = 100  # messages read from one socket per loop turn, so none starves the others
DRAIN_FRAMES = 1_000  # and at most about this many frames (a MSG or BATCH carries up to 200)
# What a DEALER's monitor reports: the connection dropped / a handshake completed or failed.
LINK_EVENTS = zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | security.HANDSHAKE_EVENTS
# What the ROUTER's and the PUB's monitors report: how handshakes ended (a success
# tells the HandshakeWatch that failures without detail are no longer in a row).
SERVER_EVENTS = security.HANDSHAKE_EVENTS
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
        targets = resolve(config.interfaces)  # InterfaceError before anything is opened
        where = ", ".join(t.name for t in targets)
        inbox = Inbox(config.db_path)
        owned: list[zmq.Socket] = []
        beacons: BeaconSocket | None = None
        # A ZAP handler serves a whole context: a secure node gets one of its own.
        net = zmq.Context() if secure is not None else ctx
        auth: Any = None  # zap.KeyAuthenticator, imported only in secure mode
        trust: Trust | None = None
        clean = False
        servers: dict[zmq.Socket, zmq.Socket] = {}  # server monitor -> the socket it watches
        try:
            self.node_id = inbox.node_id
            if secure is not None:
                from .zap import KeyAuthenticator  # asyncio: only secure nodes load it

                authorized = security.AuthorizedKeys(secure.authorized_keys)
                auth = KeyAuthenticator(net, authorized)
                auth.start()  # before anything binds: no connection is ever unauthenticated
                trust = Trust(secure.keys.public_raw, authorized.name_of,
                              str(secure.authorized_keys))
            router = self._socket(net, zmq.ROUTER, owned, secure)
            self.router_port = self._bind_router(router)
            pub = self._socket(net, zmq.PUB, owned, secure)
            pub.setsockopt(zmq.SNDHWM, 10_000)
            self.pub_port = sockets.bind(pub, config.address, 0)
            for sock in (router, pub):
                monitor = sock.get_monitor_socket(SERVER_EVENTS)
                monitor.linger = 0
                owned.insert(0, monitor)  # closed before the socket it watches
                servers[monitor] = sock
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
            )
            poller = zmq.Poller()
            poller.register(pipe, zmq.POLLIN)
            poller.register(router, zmq.POLLIN)
            for monitor in servers:
                poller.register(monitor, zmq.POLLIN)
            for fd in beacons.filenos():
                poller.register(fd, zmq.POLLIN)
            detail = (
                f"broadcast node {inbox.node_id[:8]} as {config.user} on {where}: "
                f"router {config.address}:{self.router_port}, pub port {self.pub_port}"
                + (f", secure (key {secure.keys.public.decode()})" if secure else "")
            )
            send(pipe, PipeKind.READY, node_id=inbox.node_id, detail=detail)
            io = _Sockets(net, pipe, pub, beacons, poller, self._peers, session, secure)
            io.server_monitors = servers
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
            for sock in servers.values():
                try:
                    sock.disable_monitor()
                except zmq.ZMQError:
                    pass
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
        while True:
            timeout = max(0.0, session.next_deadline() - self._monotonic())
            ready = io.poller.poll(min(int(timeout * 1000) + 1, 60_000))
            now = self._monotonic()
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
                    io.perform(session.receive_many(_drain(item), now, via=node_id))
                elif item in io.monitor_owner:
                    io.link_events(item, now)
            io.perform(session.tick(self._monotonic()))

    def _requests(self, io: _Sockets, inbox: Inbox, now: float) -> bool:
        """The front end's waiting requests, in order; False on STOP.

        A burst of posts (a pasted or piped block, a benchmark) becomes one
        ``post_many``: one transaction for all of it, not one per line.
        """
        posts: list[Draft] = []
        for frames in _drain(io.pipe, PIPE_DRAIN):
            try:
                request = PipeMessage.parse(frames)
            except ProtocolError as error:
                log.warning("ignored a bad request from the front end: %s", error)
                continue
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
        io.event(PipeKind.WHO_RESULT, users=io.session.who())

    def _history(self, io: _Sockets, inbox: Inbox, body: dict[str, Any], now: float) -> None:
        limit = body.get("limit")
        limit = limit if type(limit) is int and limit > 0 else None
        io.event(PipeKind.HISTORY_RESULT, messages=[m.to_wire_dict() for m in inbox.history(limit)])

    def _outbox(self, io: _Sockets, inbox: Inbox, body: dict[str, Any], now: float) -> None:
        io.event(PipeKind.OUTBOX_RESULT, **answer_outbox(inbox))

    # -- binding -------------------------------------------------------------------

    def _socket(
        self, ctx: zmq.Context, kind: int, owned: list[zmq.Socket], secure: SecureConfig | None
    ) -> zmq.Socket:
        """A bound socket facing the network: LINGER 0, MAXMSGSIZE, a CURVE server if secure."""
        sock = ctx.socket(kind)
        sock.linger = 0
        owned.append(sock)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
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
}


def _drain(sock: zmq.Socket, limit: int = DRAIN) -> list[list[bytes]]:
    """What is waiting on ``sock``: at most ``limit`` messages or about DRAIN_FRAMES frames."""
    received = []
    frames = 0
    for _ in range(limit):
        try:
            message = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            break
        received.append(message)
        frames += len(message)
        if frames >= DRAIN_FRAMES:
            break
    return received


def _drain_router(sock: zmq.Socket, secure: bool) -> tuple[list[list[bytes]], list[RouterPeer]]:
    """What is waiting on the ROUTER (as ``_drain``), without the identity frame, and who
    sent each: its routing id and, in secure mode, the ``User-Id`` the ZAP handler gave
    its connection (the name of its key), read from the frame's metadata."""
    batch: list[list[bytes]] = []
    senders: list[RouterPeer] = []
    frames = 0
    for _ in range(DRAIN):
        try:
            # Frame objects only when their metadata is needed: plain bytes are cheaper.
            parts = sock.recv_multipart(zmq.NOBLOCK, copy=not secure)
        except zmq.Again:
            break
        frames += len(parts)
        if len(parts) > 1:
            user_id = None
            if secure:
                try:
                    user_id = parts[1].get("User-Id") or None
                except zmq.ZMQError:
                    user_id = None  # no such property: the session drops these frames
                parts = [part.bytes for part in parts]
            batch.append(parts[1:])
            senders.append(RouterPeer(parts[0], user_id))
        if frames >= DRAIN_FRAMES:
            break
    return batch, senders


class _PeerSockets:
    """The sockets of one linked peer: a SUB on its PUB, a DEALER to its ROUTER, the
    DEALER's monitor."""

    def __init__(self, sub: zmq.Socket, dealer: zmq.Socket, monitor: zmq.Socket | None) -> None:
        self.sub = sub
        self.dealer = dealer
        self.monitor = monitor

    def close(self) -> None:
        if self.monitor is not None:
            try:
                self.dealer.disable_monitor()
            except zmq.ZMQError:
                pass
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
        self.server_monitors: dict[zmq.Socket, zmq.Socket] = {}
        # Per peer (None: our ROUTER and PUB): handshakes failed without detail in a row.
        self.watches: dict[str | None, security.HandshakeWatch] = {}
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
        for frames in _drain(monitor):
            node_id = self.monitor_owner.get(monitor)
            if node_id is None:  # its peer was disconnected by an earlier event
                return
            head = security.monitor_event(frames)
            if head is None:
                continue
            event, value = head
            if event == zmq.EVENT_DISCONNECTED:
                log.debug("the connection to %s dropped", node_id[:8])
                self.perform(self.session.on_link_down(node_id, now))
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._handshake_failed(node_id, event, value, "client", now)  # resets its count
                self.perform(self.session.on_link_up(node_id, now))
            else:
                self._handshake_failed(node_id, event, value, "client", now)

    def server_events(self, monitor: zmq.Socket, now: float) -> None:
        """What the ROUTER's or the PUB's monitor reported: how a handshake ended."""
        for frames in _drain(monitor):
            head = security.monitor_event(frames)
            if head is not None:
                self._handshake_failed(None, head[0], head[1], "server", now)

    def _handshake_failed(
        self, node_id: str | None, event: int, value: int, side: str, now: float
    ) -> None:
        watch = self.watches.get(node_id)
        if watch is None:
            watch = self.watches[node_id] = security.HandshakeWatch(
                we_are_secure=self.secure is not None, side=side
            )
        problem = watch.feed(event, value)
        if problem is not None:
            self.perform(self.session.on_handshake_failed(node_id, problem, now))

    def _send(self, sock: zmq.Socket, frames: tuple[bytes, ...], where: str) -> None:
        try:
            sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            self.session.stats["send_dropped"] += 1
            log.debug("send to %s dropped: its queue is full", where)

    def _connect(self, connect: ConnectPeer) -> None:
        """Open this peer's SUB and DEALER (and the DEALER's monitor)."""
        peer = connect.peer
        self._disconnect(peer.node_id)
        try:
            sub = self.ctx.socket(zmq.SUB)
        except zmq.ZMQError as error:  # e.g. out of sockets: this peer goes unlinked
            log.warning("cannot open a socket for %s at %s: %s", peer.user, peer.address, error)
            return
        try:
            dealer = self.ctx.socket(zmq.DEALER)
        except zmq.ZMQError as error:
            sub.close(linger=0)
            log.warning("cannot open a socket for %s at %s: %s", peer.user, peer.address, error)
            return
        for sock in (sub, dealer):
            sock.linger = 0
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
            if self.secure is not None:
                # Pinned to the key its beacon carries, which the session checked is
                # authorized: only that key's holder can complete the handshake.
                security.make_client(sock, self.secure.keys, peer.key)
        dealer.setsockopt(zmq.SNDHWM, PEER_SNDHWM)
        dealer.setsockopt(zmq.SNDTIMEO, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        monitor = None
        try:
            monitor = dealer.get_monitor_socket(LINK_EVENTS)
            monitor.linger = 0
            sockets.connect(sub, sockets.tcp(peer.address, peer.pub_port))
            sockets.connect(dealer, sockets.tcp(peer.address, peer.router_port))
        except zmq.ZMQError as error:
            log.warning("cannot connect to %s at %s: %s", peer.user, peer.address, error)
            _PeerSockets(sub, dealer, monitor).close()
            return
        self.peers[peer.node_id] = _PeerSockets(sub, dealer, monitor)
        self.sub_owner[sub] = peer.node_id
        self.poller.register(sub, zmq.POLLIN)
        self.monitor_owner[monitor] = peer.node_id
        self.poller.register(monitor, zmq.POLLIN)
        log.info("connected to %s (%s) at %s", peer.user, peer.node_id[:8], peer.address)

    def _close(self, output: DisconnectPeer) -> None:
        self._disconnect(output.node_id)

    def _disconnect(self, node_id: str) -> None:
        self.watches.pop(node_id, None)
        link = self.peers.pop(node_id, None)
        if link is None:
            return
        self.poller.unregister(link.sub)
        self.sub_owner.pop(link.sub, None)
        self.poller.unregister(link.monitor)
        self.monitor_owner.pop(link.monitor, None)
        link.close()


# What the shell does for each action the session returns.
_ACTIONS: dict[type, Callable[[_Sockets, Any], None]] = {
    SendBeacon: _Sockets._beacon,
    PublishFrames: _Sockets._publish,
    SendToPeer: _Sockets._send_to,
    ConnectPeer: _Sockets._connect,
    DisconnectPeer: _Sockets._close,
}
