"""``--scan``: probe once, listen until the timeout, list who is alive.

A one-shot I/O shell around ``BeaconSocket`` and the beacon codec. It is not
a node: its probe carries a fresh random id, it answers nobody, and a probe
is never listed by anyone.
"""

from __future__ import annotations

import logging
import os
import select
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from ..core.presence import Beacon, BeaconKind, Discovery, sighting
from ..core.sighting import Sighting
from .beacon import BeaconSocket
from .interfaces import BeaconTarget

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Listening:
    """One scan in progress: the beacon sockets open, one PROBE sent, answers kept.

    The blocking ``scan`` waits on ``filenos()`` with select; the asyncio face
    hands them to its loop. Either calls ``take(fd)`` when one is readable and
    ``found()`` at the end. Keeps the latest ANNOUNCE per node id; a node that
    says LEAVING is dropped (and listed again if it announces afterwards).
    """

    def __init__(
        self,
        targets: Sequence[BeaconTarget],
        port: int,
        wall: Callable[[], datetime] = _utcnow,
        user: str = "",
    ) -> None:
        self._wall = wall
        self._seen: dict[str, Sighting] = {}
        self.dropped = 0
        self._beacons = BeaconSocket(targets, port)
        try:
            self._beacons.send(Beacon.probe(os.urandom(16).hex(), user).encode())
        except BaseException:
            self._beacons.close()
            raise

    def filenos(self) -> list[int]:
        return list(self._beacons.filenos())

    def take(self, fd: int) -> None:
        for data, address in self._beacons.receive(fd):
            beacon = Discovery.read(data, address)
            if not isinstance(beacon, Beacon):  # not a beacon, or another version's
                self.dropped += 1
                continue
            if beacon.kind is BeaconKind.ANNOUNCE:
                self._seen[beacon.node_id] = sighting(beacon, address, self._wall())
            elif beacon.kind is BeaconKind.LEAVING:
                self._seen.pop(beacon.node_id, None)

    def found(self) -> list[Sighting]:
        """The live ones, sorted by user name, then node id."""
        return sorted(self._seen.values(), key=lambda s: (s.user, s.node))

    def close(self) -> None:
        if self.dropped:
            log.info("scan dropped %d invalid datagram(s)", self.dropped)
        self._beacons.close()

    def __enter__(self) -> Listening:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def scan(
    targets: Sequence[BeaconTarget],
    port: int,
    timeout: float,
    now: Callable[[], float] = time.monotonic,
    wall: Callable[[], datetime] = _utcnow,
    user: str = "",
) -> list[Sighting]:
    """Send one PROBE, then collect ANNOUNCE beacons for ``timeout`` seconds; stops by
    itself at the deadline."""
    deadline = now() + timeout
    with Listening(targets, port, wall, user) as listening:
        while (remaining := deadline - now()) > 0:
            readable, _, _ = select.select(listening.filenos(), [], [], remaining)
            for fd in readable:
                listening.take(fd)
        return listening.found()
