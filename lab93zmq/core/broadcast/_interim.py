"""Stand-ins for core/flood.FloodGate and core/notices.SayOnce until they land on main. Pure.

Same interface as the shared pieces (see notes/shared_modules.md), so adopting
them is an import change; this module goes then.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from ..limits import RateLimiter


class FloodGate:
    """A source may strike ``burst`` times, then ``rate`` a second; past that it is cut off
    for ``penalty`` seconds."""

    def __init__(self, burst: float, rate: float, penalty: float) -> None:
        self._bucket = RateLimiter(rate=rate, burst=burst)
        self.penalty = float(penalty)
        self._cut: dict[Hashable, float] = {}

    def is_cut(self, source: Hashable, now: float) -> bool:
        until = self._cut.get(source)
        return until is not None and now < until

    def strike(self, source: Hashable, now: float) -> bool:
        if self._bucket.allow(source, now) or self.is_cut(source, now):
            return False
        self._cut[source] = now + self.penalty
        return True

    def expire(self, now: float) -> list[Hashable]:
        over = [source for source, until in self._cut.items() if now >= until]
        for source in over:
            del self._cut[source]
        return over

    def next_deadline(self) -> float | None:
        return min(self._cut.values(), default=None)


class SayOnce:
    """True for a key the first time, and again once ``quiet`` seconds passed."""

    def __init__(self, quiet: float, remember: int = 1024) -> None:
        self.quiet = quiet
        self.remember = remember
        self._told: OrderedDict[Hashable, float] = OrderedDict()

    def due(self, key: Hashable, now: float) -> bool:
        told = self._told.get(key)
        if told is not None and now < told + self.quiet:
            self._told.move_to_end(key)
            return False
        self._told[key] = now
        self._told.move_to_end(key)
        while len(self._told) > self.remember:
            self._told.popitem(last=False)
        return True
