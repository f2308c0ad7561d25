"""Item: messages/s from IRC clients into a room read by lab93 clients, beside lab93
clients alone, in the same rounds.

One server of ours per round, run with ``--irc-port``. Ours: ``irc_load.py``
connects ``clients`` IRC users to its IRC face, each in ``#general`` with
echo-message; on "go" each sends ``count`` lines at once. Baseline: as many
lab93 clients (loadgen.py's raw pyzmq DEALERs, POSTs of 100 with 1,000 in
flight, the real client's way) send as many messages into ``general``. In both,
two lab93 clients (``api_client.py receive``, a ``lab93zmq.Node`` each) read
the room. Figures: messages/s stored and acknowledged (IRC: to the last
echo, which comes only once the line is stored; lab93: to the last ACK), and
messages/s the slowest lab93 reader got (from the first line sent to the last it
read; every process reads the same CLOCK_MONOTONIC).
"""

from __future__ import annotations

from pathlib import Path

import harness
from common import Figure, Procs, Settings, interleave, log, script_argv

READERS = 2


def _run(settings: Settings, workdir: Path, number: int, irc: bool) -> dict:
    clients = settings.pick(20, 50)
    count = 90  # lines a client sends at once: within the IRC face's flood burst (100)
    total = clients * count
    tag = f"irc{'' if irc else 'base'}{number}"
    with Procs(workdir) as procs:
        irc_port = procs.tcp_port()
        server = harness.start_server(procs, harness.OURS, workdir, tag,
                                      extra=("--irc-port", str(irc_port)))
        readers = []
        for reader in range(READERS):
            child = procs.start(f"irc-read-{tag}-{reader}", script_argv(
                "api_client.py", "receive", "--user", f"reader{reader}", "--db",
                str(workdir / f"reader{reader}-{tag}.db"), "--port", str(server.port),
                "--beacon-port", str(server.beacon_port), "--count", str(total)), talk=True)
            child.expect("ready", 30)
            readers.append(child)
        if irc:
            sender = procs.start(f"irc-send-{tag}", script_argv(
                "irc_load.py", "--port", str(irc_port), "--clients", str(clients),
                "--count", str(count)), talk=True)
            sender.expect("ready", 60)
            for child in readers:
                child.send(cmd="go")
            sender.send(cmd="go")
            sent = sender.expect("result", 120)
            stored_per_s = sent["count"] / max(sent["seconds"], 1e-9)
            stored, started_at = sent["count"], sent["started_at"]
        else:
            for child in readers:
                child.send(cmd="go")
            results = harness.run_load(
                procs, server, processes=1, clients=clients, mode="fanout", duration=60.0,
                tag=tag, extra=["--senders", str(clients), "--subscribers", "0",
                                "--count", str(count)])
            summary = harness.summarize(results)
            stored_per_s, stored = summary["acked_per_s"], summary["acked"]
            started_at = min(r["t0"] for r in results)
        got = [child.expect("result", 120) for child in readers]
        harness.stop_server(procs, server)
    # From the first line sent to the slowest reader's last (one monotonic clock: one host).
    slowest = min(g["count"] / max(g["last_at"] - started_at, 1e-9) for g in got)
    result = {
        "stored_per_s": stored_per_s,
        "stored": stored,
        "read_per_s": slowest,
        "read": min(g["count"] for g in got),
        "expected": total,
    }
    log(f"irc {tag}: {'IRC' if irc else 'lab93'} senders stored {stored_per_s:,.0f}/s"
        f" ({stored}/{total}); slowest reader {slowest:,.0f}/s ({result['read']}/{total})")
    harness.settle()
    return result


def run(settings: Settings, workdir: Path) -> list[Figure]:
    ours, base = interleave(
        settings.rounds,
        lambda n: _run(settings, workdir, n, irc=True),
        lambda n: _run(settings, workdir, n, irc=False),
    )
    item = "IRC face"
    name = "lab93 clients (raw DEALER)"
    return [
        Figure(item, "posts stored and echoed/acked", "msg/s", "higher",
               [r["stored_per_s"] for r in ours], [r["stored_per_s"] for r in base], name,
               details=ours + base),
        Figure(item, "read by a lab93 client", "msg/s", "higher",
               [r["read_per_s"] for r in ours], [r["read_per_s"] for r in base], name),
        Figure(item, "not read by a lab93 client", "msgs", "lower",
               [r["expected"] - r["read"] for r in ours],
               [r["expected"] - r["read"] for r in base], name),
    ]  # fmt: skip
