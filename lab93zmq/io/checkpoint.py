"""A server inbox's checkpoints, off the poll loop: a thread with a connection of its own.

SQLite in WAL mode copies the log into the database file at a checkpoint,
and a checkpoint syncs the file: 0.3 ms here when the disk is quiet, 100 ms
and more when other programs keep it busy. In the server's poll loop that
sync was the latency's p99 (a post arriving during it waited), and under
load SQLite's own checkpoint, inside a commit, stalled the commit.

``Checkpointer`` runs PASSIVE checkpoints in a thread of its own, on a
connection of its own that does nothing else: a passive checkpoint never
waits for the writer, and the writer never waits for it (the module
``sqlite3`` lets go of the GIL while SQLite works). The loop asks with
``request`` (setting an event: no I/O); the thread checkpoints at most every
``INTERVAL`` seconds while asked. Its connection is opened read-write on the
file as it was when the inbox opened (never creating one: a deleted inbox
is the node's to notice, by its file watch), and its failures are only
logged: the node's own commits tell every fault of the store.

The inbox connection stays the actor's alone; this one touches only the log.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

INTERVAL = 0.05  # seconds between two checkpoints at most (a sync each: keep the disk calm)
# The inbox connection's own checkpoint (SQLite's default: 1,000 pages), moved up
# while this thread checkpoints: it then runs only if the thread falls behind.
AUTO_CHECKPOINT_PAGES = 4000
OPEN_TIMEOUT = 5.0  # how long ``start`` waits for the thread's connection


class Checkpointer:
    """Checkpoints of the SQLite file at ``path`` in a thread (see the module docstring)."""

    def __init__(self, path: Path, interval: float = INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self.done = 0  # checkpoints run (tests wait on ``ran``)
        self.ran = threading.Condition()
        self._due = threading.Event()
        self._stopping = threading.Event()
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbox-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._opened.wait(OPEN_TIMEOUT)

    def request(self) -> None:
        """A checkpoint is due (cheap: the loop calls this after its commits)."""
        self._due.set()

    def close(self) -> None:
        self._stopping.set()
        self._due.set()
        if self._thread.is_alive():
            self._thread.join(OPEN_TIMEOUT)

    def _run(self) -> None:
        try:
            uri = f"file:{quote(str(self.path))}?mode=rw"
            conn = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None)
        except sqlite3.Error as error:
            log.debug("no checkpoints of %s: %s", self.path, error)
            self._opened.set()
            return
        self._opened.set()
        try:
            while not self._stopping.is_set():
                self._due.wait()
                if self._stopping.is_set():
                    break
                self._due.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as error:  # busy, a full or failing disk: the commits say
                    log.debug("checkpoint of %s: %s", self.path, error)
                with self.ran:
                    self.done += 1
                    self.ran.notify_all()
                self._stopping.wait(self.interval)
        finally:
            conn.close()
