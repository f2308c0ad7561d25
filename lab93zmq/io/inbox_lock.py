"""One running node per inbox: a lock file beside it, held while the node runs.

Two nodes on one inbox would number their messages from the same counters and
each take the other's outbox for its own, so the second is refused. The lock
is ``flock(2)`` on ``INBOX.lock``: the kernel drops it however the process
ends (even ``kill -9``), so a file left behind never blocks anyone. The holder
writes its pid into it, so the refusal can name the other process. Reading an
inbox (``--history``) takes no lock: SQLite's WAL lets it read beside a node.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..core.errors import StoreError
from .paths import prepare_parent


class InboxLock:
    """``with InboxLock(db_path):`` runs the body as the only node on that inbox."""

    def __init__(self, db_path: Path, shared: bool = False) -> None:
        """``shared``: the store is a database several servers use at once (PostgreSQL):
        there is no file to lock, and this lock holds nothing."""
        self.db_path = db_path
        self.path = db_path.with_name(db_path.name + ".lock")
        self.shared = shared
        self._fd: int | None = None

    def acquire(self) -> None:
        if self.shared:
            return
        prepare_parent(self.path)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise StoreError(f"cannot lock the inbox {self.db_path}: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise StoreError(
                f"the inbox {self.db_path} is in use by another lab93-node{pid}; stop it"
                " first, or give this one an inbox of its own with --db"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the lock
            self._fd = None

    def __enter__(self) -> InboxLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
