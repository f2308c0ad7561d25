"""lab93-node in shell pipelines, with real pipes: what a script sees on stdout and stderr,
and the exit status."""

from __future__ import annotations

import subprocess
import sys

import pytest
from factories import make_message
from procs import NodeProcess

from lab93zmq.io.store import Inbox

pytestmark = pytest.mark.timeout(60)

NODE = [sys.executable, "-m", "lab93zmq"]


def into_head(argv: list[str]) -> tuple[int, str, str]:
    """``lab93-node ARGV | head -1``: lab93-node's status and stderr, and what head printed."""
    node = subprocess.Popen(
        [*NODE, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    head = subprocess.Popen(["head", "-1"], stdin=node.stdout, stdout=subprocess.PIPE, text=True)
    node.stdout.close()  # head holds the only reading end now
    first, _ = head.communicate(timeout=30)
    err = node.stderr.read()
    node.stderr.close()
    return node.wait(30), err, first


@pytest.fixture
def big_inbox(tmp_path):
    """More history than a pipe holds (64 KiB), so the writer meets the closed pipe."""
    db = tmp_path / "inbox.db"
    with Inbox(db) as inbox:
        rows = [(make_message(n, f"line {n} " + "x" * 80), None, None) for n in range(1, 2001)]
        inbox.save_many(rows)
    return db


@pytest.mark.parametrize("form", [[], ["--json"]])
def test_history_into_head_is_quiet(big_inbox, form):
    status, err, first = into_head(["--history", "--db", str(big_inbox), *form])
    assert "line 1 " in first
    assert err == ""  # no BrokenPipeError, no "Exception ignored" at exit
    assert status == 141  # 128 + SIGPIPE, as for `git log | head -1`


def test_listen_json_into_head_is_quiet(tmp_path, beacon_port):
    beacon = str(beacon_port)

    def args(user: str) -> list[str]:
        db = str(tmp_path / f"{user}.db")
        return ["-b", "-i", "lo", "--beacon-port", beacon, "-p", "0", "--db", db, "-u", user]

    listener = subprocess.Popen(
        [*NODE, *args("listener"), "--listen", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    head = subprocess.Popen(
        ["head", "-1"], stdin=listener.stdout, stdout=subprocess.PIPE, text=True
    )
    listener.stdout.close()
    try:
        first = NodeProcess([*args("alice"), "--send", "first"])
        assert first.finish() == 0, first.err
        line, _ = head.communicate(timeout=30)
        assert '"content": "first"' in line
        # head has gone: the next message meets the closed pipe.
        second = NodeProcess([*args("alice"), "--send", "second", "--timeout", "5"])
        second.finish()
        status = listener.wait(30)
        err = listener.stderr.read()
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait(10)
        listener.stderr.close()
    assert status == 141
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception" not in err


def test_a_refused_piped_line_makes_the_run_exit_1_naming_it(tmp_path, beacon_port):
    beacon = str(beacon_port)

    def args(user: str) -> list[str]:
        db = str(tmp_path / f"{user}.db")
        return ["-b", "-i", "lo", "--beacon-port", beacon, "-p", "0", "--db", db, "-u", user]

    bob = NodeProcess([*args("bob"), "--listen", "--json"])
    try:
        bob.wait_err("no broadcast peers heard yet")
        alice = NodeProcess(args("alice"), stdin=True)
        alice.write("hello")
        alice.write("x" * 65_537)  # one byte over the limit of a message
        alice.write("bye")
        alice.close_stdin()
        assert alice.finish() == 1
        bob.wait_for(lambda p: len(p.out) >= 2, "the two good lines")
    finally:
        bob.kill()
    assert alice.err[-1] == "lab93-node: 1 of 3 messages was refused and not sent (line 2)"
    assert any("not sent: " in line and "longer than 65536 bytes (line 2: " in line
               for line in alice.err)
    assert [line.count('"content"') for line in bob.out] == [1, 1]
