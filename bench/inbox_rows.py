"""In-process cost of a client's inbox per message, beside the floor of the row alone.

What a piped sender and a ``--listen --json`` client write, through the real
``Inbox`` API, into a real SQLite file in a temporary directory (WAL, as a
node opens it):

* *sender*: 30,000 lines in bursts; each burst is stored with its outbox rows
  (``queue_many``: one transaction), then acknowledged as the ledger does it
  (one transaction: ``acknowledge`` and ``set_server_seqs``);
* *listener*: 30,000 room messages from the feed in batches, each batch stored
  with its server numbers and the marks (one transaction, as the ledger's
  commit);
* *broadcast*: the listener's messages without server numbers, into a broadcast
  node's inbox (its tail index too);
* *floor*: the listener's rows by ``executemany`` into a table with the same
  columns and the id key only, one transaction a batch: the row itself.

Each figure is the minimum over ``--repeat`` runs (a fresh file each), in
microseconds a message. Run it in two trees (main and a branch) in the same
minutes to compare (from each tree's directory); each case opens the inbox in its
role where the tree knows roles (``Inbox(path, role=...)``), else as that tree's
node opened it.

    python bench/inbox_rows.py [--lines 30000] [--burst 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import inspect
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

# The tree measured is the one it is run from (``cd /work/main && python
# /path/to/bench/inbox_rows.py`` measures main's inbox), else this script's own.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if (Path.cwd() / "lab93zmq").is_dir():
    sys.path.insert(0, str(Path.cwd()))

from lab93zmq.core.message import Message, make_id  # noqa: E402
from lab93zmq.io.store import Inbox  # noqa: E402

SERVER = "5e" * 16
OTHER = "0a" * 16
T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)


def messages(count: int, origin: str, author: str) -> list[Message]:
    out = []
    for n in range(1, count + 1):
        sent = T0 + timedelta(microseconds=20 * n)
        entropy = bytes.fromhex(origin[:4]) + n.to_bytes(8, "big")
        out.append(Message(make_id(sent, entropy), author, None, None,
                           f"line {n} of a shell pipeline, as a log shipper writes it", sent,
                           origin, n))
    return out


def open_inbox(path: Path, role: str | None) -> Inbox:
    if role is not None and "role" in inspect.signature(Inbox).parameters:
        return Inbox(path, role=role)  # type: ignore[call-arg]
    return Inbox(path)


def sender(path: Path, lines: list[Message], burst: int, role: str | None) -> float:
    with open_inbox(path, role) as inbox:
        started = time.perf_counter()
        seq = 0
        for start in range(0, len(lines), burst):
            chunk = lines[start : start + burst]
            inbox.queue_many(chunk)
            numbers = []
            for message in chunk:
                seq += 1
                numbers.append((message.id, seq))
            with inbox.transaction():
                inbox.acknowledge([mid for mid, _ in numbers])
                inbox.set_server_seqs(SERVER, numbers)
        spent = time.perf_counter() - started
        assert not inbox.outbox() and inbox.count() == len(lines)
    return spent


def listener(path: Path, feed: list[Message], burst: int, role: str | None) -> float:
    with open_inbox(path, role) as inbox:
        numbered = role != "broadcast"
        if not numbered and "role" not in inspect.signature(Inbox).parameters:
            inbox.index_tails()  # as a broadcast node opens it
        started = time.perf_counter()
        for start in range(0, len(feed), burst):
            chunk = feed[start : start + burst]
            with inbox.transaction():
                inbox.save_many([(m, SERVER if numbered else None,
                                  start + i + 1 if numbered else None)
                                 for i, m in enumerate(chunk)])
                inbox.set_meta("repeater:state", f'{{"general": {start + len(chunk)}}}')
        spent = time.perf_counter() - started
        assert inbox.count() == len(feed)
    return spent


def floor(path: Path, feed: list[Message], burst: int) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=wal")
    db.execute("PRAGMA synchronous=normal")
    db.execute(
        "CREATE TABLE message (id VARCHAR(32) PRIMARY KEY, author, recipient, subject, content,"
        " sent_at, origin, origin_seq, room, kind, server_id, server_seq, arrival)"
    )
    rows = [(m.id, m.author, m.recipient, m.subject, m.content, m.sent_text(), m.origin,
             m.origin_seq, "general", None, SERVER, n + 1, n + 1) for n, m in enumerate(feed)]
    started = time.perf_counter()
    for start in range(0, len(rows), burst):
        db.execute("BEGIN")
        db.executemany("INSERT INTO message VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       rows[start : start + burst])
        db.execute("COMMIT")
    spent = time.perf_counter() - started
    db.close()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=30_000)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    lines = messages(args.lines, OTHER, "pipe")
    feed = messages(args.lines, "7f" * 16, "bob")
    cases = {
        "sender (queue, ACK)": lambda p: sender(p, lines, args.burst, "client"),
        "listener (feed)": lambda p: listener(p, feed, args.burst, "client"),
        "broadcast (feed)": lambda p: listener(p, feed, args.burst, "broadcast"),
        "floor (row + id key)": lambda p: floor(p, feed, args.burst),
    }
    import lab93zmq

    print(f"tree {Path(lab93zmq.__file__).parent.parent}, {args.lines:,} messages in"
          f" batches of {args.burst}, min of {args.repeat}")
    best: dict[str, float] = {name: float("inf") for name in cases}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.repeat):
            for name, case in cases.items():  # interleaved, so drift hits each alike
                best[name] = min(best[name], case(Path(tmp) / f"{run}-{len(name)}.db"))
    for name, seconds in best.items():
        print(f"{name:24} {seconds / args.lines * 1e6:6.2f} us/msg")


if __name__ == "__main__":
    main()
