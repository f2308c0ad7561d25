"""Start a repeater (ours or the bare broker) in its own process and drive it with loadgen.py.

Shared by the fan-out, latency and overload items. The server under test and
the load generators are separate processes, so the generators' GIL never caps
the server (and the server's never caps them).
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    BenchError,
    Child,
    Procs,
    Settings,
    interleave,
    our_node_argv,
    script_argv,
)

OURS = "ours"
BARE = "bare"


@dataclass
class Server:
    kind: str
    port: int
    child: Child
    db: Path | None
    curve: Path | None = None  # --secure: the server's public key and the clients' key pairs
    beacon_port: int = 0  # ours: the UDP port it beacons on


def start_server(
    procs: Procs,
    kind: str,
    workdir: Path,
    tag: str,
    keep: bool = False,
    db: Path | None = None,
    secure_clients: int = 0,
    extra: tuple[str, ...] = (),
) -> Server:
    """Our repeater server (``python -m lab93zmq -r -s``) or the bare broker, on loopback.

    ``keep``: the bare broker keeps payloads in memory and answers FETCH.
    ``db``: our server's inbox (default: a new one in ``workdir``).
    ``secure_clients``: run ours with ``--secure``, authorizing that many
    generator clients (``bench0`` ...), each with a key pair of its own.
    ``extra``: more options for ours (the irc item's ``--irc-port``).
    """
    port = procs.tcp_port()
    if kind == BARE:
        argv = script_argv("bare_broker.py", str(port), *(["--keep"] if keep else []))
        child = procs.start(f"bare-{tag}", argv)
        return Server(kind, port, child, None)
    db = db or workdir / f"server-{tag}.db"
    beacon_port = procs.beacon_port()
    argv = our_node_argv(
        "-r", "-s", "-a", "127.0.0.1", "-p", str(port), "-u", "benchserver",
        "--db", str(db), "-i", "lo", "--beacon-port", str(beacon_port), *extra,
    )  # fmt: skip
    env, curve = None, None
    if secure_clients:
        config, curve = _secure_keys(workdir / f"keys-{tag}", secure_clients)
        argv.append("--secure")
        env = {"XDG_CONFIG_HOME": str(config)}
    child = procs.start(f"server-{tag}", argv, env=env)
    return Server(kind, port, child, db, curve, beacon_port)


def _secure_keys(root: Path, clients: int) -> tuple[Path, Path]:
    """The server's config dir (its key pair, authorized_keys) and the generators' key dir."""
    import zmq.auth

    from lab93zmq.io.security import generate_keypair

    config, curve = root / "config", root / "curve"
    server = generate_keypair(config / "lab93", "benchserver")
    authorized = config / "lab93" / "authorized_keys"
    authorized.mkdir()
    curve.mkdir(parents=True)
    shutil.copy(server.path, curve / "server.key")
    for number in range(clients):
        public, _ = zmq.auth.create_certificates(curve, f"bench{number}")
        shutil.copy(public, authorized / f"bench{number}.key")
    return config, curve


def stop_server(procs: Procs, server: Server) -> None:
    """SIGTERM (a clean exit for ours) and wait."""
    procs.stop(server.child, timeout=10)


def stored_messages(db: Path) -> int:
    """Rows in the server's inbox (read after the server stopped)."""
    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from message").fetchone()[0]


def run_load(
    procs: Procs,
    server: Server,
    *,
    processes: int,
    clients: int,
    mode: str,
    duration: float,
    drain: float = 10.0,
    extra: list[str] | None = None,
    extras: list[list[str]] | None = None,
    tag: str = "",
) -> list[dict[str, Any]]:
    """Start ``processes`` generators sharing ``clients`` clients; go together; results.

    ``extra`` goes to every generator, ``extras[i]`` to generator ``i`` only.
    """
    gens: list[Child] = []
    share, rest = divmod(clients, processes)
    first = 0
    for number in range(processes):
        count = share + (1 if number < rest else 0)
        argv = script_argv(
            "loadgen.py", "--port", str(server.port), "--clients", str(count),
            "--first", str(first), "--mode", mode, "--duration", str(duration),
            "--drain", str(drain), *(extra or []), *(extras[number] if extras else []),
            *(["--curve", str(server.curve)] if server.curve else []),
        )  # fmt: skip
        first += count
        gens.append(procs.start(f"loadgen-{tag}-{number}", argv, talk=True))
    for gen in gens:
        try:
            gen.expect("ready", 30)
        except BenchError as error:
            if not server.child.alive():
                tail = server.child.stderr_tail()
                raise BenchError(f"the {server.kind} server died: {tail}") from error
            raise error
    for gen in gens:
        gen.send(cmd="go")
    results = [gen.expect("result", duration + drain + 20) for gen in gens]
    for gen in gens:
        procs.stop(gen, timeout=5)
    return results


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum up the generators: deliveries/s over the whole run, and what went missing."""
    t0 = min(r["t0"] for r in results)
    last = max(r["last_rx"] for r in results)
    sent = sum(r["sent"] for r in results)
    acked = sum(r["acked"] for r in results)
    listeners = sum(len(r["received"]) for r in results)
    received = sum(sum(r["received"]) for r in results)
    expected = acked * listeners  # every client in one room (or all in every room)
    by_room: dict[str, list[int]] = {}  # clients each in one room: room -> [acked, listeners]
    for r in results:
        for room, count in r.get("acked_by_room", {}).items():
            by_room.setdefault(room, [0, 0])[0] += count
        for room, count in r.get("listeners_by_room", {}).items():
            by_room.setdefault(room, [0, 0])[1] += count
    if len(by_room) > 1:
        expected = sum(count * heard_by for count, heard_by in by_room.values())
    elapsed = max(last - t0, 1e-9)
    acked_elapsed = max(max(r["last_ack"] for r in results) - t0, 1e-9)
    return {
        "elapsed": elapsed,
        "acked_per_s": acked / acked_elapsed,  # over the time to the last ACK
        "sent": sent,
        "acked": acked,
        "unacked": sent - acked,
        "listeners": listeners,
        "expected": expected,
        "received": received,
        "missed_live": max(expected - received, 0),
        "deliveries_per_s": received / elapsed,
        "timed_out": any(r["timed_out"] for r in results),
        "rejected": sum(r["rejected"] for r in results),
        "errors": [e for r in results for e in r["errors"]][:5],
        "again": sum(r["again"] for r in results),
    }


def troubles(summary: dict[str, Any]) -> str:
    """What went wrong in a run, for its log line ("" when nothing did)."""
    said = []
    if summary["rejected"]:
        said.append(f"{summary['rejected']:,} REJECTED")
    if summary["timed_out"]:
        said.append("TIMED OUT waiting for the drain (figures are partial)")
    if summary["errors"]:
        said.append(f"errors: {summary['errors']}")
    return "".join(f", {text}" for text in said)


def ours_and_bare(
    rounds: int, one_run: Callable[..., dict[str, Any]], settings: Settings, workdir: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``rounds`` of ``one_run(kind, settings, workdir, n)`` for our server and the bare
    broker, interleaved (so drift on the machine falls on both alike)."""
    return interleave(
        rounds,
        lambda n: one_run(OURS, settings, workdir, n),
        lambda n: one_run(BARE, settings, workdir, n),
    )


def settle(seconds: float = 0.3) -> None:
    """A short pause between runs so the last run's sockets and pages are gone."""
    time.sleep(seconds)
