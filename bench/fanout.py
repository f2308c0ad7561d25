"""Item 1: durable repeater fan-out, beside the bare broker.

10 clients all sending and all subscribed, so every message is delivered 10
times. Our server stores every message before it acknowledges it; the bare
broker (bare_broker.py) just forwards. Server and load generators are separate
processes (the generators are raw pyzmq clients, see loadgen.py).

Figures per run: deliveries/s (SUB arrivals over the time from "go" to the
last arrival), acknowledged messages/s, messages a subscriber missed on the
live feed, and for ours the messages acknowledged but not found in the
server's inbox afterwards (must be 0: "stored before acked").
"""

from __future__ import annotations

from pathlib import Path

import harness
from common import Figure, Procs, Sampler, Settings, log, py_spy

CLIENTS = 10
GENERATORS = 2


def one_run(
    kind: str, settings: Settings, workdir: Path, number: int, secure: bool = False
) -> dict:
    duration = settings.pick(2.0, 5.0)
    tag = f"{kind}{'-secure' if secure else ''}{number}"
    with Procs(workdir) as procs:
        server = harness.start_server(
            procs, kind, workdir, tag, secure_clients=CLIENTS if secure else 0
        )
        profile = None
        if settings.profile and kind == harness.OURS and number == 0:
            profile = settings.profile / "fanout-server.txt"
        cpu = Sampler(server.child.pid)
        before = cpu.cpu_seconds()
        with py_spy(server.child.pid, profile, duration + 2):
            results = harness.run_load(
                procs, server, processes=GENERATORS, clients=CLIENTS, mode="fanout",
                duration=duration, drain=15.0, tag=tag,
            )  # fmt: skip
        used = cpu.cpu_seconds() - before
        summary = harness.summarize(results)
        summary["server_cpu_us"] = used / max(summary["acked"], 1) * 1e6
        harness.stop_server(procs, server)
    if server.db is not None:
        summary["stored"] = harness.stored_messages(server.db)
        summary["acked_not_stored"] = max(summary["acked"] - summary["stored"], 0)
    log(
        f"fanout {tag}: {summary['deliveries_per_s']:,.0f} deliveries/s, "
        f"{summary['acked']:,} acked, {summary['missed_live']:,} missed live, "
        f"server CPU {summary['server_cpu_us']:.1f} us/msg"
        + (f", {summary['acked_not_stored']} acked-not-stored" if server.db else "")
        + harness.troubles(summary)
    )
    harness.settle()
    return summary


def run(settings: Settings, workdir: Path) -> list[Figure]:
    ours, bare = harness.ours_and_bare(settings.rounds, one_run, settings, workdir)
    item = "fan-out (10 clients)"
    base = "bare ROUTER->PUB"
    return [
        Figure(item, "deliveries/s", "msg/s", "higher",
               [r["deliveries_per_s"] for r in ours], [r["deliveries_per_s"] for r in bare],
               base, ">= 200k and >= 0.8x bare", details=ours + bare),
        Figure(item, "acked messages/s", "msg/s", "higher",
               [r["acked_per_s"] for r in ours], [r["acked_per_s"] for r in bare], base),
        Figure(item, "missed on the live feed", "msgs", "lower",
               [r["missed_live"] for r in ours], [r["missed_live"] for r in bare], base,
               note="deliveries a subscriber never saw on the PUB (a real client of ours "
                    "would FETCH them; the bare broker's are gone)"),
        Figure(item, "acked but not stored", "msgs", "lower",
               [r["acked_not_stored"] for r in ours], [], "", "0"),
        Figure(item, "server CPU per message", "us", "lower",
               [r["server_cpu_us"] for r in ours], [r["server_cpu_us"] for r in bare], base,
               note="CPU time of the server process (all its threads, ZeroMQ's too) over "
                    "the run, per acknowledged message: what the box's load moves least"),
    ]  # fmt: skip
