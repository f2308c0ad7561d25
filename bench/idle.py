"""Item 5: idle cost, CPU % (of one core) and RSS over a 10 s window (psutil).

Four processes, started together, left alone for a warm-up, then measured
over the same window:

* our broadcast node alone: ``python -m lab93zmq -b --listen -i lo ...``, in
  an lo-only network namespace (beaconing once a second);
* pyre alone (agent.py, a node that joined one group), in an lo-only
  namespace of its own, as agent.py insists;
* our repeater server with no clients: ``python -m lab93zmq -r -s ...``;
* the bare broker with no clients (bare_broker.py).

CPU % is (user + system CPU time used in the window) / window * 100; RSS is
the largest resident set seen in the window (sampled every 0.1 s).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import harness
from broadcast import Cluster
from common import (
    BenchError,
    Child,
    Figure,
    Procs,
    Sampler,
    Settings,
    lo_only_netns,
    log,
    namespace_port,
    netns_available,
    our_node_argv,
)

# Not quite like for like, and in our favour: say so beside the figure.
PYRE_HOST = (
    "pyre runs inside bench/agent.py (its JSON command loop and imports count); "
    "ours is the plain lab93-node command"
)
WINDOW = 10.0
WARMUP = 2.0
MIB = 1024 * 1024


def pyre_node(procs: Procs, ns: str, workdir: Path, number: int) -> Child:
    agent = Cluster(procs, "pyre", ns, workdir, f"idle{number}").agent("idle")
    agent.start()
    return agent.child


def one_window(workdir: Path, number: int) -> dict[str, dict[str, float]]:
    why = netns_available()
    if why:
        raise BenchError(f"idle needs lo-only network namespaces: {why}")
    with ExitStack() as stack:
        # Entered before Procs, so on the way out the processes die before their namespaces.
        ns_ours = stack.enter_context(lo_only_netns())
        ns_pyre = stack.enter_context(lo_only_netns(multicast=True))
        procs = stack.enter_context(Procs(workdir))
        node_argv = our_node_argv(
            "-b", "--listen", "-i", "lo", "-a", "127.0.0.1", "-p", "0", "-u", "idle",
            "--beacon-port", str(namespace_port()), "--db", str(workdir / f"node{number}.db"),
        )  # fmt: skip
        subjects = {
            "broadcast node": procs.start(f"idle-node{number}", node_argv, ns=ns_ours),
            "pyre node": pyre_node(procs, ns_pyre, workdir, number),
            "repeater server": harness.start_server(
                procs, harness.OURS, workdir, f"idle{number}"
            ).child,
            "bare broker": harness.start_server(
                procs, harness.BARE, workdir, f"idle{number}"
            ).child,
        }
        time.sleep(WARMUP)
        for name, child in subjects.items():
            if not child.alive():
                raise BenchError(f"idle: the {name} exited: {child.stderr_tail()}")
        samplers = {name: Sampler(child.pid) for name, child in subjects.items()}
        cpu0 = {name: s.cpu_seconds() for name, s in samplers.items()}
        t0 = time.monotonic()
        for sampler in samplers.values():
            sampler.__enter__()
        time.sleep(WINDOW)
        elapsed = time.monotonic() - t0
        for sampler in samplers.values():
            sampler.__exit__()
        out = {
            name: {
                "cpu_pct": (s.cpu_seconds() - cpu0[name]) / elapsed * 100,
                "rss_mib": s.peak_rss / MIB,
            }
            for name, s in samplers.items()
        }
    log(
        f"idle #{number}: "
        + ", ".join(f"{n} {v['cpu_pct']:.2f}% {v['rss_mib']:.1f} MiB" for n, v in out.items())
    )
    return out


def run(settings: Settings, workdir: Path) -> list[Figure]:
    windows = [one_window(workdir, n) for n in range(settings.pick(1, min(settings.rounds, 3)))]

    def col(name: str, key: str) -> list[float]:
        return [w[name][key] for w in windows]

    item = "idle 10 s"
    return [
        Figure(item, "broadcast node CPU", "%", "lower", col("broadcast node", "cpu_pct"),
               col("pyre node", "cpu_pct"), "pyre node", "<= 0.2 %", details=windows,
               note=PYRE_HOST),
        Figure(item, "broadcast node RSS", "MiB", "lower", col("broadcast node", "rss_mib"),
               col("pyre node", "rss_mib"), "pyre node", "<= 30 MiB", note=PYRE_HOST),
        Figure(item, "repeater server CPU", "%", "lower", col("repeater server", "cpu_pct"),
               col("bare broker", "cpu_pct"), "bare broker", "<= 0.2 %"),
        Figure(item, "repeater server RSS", "MiB", "lower", col("repeater server", "rss_mib"),
               col("bare broker", "rss_mib"), "bare broker", "<= 30 MiB"),
    ]  # fmt: skip
