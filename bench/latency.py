"""Item 2: end-to-end latency through the repeater at a modest rate, beside the bare broker.

One client posts one message per POST at 1000 messages/s; two subscribed
clients (the sender's own SUB and another's) time each message from the send
call to its arrival on their SUB. The acknowledgement's round trip is timed
too (for ours it includes the write to the inbox). The first 5 % of each run
is warm-up and left out. Percentiles are per run; the table shows the median
over runs with min-max.
"""

from __future__ import annotations

from pathlib import Path

import harness
from common import Figure, Procs, Settings, log, percentile

RATE = 1000.0


def one_run(
    kind: str, settings: Settings, workdir: Path, number: int, secure: bool = False
) -> dict:
    duration = settings.pick(1.5, 5.0)
    tag = f"lat-{kind}{'-secure' if secure else ''}{number}"
    with Procs(workdir) as procs:
        server = harness.start_server(procs, kind, workdir, tag, secure_clients=2 if secure else 0)
        results = harness.run_load(
            procs, server, processes=1, clients=2, mode="latency", duration=duration,
            drain=10.0, tag=tag,
            extra=["--senders", "1", "--subscribers", "2", "--rate", str(RATE)],
        )  # fmt: skip
        harness.stop_server(procs, server)
    result = results[0]
    deliver = [ns / 1e6 for ns in result["deliver_ns"]]
    acks = [ns / 1e6 for ns in result["ack_ns"]]
    deliver = deliver[len(deliver) // 20 :]
    acks = acks[len(acks) // 20 :]
    summary = {
        "sent": result["sent"],
        "delivered": len(result["deliver_ns"]),
        "expected": result["acked"] * 2,
        "p50": percentile(deliver, 50),
        "p99": percentile(deliver, 99),
        "max": max(deliver) if deliver else None,
        "ack_p50": percentile(acks, 50),
        "ack_p99": percentile(acks, 99),
    }
    log(
        f"latency {tag}: p50 {summary['p50']:.3f} ms, p99 {summary['p99']:.3f} ms, "
        f"ack p50 {summary['ack_p50']:.3f} ms ({summary['delivered']}/{summary['expected']})"
    )
    harness.settle()
    return summary


def run(settings: Settings, workdir: Path) -> list[Figure]:
    ours, bare = harness.ours_and_bare(settings.rounds, one_run, settings, workdir)
    item = "latency @1000/s"
    base = "bare ROUTER->PUB"

    def col(rows: list[dict], key: str) -> list[float]:
        return [r[key] for r in rows if r[key] is not None]

    return [
        Figure(item, "send->SUB p50", "ms", "lower", col(ours, "p50"), col(bare, "p50"), base,
               "<= 1 ms", details=ours + bare),
        Figure(item, "send->SUB p99", "ms", "lower", col(ours, "p99"), col(bare, "p99"), base,
               "<= 1 ms"),
        Figure(item, "send->ACK p50", "ms", "lower", col(ours, "ack_p50"), col(bare, "ack_p50"),
               base),
        Figure(item, "send->ACK p99", "ms", "lower", col(ours, "ack_p99"), col(bare, "ack_p99"),
               base),
        Figure(item, "not delivered", "msgs", "lower",
               # delivered before its ACK was counted: not "negative missing"
               [max(0, r["expected"] - r["delivered"]) for r in ours],
               [max(0, r["expected"] - r["delivered"]) for r in bare], base),
    ]  # fmt: skip
