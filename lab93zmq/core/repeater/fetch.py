"""When a client asks the server for what it lacks (FETCH), pure: one explicit state.

The schedule is always in exactly one of four states:

========== ==================================================================
IDLE       nothing is known to be missing
WANTED     something is missing: ask as soon as the client is ready
BACKOFF    something is missing, but the last answer did not help (or the
           FETCH could not be sent): ask again at ``at``
IN_FLIGHT  a FETCH went out at ``at``; its answer is awaited (until ``at`` +
           the liveness bound, then it counts as lost and is WANTED again)
========== ==================================================================

Transitions (``FetchSchedule``'s methods)::

    want         IDLE -> WANTED                  (other states: unchanged)
    sent         any -> IN_FLIGHT(now)
    answered     IN_FLIGHT -> IDLE | WANTED | BACKOFF(now + retry)
    unsent       any -> BACKOFF(now + retry)     (the DEALER was full)
    expire       IN_FLIGHT(t) -> WANTED          when now >= t + bound
    reset        any -> IDLE                     (the connection is gone)

A want while IN_FLIGHT is not kept: the answer itself says whether anything
is still missing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .commands import BATCH_LIMIT, RepeaterVerb
from .outputs import SendToServer


class FetchState(enum.Enum):
    IDLE = "idle"
    WANTED = "wanted"
    BACKOFF = "backoff"
    IN_FLIGHT = "in flight"


@dataclass(frozen=True)
class _At:
    state: FetchState
    at: float | None = None  # BACKOFF: ask again then; IN_FLIGHT: sent then


_IDLE = _At(FetchState.IDLE)
_WANTED = _At(FetchState.WANTED)


class FetchSchedule:
    """The fetch schedule of one connection; ``retry`` is how long a BACKOFF lasts,
    ``limit`` how many messages one FETCH asks for."""

    def __init__(self, retry: float, limit: int = BATCH_LIMIT) -> None:
        self.retry = retry
        self.limit = limit
        self._now = _IDLE

    def request(self, rooms: dict[str, dict], dm: int, now: float) -> SendToServer:
        """The FETCH for what follows where the client stands in each room (``rooms``,
        as ``Chains.stands`` says) and its direct tip ``dm`` (sent now: IN_FLIGHT)."""
        self.sent(now)
        header = {"rooms": rooms, "dm": dm, "limit": self.limit}
        return SendToServer(RepeaterVerb.FETCH.command(header))

    @property
    def state(self) -> FetchState:
        return self._now.state

    @property
    def in_flight(self) -> bool:
        return self._now.state is FetchState.IN_FLIGHT

    def want(self) -> None:
        if self._now.state is FetchState.IDLE:
            self._now = _WANTED

    def sent(self, now: float) -> None:
        self._now = _At(FetchState.IN_FLIGHT, now)

    def answered(self, *, missing: bool, helped: bool, now: float) -> None:
        """A BATCH came (and said no more follows): is something still ``missing``, and
        did this answer bring anything (``helped``: then ask again at once)?"""
        if not missing:
            self._now = _IDLE
        elif helped:
            self._now = _WANTED
        else:
            self._now = _At(FetchState.BACKOFF, now + self.retry)

    def unsent(self, now: float) -> None:
        self._now = _At(FetchState.BACKOFF, now + self.retry)

    def expire(self, now: float, bound: float) -> None:
        """An answer not here ``bound`` seconds after its FETCH was lost: ask again."""
        if self.in_flight and now >= self._now.at + bound:
            self._now = _WANTED

    def reset(self) -> None:
        self._now = _IDLE

    def due(self, now: float) -> bool:
        """Should a FETCH go out now?"""
        state = self._now.state
        return state is FetchState.WANTED or (state is FetchState.BACKOFF and now >= self._now.at)

    def next_deadline(self, bound: float) -> float | None:
        """When the schedule changes by itself: a BACKOFF ends, a FETCH counts as lost."""
        if self._now.state is FetchState.BACKOFF:
            return self._now.at
        if self._now.state is FetchState.IN_FLIGHT:
            return self._now.at + bound
        return None
