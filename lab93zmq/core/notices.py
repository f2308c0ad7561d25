"""Saying a thing once: one policy for every repeated notice and log line. Pure.

A peer that fails a handshake retries every fraction of a second, a forged
beacon arrives hundreds of times a second, a server that refuses posts
refuses each one: a user must hear each such thing once, not once per
datagram. The one policy, in both modes: a thing (any hashable key) is told
the first time it comes up, and again only after ``quiet`` seconds in which
it was not told — so a problem that persists is recalled once a minute, and
one that comes back after a while is told again.

Memory is bounded: past ``remember`` keys the least recently told is
forgotten (it may then be told once more, which is harmless).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

QUIET = 60.0  # seconds before the same thing is told again
REMEMBER = 1024


class SayOnce:
    """Which things are due to be told now; ``due`` answers and remembers."""

    def __init__(self, quiet: float = QUIET, remember: int = REMEMBER) -> None:
        if quiet < 0:
            raise ValueError("quiet is a number of seconds, not negative")
        if remember < 1:
            raise ValueError("remember at least one thing")
        self.quiet = float(quiet)
        self.remember = remember
        self._told: OrderedDict[Hashable, float] = OrderedDict()  # key -> when last told

    def due(self, key: Hashable, now: float) -> bool:
        """True when ``key`` is to be told now (and remember that it was)."""
        told = self._told.get(key)
        if told is not None and now < told + self.quiet:
            return False
        self._told[key] = now
        self._told.move_to_end(key)
        while len(self._told) > self.remember:
            self._told.popitem(last=False)
        return True

    def forget(self, key: Hashable) -> None:
        """Tell ``key`` again the next time it comes up (the situation changed)."""
        self._told.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._told
