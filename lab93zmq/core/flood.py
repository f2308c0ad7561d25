"""The flood cut-off, for both modes: a source of too much bad input is ignored. Pure.

An honest peer sends no bad input at all; a broken or hostile one may send
frames that do not parse, spoofed messages or unknown commands as fast as
the network allows, and answering or even logging each would amplify it. So
each *strike* (one unit of bad input) takes a token from the source's bucket
(``limits.RateLimiter``: ``burst`` at once, then ``rate`` a second); a strike
that finds the bucket empty cuts the source off for ``penalty`` seconds:
everything it sends is ignored until then. The verdict is returned to the
caller, which decides what a cut-off means (close a link, drop a session).
"""

from __future__ import annotations

from collections.abc import Hashable

from .limits import RateLimiter


class FloodGate:
    """Strikes per source, and the sources cut off until when."""

    def __init__(self, burst: float, rate: float, penalty: float) -> None:
        self._limiter = RateLimiter(rate=rate, burst=burst)
        # The bucket refills in burst / rate seconds: a shorter penalty would let a
        # flooder in again with a full bucket's worth of strikes before the next cut.
        self.penalty = max(float(penalty), burst / rate)
        self._until: dict[Hashable, float] = {}

    def is_cut(self, source: Hashable, now: float) -> bool:
        until = self._until.get(source)
        return until is not None and now < until

    def strike(self, source: Hashable, now: float) -> bool:
        """One unit of bad input from ``source``; True when this strike cuts it off."""
        if self.is_cut(source, now) or self._limiter.allow(source, now):
            return False
        self._until[source] = now + self.penalty
        return True

    def expire(self, now: float) -> list[Hashable]:
        """The sources whose cut-off ended at or before ``now`` (forgotten from here)."""
        over = [source for source, until in self._until.items() if now >= until]
        for source in over:
            del self._until[source]
        return over

    def cut(self, now: float) -> list[Hashable]:
        """The sources cut off at ``now``."""
        return [source for source, until in self._until.items() if now < until]

    def next_deadline(self) -> float | None:
        return min(self._until.values(), default=None)
