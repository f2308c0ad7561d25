"""The poll loop's side of a node's store: the watch on its file, and the order told by others.

Every node's shell calls ``tick(now)`` each turn (the shell owns the clock):
every ``WATCH_EVERY`` seconds it checks that the inbox path still names the
file the node opened (``Inbox.verify``), so a deleted or replaced inbox is
noticed within seconds even when nothing is written (each commit checks too).

A server on PostgreSQL also listens for the commits of the other servers of
its service (``pg_store.OrderListener``): the listener's socket is polled
beside the ZeroMQ sockets, and ``order_moved`` says when to read the order.
The listener is connected again when the database comes back; and the order
is read every ``FOLLOW_EVERY`` seconds anyway, in case a notification was
missed while it was away.
"""

from __future__ import annotations

from typing import Any

import zmq

WATCH_EVERY = 1.0  # seconds between checks that the inbox file is still the one opened
FOLLOW_EVERY = 1.0  # seconds between reads of the shared order when nothing was told
RELISTEN_EVERY = 1.0  # seconds between attempts to listen again


class StoreEdge:
    """One node's store as its poll loop sees it (see the module docstring)."""

    def __init__(self, store: Any, poller: zmq.Poller | None, now: float) -> None:
        self.store = store
        self.poller = poller
        self._next_watch = now + WATCH_EVERY
        make = getattr(store, "listener", None)
        self.listener = make() if make is not None and poller is not None else None
        self._fd: int | None = None
        self._next_follow = now
        self._next_listen = now
        if self.listener is not None:
            self._listen(now)

    @property
    def shared(self) -> bool:
        """True when other servers write the same order (PostgreSQL)."""
        return self.listener is not None

    def next_deadline(self) -> float:
        deadline = self._next_watch
        if self.listener is not None:
            deadline = min(deadline, self._next_follow)
        return deadline

    def tick(self, now: float) -> None:
        """Check the file when due (raises StoreLost)."""
        if now >= self._next_watch:
            self._next_watch = now + WATCH_EVERY
            self.store.verify()

    def order_moved(self, ready: dict, now: float) -> bool:
        """True when the order should be read now: a commit was told, or it is time."""
        listener = self.listener
        if listener is None:
            return False
        told = self._fd is not None and bool(ready.get(self._fd)) and listener.take()
        if listener.fileno() != self._fd:  # it broke: forget its socket
            self._unregister()
        if self._fd is None and now >= self._next_listen:
            self._listen(now)
        if told or now >= self._next_follow:
            self._next_follow = now + FOLLOW_EVERY
            return True
        return False

    def _listen(self, now: float) -> None:
        self._next_listen = now + RELISTEN_EVERY
        if self.listener.connect():
            self._fd = self.listener.fileno()
            self.poller.register(self._fd, zmq.POLLIN)
            self._next_follow = now  # read what was missed meanwhile

    def _unregister(self) -> None:
        if self._fd is not None:
            try:
                self.poller.unregister(self._fd)
            except KeyError:
                pass
            self._fd = None

    def close(self) -> None:
        if self.listener is not None:
            self._unregister()
            self.listener.close()
