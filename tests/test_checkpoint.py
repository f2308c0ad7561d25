"""A server inbox's checkpoints in their own thread (io/checkpoint.py)."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from factories import make_message

from lab93zmq.io.store import Inbox

pytestmark = pytest.mark.timeout(30)


def rows_in_file_alone(path, copy):
    """The messages the database file holds without its write-ahead log."""
    shutil.copyfile(path, copy)
    with sqlite3.connect(copy) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        if "message" not in tables:
            return 0
        return db.execute("SELECT COUNT(*) FROM message").fetchone()[0]


def wait_for_checkpoints(inbox, count):
    checkpoints = inbox._checkpoints
    with checkpoints.ran:
        assert checkpoints.ran.wait_for(lambda: checkpoints.done >= count, timeout=10)


def test_checkpoint_soon_copies_the_log_into_the_file(tmp_path):
    path = tmp_path / "server.db"
    with Inbox(path) as inbox:
        inbox.checkpoint_soon()  # the schema, into the file
        wait_for_checkpoints(inbox, 1)
        inbox.save_many([(make_message(n), None, None) for n in range(1, 301)])
        assert rows_in_file_alone(path, tmp_path / "before.db") == 0  # still in the log only
        inbox.checkpoint_soon()
        wait_for_checkpoints(inbox, 2)
        assert rows_in_file_alone(path, tmp_path / "after.db") == 300
        assert inbox.count() == 300


def test_the_checkpoint_thread_never_makes_a_deleted_inbox_again(tmp_path):
    path = tmp_path / "server.db"
    inbox = Inbox(path)
    try:
        path.unlink()
        for suffix in ("-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        inbox.checkpoint_soon()  # its connection opens read-write only: no file appears
    finally:
        inbox.close()
    assert not path.exists()


def test_close_stops_the_thread(tmp_path):
    inbox = Inbox(tmp_path / "server.db")
    inbox.checkpoint_soon()
    thread = inbox._checkpoints._thread
    inbox.close()
    assert not thread.is_alive()
