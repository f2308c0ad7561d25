"""The inbox as the command line meets it: a damaged file, the order of --history,
and one node per inbox."""

from __future__ import annotations

import io
import random
import signal
from dataclasses import replace
from datetime import timedelta

import pytest
from factories import NODE_B, T0, make_message
from procs import NodeProcess

from lab93zmq.frontend.cli import main
from lab93zmq.frontend.environment import Environment
from lab93zmq.io.store import Inbox

pytestmark = pytest.mark.timeout(60)


def run(*argv, stdin=""):
    env = Environment(stdin=io.StringIO(stdin), stdout=io.StringIO(), stderr=io.StringIO())
    status = main(list(argv), env)
    return status, env.stdout.getvalue(), env.stderr.getvalue()


@pytest.fixture
def damaged_inbox(tmp_path):
    """A real inbox of 3,000 messages with 8 KiB of random bytes written into its middle."""
    db = tmp_path / "inbox.db"
    with Inbox(db) as inbox:
        inbox.save_many([(make_message(n, "x" * 200), None, None) for n in range(1, 3001)])
        inbox.checkpoint()  # into the file itself, not only the write-ahead log
    size = db.stat().st_size
    with open(db, "r+b") as raw:
        raw.seek(size // 2)
        raw.write(random.Random(93).randbytes(8192))
    return db


@pytest.mark.parametrize(
    "mode",
    [
        ["--history"],
        ["--history", "--json"],
        ["-b", "--listen"],
        ["-b", "--send", "hello"],
        ["-b"],  # a pipeline
        ["-r", "-s"],
        ["-r", "-c", "-a", "127.0.0.1", "-p", "1", "--send", "hello"],
    ],
)
def test_a_damaged_inbox_is_named_with_how_to_recover_it(damaged_inbox, mode, beacon_port):
    net = [] if mode[0] == "--history" else ["-i", "lo", "--beacon-port", str(beacon_port)]
    if mode[:2] != ["-r", "-c"] and net:
        net += ["-p", "0"]
    status, out, err = run(*mode, *net, "--db", str(damaged_inbox), stdin="a line\n")
    assert (status, out) == (1, "")
    # One sentence, and nothing before it: no "ready" line, no traceback.
    assert err.count("\n") == 1, err
    assert err.startswith(f"lab93-node: the inbox {damaged_inbox} is damaged (SQLite: ")
    assert f"'sqlite3 {damaged_inbox} .recover | sqlite3 {damaged_inbox}.recovered'" in err


def test_history_is_in_the_order_messages_were_written(tmp_path):
    db = tmp_path / "inbox.db"
    at = [T0 + timedelta(seconds=n) for n in range(4)]
    with Inbox(db) as inbox:
        # Arrival order differs from writing order, as after a catch-up.
        inbox.save(replace(make_message(2, "third"), sent_at=at[2]))
        inbox.save(replace(make_message(1, "direct, first", to="bob"), sent_at=at[0]))
        inbox.save(replace(make_message(1, "second", origin=NODE_B), sent_at=at[1]))
        # Two of one microsecond: in the order they came in.
        inbox.save(replace(make_message(3, "fourth"), sent_at=at[3]))
        inbox.save(replace(make_message(4, "fifth", origin=NODE_B), sent_at=at[3]))
    status, out, _ = run("--history", "--json", "--db", str(db))
    assert status == 0
    contents = [line.split('"content": "')[1].split('"')[0] for line in out.splitlines()]
    assert contents == ["direct, first", "second", "third", "fourth", "fifth"]


def test_a_second_node_on_one_inbox_is_refused_naming_the_first(tmp_path, beacon_port):
    beacon = str(beacon_port)
    args = ["-b", "-i", "lo", "--beacon-port", beacon, "-p", "0", "--db", str(tmp_path / "a.db")]
    first = NodeProcess([*args, "--listen"])
    try:
        first.wait_err("no broadcast peers heard yet")
        second = NodeProcess([*args, "--send", "hello"])
        assert second.finish() == 1
        assert second.err == [
            f"lab93-node: the inbox {tmp_path / 'a.db'} is in use by another lab93-node"
            f" (pid {first.proc.pid}); stop it first, or give this one an inbox of its own"
            " with --db"
        ]
        # Reading it beside the running node is fine.
        assert NodeProcess(["--history", "--db", str(tmp_path / "a.db")]).finish() == 0
    finally:
        first.kill()  # kill -9: the kernel drops its lock with it
    third = NodeProcess([*args, "--listen"])
    try:
        third.wait_err("no broadcast peers heard yet")
    finally:
        assert third.signal(signal.SIGTERM) == 143
