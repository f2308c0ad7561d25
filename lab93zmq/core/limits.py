"""Per-source rate limits: a token bucket for each sender, in bounded memory. Pure.

Nothing here reads a clock: every call takes ``now`` (monotonic seconds), so
the behaviour is tested exactly. The I/O edges (``beacon.py``) pass the time.

Each source (any hashable: an ``(ip, port)`` pair for UDP) has a bucket
holding up to ``burst`` tokens, refilled at ``rate`` tokens a second; an
event costs one token and is refused when the bucket is empty. A source that
has been idle long enough to refill completely is indistinguishable from a
new one, so it is forgotten; and at most ``max_sources`` are tracked at once -
past that the least recently seen source is forgotten, which can only make
the limiter more lenient towards it, never refuse an honest newcomer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import NamedTuple


class Verdict(NamedTuple):
    """The answer for one event, and where it falls in a *cut-off period*.

    A cut-off period starts with a source's first refused event and ends when
    its bucket is full again (it kept within its rate for ``burst / rate``
    seconds) - not at the next allowed event, so a steady flood, which is
    allowed one event each time a token comes back, is one period.

    ``streak``: for a refused event, how many this period has refused, this
    one included (1: a period starts - say so once); for an allowed event,
    how many the period that has just ended refused (0: none ended here).
    """

    allowed: bool
    streak: int


@dataclass
class _Bucket:
    tokens: float
    stamp: float  # when ``tokens`` was last brought up to date
    refused: int = 0  # refused in the current cut-off period (0: none is running)


class RateLimiter:
    """A token bucket per source: ``rate`` events a second, bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: float, max_sources: int = 1024) -> None:
        if not rate > 0:
            raise ValueError("the rate must be positive")
        if not burst >= 1:
            raise ValueError("the burst must allow at least one event")
        if type(max_sources) is not int or max_sources < 1:
            raise ValueError("max_sources must be a whole number from 1 up")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_sources = max_sources
        # After this long without an event a bucket is full again: nothing to remember.
        self.idle_after = self.burst / self.rate
        # Least recently seen first, so idle sources are found at the front.
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self.refused_total = 0

    @property
    def tracked(self) -> int:
        """How many sources are tracked now.

        A property, not ``__len__``: a limiter with no sources yet must not be
        falsy, or ``limiter or RateLimiter(...)`` would quietly replace it.
        """
        return len(self._buckets)

    def __contains__(self, source: object) -> bool:
        return source in self._buckets

    def allow(self, source: Hashable, now: float) -> bool:
        """Take one token from ``source``'s bucket; False when it is empty (drop the event)."""
        return self.check(source, now).allowed

    def check(self, source: Hashable, now: float) -> Verdict:
        """``allow``, with where the event falls in a cut-off period (see ``Verdict``)."""
        bucket = self._buckets.get(source)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[source] = _Bucket(self.burst, now)
        else:
            self._buckets.move_to_end(source)
            # A clock that steps back must not mint tokens (or take them away).
            elapsed = max(0.0, now - bucket.stamp)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
            bucket.stamp = max(bucket.stamp, now)
        ended = 0
        if bucket.refused and bucket.tokens >= self.burst:
            ended, bucket.refused = bucket.refused, 0  # full again: the period is over
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return Verdict(True, ended)
        bucket.refused += 1
        self.refused_total += 1
        return Verdict(False, bucket.refused)

    def forget_idle(self, now: float) -> int:
        """Forget every source idle long enough to have a full bucket; return how many.

        Bounded by the number tracked: the scan stops at the first source
        still refilling, since they are ordered by when they were last seen.
        """
        forgotten = 0
        while self._buckets:
            source, bucket = next(iter(self._buckets.items()))
            if now - bucket.stamp < self.idle_after:
                break
            del self._buckets[source]
            forgotten += 1
        return forgotten

    def _make_room(self, now: float) -> None:
        self.forget_idle(now)
        while len(self._buckets) >= self.max_sources:
            self._buckets.popitem(last=False)  # the least recently seen
