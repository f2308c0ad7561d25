"""Item 4: catch-up, a node that missed 10,000 messages: time until it holds them all.

Three rows:

* repeater, server side: a raw client (loadgen.py ``fetch``) asks our server
  with FETCH from number 0 until it holds all 10,000 (read from the inbox,
  500 per BATCH) - beside the bare broker answering the same FETCHes from a
  list in memory (``bare_broker.py --keep``): the ceiling;
* repeater client: a ``ClientActor`` actor that was connected once (and
  got the one room message there was), left, and comes back after 10,000
  room messages: from its start to the last one stored in its own inbox and
  shown (INCOMING);
* broadcast node: bob meets alice, leaves; alice posts 10,000 room messages;
  bob comes back with the same inbox: from bob's start (READY) to the last of
  them in bob's inbox. pyre keeps no history, so there is no baseline.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import harness
from broadcast import Agent, Cluster
from common import (
    BenchError,
    Figure,
    Procs,
    Settings,
    interleave,
    lo_only_netns,
    log,
    netns_available,
    script_argv,
)

MISSED = 10_000


def fill(procs: Procs, server: harness.Server, tag: str, count: int = MISSED) -> None:
    """``count`` room messages posted by one raw client (and acknowledged)."""
    results = harness.run_load(
        procs, server, processes=1, clients=1, mode="fanout", duration=120, drain=30,
        extra=["--count", str(count)], tag=f"fill-{tag}",
    )  # fmt: skip
    if results[0]["acked"] != count:
        raise BenchError(f"filling the {server.kind} server: {results[0]['acked']} acked")


def server_fetch(kind: str, workdir: Path, number: int) -> dict[str, Any]:
    tag = f"fetch-{kind}{number}"
    with Procs(workdir) as procs:
        server = harness.start_server(procs, kind, workdir, tag, keep=True)
        fill(procs, server, tag)
        result = harness.run_load(
            procs, server, processes=1, clients=1, mode="fetch", duration=0, drain=60,
            extra=["--count", str(MISSED)], tag=tag,
        )[0]  # fmt: skip
        harness.stop_server(procs, server)
    out = {"s": result["t1"] - result["t0"], "got": result["got"], "rounds": result["rounds"]}
    log(f"catch-up fetch {kind} #{number}: {out['got']} in {out['s'] * 1000:.0f} ms")
    return out


def client_return(workdir: Path, number: int) -> dict[str, Any]:
    tag = f"client{number}"
    with Procs(workdir) as procs:
        server = harness.start_server(procs, harness.OURS, workdir, tag)
        db = workdir / f"{tag}.db"
        beacon_port = procs.beacon_port()

        def client() -> Agent:
            child = procs.start(f"client-{tag}", script_argv("agent.py", "client"), talk=True)
            agent = Agent(child, "client", "carol", db, beacon_port)
            agent.need("loaded", 30)
            mark = len(agent.events)
            agent.child.send(
                cmd="start", user="carol", db=str(db), beacon_port=beacon_port, port=server.port
            )
            agent.need("started", 30, since=mark)
            return agent

        fill(procs, server, f"{tag}-seed", count=1)  # the room carol saw on her first visit
        first = client()
        first.child.send(cmd="expect", n=1, timeout=15, tag="")
        if first.need("got", 20)["n"] != 1:
            raise BenchError("the repeater client did not connect and get the room in 15 s")
        first.child.send(cmd="stop")
        first.need("stopped", 20)
        procs.stop(first.child)
        fill(procs, server, tag)
        back = client()
        started = back.need("started", 1)
        back.child.send(cmd="expect", n=MISSED, timeout=60, tag="")
        got = back.need("got", 70)
        harness.stop_server(procs, server)
    out = {"got": got["n"], "s": (got["t_last"] or started["t_ready"]) - started["t_ready"]}
    log(f"catch-up repeater client #{number}: {out['got']} in {out['s'] * 1000:.0f} ms")
    return out


def wait_joined(db: Path, room: str, timeout: float) -> bool:
    """Whether ``room`` has floors in the inbox ``db`` (a tail was given) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
                row = conn.execute("select floors from room where name = ?", (room,)).fetchone()
        except sqlite3.Error:  # not made yet, or busy: ask again
            row = None
        if row is not None and row[0] is not None:
            return True
        time.sleep(0.05)
    return False


def node_return(workdir: Path, ns: str | None, number: int) -> dict[str, Any]:
    with Procs(workdir) as procs:
        cluster = Cluster(procs, "ours", ns, workdir, f"catchup{number}")
        alice = cluster.agent("alice")
        bob = cluster.agent("bob")
        alice.start()
        bob.start()
        if bob.peers_at(1, 0, 15) is None:
            raise BenchError("alice and bob did not meet in 15 s")
        # Bob is in general for good once alice answered his first join (its tail gave
        # him floors); leaving before that, he would come back as a first join and get
        # the last 100 only (PROTOCOL.rst, "Floors").
        if not wait_joined(bob.db, "general", 15):
            raise BenchError("bob's first join of general got no answer in 15 s")
        bob.child.send(cmd="stop")
        bob.need("stopped", 20)
        procs.stop(bob.child)
        alice.child.send(cmd="post", n=MISSED, size=40, tag="missed")
        alice.need("posted", 120)
        alice.child.send(cmd="sync")
        alice.need("synced", 60)
        back = cluster.agent("bob", db_name="bob")
        started = back.start()
        back.child.send(cmd="expect", n=MISSED, timeout=60, tag="missed")
        got = back.need("got", 70)
        for agent in (alice, back):
            agent.child.send(cmd="stop")
    out = {"got": got["n"], "s": (got["t_last"] or started["t_ready"]) - started["t_ready"]}
    log(f"catch-up broadcast node #{number}: {out['got']} in {out['s'] * 1000:.0f} ms")
    return out


def run(settings: Settings, workdir: Path) -> list[Figure]:
    rounds = settings.pick(1, min(settings.rounds, 3))
    ours, bare = interleave(
        rounds,
        lambda n: server_fetch(harness.OURS, workdir, n),
        lambda n: server_fetch(harness.BARE, workdir, n),
    )
    clients = [client_return(workdir, n) for n in range(rounds)]
    if netns_available() is None:
        with lo_only_netns() as ns:
            nodes = [node_return(workdir, ns, n) for n in range(rounds)]
    else:
        nodes = [node_return(workdir, None, n) for n in range(rounds)]
    item = "catch-up 10k"
    missing = "; ".join(
        f"{name} got {r['got']} of {MISSED}"
        for name, rows in (("fetch", ours), ("bare", bare), ("client", clients), ("node", nodes))
        for r in rows
        if r["got"] != MISSED
    )
    return [
        Figure(item, "repeater serves 10k (raw FETCH)", "s", "lower",
               [r["s"] for r in ours], [r["s"] for r in bare], "bare, from memory",
               details=ours + bare + clients + nodes,
               note=f"incomplete: {missing}" if missing else ""),
        Figure(item, "repeater client reconnects", "s", "lower", [r["s"] for r in clients], [],
               "none", "<= 1 s"),
        Figure(item, "broadcast node rejoins", "s", "lower", [r["s"] for r in nodes], [],
               "none (pyre keeps no history)", "<= 1 s"),
    ]  # fmt: skip
