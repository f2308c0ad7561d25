"""The repeater client's I/O shell: the actor that owns its sockets and drives ``ClientCore``.

One thread (see ``actor.py``) creates and owns a DEALER to the server's
ROUTER, a SUB to its room feed (subscribed to the topic of each room it is
in, nothing else), the inbox and (when it looks for its server, or learns
its key) the beacon sockets, and polls them all in one ``zmq.Poller`` whose
timeout is the core's next deadline. The core
(``core/repeater/client.py``) decides everything, which server to use and
which key to trust included; this module carries out its outputs and reads
the clock (the injected ``clock``).

Every send is non-blocking: when the DEALER is full the core is told
(``send_failed``) and tries again later.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING

import zmq

from .. import __version__
from ..core.authoring import Draft
from ..core.away import AwayTextError, away_text
from ..core.errors import MessageError, SecurityError, error_kind
from ..core.events import Notice
from ..core.repeater.chooser import GivenServer, Secure, ServerChooser
from ..core.repeater.client import ClientCore
from ..core.repeater.commands import HEARTBEAT
from ..core.repeater.liveness import DEAD_AFTER
from ..core.repeater.outputs import (
    ClientOutput,
    ConnectServer,
    DisconnectServer,
    FollowRooms,
    GiveUp,
    PinKey,
    ProbeBeacons,
    SendToServer,
    SubscribeFeed,
)
from ..core.rooms import RoomError, check_room
from ..core.wire import room_topic, subscription
from . import actor, security
from .actor import Actor, PipeKind, PipeMessage
from .config import NodeConfig
from .discovery import LocalAnswers, ScanRequests
from .handshake import HandshakeMonitor
from .sockets import connect, drain, poll_timeout, send_frames, tune
from .store import Inbox, utc_now
from .store_edge import StoreEdge

if TYPE_CHECKING:
    from .beacon_edge import BeaconEdge

log = logging.getLogger(__name__)

PEER_HWM = 10_000  # commands queued to or from the server before sends fail (zmq.Again)
SUB_HWM = 100_000  # room commands a client's SUB holds before ZeroMQ stops reading
GOODBYE_MS = 200  # how long a clean stop waits for its BYE to leave


def addresses(host: str, port: int) -> frozenset[str]:
    """Every address ``host`` stands for, to recognise its server's beacon by source."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return frozenset({host})
    return frozenset({host, *(info[4][0] for info in infos)})


class ClientActor(Actor):
    """``lab93-node -r -c``: a DEALER to the repeater's ROUTER, a SUB to its PUB, an inbox.

    With ``config.address`` None it listens for beacons and uses the first
    repeater it hears. ``endpoint`` is the server it talks to now.
    """

    name = "repeater-client"
    takes_bursts = True

    def __init__(
        self,
        config: NodeConfig,
        *,
        heartbeat: float = HEARTBEAT,
        dead_after: float = DEAD_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.heartbeat = heartbeat
        self.dead_after = dead_after
        self.clock = clock
        self.core: ClientCore | None = None
        self.endpoint: str | None = None
        # Secure mode: where this client trusts repeater keys (known_servers).
        self.known = security.KnownServers(config.secure.known_servers) if config.secure else None
        self.handover = actor.Handover()  # POSTS of a front end in this process

    def chooser(self) -> ServerChooser:
        """How this client finds its server and whether it trusts its key."""
        config, secure = self.config, self.config.secure
        given = None
        if config.address is not None:
            # Only a secure client may need to know its server's beacon by its source.
            found = addresses(config.address, config.port) if secure else frozenset()
            given = GivenServer(config.address, config.port, found, config.servers[1:])
        trust = None
        if secure is not None:
            trust = Secure(
                self.known, secure.keys.public.decode(), str(secure.keys.path), secure.server_key
            )
        return ServerChooser(config.user, given, trust)

    def run(self, ctx: zmq.Context, pipe: zmq.Socket) -> None:
        with ExitStack() as stack:
            inbox = Inbox(self.config.db_path, role="client")
            stack.callback(inbox.close)
            now = self.clock()
            chooser = self.chooser()
            self.core = ClientCore(
                inbox,
                self.config.user,
                now,
                chooser=chooser,
                heartbeat=self.heartbeat,
                dead_after=self.dead_after,
                software=__version__,
                rooms=self.config.rooms,
                listen=self.config.listen,
            )
            loop = _ClientLoop(self, ctx, pipe, inbox, stack)
            if chooser.listens:
                loop.open_beacons(now)
            detail = f"repeater client for {self.config.user}"
            actor.send(pipe, PipeKind.READY, node_id=inbox.node_id, detail=detail)
            loop.perform(self.core.start(now))
            loop.serve()
            loop.perform(self.core.flush(self.clock()))
            loop.perform(self.core.stop())  # BYE
            loop.close_dealer(linger=GOODBYE_MS)
        actor.send(pipe, PipeKind.STOPPED)


class _ClientLoop:
    """The poll loop of one running client, and the sockets it opens as told."""

    def __init__(
        self,
        owner: ClientActor,
        ctx: zmq.Context,
        pipe: zmq.Socket,
        inbox: Inbox,
        stack: ExitStack,
    ) -> None:
        self.owner = owner
        self.core = owner.core
        self.clock = owner.clock
        self.secure = owner.config.secure
        self.ctx = ctx
        self.pipe = pipe
        self.stack = stack
        self.sub = tune(ctx.socket(zmq.SUB), hwm=SUB_HWM)
        stack.callback(self.sub.close, linger=0)
        self.sub_rooms: frozenset[str] = frozenset()  # the topics the SUB is subscribed to
        self.sub_endpoint: str | None = None
        self.dealer: zmq.Socket | None = None
        self.reports: HandshakeMonitor | None = None
        stack.callback(self.close_dealer)
        self.poller = zmq.Poller()
        self.poller.register(pipe, zmq.POLLIN)
        self.poller.register(self.sub, zmq.POLLIN)
        self.beacons: BeaconEdge | None = None
        self.scans = ScanRequests(owner.config, inbox.node_id)
        stack.callback(self.scans.close)
        self.local = LocalAnswers(pipe, inbox, None, self.scans)
        self.store = StoreEdge(inbox, None, owner.clock())  # the inbox file's watch

    def open_beacons(self, now: float) -> None:
        from .beacon_edge import BeaconEdge  # only a client that looks for its server

        self.beacons = BeaconEdge(self.owner.config, self.core.node_id, now)
        self.stack.callback(self.beacons.close)
        for fd in self.beacons.filenos():
            self.poller.register(fd, zmq.POLLIN)
        self.local.beacons = self.beacons

    def serve(self) -> None:
        """Turn until STOP. A refusal retrying cannot mend ends the client's talking,
        not its loop: posts still go to the outbox until the front end stops it."""
        while True:
            try:
                if self.turn():
                    return
            except SecurityError as error:
                self.perform(self.core.give_up(error, self.clock()))

    def turn(self) -> bool:
        """One turn of the loop; True when the front end said STOP."""
        core, beacons = self.core, self.beacons
        deadlines = [core.next_deadline(), self.scans.deadline, self.store.next_deadline()]
        if beacons is not None:
            deadlines.append(beacons.next_deadline())
        ready = dict(self.poller.poll(poll_timeout(deadlines, self.clock())))
        now = self.clock()
        self.store.tick(now)  # StoreLost: the inbox file is gone, and the client stops
        if ready.get(self.pipe) and self.requests(now):
            return True
        dealer = self.dealer
        if dealer is not None and ready.get(dealer):
            for received in drain(dealer):
                self.perform(core.receive(received.frames, now))
                if self.dealer is not dealer:
                    break  # the core asked for a new connection
        reports = self.reports
        if reports is not None and ready.get(reports.socket):
            problems, lost = [], False
            for event, value in reports.events():
                if event == zmq.EVENT_DISCONNECTED:
                    lost = True  # the server's end closed: maybe move to another at once
                elif (problem := reports.problem(event, value)) is not None:
                    problems.append(problem)
            if problems:
                self.perform(core.handshake_failed(problems[0], now))
            elif lost:
                self.perform(core.connection_lost(now))
        if ready.get(self.sub):
            for received in drain(self.sub):
                self.perform(core.receive_pub(received.frames, now))
        if beacons is not None:
            events = []
            for fd in beacons.filenos():
                if ready.get(fd):
                    events += beacons.receive(fd, now)
            events += beacons.tick(now)
            self.perform(core.heard(events, beacons.live(), now))
        self.perform(core.flush(now))
        self.perform(core.tick(now))
        self.local.tick(now)
        return False

    def requests(self, now: float) -> bool:
        """The front end's requests; True on STOP. A burst of posts is one transaction."""
        drafts: list[Draft] = []
        for request in actor.drain_requests(self.pipe):
            if request.kind is PipeKind.STOP:
                self.perform(self.core.post(drafts))
                return True
            if request.kind is PipeKind.POST:
                draft = self.draft(request)
                if draft is not None:
                    drafts.append(draft)
                continue
            if request.kind is PipeKind.POSTS:
                for draft in actor.drafts_of(request.body, self.owner.handover):
                    if isinstance(draft, Draft):
                        drafts.append(draft)
                    else:
                        actor.send(self.pipe, PipeKind.REJECTED, id=draft.id, reason=draft.reason)
                continue
            # Anything else comes after the posts before it (a line, then /part).
            self.perform(self.core.post(drafts))
            drafts = []
            if not self.ask(request, now) and not self.local.answer(request, now):
                log.warning("the repeater client ignores %s requests", request.kind.value)
        self.perform(self.core.post(drafts))
        return False

    def ask(self, request: PipeMessage, now: float) -> bool:
        """WHO, JOIN, PART, ROOMS, TOPIC; False for any other request."""
        kind, body, core = request.kind, request.body, self.core
        try:
            if kind is PipeKind.WHO:
                room = body.get("room")
                self.perform(core.who(now, None if room is None else check_room(room)))
            elif kind is PipeKind.JOIN:
                self.perform(core.join(check_room(body.get("room")), now))
            elif kind is PipeKind.PART:
                self.perform(core.part(check_room(body.get("room")), now))
            elif kind is PipeKind.ROOMS:
                self.perform(core.ask_rooms(now))
            elif kind is PipeKind.AWAY:
                self.perform(core.set_away(away_text(body.get("text")), now))
            elif kind is PipeKind.TOPIC:
                text = body.get("text")
                if not isinstance(text, str):
                    raise MessageError("content", "of a topic must be text")
                room = check_room(body.get("room"))
                self.perform(core.set_topic(room, text, utc_now(), os.urandom(10)))
            else:
                return False
        except (RoomError, MessageError, AwayTextError) as exc:
            self.perform([Notice(f"{kind.value}: {exc}")])
        return True

    def draft(self, request: PipeMessage) -> Draft | None:
        body = request.body
        try:
            return Draft.from_body(body)
        except (KeyError, TypeError, MessageError) as exc:
            reason = f"not a valid message: {exc}"
            actor.send(self.pipe, PipeKind.REJECTED, id=body.get("id"), reason=reason)
            return None

    def perform(self, outputs: list[ClientOutput]) -> None:
        events = []
        for out in outputs:
            if isinstance(out, SendToServer):
                self.send(out)
            elif isinstance(out, ConnectServer):
                self.connect(out)
            elif isinstance(out, DisconnectServer):
                self.close_dealer()
            elif isinstance(out, SubscribeFeed):
                self.subscribe(out)
            elif isinstance(out, FollowRooms):
                self.follow(out.rooms)
            elif isinstance(out, ProbeBeacons):
                self.beacons.probe()
            elif isinstance(out, PinKey):
                self.owner.known.remember(out.where, out.key)
            elif isinstance(out, GiveUp):
                actor.send_events(self.pipe, events, posted_rows=True)
                events = []
                actor.send(self.pipe, PipeKind.FATAL, error=str(out.error),
                           error_class=error_kind(out.error))
            else:
                events.append(out)
        actor.send_events(self.pipe, events, posted_rows=True)

    def send(self, out: SendToServer) -> None:
        if self.dealer is not None:
            try:
                send_frames(self.dealer, out.command.frames())
                return
            except zmq.Again:
                pass
        actor.send_events(self.pipe, self.core.send_failed(out, self.clock()))

    def connect(self, out: ConnectServer) -> None:
        self.close_dealer()
        dealer = self.dealer = tune(self.ctx.socket(zmq.DEALER), hwm=PEER_HWM)
        if self.secure is not None:
            security.make_client(dealer, self.secure.keys, out.server_key)
        self.reports = HandshakeMonitor(
            dealer,
            secure=self.secure is not None,
            side="client",
            where="client",
            events=security.HANDSHAKE_EVENTS | zmq.EVENT_DISCONNECTED,
        )
        self.poller.register(self.reports.socket, zmq.POLLIN)
        connect(dealer, out.endpoint)
        self.poller.register(dealer, zmq.POLLIN)
        self.owner.endpoint = out.endpoint

    def subscribe(self, out: SubscribeFeed) -> None:
        if self.sub_endpoint is not None:
            try:
                self.sub.disconnect(self.sub_endpoint)
            except zmq.ZMQError:
                pass
        if self.secure is not None:
            security.make_client(self.sub, self.secure.keys, out.server_key)
        connect(self.sub, out.endpoint)
        self.sub_endpoint = out.endpoint

    def follow(self, rooms: frozenset[str]) -> None:
        """Subscribe the SUB to exactly these rooms' topics (ZeroMQ counts subscriptions:
        each topic is subscribed once, and unsubscribed once)."""
        for room in sorted(rooms - self.sub_rooms):
            self.sub.setsockopt(zmq.SUBSCRIBE, subscription(room_topic(room)))
        for room in sorted(self.sub_rooms - rooms):
            self.sub.setsockopt(zmq.UNSUBSCRIBE, subscription(room_topic(room)))
        self.sub_rooms = rooms

    def close_dealer(self, linger: int = 0) -> None:
        if self.dealer is not None:
            self.poller.unregister(self.dealer)
            self.poller.unregister(self.reports.socket)
            self.reports.close()
            self.reports = None
            self.dealer.close(linger=linger)
            self.dealer = None
