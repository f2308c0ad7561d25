"""Item store: the repeater server's commit throughput on SQLite beside PostgreSQL.

The same server (``lab93-node -r -s``) and the same load, one store or the
other: 10 raw clients (loadgen.py ``fanout``, 2 generator processes) post as
fast as the server acknowledges, for a few seconds; the figure is the
acknowledged messages per second over the time to the last ACK. An ACK means
the message was committed (the server's group commit: one transaction per
turn of its loop), so this is what the store lets the server commit. Rounds
alternate the two (A B, B A, ...).

PostgreSQL is a throwaway cluster of the run's own, started the way the tests
start one (tests/pg_server.py: initdb in a temporary directory, 127.0.0.1 only,
``fsync=off``), a fresh database per round; without its binaries (or psycopg)
the PostgreSQL half is left out and the row says why. Durability is of one
class on both sides: SQLite in WAL mode with ``synchronous=NORMAL`` and
PostgreSQL with ``fsync=off`` both survive the server process being killed,
neither waits for the disk at each commit.

After each run the store is read back: messages acknowledged but not stored
must be 0 on both.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import harness
from common import Figure, Procs, Settings, interleave, log

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import pg_server  # noqa: E402  (the tests' throwaway PostgreSQL)

CLIENTS = 10
GENERATORS = 2
ITEM = "store (10 clients)"
BASELINE = "SQLite"


def one_run(kind: str, db: Path | str, settings: Settings, workdir: Path, number: int) -> dict:
    duration = settings.pick(2.0, 5.0)
    tag = f"store-{kind}{number}"
    with Procs(workdir) as procs:
        # A URL goes to --db as it is (start_server writes str(db)).
        server = harness.start_server(procs, harness.OURS, workdir, tag, db=db)  # type: ignore
        results = harness.run_load(
            procs, server, processes=GENERATORS, clients=CLIENTS, mode="fanout",
            duration=duration, drain=15.0, tag=tag,
        )  # fmt: skip
        summary = harness.summarize(results)
        harness.stop_server(procs, server)
    summary["stored"] = stored(db)
    summary["acked_not_stored"] = max(summary["acked"] - summary["stored"], 0)
    log(
        f"store {kind} #{number}: {summary['acked_per_s']:,.0f} acked/s, {summary['acked']:,}"
        f" acked, {summary['acked_not_stored']} acked-not-stored" + harness.troubles(summary)
    )
    harness.settle()
    return summary


def stored(db: Path | str) -> int:
    """Messages in the store after the server stopped."""
    if isinstance(db, Path):
        return harness.stored_messages(db)
    import psycopg

    with psycopg.connect(db) as conn:
        row = conn.execute("select count(*) from message").fetchone()
    return int(row[0]) if row else 0


def run(settings: Settings, workdir: Path) -> list[Figure]:
    why = pg_server.missing()
    postgres: Any = None
    try:
        if why is None:
            postgres = pg_server.PostgresServer()
            postgres.start()
            log(f"store: PostgreSQL {postgres.bin} on 127.0.0.1:{postgres.port}")
        else:
            log(f"store: no PostgreSQL half: {why}")

        def on_postgres(number: int) -> dict | None:
            if postgres is None:
                return None
            return one_run("postgresql", postgres.new_database(), settings, workdir, number)

        def on_sqlite(number: int) -> dict:
            return one_run("sqlite", workdir / f"sqlite{number}.db", settings, workdir, number)

        pg, lite = interleave(settings.rounds, on_postgres, on_sqlite)
    finally:
        if postgres is not None:
            postgres.remove()
    pg = [r for r in pg if r is not None]
    note = "" if why is None else f"PostgreSQL not measured: {why}"
    return [
        Figure(ITEM, "acked messages/s (PostgreSQL)", "msg/s", "higher",
               [r["acked_per_s"] for r in pg], [r["acked_per_s"] for r in lite], BASELINE,
               note=note or "each ACK follows a commit: the server's group commit, one"
                            " transaction per turn of its loop", details=pg + lite),
        Figure(ITEM, "acked but not stored", "msgs", "lower",
               [r["acked_not_stored"] for r in pg], [r["acked_not_stored"] for r in lite],
               BASELINE, "0"),
    ]  # fmt: skip
