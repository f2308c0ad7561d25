"""The repeater server's I/O shell: the actor that owns its sockets and drives ``ServerCore``.

One thread (see ``actor.py``) creates and owns a ROUTER for clients, a PUB
for the room feed, the inbox and the beacon sockets, and polls them all in
one ``zmq.Poller`` whose timeout is the next deadline of the core
(``core/repeater/server.py``), which decides everything else. Only this
module reads the clock (the injected ``clock``).

Every send to a peer is non-blocking: a peer whose queue is full loses that
command (``zmq.Again``) and recovers through the protocol (the client fetches
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
import os
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import zmq

from ..core.authoring import Draft
from ..core.errors import Lab93Error, MessageError
from ..core.events import Joined, Notice, Parted, Users
from ..core.notices import SayOnce
from ..core.presence import Beacon, BeaconKind
from ..core.repeater.commands import HEARTBEAT
from ..core.repeater.outputs import PublishRoom, ReplyTo, ServerOutput
from ..core.repeater.replay import TAIL
from ..core.repeater.server import SESSION_TIMEOUT, ServerCore, away_of
from ..core.repeater.window import POST_LIMIT, WINDOW
from ..core.rooms import check_room
from . import actor, security
from .actor import Actor, PipeKind, PipeMessage
from .beacon_edge import BeaconEdge
from .config import NodeConfig
from .discovery import LocalAnswers, ScanRequests
from .handshake import HandshakeMonitor
from .sockets import bind, drain, poll_timeout, send_frames, tune
from .store import Inbox, open_store, utc_now
from .store_edge import StoreEdge

if TYPE_CHECKING:
    from .irc_face import IRCFace

log = logging.getLogger(__name__)

MAX_PENDING = 2000  # posts the server gathers before it stores them
# Commands the server's ZeroMQ queues from one session before it stops reading
# that socket: twice a full window of POSTs (up to POST_LIMIT messages each) and
# the odd PING or FETCH. A client posting in smaller POSTs waits on TCP, not loses.
SESSION_RCVHWM = 2 * WINDOW // POST_LIMIT
# A client that reads keeps ~20 commands in flight (its window of ACKs, one
# FETCH's BATCH, PINGs); past this, sends fail (zmq.Again) and it recovers
# by re-sending or fetching. Bounds a session's queue to 64 x 4 MiB BATCHes.
SESSION_SNDHWM = 64
ROOM_HWM = 1000  # ROOM commands (up to BATCH_LIMIT messages) queued per subscriber
# When the server asks for a checkpoint of its inbox, which runs in a thread of its own
# (checkpoint.py), so a commit waits neither for its sync nor for SQLite's own
# checkpoint: after so many commits or so many messages, about 500 pages of log
# either way (a commit writes a leaf of each of its six b-trees, a message a tenth
# of a page). Checkpointing more often copies the same hot pages again for nothing.
CHECKPOINT_AFTER = 64  # commits
CHECKPOINT_MESSAGES = 4000  # messages stored
GOODBYE_MS = 200  # how long a clean stop waits for its BYEs to leave


class ServerActor(Actor):
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.heartbeat = heartbeat
        self.session_timeout = session_timeout
        self.tail = tail
        self.clock = clock
        self.router_endpoint: str | None = None
        self.pub_endpoint: str | None = None
        self.router_port: int | None = None
        self.pub_port: int | None = None
        self.server_id: str | None = None
        self.irc_port: int | None = None  # the IRC face's port (--irc-port), once bound
        self.irc_endpoint: str | None = None
        self.core: ServerCore | None = None
        self.authorized: security.AuthorizedKeys | None = None
        self.goodbye_ms = 0  # how long closing lets the BYEs go out

    def run(self, ctx: zmq.Context, pipe: zmq.Socket) -> None:
        # The network sockets get a context of their own: terminating it
        # releases the ports at once, so a restart can bind them again.
        net = zmq.Context()
        self.goodbye_ms = 0
        with ExitStack() as stack:
            loop = self._open(net, pipe, stack)
            actor.send(pipe, PipeKind.READY, node_id=self.server_id, detail=self._detail())
            log.info("repeater %s serving at %s", self.server_id, self.router_endpoint)
            if not loop.serve():
                loop.write(loop.core.close())
                self.goodbye_ms = GOODBYE_MS
                if loop.beacons is not None:
                    loop.beacons.leave()
        actor.send(pipe, PipeKind.STOPPED)

    def _open(self, net: zmq.Context, pipe: zmq.Socket, stack: ExitStack) -> _ServerLoop:
        """Everything the loop needs, each closed by ``stack`` in the reverse order."""
        config, secure = self.config, self.config.secure
        inbox = open_store(config.db_url or config.db_path)
        stack.callback(inbox.close)
        # The servers of one service (one PostgreSQL store) share its id; each beacons
        # under an id of its own, and names the service.
        instance = getattr(inbox, "instance_id", inbox.node_id)
        stack.callback(net.term)
        if secure is not None:
            # ZAP is per context: this server's own context gets its own handler.
            from .zap import KeyAuthenticator  # asyncio: only secure servers load it

            self.authorized = security.AuthorizedKeys(secure.authorized_keys)
            authenticator = KeyAuthenticator(net, self.authorized)
            authenticator.start()
            stack.callback(authenticator.stop)
        router, pub = self._bind(net, stack)
        reports = HandshakeMonitor(
            router, secure=secure is not None, side="server", where="repeater"
        )
        stack.callback(reports.close)
        now = self.clock()
        self.server_id = inbox.node_id
        self.core = ServerCore(
            inbox,
            self.pub_port,
            now,
            heartbeat=self.heartbeat,
            session_timeout=self.session_timeout,
            tail=self.tail,
            names_from_keys=secure is not None,
            user=config.user,
        )
        beacons = None
        if config.beacon:
            key = secure.keys.public_raw if secure else b""
            announce = Beacon(
                BeaconKind.ANNOUNCE,
                instance,
                "repeater",
                self.router_port,
                self.pub_port,
                config.user,
                key,
                service=inbox.node_id if instance != inbox.node_id else "",
            )
            beacons = BeaconEdge(config, instance, now, announce)
            stack.callback(beacons.close)
        scans = ScanRequests(config, instance)
        stack.callback(scans.close)
        loop = _ServerLoop(
            clock=self.clock,
            pipe=pipe,
            router=router,
            pub=pub,
            core=self.core,
            inbox=inbox,
            beacons=beacons,
            reports=reports,
            local=LocalAnswers(pipe, inbox, beacons, scans),
            secure=secure is not None,
        )
        stack.callback(loop.store.close)
        if config.irc is not None:
            # Only a server with --irc-port loads the IRC face (and ssl): 2 MiB less for
            # every other one.
            from .irc_face import IRCFace

            authorized = self.authorized
            loop.irc = IRCFace(
                config.irc,
                config.address or "0.0.0.0",
                self.core,
                inbox,
                loop.poller,
                loop.write,
                # In secure mode every authorized key's name is taken for IRC users.
                reserved=(lambda: authorized.names().values()) if authorized is not None else tuple,
            )
            stack.callback(loop.irc.close)
            self.irc_port, self.irc_endpoint = loop.irc.port, loop.irc.endpoint()
        return loop

    def _bind(self, net: zmq.Context, stack: ExitStack) -> tuple[zmq.Socket, zmq.Socket]:
        address = self.config.address or "0.0.0.0"
        # Flow control: see the module docstring.
        router = tune(net.socket(zmq.ROUTER), rcvhwm=SESSION_RCVHWM, sndhwm=SESSION_SNDHWM)
        stack.callback(lambda: router.close(linger=self.goodbye_ms))
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a full or gone peer raises, never blocks
        pub = tune(net.socket(zmq.PUB), hwm=ROOM_HWM)
        stack.callback(lambda: pub.close(linger=self.goodbye_ms))
        if self.config.secure is not None:
            for sock in (router, pub):
                security.make_server(sock, self.config.secure.keys)
        self.router_port = bind(router, address, self.config.port)
        self.pub_port = bind(pub, address, 0, "open the room feed")
        self.router_endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.pub_endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)
        return router, pub

    def _detail(self) -> str:
        detail = f"repeater at {self.router_endpoint}, room feed at {self.pub_endpoint}"
        if self.irc_endpoint is not None:
            detail += f", IRC at {self.irc_endpoint}"
        secure = self.config.secure
        if secure is None:
            return detail
        return (
            f"secure {detail}; its key: {secure.keys.public.decode()}"
            f" ({len(self.authorized.names())} authorized in {secure.authorized_keys})"
        )


@dataclass
class _ServerLoop:
    """The poll loop of one running server, over what ``ServerActor._open`` made."""

    clock: Callable[[], float]
    pipe: zmq.Socket
    router: zmq.Socket
    pub: zmq.Socket
    core: ServerCore
    inbox: Inbox  # or a pg_store.PostgresStore
    beacons: BeaconEdge | None
    reports: HandshakeMonitor
    local: LocalAnswers
    secure: bool
    store: StoreEdge = field(init=False)
    irc: IRCFace | None = None  # the IRC face, with --irc-port

    def __post_init__(self) -> None:
        self.poller = zmq.Poller()
        for sock in (self.pipe, self.router, self.reports.socket):
            self.poller.register(sock, zmq.POLLIN)
        for fd in self.beacons.filenos() if self.beacons else ():
            self.poller.register(fd, zmq.POLLIN)
        self.said = SayOnce()  # handshake problems told to the front end
        self.commits = self.stored = 0  # since the last checkpoint
        self.store = StoreEdge(self.inbox, self.poller, self.clock())

    def serve(self) -> bool:
        """Turn until STOP; whether the stop was abrupt."""
        while True:
            abrupt = self.turn()
            if abrupt is not None:
                return abrupt

    def turn(self) -> bool | None:
        """One turn of the loop; None, or whether a STOP asked for an abrupt end."""
        core, beacons = self.core, self.beacons
        if self.commits >= CHECKPOINT_AFTER or self.stored >= CHECKPOINT_MESSAGES:
            # Copy the log into the file soon, in the checkpoint thread: not inside a
            # commit someone waits for, nor in this loop (its sync takes 0.3-100 ms).
            self.commits = self.stored = 0
            self.inbox.checkpoint_soon()
        deadlines = [core.next_deadline(), self.local.scans.deadline, self.store.next_deadline()]
        if beacons is not None:
            deadlines.append(beacons.next_deadline())
        if self.irc is not None:
            deadlines.append(self.irc.next_deadline())
        ready = dict(self.poller.poll(poll_timeout(deadlines, self.clock())))
        now = self.clock()
        if ready.get(self.pipe):
            for request in actor.drain_requests(self.pipe):
                if request.kind is PipeKind.STOP:
                    return bool(request.body.get("abrupt"))
                self.request(request, now)
        if ready.get(self.router):
            self.read_router(now)
        if self.irc is not None:
            self.irc.receive(ready, now)  # IRC posts join this turn's group commit
        if ready.get(self.reports.socket):
            for problem in self.reports.problems():
                if self.said.due(problem, now):
                    actor.send(self.pipe, PipeKind.NOTICE, text=problem)
        self.store.tick(now)  # StoreLost: the inbox file is gone, and the server stops
        if self.store.order_moved(ready, now):
            self.write(core.follow(now))
        if core.pending:
            self.commits += 1
            self.stored += core.pending
        self.write(core.flush(now))
        if beacons is not None:
            for fd in beacons.filenos():
                if ready.get(fd):
                    beacons.receive(fd, now)
            beacons.tick(now)
        self.write(core.tick(now))
        self.local.tick(now)
        if self.irc is not None:
            self.irc.tick(now)
            self.irc.pump(now)  # what the commit and the sessions did, to the IRC users
        return None

    def read_router(self, now: float) -> None:
        """What the sessions sent, until the commit would grow too big."""
        for received in drain(self.router):
            frames = received.frames
            # The key's name, as the authenticator gave it (secure mode only).
            user = received.user_id if self.secure else None
            self.write(self.core.receive(frames[0], frames[1:], now, user))
            if self.core.pending >= MAX_PENDING:
                break

    def request(self, request: PipeMessage, now: float) -> None:
        kind, body = request.kind, request.body
        if kind is PipeKind.POST:
            try:
                drafts = [Draft.from_body(body)]
            except (KeyError, TypeError, Lab93Error) as exc:
                actor.send(
                    self.pipe,
                    PipeKind.REJECTED,
                    id=body.get("id"),
                    reason=f"not a valid message: {exc}",
                )
                return
            self.write(self.core.post(drafts))
        elif not self.ask(request) and not self.local.answer(request, now):
            log.warning("the repeater server ignores %s requests", kind.value)

    def ask(self, request: PipeMessage) -> bool:
        """WHO, ROOMS, TOPIC, JOIN, PART from the server's own front end (the server keeps
        every room: it joins and parts none); False for any other request."""
        kind, body, core = request.kind, request.body, self.core
        try:
            room = body.get("room")
            room = None if room is None else check_room(room)
            if kind is PipeKind.WHO:
                users = core.users(room)
                away = away_of(users, core.sessions.values(), core.irc)
                self.write([Users(tuple(users), room=room, away=tuple(sorted(away.items())))])
            elif kind is PipeKind.ROOMS:
                self.write([core.room_list()])
            elif kind is PipeKind.TOPIC:
                text = body.get("text")
                if room is None or not isinstance(text, str):
                    raise MessageError("topic", "needs a room and a text")
                self.write(core.set_topic(room, text, utc_now(), os.urandom(10)))
            elif kind is PipeKind.JOIN:
                self.write([Joined(check_room(room), core.topic(room), False)])
            elif kind is PipeKind.PART:
                self.write([Parted(check_room(room))])
            else:
                return False
        except MessageError as exc:
            self.write([Notice(f"{kind.value}: {exc}")])
        return True

    def write(self, outputs: list[ServerOutput]) -> None:
        events = []
        for out in outputs:
            if isinstance(out, ReplyTo):
                try:
                    send_frames(self.router, [out.identity, *out.frames()])
                except zmq.Again:
                    log.debug(
                        "session %s is full; dropped a %s", out.identity.hex(), out.command.name
                    )
                except zmq.ZMQError as exc:  # EHOSTUNREACH: that peer is gone
                    log.debug("session %s: %s", out.identity.hex(), exc)
            elif isinstance(out, PublishRoom):
                try:
                    send_frames(self.pub, out.frames())
                except zmq.Again:  # pragma: no cover - a PUB drops instead
                    log.debug("the PUB dropped a %s", out.command.name)
            else:
                events.append(out)
        actor.send_events(self.pipe, events)
