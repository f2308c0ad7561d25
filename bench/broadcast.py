"""Item 3: broadcast mode beside pyre (Zyre in Python), each node its own process.

All nodes run in one network namespace made for this item with nothing but
``lo`` in it (agent.py refuses to start pyre anywhere else). With no other
interface pyre falls back to the multicast group 225.25.25.25, so that ``lo``
gets multicast turned on and a 224.0.0.0/4 route, inside the namespace only.
Ours beacons with ``-i lo`` to 127.255.255.255 on a random port.

Per round and implementation:

* discovery: A started; B started; time from B's start returning to both
  seeing each other (twice: a first meeting and B's return after its leave);
* throughput to 1 peer: A posts N room messages as fast as its API takes
  them; rate = messages B received / (B's last arrival - A's first post);
* clean leave: B stops cleanly; time until A drops it;
* crash: B is SIGKILLed; time until A drops it (a capped wait: pyre expires
  a silent peer only after 30 s);
* throughput to 4 peers: as above with four receivers, rate per receiver
  (the slowest), and what they lost.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    BenchError,
    Child,
    Figure,
    Procs,
    Settings,
    interleave,
    lo_only_netns,
    log,
    namespace_port,
    netns_available,
    script_argv,
)

OURS = "ours"
PYRE = "pyre"


class Agent:
    """An agent.py child, with every event it said kept, so none is missed."""

    def __init__(self, child: Child, kind: str, name: str, db: Path, beacon_port: int) -> None:
        self.child = child
        self.kind = kind
        self.name = name
        self.db = db
        self.beacon_port = beacon_port
        self.events: list[dict[str, Any]] = []

    def pump(self, timeout: float) -> None:
        for line in self.child._lines(timeout):
            self.events.append(line)
            if line.get("event") == "error":
                raise BenchError(f"{self.kind} agent {self.name}: {line.get('error')}")
            return

    def wait(
        self,
        kind: str,
        timeout: float,
        pred: Callable[[dict[str, Any]], bool] = lambda e: True,
        since: int = 0,
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        index = since
        while True:
            while index < len(self.events):
                event = self.events[index]
                index += 1
                if event.get("event") == kind and pred(event):
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.pump(min(left, 0.5))

    def need(self, kind: str, timeout: float, since: int = 0) -> dict[str, Any]:
        event = self.wait(kind, timeout, since=since)
        if event is None:
            raise BenchError(
                f"{self.kind} agent {self.name}: no {kind!r} in {timeout:g} s; "
                f"{self.child.stderr_tail()}"
            )
        return event

    def peers_at(self, n: int, after: float, timeout: float) -> float | None:
        """When this node first saw ``n`` peers at or after ``after`` (None: not in time)."""
        event = self.wait("peers", timeout, lambda e: e["n"] == n and e["t"] >= after)
        return None if event is None else event["t"]

    def start(self, **options: Any) -> dict[str, Any]:
        """Start the node; ``options`` (ours: ``rooms``, ``listen``) go to its config."""
        mark = len(self.events)
        self.child.send(cmd="start", user=self.name, db=str(self.db), beacon_port=self.beacon_port,
                        **options)
        return self.need("started", 30, since=mark)


class Cluster:
    """Agents of one implementation inside the namespace."""

    def __init__(self, procs: Procs, kind: str, ns: str, workdir: Path, tag: str) -> None:
        self.procs = procs
        self.kind = kind
        self.ns = ns
        self.workdir = workdir
        self.tag = tag
        self.beacon_port = namespace_port()  # the agents run inside ``ns``

    def agent(self, name: str, db_name: str | None = None) -> Agent:
        child = self.procs.start(
            f"{self.kind}-{self.tag}-{name}",
            script_argv("agent.py", self.kind),
            ns=self.ns,
            talk=True,
        )
        db = self.workdir / f"{self.kind}-{self.tag}-{db_name or name}.db"
        agent = Agent(child, self.kind, name, db, self.beacon_port)
        agent.need("loaded", 30)
        return agent


def throughput(sender: Agent, receivers: list[Agent], n: int, timeout: float) -> dict[str, Any]:
    """``sender`` posts ``n`` room messages; each receiver counts those of this run."""
    tag = f"run-{secrets.token_hex(4)}"
    marks = [len(r.events) for r in receivers]
    for r in receivers:
        r.child.send(cmd="expect", n=n, timeout=timeout, tag=tag)
    mark = len(sender.events)
    sender.child.send(cmd="post", n=n, size=40, tag=tag)
    posted = sender.need("posted", timeout + 30, since=mark)
    got = [r.need("got", timeout + 5, since=m) for r, m in zip(receivers, marks, strict=True)]
    rates = [g["n"] / (g["t_last"] - posted["t0"]) if g["n"] and g["t_last"] else 0.0 for g in got]
    return {
        "n": n,
        "post_s": posted["t1"] - posted["t0"],
        "received": [g["n"] for g in got],
        "lost": sum(n - g["n"] for g in got),
        "rate_min": min(rates),
        "rates": rates,
    }


def one_round(kind: str, settings: Settings, workdir: Path, ns: str, number: int) -> dict:
    n_msgs = settings.pick(3000, 10000)
    crash_cap = settings.pick(8.0, 40.0)
    wait = 15.0
    out: dict[str, Any] = {"kind": kind, "discovery_ms": [], "crash_capped": False}
    with Procs(workdir) as procs:
        cluster = Cluster(procs, kind, ns, workdir, f"r{number}")
        a = cluster.agent("alice")
        b = cluster.agent("bob")
        a.start()
        started = b.start()
        t_a = a.peers_at(1, 0, wait)
        t_b = b.peers_at(1, 0, wait)
        if t_a is None or t_b is None:
            raise BenchError(f"{kind}: alice and bob did not find each other in {wait:g} s")
        out["discovery_ms"].append((max(t_a, t_b) - started["t_ready"]) * 1000)
        out["one"] = throughput(a, [b], n_msgs, settings.pick(30.0, 60.0))
        b.child.send(cmd="stop")
        stopped = b.need("stopped", 20)
        t_gone = a.peers_at(0, stopped["t_call"], wait)
        out["leave_ms"] = None if t_gone is None else (t_gone - stopped["t_call"]) * 1000
        procs.stop(b.child)
        # bob returns (same inbox for ours), then crashes
        b2 = cluster.agent("bob", db_name="bob")
        since = time.monotonic()
        started = b2.start()
        t_a = a.peers_at(1, since, wait)
        t_b = b2.peers_at(1, 0, wait)
        if t_a is not None and t_b is not None:
            out["discovery_ms"].append((max(t_a, t_b) - started["t_ready"]) * 1000)
        t_kill = time.monotonic()
        b2.child.popen.send_signal(signal.SIGKILL)
        t_gone = a.peers_at(0, t_kill, crash_cap)
        if t_gone is None:
            out["crash_s"] = crash_cap
            out["crash_capped"] = True
        else:
            out["crash_s"] = t_gone - t_kill
        a.child.send(cmd="stop")
        a.need("stopped", 20)
        # a fresh sender and four fresh receivers: no history to sync first
        sender = cluster.agent("dave")
        receivers = [cluster.agent(f"peer{i}") for i in range(4)]
        for node in [sender, *receivers]:
            node.start()
        for node in [sender, *receivers]:
            if node.peers_at(4, 0, wait) is None:
                raise BenchError(f"{kind}: the 5 nodes did not all meet in {wait:g} s")
        out["four"] = throughput(sender, receivers, n_msgs, settings.pick(40.0, 90.0))
        for node in [sender, *receivers]:
            node.child.send(cmd="stop")
    one, four = out["one"], out["four"]
    found = ", ".join(f"{d:.1f}" for d in out["discovery_ms"])
    log(
        f"broadcast {kind} #{number}: discovery {found}"
        f" ms, leave {out['leave_ms'] or float('nan'):.1f} ms, crash "
        f"{'>' if out['crash_capped'] else ''}{out['crash_s']:.2f} s, "
        f"1 peer {one['rate_min']:,.0f}/s (lost {one['lost']}), "
        f"4 peers {four['rate_min']:,.0f}/s (lost {four['lost']})"
    )
    return out


def run(settings: Settings, workdir: Path) -> list[Figure]:
    why = netns_available()
    if why:
        raise BenchError(f"broadcast needs an lo-only network namespace for pyre: {why}")
    rounds = settings.pick(1, min(settings.rounds, 3))
    with lo_only_netns(multicast=True) as ns:
        ours, pyre = interleave(
            rounds,
            lambda n: one_round(OURS, settings, workdir, ns, n),
            lambda n: one_round(PYRE, settings, workdir, ns, n),
        )
    item = "broadcast"

    def flat(rows: list[dict], key: str) -> list[float]:
        values: list[float] = []
        for row in rows:
            value = row[key]
            values += value if isinstance(value, list) else [value]
        return [v for v in values if v is not None]

    def sub(rows: list[dict], key: str, field: str) -> list[float]:
        return [row[key][field] for row in rows]

    capped = [r for r in ours + pyre if r["crash_capped"]]
    crash_note = ""
    if capped:
        who = sorted({r["kind"] for r in capped})
        crash_note = (
            f"{' and '.join(who)}: no drop within the cap; the figure is the cap, a lower "
            "bound (pyre expires a silent peer after PEER_EXPIRED = 30 s)"
        )
    n_msgs = settings.pick(3000, 10000)
    return [
        Figure(item, "discovery", "ms", "lower", flat(ours, "discovery_ms"),
               flat(pyre, "discovery_ms"), "pyre", "<= 5 ms p50", details=ours + pyre),
        Figure(item, "crash detection (SIGKILL)", "s", "lower", flat(ours, "crash_s"),
               flat(pyre, "crash_s"), "pyre", "<= 3 s", note=crash_note),
        Figure(item, "clean leave", "ms", "lower", flat(ours, "leave_ms"),
               flat(pyre, "leave_ms"), "pyre", "<= 100 ms"),
        Figure(item, f"room msgs/s to 1 peer ({n_msgs})", "msg/s", "higher",
               sub(ours, "one", "rate_min"), sub(pyre, "one", "rate_min"), "pyre",
               ">= 1.5x pyre"),
        Figure(item, "lost, 1 peer", "msgs", "lower", sub(ours, "one", "lost"),
               sub(pyre, "one", "lost"), "pyre", "0"),
        Figure(item, f"room msgs/s to 4 peers ({n_msgs})", "msg/s", "higher",
               sub(ours, "four", "rate_min"), sub(pyre, "four", "rate_min"), "pyre",
               ">= 2x pyre", note="per receiver, the slowest of the four"),
        Figure(item, "lost, 4 peers (sum)", "msgs", "lower", sub(ours, "four", "lost"),
               sub(pyre, "four", "lost"), "pyre", "0"),
    ]  # fmt: skip
