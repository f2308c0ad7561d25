"""Item 8: rooms, in both modes (ours only: pyre's groups keep no history, and a Zyre
group's SHOUT reaches every peer's socket anyway).

Repeater (raw pyzmq clients, loadgen.py, against our server in its own process):

* 10 clients each in its own room beside the same 10 all in one room: every
  client posting with a window, as the fan-out item; acknowledged messages/s
  (each room's messages reach one subscriber, not ten: what rooms save the
  server) and deliveries/s;
* the server serving a catch-up of 10k messages spread over 20 rooms (one
  FETCH naming the 20, then again from the last number) beside 10k in one.

Broadcast (each node its own process, in a network namespace with loopback only):

* catch-up of 10k messages spread over 20 rooms: bob (in the 20 rooms) meets
  alice (in them too), leaves; alice posts 10,000 room messages, 500 to each
  room in turn; bob comes back with the same inbox: from his start (READY) to
  the last of them in his inbox - beside the same 10,000 in one room (the
  per-room cost of catching up room by room);
* what a room costs a node outside it: alice posts 3,000 messages to #ops;
  carol, in #general only, counts the frame lists of #ops her SUBs delivered
  (ZeroMQ filters by topic at alice's PUB) - beside bob, who is in #ops;
* scale (``--only rooms`` in a full run): 30 nodes, 100 rooms, each node in 20
  of them; each node posts a message to each of its rooms; every node must
  hold exactly the messages of its rooms (exact), and the time until the last
  one is held is the figure.
"""

from __future__ import annotations

import random
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
)

from lab93zmq.io.store import Inbox

MISSED = 10_000
ROOMS = [f"room{n:02d}" for n in range(20)]


def repeater_fanout(workdir: Path, settings: Settings, number: int, own: bool) -> dict[str, Any]:
    """10 clients posting with a window: each in its own room (``own``) or all in one."""
    tag = f"rooms-{'own' if own else 'one'}{number}"
    duration = settings.pick(2.0, 5.0)
    with Procs(workdir) as procs:
        server = harness.start_server(procs, harness.OURS, workdir, tag)
        results = harness.run_load(
            procs, server, processes=2, clients=10, mode="fanout", duration=duration,
            drain=15.0, extra=["--rooms", "10" if own else "0"], tag=tag,
        )  # fmt: skip
        harness.stop_server(procs, server)
    out = harness.summarize(results)
    log(f"repeater rooms {tag}: {out['acked_per_s']:,.0f} acked/s, "
        f"{out['deliveries_per_s']:,.0f} deliveries/s, {out['missed_live']:,} missed live"
        + harness.troubles(out))
    harness.settle()
    return out


def repeater_catch_up(workdir: Path, number: int, rooms: int) -> dict[str, Any]:
    """Our server serves 10k messages spread over ``rooms`` rooms (0: all in general)."""
    tag = f"rooms-fetch{rooms}-{number}"
    spread = ["--rooms", str(rooms), "--spread"] if rooms else []
    with Procs(workdir) as procs:
        server = harness.start_server(procs, harness.OURS, workdir, tag)
        filled = harness.run_load(
            procs, server, processes=1, clients=1, mode="fanout", duration=120, drain=30,
            extra=["--count", str(MISSED), *spread], tag=f"fill-{tag}",
        )[0]  # fmt: skip
        if filled["acked"] != MISSED:
            raise BenchError(f"filling the server: {filled['acked']} of {MISSED} acked")
        got = harness.run_load(
            procs, server, processes=1, clients=1, mode="fetch", duration=0, drain=60,
            extra=["--count", str(MISSED), *spread], tag=tag,
        )[0]  # fmt: skip
        harness.stop_server(procs, server)
    out = {"rooms": rooms or 1, "got": got["got"], "s": got["t1"] - got["t0"],
           "fetches": got["rounds"]}
    log(f"repeater serves 10k over {out['rooms']} rooms #{number}: {out['got']} in"
        f" {out['s'] * 1000:.0f} ms, {out['fetches']} FETCHes")
    return out


def repeater_figures(settings: Settings, workdir: Path) -> list[Figure]:
    rounds = settings.pick(1, min(settings.rounds, 3))
    own, one = interleave(
        settings.rounds,
        lambda n: repeater_fanout(workdir, settings, n, own=True),
        lambda n: repeater_fanout(workdir, settings, n, own=False),
    )
    spread, single = interleave(
        rounds,
        lambda n: repeater_catch_up(workdir, n, len(ROOMS)),
        lambda n: repeater_catch_up(workdir, n, 0),
    )
    item = "rooms, repeater"
    base = "10 clients in one room"
    missing = "; ".join(f"{r['rooms']} rooms got {r['got']} of {MISSED}"
                        for r in spread + single if r["got"] != MISSED)
    return [
        Figure(item, "10 clients, each in its own room: acked messages/s", "msg/s", "higher",
               [r["acked_per_s"] for r in own], [r["acked_per_s"] for r in one], base,
               details=own + one),
        Figure(item, "10 clients, each in its own room: deliveries/s", "msg/s", "higher",
               [r["deliveries_per_s"] for r in own], [r["deliveries_per_s"] for r in one], base,
               note="each message reaches 1 subscriber in its own room, 10 in one room"),
        Figure(item, "missed on the live feed (own rooms)", "msgs", "lower",
               [r["missed_live"] for r in own], [r["missed_live"] for r in one], base),
        Figure(item, "server serves 10k over 20 rooms (raw FETCH)", "s", "lower",
               [r["s"] for r in spread], [r["s"] for r in single], "10k in one room",
               "<= 1.5x one room", details=spread + single,
               note=f"incomplete: {missing}" if missing else ""),
    ]  # fmt: skip


def catch_up(workdir: Path, ns: str | None, number: int, rooms: list[str]) -> dict[str, Any]:
    """Bob misses 10,000 messages spread over ``rooms``; how long until he holds them."""
    tag = f"rooms{len(rooms)}-{number}"
    with Procs(workdir) as procs:
        cluster = Cluster(procs, "ours", ns, workdir, tag)
        alice, bob = cluster.agent("alice"), cluster.agent("bob")
        alice.start(rooms=rooms)
        bob.start(rooms=rooms)
        if bob.peers_at(1, 0, 15) is None:
            raise BenchError("alice and bob did not meet in 15 s")
        time.sleep(0.5)  # both hold their first tails (empty rooms): they stay in them
        bob.child.send(cmd="stop")
        bob.need("stopped", 20)
        procs.stop(bob.child)
        alice.child.send(cmd="post", n=MISSED, size=40, tag="missed", rooms=rooms)
        alice.need("posted", 120)
        alice.child.send(cmd="sync")
        alice.need("synced", 60)
        back = cluster.agent("bob", db_name="bob")
        started = back.start(rooms=rooms)
        back.child.send(cmd="expect", n=MISSED, timeout=60, tag="missed")
        got = back.need("got", 70)
        for agent in (alice, back):
            agent.child.send(cmd="stop")
    out = {"rooms": len(rooms), "got": got["n"],
           "s": (got["t_last"] or started["t_ready"]) - started["t_ready"]}
    log(f"rooms catch-up over {len(rooms)} rooms #{number}: {out['got']} in {out['s']:.2f} s")
    return out


def outside(workdir: Path, ns: str | None, number: int, n: int) -> dict[str, Any]:
    """Alice posts ``n`` to #ops: the frames of #ops at carol (not in it) and bob (in it)."""
    with Procs(workdir) as procs:
        cluster = Cluster(procs, "ours", ns, workdir, f"outside{number}")
        alice, bob, carol = (cluster.agent(name) for name in ("alice", "bob", "carol"))
        alice.start(rooms=["general", "ops"])
        bob.start(rooms=["ops"])
        carol.start(rooms=["general"])
        for agent in (alice, bob, carol):
            if agent.peers_at(2, 0, 15) is None:
                raise BenchError(f"{agent.name} did not see both others in 15 s")
        bob.child.send(cmd="expect", n=n, timeout=60, tag="ops")
        alice.child.send(cmd="post", n=n, size=40, tag="ops", rooms=["ops"])
        alice.need("posted", 120)
        if bob.need("got", 70)["n"] != n:
            raise BenchError("bob did not get every message of #ops")
        time.sleep(0.5)  # whatever was on its way to carol has come
        frames = {}
        for agent in (bob, carol):
            mark = len(agent.events)
            agent.child.send(cmd="frames")
            frames[agent.name] = agent.need("frames", 10, since=mark)["topics"]
        for agent in (alice, bob, carol):
            agent.child.send(cmd="stop")
    ops = "#ops\n"
    out = {"carol_ops": frames["carol"].get(ops, 0), "bob_ops": frames["bob"].get(ops, 0),
           "carol": frames["carol"], "bob": frames["bob"]}
    log(f"frames of #ops #{number}: carol (outside) {out['carol_ops']}, bob {out['bob_ops']}")
    return out


def scale(workdir: Path, ns: str | None, nodes: int = 30, rooms: int = 100,
          each: int = 20) -> dict[str, Any]:
    """``nodes`` nodes, ``rooms`` rooms, each node in ``each`` of them; every node posts
    once to each of its rooms; exact when every node holds exactly its rooms' messages."""
    names = [f"room{n:03d}" for n in range(rooms)]
    rng = random.Random(93)
    chosen = {f"n{i:02d}": sorted(rng.sample(names, each)) for i in range(nodes)}
    with Procs(workdir) as procs:
        cluster = Cluster(procs, "ours", ns, workdir, "scale")
        agents: dict[str, Agent] = {name: cluster.agent(name) for name in chosen}
        for name, agent in agents.items():
            agent.start(rooms=chosen[name])
        for agent in agents.values():
            if agent.peers_at(nodes - 1, 0, 60) is None:
                raise BenchError(f"{agent.name} did not see all {nodes - 1} others in 60 s")
        time.sleep(2.0)  # every first join met the others (empty rooms): tails given
        want = {name: sum(1 for other, rs in chosen.items() if other != name
                          for room in rs if room in chosen[name]) for name in chosen}
        for name, agent in agents.items():
            agent.child.send(cmd="expect", n=want[name], timeout=60, tag="scale")
        t0 = time.monotonic()
        for name, agent in agents.items():
            agent.child.send(cmd="post", n=each, size=40, tag="scale", rooms=chosen[name])
        got = {name: agent.need("got", 90) for name, agent in agents.items()}
        for agent in agents.values():
            agent.child.send(cmd="stop")
        for agent in agents.values():
            agent.need("stopped", 30)
    short = {name: (g["n"], want[name]) for name, g in got.items() if g["n"] != want[name]}
    for name, agent in agents.items():  # exact: its rooms' messages, each once, no others
        with Inbox(agent.db) as inbox:
            held = [(m.room, m.author) for m in inbox.history()]
        expected = sorted((room, other) for other, rs in chosen.items() for room in rs
                          if room in chosen[name])
        if sorted(held) != expected:
            short[name] = f"holds {len(held)}, {len(set(held))} distinct; wants {len(expected)}"
    last = max((g["t_last"] or t0) for g in got.values())
    out = {"nodes": nodes, "rooms": rooms, "each": each, "s": last - t0, "short": short,
           "messages": sum(want.values())}
    log(f"scale: {nodes} nodes, {rooms} rooms, {each} each: {out['messages']} deliveries in"
        f" {out['s']:.2f} s; short: {short or 'none'}")
    return out


def run(settings: Settings, workdir: Path) -> list[Figure]:
    figures = repeater_figures(settings, workdir)
    if netns_available() is not None:
        log(f"rooms: no broadcast rows, they need network namespaces: {netns_available()}")
        return figures
    return figures + broadcast_figures(settings, workdir)


def broadcast_figures(settings: Settings, workdir: Path) -> list[Figure]:
    rounds = settings.pick(1, min(settings.rounds, 3))
    with lo_only_netns() as ns:
        spread, single = interleave(
            rounds,
            lambda n: catch_up(workdir, ns, n, ROOMS),
            lambda n: catch_up(workdir, ns, n, ["general"]),
        )
        frames = [outside(workdir, ns, n, settings.pick(3000, 10000)) for n in range(rounds)]
        scaled = [] if settings.quick else [scale(workdir, ns)]
    missing = "; ".join(f"{r['rooms']} rooms got {r['got']} of {MISSED}"
                        for r in spread + single if r["got"] != MISSED)
    figures = [
        Figure("rooms", "broadcast catch-up 10k over 20 rooms", "s", "lower",
               [r["s"] for r in spread], [r["s"] for r in single], "ours, 10k in 1 room",
               "<= 1.5x one room",
               details=spread + single, note=f"incomplete: {missing}" if missing else ""),
        Figure("rooms", "#ops frames at a node not in #ops", "frames", "lower",
               [r["carol_ops"] for r in frames], [r["bob_ops"] for r in frames],
               "a node in #ops", "0", details=frames),
    ]
    for r in scaled:
        figures.append(Figure(
            "rooms", f"{r['nodes']} nodes, {r['rooms']} rooms, {r['each']} each: all held",
            "s", "lower", [r["s"]], [], "none", "exact", details=scaled,
            note=f"NOT EXACT: {r['short']}" if r["short"] else "exact: every node holds its"
                 " rooms' messages",
        ))
    return figures
