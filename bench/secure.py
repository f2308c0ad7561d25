"""Item: what --secure costs, our repeater with CurveZMQ beside the same server plain.

The fan-out and latency runs of ``fanout.py`` and ``latency.py``, once with
``--secure`` (every generator client has its own authorized key pair, so the
server does a ZAP check and a CURVE handshake per client and encrypts every
frame both ways) and once plain, interleaved in the same process tree. The
baseline here is our own plain server, so the ratio is the price of
encryption and authentication alone.
"""

from __future__ import annotations

from pathlib import Path

import fanout
import harness
import latency
from common import Figure, Settings, interleave


def run(settings: Settings, workdir: Path) -> list[Figure]:
    secure, plain = interleave(
        settings.rounds,
        lambda n: fanout.one_run(harness.OURS, settings, workdir, n, secure=True),
        lambda n: fanout.one_run(harness.OURS, settings, workdir, n),
    )
    lat_secure, lat_plain = interleave(
        settings.rounds,
        lambda n: latency.one_run(harness.OURS, settings, workdir, n, secure=True),
        lambda n: latency.one_run(harness.OURS, settings, workdir, n),
    )
    item = "--secure (CurveZMQ)"
    base = "ours, plain"

    def col(rows: list[dict], key: str) -> list[float]:
        return [r[key] for r in rows if r.get(key) is not None]

    return [
        Figure(item, "fan-out deliveries/s (10 clients)", "msg/s", "higher",
               col(secure, "deliveries_per_s"), col(plain, "deliveries_per_s"), base,
               details=secure + plain),
        Figure(item, "fan-out acked but not stored", "msgs", "lower",
               col(secure, "acked_not_stored"), col(plain, "acked_not_stored"), base, "0"),
        Figure(item, "latency send->SUB p50 @1000/s", "ms", "lower",
               col(lat_secure, "p50"), col(lat_plain, "p50"), base, details=lat_secure + lat_plain),
        Figure(item, "latency send->SUB p99 @1000/s", "ms", "lower",
               col(lat_secure, "p99"), col(lat_plain, "p99"), base),
    ]  # fmt: skip
