"""What the repeater actors answer alike from their own beacons and inbox: SCAN and HISTORY.

``ScanRequests`` answers the front end's SCAN: one probe, then the live table
after ``SCAN_WAIT`` seconds; an actor without beacon sockets of its own
(``beacon_edge.BeaconEdge``) opens some for the scan. ``LocalAnswers`` is
what server and client answer alike: SCAN, HISTORY and OUTBOX.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import zmq

from ..core.errors import ConfigError, StoreUnavailable
from . import actor
from .actor import PipeKind
from .config import NodeConfig
from .history import HistorySource, answer_history, answer_outbox

if TYPE_CHECKING:
    from .beacon_edge import BeaconEdge

SCAN_WAIT = 0.5  # how long SCAN listens for answers to its probe


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
            from .beacon_edge import BeaconEdge  # beacons only when asked: see beacon_edge.py

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
