"""Item: shell pipelines into a repeater, read by one ``--listen --json`` client (issue 14).

Exactly the issue's figure: one repeater server, one listener reading
everything, and 10 pipelines of 3,000 lines each started together; then,
through the same server and listener, one pipeline of 30,000 lines::

    python -c PRODUCER manyN 3000 | lab93-node -r -c -a 127.0.0.1 -p PORT -i lo ...

Real processes and real pipes (the producer's stdout is the consumer's
stdin, as a shell makes them). Every pipeline must exit 0 and the listener
must print every one of the 30,000 lines exactly once (counted by content).

*msg/s*: 30,000 over the time from the first line written by any producer
(each producer reports the CLOCK_MONOTONIC of its first, flushed line) to
the arrival of the last new line from the listener's stdout. It includes
the clients' start-up, as a user's pipeline does.

*CPU* (psutil, user + system of one process): a consumer's is read when it
exits (before it is reaped); its start-up is the CPU of a 1-line pipeline
run just before each shape, and is subtracted: per line =
(CPU - CPU of 1 line) / (lines - 1). The listener's is read when it has
printed the 1-line probe and again when it has printed the last of the
30,000: per message = the difference / 30,000. The server's is over the same
window.

The floor, side by side: the same pipelines and listener, but
bench/pipe_client.py (a minimal pyzmq client: no inbox, no subscription by
the sender, no validation) around bench/bare_broker.py (stores nothing). It
bounds what Python processes with pyzmq and this framing can do on this
machine; it is not an equal: ours stores every message three times (server,
sender, listener) and checks each.

``--profile DIR``: one more round of ours, not counted, with py-spy on
our server, the listener and the first consumer of each shape.
"""

from __future__ import annotations

import json
import selectors
import time
from pathlib import Path
from typing import Any

import clients
import spy
from clients import BARE, OURS, Listener, Pipeline, Repeater, cpu_seconds
from common import (
    BenchError,
    Figure,
    Procs,
    Settings,
    interleave,
    log,
    median,
)

MANY = ("10x3000", 10, 3000)
ONE = ("1x30000", 1, 30000)
PROBE_TRIES = 6  # the floor's listener may join its PUB after the first probe (0.5 s, 1 s, ...)
RUN_LIMIT = 120.0  # the longest one run may take, whatever happens
SETTLE = 5.0  # after the last pipeline exited, how long the listener may take for the rest
QUIET = 0.3  # then how long we keep reading, for duplicates


def wait_exit(pipeline: Pipeline, timeout: float) -> None:
    with selectors.DefaultSelector() as selector:
        selector.register(pipeline.pidfd, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise BenchError(f"pipeline {pipeline.label} still running after {timeout:g} s")
    pipeline.finish()
    pipeline.reap_producer()


def probe(procs: Procs, rep: Repeater, listener: Listener, workdir: Path, tag: str) -> float:
    """A 1-line pipeline, until the listener prints it: the consumer's start-up CPU."""
    for attempt in range(PROBE_TRIES):
        label = f"probe{attempt}"
        pipeline = clients.start_pipeline(
            procs, workdir, f"{tag}-{label}", label, 1, rep.sender_argv(label)
        )
        wait_exit(pipeline, 30)
        if pipeline.status != 0 or pipeline.errors:
            raise BenchError(f"the probe pipeline failed: {pipeline.errors}")
        if clients.wait_for_lines(listener, listener.lines + 1, 0.5 * 2**attempt):
            return pipeline.cpu or 0.0
    raise BenchError(f"the listener printed none of {PROBE_TRIES} probes")


def drive(
    listener: Listener, pipelines: list[Pipeline], target: int, server_pid: int
) -> dict[str, Any]:
    """Read the listener and reap consumers until all lines came and all exited (bounded)."""
    selector = selectors.DefaultSelector()
    selector.register(listener.fd, selectors.EVENT_READ, None)
    for pipeline in pipelines:
        selector.register(pipeline.pidfd, selectors.EVENT_READ, pipeline)
    now = time.monotonic()
    deadline = now + RUN_LIMIT
    settle_until = None
    done: dict[str, Any] = {"at": None}
    try:
        while now < deadline:
            for key, _ in selector.select(0.5):
                if key.data is None:
                    listener.read()
                    if listener.closed:
                        selector.unregister(listener.fd)
                else:
                    selector.unregister(key.fd)
                    key.data.finish()
            now = time.monotonic()
            if done["at"] is None and listener.lines >= target:
                done = {
                    "at": now,
                    "listener_cpu": cpu_seconds(listener.child.pid),
                    "server_cpu": cpu_seconds(server_pid),
                }
            if all(p.status is not None for p in pipelines):
                if done["at"] is not None:
                    break
                settle_until = settle_until or now + SETTLE
                if now >= settle_until:
                    break
        quiet_end = time.monotonic() + QUIET
        while not listener.closed and time.monotonic() < quiet_end:
            if selector.select(max(0.0, quiet_end - time.monotonic())):
                listener.read()
    finally:
        selector.close()
    if done["at"] is None:  # not all came: the CPU up to now, over what did come
        done = {
            "at": None,
            "listener_cpu": cpu_seconds(listener.child.pid),
            "server_cpu": cpu_seconds(server_pid),
        }
    return done


def count_lines(listener: Listener, since: int, labels: list[str], lines: int) -> dict[str, Any]:
    """Which expected lines the listener printed, how often, and when the last new one came."""
    expected = {f"{label} {i}" for label in labels for i in range(lines)}
    seen: set[str] = set()
    duplicates = strays = 0
    first = last = None
    for arrived, raw in listener.timed_lines(since):
        try:
            content = json.loads(raw)["content"]
        except (ValueError, KeyError, TypeError):
            strays += 1
            continue
        if content in seen:
            duplicates += 1
        elif content in expected:
            seen.add(content)
            first = first or arrived
            last = arrived
        elif not content.startswith("probe"):
            strays += 1
    return {
        "received": len(seen),
        "missing": len(expected) - len(seen),
        "duplicates": duplicates,
        "strays": strays,
        "first_printed": first,
        "last_printed": last,
    }


def launch(
    procs: Procs, rep: Repeater, workdir: Path, tag: str, shape: tuple[str, int, int],
    spy_dir: Path | None,
) -> tuple[list[Pipeline], list[spy.Recording]]:  # fmt: skip
    """Start the shape's pipelines together (the first one under py-spy when profiling)."""
    name, count, lines = shape
    pipelines: list[Pipeline] = []
    recordings: list[spy.Recording] = []
    for label in labels(shape):
        argv = rep.sender_argv(label)
        wrapped = None
        if spy_dir and not pipelines:
            wrapped = spy.record(procs, spy_dir / f"pipelines-{name}-consumer.txt", argv=argv)
            argv = wrapped.argv
        pipelines.append(
            clients.start_pipeline(procs, workdir, f"{tag}-{label}", label, lines, argv)
        )
        if wrapped is not None:
            wrapped.start(pipelines[-1].consumer)
            recordings.append(wrapped)
    return pipelines, recordings


def labels(shape: tuple[str, int, int]) -> list[str]:
    """Each pipeline's user name, also the first word of each of its lines."""
    name, count, _ = shape
    return [f"{'many' if count > 1 else 'one'}{k}" for k in range(count)]


def one_shape(
    procs: Procs, rep: Repeater, listener: Listener, workdir: Path, tag: str,
    shape: tuple[str, int, int], spy_dir: Path | None,
) -> dict[str, Any]:  # fmt: skip
    """A probe, then the shape's pipelines into ``rep``, read by ``listener``."""
    name, count, lines = shape
    tag = f"{tag}-{name}"
    startup = probe(procs, rep, listener, workdir, tag)
    since = listener.lines
    listener_cpu0 = cpu_seconds(listener.child.pid)
    server_cpu0 = cpu_seconds(rep.server.pid)
    attached = []
    if spy_dir:
        for who, pid in (("server", rep.server.pid), ("listener", listener.child.pid)):
            attached.append(spy.record(procs, spy_dir / f"pipelines-{name}-{who}.txt", pid=pid))
            attached[-1].start()
        time.sleep(0.3)  # py-spy attaches; a profiled run's figures are not counted
    pipelines, wrapped = launch(procs, rep, workdir, tag, shape, spy_dir)
    done = drive(listener, pipelines, since + count * lines, rep.server.pid)
    for recording in attached + wrapped:
        recording.stop()
    for pipeline in pipelines:
        pipeline.reap_producer()
    got = count_lines(listener, since, labels(shape), lines)
    return summarize(tag, count, lines, pipelines, got, done, startup,
                     listener_cpu0, server_cpu0)  # fmt: skip


def one_round(
    kind: str, workdir: Path, number: int, spy_dir: Path | None = None
) -> dict[str, dict[str, Any]]:
    """One server and one listener; the 10x3000 pipelines, then the 1x30000 one."""
    tag = f"{kind}{number}{'-profiled' if spy_dir else ''}"
    with Procs(workdir) as procs, clients.repeater(procs, kind, workdir, tag) as rep:
        listener = Listener(procs.start(f"listener-{tag}", rep.listener_argv(), talk=True))
        return {
            shape[0]: one_shape(procs, rep, listener, workdir, tag, shape, spy_dir)
            for shape in (MANY, ONE)
        }


def summarize(
    tag: str, count: int, lines: int, pipelines: list[Pipeline],
    got: dict[str, Any], done: dict[str, Any], startup: float,
    listener_cpu0: float, server_cpu0: float,
) -> dict[str, Any]:  # fmt: skip
    firsts = [p.first_sent for p in pipelines if p.first_sent is not None]
    t0 = min(firsts) if firsts else None
    last = got["last_printed"]
    elapsed = (last - t0) if (t0 is not None and last is not None) else None
    total = count * lines
    sender_us = [(p.cpu - startup) / (lines - 1) * 1e6 for p in pipelines if p.cpu is not None]
    listener_us = (done["listener_cpu"] - listener_cpu0) / max(got["received"], 1) * 1e6
    failed = [p for p in pipelines if p.status != 0 or p.errors]
    ends = [p.ended for p in pipelines if p.ended is not None]
    out = {
        "run": tag,
        **got,
        "expected": total,
        "not_once": got["missing"] + got["duplicates"],
        "msgs_per_s": got["received"] / elapsed if elapsed else None,
        "elapsed_s": elapsed,
        "printing_s": (last - got["first_printed"]) if last else None,
        "pipelines_done_s": (max(ends) - t0) if ends and t0 is not None else None,
        "failed_pipelines": len(failed),
        "errors": [e for p in failed for e in p.errors][:3],
        "startup_cpu_s": startup,
        "sender_cpu_s": [p.cpu for p in pipelines],
        "sender_us_per_line": median(sender_us),
        "listener_us_per_msg": listener_us,
        "server_cpu_s": done["server_cpu"] - server_cpu0,
    }
    rate = f"{out['msgs_per_s']:,.0f} msg/s" if out["msgs_per_s"] else "no rate"
    log(
        f"pipelines {tag}: {rate}, {got['received']:,}/{total:,} printed"
        f" ({got['duplicates']} twice), {len(failed)} failed; sender"
        f" {out['sender_us_per_line']:.1f} µs/line (start-up {startup * 1000:.0f} ms),"
        f" listener {listener_us:.1f} µs/msg, server {out['server_cpu_s']:.2f} s CPU"
        + (f"; {out['errors']}" if failed else "")
    )
    return out


def run(settings: Settings, workdir: Path) -> list[Figure]:
    ours, bare = interleave(
        settings.pick(1, min(settings.rounds, 3)),
        lambda n: one_round(OURS, workdir, n),
        lambda n: one_round(BARE, workdir, n),
    )
    if settings.profile:
        one_round(OURS, workdir, 0, spy_dir=settings.profile)
    figures: list[Figure] = []
    base = "pipe_client + bare broker"
    for name, _, lines, rate_target in (MANY + (">= 15k",), ONE + (">= 25k",)):
        item = f"pipelines {name}"

        def col(rows: list[dict], key: str, shape: str = name) -> list[float]:
            return [r[shape][key] for r in rows if r[shape][key] is not None]

        figures += [
            Figure(item, "end-to-end", "msg/s", "higher", col(ours, "msgs_per_s"),
                   col(bare, "msgs_per_s"), base, rate_target,
                   details=[r[name] for r in ours + bare],
                   note="from the first line a producer wrote to the last new line the "
                        "listener printed; the clients' start-up included"),
            Figure(item, "not printed exactly once", "msgs", "lower", col(ours, "not_once"),
                   col(bare, "not_once"), base, "0"),
            Figure(item, "pipelines not exiting 0", "pipes", "lower",
                   col(ours, "failed_pipelines"), col(bare, "failed_pipelines"), base, "0"),
            Figure(item, "sender CPU per line", "µs", "lower", col(ours, "sender_us_per_line"),
                   col(bare, "sender_us_per_line"), base, "<= 15 µs",
                   note=f"(consumer CPU - CPU of a 1-line pipeline) / {lines - 1:,}, median "
                        "of the pipelines; ours stores each line and its outbox row (a "
                        "send-only run: no room feed), the floor stores nothing"),
            Figure(item, "listener CPU per message", "µs", "lower",
                   col(ours, "listener_us_per_msg"), col(bare, "listener_us_per_msg"), base,
                   "<= 15 µs", note="listener CPU from the probe printed to the last line, "
                                    "/ lines printed"),
            Figure(item, "server CPU", "s", "lower", col(ours, "server_cpu_s"),
                   col(bare, "server_cpu_s"), base),
        ]  # fmt: skip
        if name == ONE[0]:
            figures.append(
                Figure(item, "sender start-up (1-line pipeline CPU)", "ms", "lower",
                       [v * 1000 for v in col(ours, "startup_cpu_s")],
                       [v * 1000 for v in col(bare, "startup_cpu_s")], base)
            )  # fmt: skip
    return figures
