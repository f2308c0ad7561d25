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

from ..core.presence import Beacon, BeaconError, Kind, sighting
from ..core.sighting import Sighting
from .beacon import BeaconSocket
from .interfaces import BeaconTarget

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def scan(
    targets: Sequence[BeaconTarget],
    port: int,
    timeout: float,
    now: Callable[[], float] = time.monotonic,
    wall: Callable[[], datetime] = _utcnow,
    user: str = "",
) -> list[Sighting]:
    """Send one PROBE, then collect ANNOUNCE beacons for ``timeout`` seconds.

    Keeps the latest beacon per node id; a node that says LEAVING is dropped
    (and listed again if it announces afterwards). Returns the live ones
    sorted by user name, then node id. Stops by itself at the deadline.
    """
    deadline = now() + timeout
    probe = Beacon.probe(os.urandom(16).hex(), user)
    seen: dict[str, Sighting] = {}
    dropped = 0
    with BeaconSocket(targets, port) as beacons:
        beacons.send(probe.encode())
        while (remaining := deadline - now()) > 0:
            readable, _, _ = select.select(beacons.filenos(), [], [], remaining)
            for fd in readable:
                for data, address in beacons.receive(fd):
                    try:
                        beacon = Beacon.decode(data)
                    except BeaconError as exc:
                        dropped += 1
                        log.debug("dropped a datagram from %s: %s", address, exc)
                        continue
                    if beacon.kind is Kind.ANNOUNCE:
                        seen[beacon.node_id] = sighting(beacon, address, wall())
                    elif beacon.kind is Kind.LEAVING:
                        seen.pop(beacon.node_id, None)
    if dropped:
        log.info("scan dropped %d invalid datagram(s)", dropped)
    return sorted(seen.values(), key=lambda s: (s.user, s.node))
