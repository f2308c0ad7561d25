"""Item 6: overload, offered load far above capacity for 10 s (5 s with --quick).

Four raw clients (one generator process) post as fast as their DEALERs take
messages, with no window: only ZeroMQ's high-water mark (set to 100 POSTs of
100 messages each) and TCP hold them back. Two more clients (a second
process) only listen on the room feed. After the offered phase the senders
wait (bounded) until every message their DEALER took is acknowledged.

Lost, for ours, is a message that was acknowledged but is not in the
server's inbox afterwards: it must be 0 (flow control, not dropping).
Messages the DEALERs took but that are still unacknowledged when the drain
limit hits are reported apart as the backlog: the server (or ZeroMQ's queues
in front of it) took them in faster than it stores them; a real client keeps
them in its outbox and sends them again, so they are late, not lost. A large
backlog means the server does not push back. The live feed is reported apart
too: a message a listener missed on the PUB is one a real client FETCHes,
while for the bare broker it is gone. Peak memory is the server process's
largest RSS while loaded (sampled every 0.1 s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import harness
from common import Figure, Procs, Sampler, Settings, log, py_spy

MIB = 1024 * 1024
SENDERS = 4
LISTENERS = 2


def one_run(kind: str, settings: Settings, workdir: Path, number: int) -> dict[str, Any]:
    duration = settings.pick(5.0, 10.0)
    tag = f"over-{kind}{number}"
    with Procs(workdir) as procs:
        server = harness.start_server(procs, kind, workdir, tag)
        profile = None
        if settings.profile and kind == harness.OURS and number == 0:
            profile = settings.profile / "overload-server.txt"
        with Sampler(server.child.pid) as sampler, py_spy(server.child.pid, profile, duration):
            idle_rss = sampler.rss()
            before = sampler.cpu_seconds()
            results = harness.run_load(
                procs, server, processes=2, clients=SENDERS + LISTENERS, mode="overload",
                duration=duration, drain=settings.pick(5.0, 20.0), tag=tag,
                extra=["--sndhwm", "100", "--batch", "100", "--max-burst", "50"],
                extras=[
                    ["--clients", str(SENDERS), "--senders", str(SENDERS), "--subscribers", "0"],
                    ["--clients", str(LISTENERS), "--senders", "0",
                     "--subscribers", str(LISTENERS)],
                ],
            )  # fmt: skip
            used = sampler.cpu_seconds() - before
        harness.stop_server(procs, server)
    summary = harness.summarize(results)
    summary["server_cpu_us"] = used / max(summary["acked"], 1) * 1e6
    summary["offered_per_s"] = summary["sent"] / duration
    summary["peak_rss_mib"] = sampler.peak_rss / MIB
    summary["idle_rss_mib"] = idle_rss / MIB
    lost = 0
    if server.db is not None:
        summary["stored"] = harness.stored_messages(server.db)
        lost = max(summary["acked"] - summary["stored"], 0)
    summary["lost"] = lost
    log(
        f"overload {kind} #{number}: offered {summary['offered_per_s']:,.0f}/s, acked "
        f"{summary['acked_per_s']:,.0f}/s, lost {lost}, backlog {summary['unacked']:,}, "
        f"missed live {summary['missed_live']:,}, "
        f"server CPU {summary['server_cpu_us']:.1f} us/msg, "
        f"peak RSS {summary['peak_rss_mib']:.1f} MiB"
        + harness.troubles(summary)
    )
    harness.settle()
    return summary


def run(settings: Settings, workdir: Path) -> list[Figure]:
    rounds = settings.pick(1, min(settings.rounds, 2))
    ours, bare = harness.ours_and_bare(rounds, one_run, settings, workdir)
    item = "overload"
    base = "bare ROUTER->PUB"
    drain = settings.pick(5, 20)
    return [
        Figure(item, "offered (taken by DEALERs)", "msg/s", "higher",
               [r["offered_per_s"] for r in ours], [r["offered_per_s"] for r in bare], base,
               details=ours + bare),
        Figure(item, "acked", "msg/s", "higher", [r["acked_per_s"] for r in ours],
               [r["acked_per_s"] for r in bare], base),
        Figure(item, "lost (acked, not stored)", "msgs", "lower",
               [r["lost"] for r in ours], [], "", "0"),
        Figure(item, f"backlog: unacked {drain} s after", "msgs", "lower",
               [r["unacked"] for r in ours], [r["unacked"] for r in bare], base,
               note="taken by the DEALERs, not acknowledged when the drain limit hit: "
                    "late, not lost (a real client re-sends from its outbox)"),
        Figure(item, "missed on the live feed", "msgs", "lower",
               [r["missed_live"] for r in ours], [r["missed_live"] for r in bare], base,
               note="PUB drops at its high-water mark; ours are FETCHed by a real client, "
                    "the bare broker's are gone"),
        Figure(item, "server CPU per acked message", "us", "lower",
               [r["server_cpu_us"] for r in ours], [r["server_cpu_us"] for r in bare], base),
        Figure(item, "server peak RSS", "MiB", "lower", [r["peak_rss_mib"] for r in ours],
               [r["peak_rss_mib"] for r in bare], base, "bounded"),
    ]  # fmt: skip
