"""The beacon edge of the repeater actors: UDP sockets, the live table, SCAN and HISTORY.

``BeaconEdge`` joins ``beacon.BeaconSocket`` (datagrams) to
``presence.Discovery`` (which decodes them, keeps the live table and says
when an announcing actor's beacon is due). ``ScanRequests`` answers the
front end's SCAN: one probe, then the live table after ``SCAN_WAIT``
seconds; an actor without beacon sockets of its own opens some for the scan.
``LocalAnswers`` is what server and client answer alike: SCAN and HISTORY.
"""

from __future__ import annotations

from datetime import datetime, timezone

import zmq

from ..core.errors import ConfigError, StoreUnavailable
from ..core.presence import Beacon, Discovery, Peer, PeerLeft, PresenceEvent, peer_json
from . import actor
from .actor import PipeKind
from .beacon import BeaconSocket
from .config import NodeConfig
from .history import HistorySource, answer_history, answer_outbox
from .interfaces import resolve

SCAN_WAIT = 0.5  # how long SCAN listens for answers to its probe


class BeaconEdge:
    """Beacon sockets and the live table; with ``announce``, our own beacon too."""

    def __init__(
        self, config: NodeConfig, node_id: str, now: float, announce: Beacon | None = None
    ) -> None:
        self.socket = BeaconSocket(resolve(config.interfaces), config.beacon_port)
        self.node_id = node_id
        self.user = config.user
        self.discovery = Discovery(node_id, config.beacon_interval, now, announce)
        self.announce = announce

    def filenos(self) -> list[int]:
        return self.socket.filenos()

    def live(self) -> list[Peer]:
        return self.discovery.table.live()

    def receive(self, fd: int, now: float) -> list[PresenceEvent]:
        """Every datagram waiting on ``fd``: what changed in the live table."""
        events: list[PresenceEvent] = []
        for data, address in self.socket.receive(fd):
            events += self.discovery.hear(data, address, now)
        return events

    def tick(self, now: float) -> list[PeerLeft]:
        """Expire the silent; send our beacon when due."""
        gone = self.discovery.table.expire(now)
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
        return [peer_json(peer, now, wall) for peer in self.live()]

    def close(self) -> None:
        self.socket.close()


class ScanRequests:
    """SCAN requests: probe, listen SCAN_WAIT seconds, answer from the live table."""

    def __init__(self, config: NodeConfig, node_id: str) -> None:
        self.config = config
        self.node_id = node_id
        self.deadline: float | None = None
        self.waiting = 0
        self.own: BeaconEdge | None = None  # opened for a scan, closed after

    def start(self, beacons: BeaconEdge | None, now: float) -> str | None:
        """Begin a scan: probe, and answer at ``deadline``; a sentence when it cannot."""
        if beacons is None and self.own is None:
            try:
                self.own = BeaconEdge(self.config, self.node_id, now)
            except (ConfigError, ValueError) as exc:
                return f"cannot scan: {exc}"
        (beacons or self.own).probe()
        self.waiting += 1
        self.deadline = now + SCAN_WAIT
        return None

    def listen(self, now: float) -> None:
        """A scan's own beacon sockets are read without the poller: they live half a second."""
        if self.own is not None:
            for fd in self.own.filenos():
                self.own.receive(fd, now)

    def due(self, beacons: BeaconEdge | None, now: float) -> tuple[int, list[dict]]:
        """When the waiting scans are due: how many, and their answer; else (0, [])."""
        if self.deadline is None or now < self.deadline:
            return 0, []
        edge = beacons or self.own
        found = edge.sightings(now) if edge is not None else []
        waiting, self.waiting, self.deadline = self.waiting, 0, None
        self.close()
        return waiting, found

    def close(self) -> None:
        if self.own is not None:
            self.own.close()
            self.own = None


class LocalAnswers:
    """HISTORY, OUTBOX and SCAN, which every repeater actor answers alike, from its own
    inbox and beacons (``beacons`` None: it has none; a scan opens its own)."""

    def __init__(
        self,
        pipe: zmq.Socket,
        inbox: HistorySource,
        beacons: BeaconEdge | None,
        scans: ScanRequests,
    ) -> None:
        self.pipe = pipe
        self.inbox = inbox
        self.beacons = beacons
        self.scans = scans

    def answer(self, request: actor.PipeMessage, now: float) -> bool:
        """Answer ``request`` if it is one of these; False for any other."""
        if request.kind is PipeKind.HISTORY:
            try:
                answer = answer_history(self.inbox, request.body)
            except StoreUnavailable as exc:  # the store is away: say so, answer nothing
                actor.send(self.pipe, PipeKind.NOTICE, text=f"no history now: {exc}")
                answer = {"messages": []}
            actor.send(self.pipe, PipeKind.HISTORY_RESULT, **answer)
        elif request.kind is PipeKind.OUTBOX:
            try:
                answer = answer_outbox(self.inbox)
            except StoreUnavailable as exc:
                actor.send(self.pipe, PipeKind.NOTICE, text=f"no outbox now: {exc}")
                answer = {"messages": []}
            actor.send(self.pipe, PipeKind.OUTBOX_RESULT, **answer)
        elif request.kind is PipeKind.SCAN:
            problem = self.scans.start(self.beacons, now)
            if problem is not None:
                actor.send(self.pipe, PipeKind.NOTICE, text=problem)
                actor.send(self.pipe, PipeKind.SCAN_RESULT, beacons=[])
        else:
            return False
        return True

    def tick(self, now: float) -> None:
        """Listen on a scan's own sockets; answer the scans that are due."""
        self.scans.listen(now)
        waiting, found = self.scans.due(self.beacons, now)
        for _ in range(waiting):
            actor.send(self.pipe, PipeKind.SCAN_RESULT, beacons=found)
