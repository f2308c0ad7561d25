"""Repeater mode's I/O shells: the server and client actors.

Each runs in its own thread (see ``actor.py``), creates and owns its ZeroMQ
sockets, its inbox and its beacon sockets, and polls them all in one
``zmq.Poller`` whose timeout is the next deadline of the protocol core
(``repeater_protocol.py``), which decides everything else. Only this module
reads the clock.

Every send to a peer is non-blocking: a peer whose queue is full loses that
message (``zmq.Again``) and recovers through the protocol (the client fetches
what it missed, or re-sends what was not acknowledged).

The server's memory stays bounded under any offered load: ZeroMQ queues only
``SESSION_RCVHWM`` commands from each session (then stops reading its socket,
so TCP pushes back on the client, whose DEALER fills and says ``zmq.Again``),
and ``ROOM_HWM`` room commands for each subscriber (then the PUB drops; the
subscriber notices the gap at the next TICK and FETCHes it). Towards each
session it queues at most ``SESSION_SNDHWM`` commands: a client that keeps
FETCHing and never reads cannot make the server hold its BATCHes.
"""

from __future__ import annotations

import logging
import math
import socket
import time
from datetime import datetime, timezone

import zmq

from .. import __version__
from ..core.errors import ConfigError, MessageError, ProtocolError, SecurityError
from ..core.message import Message
from ..core.presence import (
    Beacon,
    BeaconError,
    Discovery,
    PeerChanged,
    PeerJoined,
    PeerLeft,
    PresenceEvent,
    peer_json,
)
from ..core.presence import Kind as BeaconKind
from ..core.repeater.protocol import (
    DEAD_AFTER,
    HEARTBEAT,
    POST_LIMIT,
    SESSION_TIMEOUT,
    TAIL,
    WINDOW,
    ClientCore,
    Connect,
    Publish,
    Reply,
    ServerCore,
    Subscribe,
    ToServer,
)
from ..core.wire import MAX_FRAME_BYTES
from . import actor, security
from .actor import Actor, Kind, Post
from .beacon import BeaconSocket
from .config import NodeConfig
from .interfaces import resolve
from .sockets import bind, connect, tcp
from .store import Inbox

log = logging.getLogger(__name__)

DRAIN = 1000  # frame lists taken from one socket per loop turn
MAX_PENDING = 2000  # posts the server gathers before it stores them
PEER_HWM = 10_000  # messages queued per peer before sends fail (zmq.Again)
# Commands the server's ZeroMQ queues from one session before it stops reading
# that socket: twice a full window of POSTs (up to POST_LIMIT messages each) and
# the odd PING or FETCH. A client posting in smaller POSTs waits on TCP, not loses.
SESSION_RCVHWM = 2 * WINDOW // POST_LIMIT
# A client that reads keeps ~20 commands in flight (its window of ACKs, one
# FETCH's BATCH, PINGs); past this, sends fail (zmq.Again) and it recovers
# by re-sending or fetching. Bounds a session's queue to 64 x 4 MiB BATCHes.
SESSION_SNDHWM = 64
ROOM_HWM = 1000  # ROOM commands (up to BATCH_LIMIT messages) queued per subscriber
SUB_HWM = 100_000  # room commands a client's SUB holds before ZeroMQ stops reading
SCAN_WAIT = 0.5  # how long SCAN listens for answers to its probe
CHECKPOINT_AFTER = 16  # commits the server makes before it checkpoints its inbox when idle
GOODBYE_MS = 200  # how long a clean stop waits for its BYE to leave
NOTICE_GAP = 10.0  # seconds before the same handshake problem is told to the user again


def _where(address: str, port: int | str) -> str:
    """``host:port`` (IPv6 in brackets): how known_servers and messages name a server."""
    return tcp(address, port).removeprefix("tcp://")


def _addresses(host: str, port: int) -> frozenset[str]:
    """Every address ``host`` stands for, to recognise its server's beacon by source."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return frozenset({host})
    return frozenset({host, *(info[4][0] for info in infos)})


def _timeout_ms(deadlines: list[float | None], now: float, cap: float = 1.0) -> int:
    """The poll timeout: until the earliest deadline, at most ``cap`` seconds."""
    due = min([d for d in deadlines if d is not None], default=now + cap)
    return max(0, math.ceil(min(due - now, cap) * 1000))


def _tune(sock: zmq.Socket, hwm: int = PEER_HWM) -> zmq.Socket:
    sock.linger = 0
    sock.sndhwm = hwm
    sock.rcvhwm = hwm
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
    return sock


def _recv_frames(sock: zmq.Socket) -> tuple[list[bytes], zmq.Frame]:
    """``recv_multipart(NOBLOCK)`` a third cheaper: each frame says whether more follow,
    so no RCVMORE query per frame (a POST has a frame per message). zmq.Again if none.

    Also returns the first frame, whose ``get("User-Id")`` is the name ZAP gave
    the sender's key in secure mode."""
    first = frame = sock.recv(zmq.NOBLOCK, copy=False)
    frames = [frame.bytes]
    while frame.more:  # the rest of a multipart message is there already
        frame = sock.recv(zmq.NOBLOCK, copy=False)
        frames.append(frame.bytes)
    return frames, first


class _HandshakeReports:
    """A socket monitor's failed handshakes, as log lines and (rate-limited) notices."""

    def __init__(self, sock: zmq.Socket, *, secure: bool, side: str, where: str) -> None:
        self.monitor = sock.get_monitor_socket(security.HANDSHAKE_EVENTS)
        self.monitor.linger = 0
        self.watch = security.HandshakeWatch(we_are_secure=secure, side=side)
        self.where = where
        self._said: dict[str, float] = {}  # sentence -> when it last went to the user

    def read(self) -> list[str]:
        """Every failure waiting on the monitor, each as its sentence (no waiting)."""
        problems = []
        for _ in range(DRAIN):
            try:
                event = security.monitor_event(self.monitor.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                break
            if event is None:
                continue
            problem = self.watch.feed(*event)
            if problem is not None:
                log.info("%s: %s", self.where, problem)  # told as a notice or an error
                problems.append(problem)
        return problems

    def notices(self, now: float) -> list[str]:
        """``read``, keeping only sentences not told to the user in the last NOTICE_GAP s."""
        fresh = []
        for problem in self.read():
            if now - self._said.get(problem, -math.inf) >= NOTICE_GAP:
                self._said[problem] = now
                fresh.append(problem)
        return fresh

    def close(self) -> None:
        self.monitor.close(linger=0)


_MORE = int(zmq.SNDMORE | zmq.NOBLOCK)  # plain ints: an enum flag per frame costs more
_LAST = int(zmq.NOBLOCK)


def _send_frames(sock: zmq.Socket, frames: list[bytes]) -> None:
    """``send_multipart(frames, NOBLOCK)``: zmq.Again (nothing sent) when the peer is full.

    Only the first frame can fail: ZeroMQ takes the rest of a multipart message with it.
    """
    send = sock.send
    for frame in frames[:-1]:
        send(frame, _MORE)
    send(frames[-1], _LAST)


def _drain_pipe(pipe: zmq.Socket) -> list[actor.PipeMessage]:
    requests = []
    while len(requests) < DRAIN:
        try:
            frames = pipe.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            break
        try:
            requests.append(actor.PipeMessage.parse(frames))
        except ProtocolError as exc:
            log.error("bad request from the front end: %s", exc)
    return requests


def _author(post_body: dict, user: str, inbox: Inbox, next_seq: dict[bool, int]):
    """A front end's POST body -> (Message, None) or (None, reason).

    ``next_seq`` holds this node's next room and direct origin numbers; the
    actor is their only author, so it counts them itself and a burst of
    posts needs no query each.
    """
    try:
        post = Post.from_body(post_body)
        direct = post.to is not None
        message = post.author(user, inbox.node_id, next_seq[direct])
    except (KeyError, TypeError, MessageError) as exc:
        return None, f"not a valid message: {exc}"
    next_seq[direct] += 1
    return message, None


def _answer_locally(request, pipe: zmq.Socket, inbox: Inbox, beacons, scans, now: float) -> bool:
    """HISTORY and SCAN, which server and client answer alike, from their own inbox
    and beacons; False for any other request."""
    if request.kind is Kind.HISTORY:
        actor.send(pipe, Kind.HISTORY_RESULT, messages=_history(inbox, request.body))
    elif request.kind is Kind.SCAN:
        scans.start(beacons, pipe, now)
    else:
        return False
    return True


def _history(inbox: Inbox, body: dict) -> list[dict]:
    limit = body.get("limit")
    if limit is not None and (type(limit) is not int or limit < 0):
        limit = None
    return [m.to_wire_dict() for m in inbox.history(limit)]


# -- discovery ---------------------------------------------------------------------


class _Beacons:
    """The beacon edge of an actor: UDP sockets, live table, and (server) announcing."""

    def __init__(
        self, config: NodeConfig, node_id: str, now: float, announce: Beacon | None = None
    ) -> None:
        targets = resolve(config.interfaces)
        self.socket = BeaconSocket(targets, config.beacon_port)
        self.node_id = node_id
        self.user = config.user
        self.discovery = Discovery(node_id, config.beacon_interval, now, announce)
        self.table = self.discovery.table
        self.announce = announce

    def filenos(self) -> list[int]:
        return self.socket.filenos()

    def receive(self, fd: int, now: float) -> list[PresenceEvent]:
        events: list[PresenceEvent] = []
        for data, address in self.socket.receive(fd):
            try:
                beacon = Beacon.decode(data)
            except BeaconError as exc:
                log.debug("dropped a datagram from %s: %s", address, exc)
                continue
            events += self.discovery.take(beacon, address, now)
        return events

    def tick(self, now: float) -> list[PeerLeft]:
        gone = self.table.expire(now)
        due = self.discovery.beacon_due(now)
        if due is not None:
            self.socket.send(due)
        return gone

    def next_deadline(self) -> float | None:
        return self.discovery.next_deadline()

    def probe(self) -> None:
        self.socket.send(Beacon.probe(self.node_id, self.user).encode())

    def leave(self) -> None:
        if self.announce is not None:
            self.socket.send(self.announce.leaving().encode())

    def sightings(self, now: float) -> list[dict]:
        """The live table as DESIGN.md's ``--scan --json`` objects."""
        wall = datetime.now(timezone.utc)
        return [peer_json(peer, now, wall) for peer in self.table.live()]

    def close(self) -> None:
        self.socket.close()


class _Scans:
    """SCAN requests: probe, listen SCAN_WAIT seconds, answer from the live table.

    An actor without its own beacon sockets opens some for the scan only.
    """

    def __init__(self, config: NodeConfig, node_id: str) -> None:
        self.config = config
        self.node_id = node_id
        self.deadline: float | None = None
        self.waiting = 0
        self.own: _Beacons | None = None  # opened for a scan, closed after

    def start(self, beacons: _Beacons | None, pipe: zmq.Socket, now: float) -> None:
        """Begin a scan: probe, and answer at ``deadline``."""
        if beacons is None and self.own is None:
            try:
                self.own = _Beacons(self.config, self.node_id, now)
            except (ConfigError, ValueError) as exc:
                actor.send(pipe, Kind.NOTICE, text=f"cannot scan: {exc}")
                actor.send(pipe, Kind.SCAN_RESULT, beacons=[])
                return
        (beacons or self.own).probe()
        self.waiting += 1
        self.deadline = now + SCAN_WAIT

    def tick(self, beacons: _Beacons | None, pipe: zmq.Socket, now: float) -> None:
        """Answer waiting scans when due."""
        if self.deadline is None or now < self.deadline:
            return
        edge = beacons or self.own
        found = edge.sightings(now) if edge is not None else []
        for _ in range(self.waiting):
            actor.send(pipe, Kind.SCAN_RESULT, beacons=found)
        self.waiting, self.deadline = 0, None
        if self.own is not None:
            self.own.close()
            self.own = None


# -- the server ----------------------------------------------------------------------


class RepeaterServer(Actor):
    """``lab93-node -r -s``: ROUTER for clients, PUB for room fan-out, inbox, beacon.

    After ``READY`` these attributes tell where it listens: ``router_endpoint``,
    ``pub_endpoint``, ``router_port``, ``pub_port``, ``server_id``. A STOP with
    ``abrupt=True`` in its body (tests) closes everything without a goodbye,
    as a crash would.
    """

    name = "repeater-server"

    def __init__(
        self,
        config: NodeConfig,
        *,
        heartbeat: float = HEARTBEAT,
        session_timeout: float = SESSION_TIMEOUT,
        tail: int = TAIL,
    ) -> None:
        self.config = config
        self.heartbeat = heartbeat
        self.session_timeout = session_timeout
        self.tail = tail
        self.router_endpoint: str | None = None
        self.pub_endpoint: str | None = None
        self.router_port: int | None = None
        self.pub_port: int | None = None
        self.server_id: str | None = None
        self.core: ServerCore | None = None

    def run(self, ctx: zmq.Context, pipe: zmq.Socket) -> None:
        # The network sockets get a context of their own: terminating it
        # releases the ports at once, so a restart can bind them again.
        net = zmq.Context()
        inbox = router = pub = beacons = None
        scans = authenticator = reports = None
        goodbye = 0  # ms a clean stop lets the BYEs go out
        secure = self.config.secure
        try:
            inbox = Inbox(self.config.db_path)
            if secure is not None:
                # ZAP is per context: this server's own context gets its own handler.
                from .zap import KeyAuthenticator  # asyncio: only secure servers load it

                self.authorized = security.AuthorizedKeys(secure.authorized_keys)
                authenticator = KeyAuthenticator(net, self.authorized)
                authenticator.start()
            router, pub = self._bind(net)
            reports = _HandshakeReports(
                router, secure=secure is not None, side="server", where="repeater"
            )
            now = time.monotonic()
            self.server_id = inbox.node_id
            self.core = core = ServerCore(
                inbox,
                self.pub_port,
                now,
                heartbeat=self.heartbeat,
                session_timeout=self.session_timeout,
                tail=self.tail,
                names_from_keys=secure is not None,
            )
            if self.config.beacon:
                announce = Beacon(
                    BeaconKind.ANNOUNCE,
                    inbox.node_id,
                    "repeater",
                    self.router_port,
                    self.pub_port,
                    self.config.user,
                    secure.keys.public_raw if secure else b"",
                )
                beacons = _Beacons(self.config, inbox.node_id, now, announce)
            scans = _Scans(self.config, inbox.node_id)
            detail = f"repeater at {self.router_endpoint}, room feed at {self.pub_endpoint}"
            if secure is not None:
                detail = (
                    f"secure {detail}; its key: {secure.keys.public.decode()}"
                    f" ({len(self.authorized.names())} authorized in {secure.authorized_keys})"
                )
            actor.send(pipe, Kind.READY, node_id=inbox.node_id, detail=detail)
            log.info("repeater %s serving at %s", inbox.node_id, self.router_endpoint)
            abrupt = self._serve(pipe, router, pub, core, inbox, beacons, scans, reports)
            if not abrupt:
                self._write(router, pub, pipe, core.close())
                goodbye = GOODBYE_MS
                if beacons is not None:
                    beacons.leave()
        finally:
            for edge in (beacons, scans.own if scans else None, reports):
                if edge is not None:
                    edge.close()
            for sock in (router, pub):
                if sock is not None:
                    sock.close(linger=goodbye)
            if authenticator is not None:
                authenticator.stop()
            net.term()
            if inbox is not None:
                inbox.close()
        actor.send(pipe, Kind.STOPPED)

    def _bind(self, net: zmq.Context) -> tuple[zmq.Socket, zmq.Socket]:
        address = self.config.address or "0.0.0.0"
        router = _tune(net.socket(zmq.ROUTER))
        router.rcvhwm = SESSION_RCVHWM  # flow control: see the module docstring
        router.sndhwm = SESSION_SNDHWM
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a full or gone peer raises, never blocks
        pub = _tune(net.socket(zmq.PUB), ROOM_HWM)
        if self.config.secure is not None:
            for sock in (router, pub):
                security.make_server(sock, self.config.secure.keys)
        try:
            self.router_port = bind(router, address, self.config.port)
            self.pub_port = bind(pub, address, 0, "open the room feed")
        except BaseException:
            router.close(linger=0)
            pub.close(linger=0)
            raise
        self.router_endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.pub_endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)
        return router, pub

    def _serve(
        self, pipe, router, pub, core: ServerCore, inbox: Inbox, beacons, scans, reports
    ) -> bool:
        """The loop; returns whether the stop was abrupt."""
        poller = zmq.Poller()
        poller.register(pipe, zmq.POLLIN)
        poller.register(router, zmq.POLLIN)
        poller.register(reports.monitor, zmq.POLLIN)
        secure = self.config.secure is not None
        for fd in beacons.filenos() if beacons else ():
            poller.register(fd, zmq.POLLIN)
        local_seq = {
            False: inbox.next_origin_seq(inbox.node_id, False),
            True: inbox.next_origin_seq(inbox.node_id, True),
        }
        commits, stored = 0, core.stats["stored"]
        while True:
            if commits >= CHECKPOINT_AFTER and not router.poll(0):
                # Idle: copy the log now, not inside a commit someone waits for.
                inbox.checkpoint()
                commits = 0
            now = time.monotonic()
            deadlines = [core.next_deadline(), scans.deadline]
            if beacons is not None:
                deadlines.append(beacons.next_deadline())
            ready = dict(poller.poll(_timeout_ms(deadlines, now)))
            now = time.monotonic()
            if ready.get(pipe):
                for request in _drain_pipe(pipe):
                    if request.kind is Kind.STOP:
                        return bool(request.body.get("abrupt"))
                    self._request(request, pipe, core, inbox, beacons, scans, local_seq, now)
            if ready.get(router):
                for _ in range(DRAIN):
                    try:
                        frames, first = _recv_frames(router)
                    except zmq.Again:
                        break
                    # The key's name, as the authenticator gave it (secure mode only).
                    user = first.get("User-Id") if secure else None
                    outputs = core.receive(frames[0], frames[1:], now, user)
                    self._write(router, pub, pipe, outputs)
                    if core.pending >= MAX_PENDING:
                        break
            if ready.get(reports.monitor):
                for problem in reports.notices(now):
                    actor.send(pipe, Kind.NOTICE, text=problem)
            self._write(router, pub, pipe, core.flush(now))
            if core.stats["stored"] != stored:
                commits, stored = commits + 1, core.stats["stored"]
            if beacons is not None:
                for fd in beacons.filenos():
                    if ready.get(fd):
                        beacons.receive(fd, now)
                beacons.tick(now)
            self._poll_scan_edge(scans, now)
            self._write(router, pub, pipe, core.tick(now))
            scans.tick(beacons, pipe, now)

    @staticmethod
    def _poll_scan_edge(scans: _Scans, now: float) -> None:
        # A temporary scan edge is read without the poller: it lives half a second.
        if scans.own is not None:
            for fd in scans.own.filenos():
                scans.own.receive(fd, now)

    def _request(self, request, pipe, core: ServerCore, inbox, beacons, scans, local_seq, now):
        kind, body = request.kind, request.body
        if kind is Kind.POST:
            message, reason = _author(body, self.config.user, inbox, local_seq)
            if message is None:
                actor.send(pipe, Kind.REJECTED, id=body.get("id"), reason=reason)
            else:
                core.post_local(message)
        elif kind is Kind.WHO:
            actor.send(pipe, Kind.WHO_RESULT, users=core.users(), connected=True)
        elif not _answer_locally(request, pipe, inbox, beacons, scans, now):
            log.warning("the repeater server ignores %s requests", kind.value)

    @staticmethod
    def _write(router: zmq.Socket, pub: zmq.Socket, pipe: zmq.Socket, outputs) -> None:
        events = []
        for out in outputs:
            if isinstance(out, Reply):
                try:
                    _send_frames(router, [out.identity, *out.command.frames()])
                except zmq.Again:
                    log.debug(
                        "session %s is full; dropped a %s", out.identity.hex(), out.command.name
                    )
                except zmq.ZMQError as exc:  # EHOSTUNREACH: that peer is gone
                    log.debug("session %s: %s", out.identity.hex(), exc)
            elif isinstance(out, Publish):
                try:
                    _send_frames(pub, out.command.frames())
                except zmq.Again:  # pragma: no cover - a PUB drops instead
                    log.debug("the PUB dropped a %s", out.command.name)
            else:
                events.append(out)
        actor.send_events(pipe, events)


# -- the client -----------------------------------------------------------------------


class RepeaterClient(Actor):
    """``lab93-node -r -c``: a DEALER to the repeater's ROUTER, a SUB to its PUB, an inbox.

    With ``config.address`` None it listens for beacons and uses the first
    repeater it hears. ``endpoint`` is the server it talks to now.
    """

    name = "repeater-client"

    def __init__(
        self, config: NodeConfig, *, heartbeat: float = HEARTBEAT, dead_after: float = DEAD_AFTER
    ) -> None:
        self.config = config
        self.heartbeat = heartbeat
        self.dead_after = dead_after
        self.core: ClientCore | None = None
        self.endpoint: str | None = None
        self._chosen: str | None = None  # node id of the repeater found by beacon
        # Secure mode: the key of the server we talk to now, where we trust keys,
        # repeaters we will not use, and what we told the user once already.
        self._secure = config.secure
        self._known = security.KnownServers(config.secure.known_servers) if config.secure else None
        self._server_key: bytes | None = None
        self._wanted: tuple[frozenset[str], int] | None = None  # -a given, key to learn
        self._refused: set[str] = set()
        self._told: set[tuple[str, str]] = set()
        self._reports: _HandshakeReports | None = None
        self._failed = False  # refused for good: keep the outbox, talk to no server

    def run(self, ctx: zmq.Context, pipe: zmq.Socket) -> None:
        inbox = sub = beacons = None
        self._dealer = None
        scans = None
        address = self.config.address
        # A secure client told where its server is still needs that server's key:
        # --server-key, else known_servers, else the server's own beacon.
        learn_key = False
        if address is not None and self._secure is not None:
            self._server_key = self._secure.server_key or self._known.get(
                _where(address, self.config.port)
            )
            if self._server_key is None:
                learn_key = True
                self._wanted = (_addresses(address, self.config.port), self.config.port)
        try:
            inbox = Inbox(self.config.db_path)
            now = time.monotonic()
            self.core = core = ClientCore(
                inbox, self.config.user, now, heartbeat=self.heartbeat,
                dead_after=self.dead_after, software=__version__,
            )
            sub = _tune(ctx.socket(zmq.SUB), SUB_HWM)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            self._sub, self._sub_endpoint = sub, None
            self._poller = zmq.Poller()
            self._poller.register(pipe, zmq.POLLIN)
            self._poller.register(sub, zmq.POLLIN)
            if address is None or learn_key:
                beacons = _Beacons(self.config, inbox.node_id, now)
                for fd in beacons.filenos():
                    self._poller.register(fd, zmq.POLLIN)
            scans = _Scans(self.config, inbox.node_id)
            # The next origin numbers of this node (it is the only author of them).
            self._seq = {
                False: inbox.next_origin_seq(inbox.node_id, False),
                True: inbox.next_origin_seq(inbox.node_id, True),
            }
            actor.send(
                pipe,
                Kind.READY,
                node_id=inbox.node_id,
                detail=f"repeater client for {self.config.user}",
            )
            if address is not None and not learn_key:
                endpoint = tcp(address, self.config.port)
                self._write(ctx, pipe, core.use_server(endpoint, now), now)
            else:
                if learn_key:
                    actor.send(
                        pipe,
                        Kind.NOTICE,
                        text=f"learning the key of the repeater at"
                        f" {_where(address, self.config.port)} from its beacon (first use;"
                        " --server-key KEY pins it instead)",
                    )
                beacons.probe()  # repeaters answer a probe at once
                self._write(ctx, pipe, core.use_server(None, now), now)
            self._serve(ctx, pipe, core, inbox, beacons, scans)
            self._write(ctx, pipe, core.flush(time.monotonic()), time.monotonic())
            self._write(ctx, pipe, core.stop(), time.monotonic())  # BYE
            if self._dealer is not None:
                self._dealer.close(linger=GOODBYE_MS)
        finally:
            for edge in (beacons, scans.own if scans else None, self._reports):
                if edge is not None:
                    edge.close()
            for sock in (self._dealer, sub):
                if sock is not None and not sock.closed:
                    sock.close(linger=0)
            if inbox is not None:
                inbox.close()
        actor.send(pipe, Kind.STOPPED)

    def _serve(self, ctx, pipe, core: ClientCore, inbox: Inbox, beacons, scans) -> None:
        while True:
            try:
                if self._turn(ctx, pipe, core, inbox, beacons, scans):
                    return
            except SecurityError as error:
                self._fail(ctx, pipe, core, str(error), time.monotonic())

    def _fail(self, ctx, pipe, core: ClientCore, error: str, now: float) -> None:
        """A refusal retrying cannot mend (a key not admitted, another name, a changed
        server key): say so (FATAL, which ends the front end) and stop talking to the
        server, but go on taking posts into the outbox until told to stop, so a line
        the front end sent meanwhile is kept for next time, not lost."""
        actor.send(pipe, Kind.FATAL, error=error)
        self._failed = True
        self._close_dealer()
        self._write(ctx, pipe, core.use_server(None, now), now)

    def _turn(self, ctx, pipe, core: ClientCore, inbox: Inbox, beacons, scans) -> bool:
        """One turn of the loop; True when the front end said STOP."""
        now = time.monotonic()
        deadlines = [core.next_deadline(), scans.deadline]
        if beacons is not None:
            deadlines.append(beacons.next_deadline())
        ready = dict(self._poller.poll(_timeout_ms(deadlines, now)))
        now = time.monotonic()
        if ready.get(pipe):
            posts: list[Message] = []
            for request in _drain_pipe(pipe):
                if request.kind is Kind.STOP:
                    self._write(ctx, pipe, core.submit_many(posts), now)
                    return True
                if request.kind is Kind.POST:
                    message, reason = _author(request.body, self.config.user, inbox, self._seq)
                    if message is None:
                        actor.send(pipe, Kind.REJECTED, id=request.body.get("id"), reason=reason)
                    else:
                        posts.append(message)
                else:
                    self._request(ctx, request, pipe, core, inbox, beacons, scans, now)
            # One transaction for the whole burst of lines.
            self._write(ctx, pipe, core.submit_many(posts), now)
        dealer = self._dealer
        if dealer is not None and ready.get(dealer):
            for _ in range(DRAIN):
                try:
                    frames = dealer.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._write(ctx, pipe, core.receive(frames, now), now)
                if self._dealer is not dealer:
                    break  # the core asked for a new connection
        reports = self._reports
        if reports is not None and ready.get(reports.monitor):
            self._handshake_failed(ctx, pipe, core, reports.read(), now)
        if ready.get(self._sub):
            for _ in range(DRAIN):
                try:
                    frames = self._sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._write(ctx, pipe, core.receive_pub(frames, now), now)
        if beacons is not None:
            events: list[PresenceEvent] = []
            for fd in beacons.filenos():
                if ready.get(fd):
                    events += beacons.receive(fd, now)
            events += beacons.tick(now)
            self._discovered(ctx, pipe, core, beacons, events, now)
        if scans.own is not None:
            for fd in scans.own.filenos():
                scans.own.receive(fd, now)
        self._write(ctx, pipe, core.flush(now), now)
        self._write(ctx, pipe, core.tick(now), now)
        scans.tick(beacons, pipe, now)
        return False

    def _request(self, ctx, request, pipe, core: ClientCore, inbox, beacons, scans, now) -> None:
        if request.kind is Kind.WHO:
            self._write(ctx, pipe, core.who(now), now)
        elif not _answer_locally(request, pipe, inbox, beacons, scans, now):
            log.warning("the repeater client ignores %s requests", request.kind.value)

    def _discovered(self, ctx, pipe, core: ClientCore, beacons: _Beacons, events, now) -> None:
        """Use the first repeater heard; follow it when it moves; look again when it leaves."""
        if self._failed:
            return
        for event in events:
            if isinstance(event, PeerLeft) and event.peer.node_id == self._chosen:
                self._chosen = None
                actor.send(pipe, Kind.NOTICE, text=f"the repeater of {event.peer.user} went away")
            elif (
                isinstance(event, (PeerJoined, PeerChanged)) and event.peer.node_id == self._chosen
            ):
                self._use(ctx, pipe, core, event.peer, now)
        if self._chosen is None:
            live = [p for p in beacons.table.live() if p.mode == "repeater"]
            repeaters = self._usable(pipe, live)
            if repeaters:
                # The first one heard, not the first by name.
                peer = min(repeaters, key=lambda p: p.last_seen)
                self._chosen = peer.node_id
                self._use(ctx, pipe, core, peer, now)
            elif core.endpoint is not None:
                self._write(ctx, pipe, core.use_server(None, now), now)

    def _tell_once(self, pipe: zmq.Socket, node_id: str, what: str, text: str) -> None:
        if (node_id, what) not in self._told:
            self._told.add((node_id, what))
            actor.send(pipe, Kind.NOTICE, text=text)

    def _usable(self, pipe: zmq.Socket, repeaters: list) -> list:
        """The repeaters this client may use: secure ones for a secure client (preferring
        keys it trusted before), plain ones for a plain client; it says why it skips one."""
        usable = []
        for peer in repeaters:
            where = _where(peer.address, peer.router_port)
            if peer.node_id in self._refused:
                continue
            if self._wanted is not None and not (
                peer.address in self._wanted[0] and peer.router_port == self._wanted[1]
            ):
                continue
            if self._secure is None and peer.key:
                text = f"the repeater of {peer.user} at {where} runs --secure; ignored (run"
                self._tell_once(pipe, peer.node_id, "secure", text + " with --secure to use it)")
            elif self._secure is not None and not peer.key:
                text = f"the repeater of {peer.user} at {where} runs without --secure; ignored"
                self._tell_once(pipe, peer.node_id, "plain", text)
            else:
                usable.append(peer)
        if self._secure is None:
            return usable
        known = self._known.keys()
        trusted = [p for p in usable if p.key in known]
        if trusted:
            return trusted  # a key we trusted before proves it is that server, wherever it is
        first_use = []
        for peer in usable:
            where = _where(peer.address, peer.router_port)
            pinned = self._known.get(where)
            if pinned is not None and pinned != peer.key:
                self._refused.add(peer.node_id)
                self._tell_once(
                    pipe,
                    peer.node_id,
                    "changed",
                    f"refused the repeater of {peer.user} at {where}: it shows the key"
                    f" {security.key_text(peer.key)}, but you trusted"
                    f" {security.key_text(pinned)} there; if its key really changed, remove"
                    f" the line for {where} from {self._known.path}",
                )
            else:
                first_use.append(peer)
        return first_use

    def _use(self, ctx, pipe, core: ClientCore, peer, now) -> None:
        endpoint = tcp(peer.address, peer.router_port)
        if self._secure is not None:
            where = _where(peer.address, peer.router_port)
            if peer.key not in self._known.keys():
                self._known.remember(where, peer.key)
                actor.send(
                    pipe,
                    Kind.NOTICE,
                    text=f"trusting the key {security.key_text(peer.key)} of the repeater of"
                    f" {peer.user} at {where} (first use; pinned in {self._known.path})",
                )
            rekeyed = peer.key != self._server_key
            self._server_key = peer.key
            if rekeyed and endpoint == core.endpoint:
                # Same address, another key: the old connection was made for the old one.
                self._write(ctx, pipe, core.use_server(None, now), now)
        if endpoint != core.endpoint:
            actor.send(
                pipe,
                Kind.NOTICE,
                text=f"using the repeater of {peer.user} at {peer.address}:{peer.router_port}"
                " (found by its beacon)",
            )
            self._write(ctx, pipe, core.use_server(endpoint, now), now)

    def _handshake_failed(self, ctx, pipe, core: ClientCore, problems: list[str], now) -> None:
        """Told where the server is: a failed handshake ends the client (it cannot fix
        itself). Found by beacon: refuse that repeater, say why, look for another."""
        if not problems:
            return
        problem = problems[0]
        where = self.endpoint
        if self._secure is not None and "key" in problem:
            own = self._secure.keys
            if "does not know our key" in problem:
                problem += (
                    f" (our key {own.public.decode()}: give {own.path} to its operator, to"
                    f" save as authorized_keys/{self.config.user}.key)"
                )
            elif self._server_key is not None:
                problem += f" (we expect the key {security.key_text(self._server_key)})"
        if self._chosen is None:
            raise SecurityError(f"the repeater at {where}: {problem}")
        self._refused.add(self._chosen)
        self._chosen = None
        self._close_dealer()  # or ZeroMQ keeps retrying, and failing, in the background
        actor.send(pipe, Kind.NOTICE, text=f"not using the repeater at {where}: {problem}")
        self._write(ctx, pipe, core.use_server(None, now), now)

    def _close_dealer(self) -> None:
        if self._dealer is not None:
            self._poller.unregister(self._dealer)
            self._dealer.close(linger=0)
            self._dealer = None
            self._poller.unregister(self._reports.monitor)
            self._reports.close()
            self._reports = None

    def _write(self, ctx: zmq.Context, pipe: zmq.Socket, outputs, now: float) -> None:
        core = self.core
        events = []
        for out in outputs:
            if isinstance(out, ToServer):
                if self._dealer is None:
                    core.send_failed(out, now)
                    continue
                try:
                    self._dealer.send_multipart(out.command.frames(), zmq.NOBLOCK)
                except zmq.Again:
                    core.send_failed(out, now)
            elif isinstance(out, Connect):
                self._close_dealer()
                self._dealer = _tune(ctx.socket(zmq.DEALER))
                if self._secure is not None:
                    security.make_client(self._dealer, self._secure.keys, self._server_key)
                self._reports = _HandshakeReports(
                    self._dealer, secure=self._secure is not None, side="client", where="client"
                )
                self._poller.register(self._reports.monitor, zmq.POLLIN)
                connect(self._dealer, out.endpoint)
                self._poller.register(self._dealer, zmq.POLLIN)
                self.endpoint = out.endpoint
            elif isinstance(out, Subscribe):
                if self._sub_endpoint is not None:
                    try:
                        self._sub.disconnect(self._sub_endpoint)
                    except zmq.ZMQError:
                        pass
                if self._secure is not None:
                    security.make_client(self._sub, self._secure.keys, self._server_key)
                connect(self._sub, out.endpoint)
                self._sub_endpoint = out.endpoint
            else:
                events.append(out)
        actor.send_events(pipe, events)
