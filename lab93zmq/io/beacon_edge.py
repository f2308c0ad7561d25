"""The beacon edge of the repeater actors: their UDP sockets and live table.

``BeaconEdge`` joins ``beacon.BeaconSocket`` (datagrams) to
``presence.Discovery`` (which decodes them, keeps the live table and says
when an announcing actor's beacon is due). A server always has one; a client
only when it looks for its server or learns its key, and for a /scan
(``discovery.ScanRequests``): a client given its server (``-a``, the usual
``--send`` or pipeline) never imports the beacon code.
"""

from __future__ import annotations

from datetime import datetime, timezone

from ..core.presence import Beacon, Discovery, Peer, PeerLeft, PresenceEvent, peer_json
from .beacon import BeaconSocket
from .config import NodeConfig
from .interfaces import resolve


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
