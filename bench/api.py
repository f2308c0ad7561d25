"""Item: a program on the Python API, beside raw pyzmq clients on the same server.

Ours: one process sends ``count`` messages with ``lab93zmq.Node.send`` (one
call per message, then ``flush``), then as many with ``send_many`` (bursts of
100, the path the command line's pipelines take), while another receives them
by iterating a ``Node``; both against our repeater server. Baseline, in the same rounds
and against the same server: loadgen.py's raw pyzmq DEALER (posting in
batches, a window in flight) and SUB, which do none of a client's work (no
inbox, no checks, no order). The figures: messages/s sent (to the last
acknowledgement, for ours: to flush's return) and received (first to last),
and the API client's CPU per message.
"""

from __future__ import annotations

from pathlib import Path

import harness
from common import Figure, Procs, Settings, interleave, log, script_argv


def ours(settings: Settings, workdir: Path, number: int) -> dict:
    count = settings.pick(2000, 10000)
    tag = f"api{number}"
    with Procs(workdir) as procs:
        server = harness.start_server(procs, harness.OURS, workdir, tag)
        beacon = server.beacon_port
        common = ["--port", str(server.port), "--beacon-port", str(beacon),
                  "--count", str(count)]
        receiver = procs.start(f"api-recv-{tag}", script_argv(
            "api_client.py", "receive", "--user", "reader", "--db",
            str(workdir / f"reader-{tag}.db"), *common[:-1], str(2 * count)), talk=True)
        receiver.expect("ready", 30)
        sender = procs.start(f"api-send-{tag}", script_argv(
            "api_client.py", "send", "--db", str(workdir / f"sender-{tag}.db"), *common),
            talk=True)
        sender.expect("ready", 30)
        receiver.send(cmd="go")
        sender.send(cmd="go")
        sent = sender.expect("result", 120)
        got = receiver.expect("result", 120)
        harness.stop_server(procs, server)
    result = {
        "sent_per_s": sent["count"] / sent["seconds"],
        "burst_per_s": sent["count"] / sent["burst_seconds"],
        "received_per_s": got["count"] / max(got["seconds"], 1e-9),
        "received": got["count"],
        "undelivered": sent["undelivered"],
        "send_cpu_us": 1e6 * sent["cpu"] / sent["count"],
        "burst_cpu_us": 1e6 * sent["burst_cpu"] / sent["count"],
        "receive_cpu_us": 1e6 * got["cpu"] / max(got["count"], 1),
    }
    log(f"api {tag}: send {result['sent_per_s']:,.0f}/s, send_many"
        f" {result['burst_per_s']:,.0f}/s, received {result['received_per_s']:,.0f}/s"
        f" ({got['count']}/{2 * count})")
    harness.settle()
    return result


def raw(settings: Settings, workdir: Path, number: int) -> dict:
    count = settings.pick(2000, 10000)
    tag = f"apiraw{number}"
    with Procs(workdir) as procs:
        server = harness.start_server(procs, harness.OURS, workdir, tag)
        results = harness.run_load(
            procs, server, processes=1, clients=2, mode="fanout", duration=60.0, tag=tag,
            extra=["--senders", "1", "--subscribers", "1", "--count", str(count)],
        )
        harness.stop_server(procs, server)
    summary = harness.summarize(results)
    result = {
        "sent_per_s": summary["acked_per_s"],
        "received_per_s": summary["deliveries_per_s"],
        "received": summary["received"],
    }
    log(f"api raw {tag}: sent {result['sent_per_s']:,.0f}/s, received"
        f" {result['received_per_s']:,.0f}/s")
    harness.settle()
    return result


def run(settings: Settings, workdir: Path) -> list[Figure]:
    api, bare = interleave(
        settings.rounds,
        lambda n: ours(settings, workdir, n),
        lambda n: raw(settings, workdir, n),
    )
    item = "Python API"
    base = "raw pyzmq DEALER/SUB"
    return [
        Figure(item, "Node.send + flush", "msg/s", "higher",
               [r["sent_per_s"] for r in api], [r["sent_per_s"] for r in bare], base,
               details=api + bare),
        Figure(item, "Node.send_many (x100) + flush", "msg/s", "higher",
               [r["burst_per_s"] for r in api], [r["sent_per_s"] for r in bare], base),
        Figure(item, "iterating a Node", "msg/s", "higher",
               [r["received_per_s"] for r in api], [r["received_per_s"] for r in bare], base),
        Figure(item, "send CPU per message", "us", "lower",
               [r["send_cpu_us"] for r in api], [], ""),
        Figure(item, "send_many CPU per message", "us", "lower",
               [r["burst_cpu_us"] for r in api], [], ""),
        Figure(item, "receive CPU per message", "us", "lower",
               [r["receive_cpu_us"] for r in api], [], ""),
    ]  # fmt: skip
