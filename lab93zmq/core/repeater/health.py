"""Whether the server's store works, pure: refuse posts while it fails, tell it once.

A store that fails (a full or read-only disk, PostgreSQL out of reach) is not
asked again for every post: for ``RETRY`` seconds after a failure posts are
refused at once (ERROR ``unavailable``; they wait in their clients'
outboxes), then the next batch tries it again. Nothing is restarted: the
first commit that works again ends the fault. The operator is told once when
it starts (per cause) and once when it ends.
"""

from __future__ import annotations

import logging

from ..events import Notice
from .commit import RETRY

log = logging.getLogger(__name__)


class StoreHealth:
    """``fault``: why the store fails now (None: it works)."""

    def __init__(self, now: float, retry: float = RETRY) -> None:
        self.fault: str | None = None
        self.retry = retry
        self._retry_at = now

    def refusing(self, now: float) -> bool:
        """True while posts are refused without asking the store."""
        return self.fault is not None and now < self._retry_at

    def failed(self, reason: str, now: float) -> list[Notice]:
        self._retry_at = now + self.retry
        if reason == self.fault:
            return []
        self.fault = reason
        log.warning("the store fails: %s", reason)
        return [
            Notice(
                f"the repeater's store fails: {reason}; new posts are refused (they wait in"
                " their clients' outboxes) until it works again"
            )
        ]

    def worked(self) -> list[Notice]:
        if self.fault is None:
            return []
        self.fault = None
        log.warning("the store works again")
        return [Notice("the repeater's store works again; posts are stored")]
