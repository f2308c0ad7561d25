"""Which frames from the ROUTER the server reads, pure: flood cut-off, costly commands,
and clients of another protocol version.

A session may send ``BAD_BURST`` bad commands in a burst, then ``BAD_RATE`` a
second; past that it is cut off: its frames are ignored (no ERROR replies
either: answering garbage would amplify it) for ``CUT_OFF`` seconds. Commands
that make the server read its inbox or list (HELLO, FETCH, ROOMS, WHO) are
allowed ``COSTLY_RATE`` a second per session in bursts of ``COSTLY_BURST``;
beyond that they are dropped unanswered, and an honest client asks again.

A lab93-node 0.1 client (protocol 1) saying HELLO is told, once per node id a
minute and in protocol 1's framing so that it can read it, that this server
speaks protocol 2; everything else it sends is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..flood import FloodGate
from ..limits import RateLimiter
from ..notices import SayOnce
from ..wire import PROTOCOL_VERSION, Command
from .commands import (
    LEGACY_VERSION,
    ErrorCode,
    RepeaterVerb,
    error,
    legacy_hello_node,
    other_version,
    refusal_code,
)
from .outputs import ReplyTo, ServerOutput

log = logging.getLogger(__name__)

BAD_BURST = 50
BAD_RATE = 5.0
CUT_OFF = 30.0
COSTLY = frozenset({RepeaterVerb.HELLO, RepeaterVerb.FETCH, RepeaterVerb.ROOMS, RepeaterVerb.WHO})
COSTLY_RATE = 100.0
COSTLY_BURST = 500


def upgrade_sentence(version: int) -> str:
    """What a client of protocol ``version`` is told (0.1 shows "the repeater says: ...")."""
    old = " (lab93-node 0.1)" if version == LEGACY_VERSION else ""
    return (
        f"this repeater speaks lab93 protocol {PROTOCOL_VERSION} (rooms); your lab93-node speaks"
        f" protocol {version}{old}: upgrade it to talk to this repeater"
    )


class Admission:
    """The server's gate for frames; counts in the ``stats`` it is handed."""

    def __init__(self, stats: dict[str, int]) -> None:
        self.stats = stats
        self._flood = FloodGate(BAD_BURST, BAD_RATE, CUT_OFF)
        self._costly = RateLimiter(COSTLY_RATE, COSTLY_BURST)
        self._said = SayOnce()

    def ignored(self, identity: bytes, now: float) -> bool:
        """Is this session cut off now (its frames ignored)?"""
        if self._flood.is_cut(identity, now):
            self.stats["ignored"] += 1
            return True
        return False

    def throttled(self, identity: bytes, verb: RepeaterVerb, now: float) -> bool:
        """Is this costly command over the session's rate (dropped unanswered)?"""
        if verb not in COSTLY or self._costly.allow(identity, now):
            return False
        self.stats["throttled"] += 1
        if self._said.due(("throttled", identity, verb), now):
            log.warning("session %s sends %s too fast; dropping", identity.hex(), verb.value)
        return True

    def undecodable(
        self, identity: bytes, frames: Sequence[bytes], problem: str, now: float
    ) -> tuple[list[ServerOutput], bool]:
        """Frames ``wire.decode`` refused: the answer, and whether the session is cut off."""
        version = other_version(frames)
        if version is None or version > PROTOCOL_VERSION:
            return self.bad(identity, now, error(refusal_code(frames), problem))
        # An older client: told once a minute per node, in its own framing; never an
        # ERROR for each of its PINGs or POSTs (it reconnects and says HELLO again).
        # Its frames count against the flood gate like any others it cannot read.
        self.stats["errors"] += 1
        if self._flood.strike(identity, now):
            self.stats["cut_off"] += 1
            return [], True
        node = legacy_hello_node(frames) if version == LEGACY_VERSION else None
        if node is None or not self._said.due(("version", node), now):
            return [], False
        log.warning("node %s speaks lab93 protocol %d; told it to upgrade", node, version)
        reply = error(ErrorCode.VERSION, upgrade_sentence(version))
        return [ReplyTo(identity, reply, legacy=True)], False

    def bad(self, identity: bytes, now: float, reply: Command) -> tuple[list[ServerOutput], bool]:
        """Answer a bad command with ERROR - unless the session floods: then cut it off
        (True) and say nothing."""
        self.stats["errors"] += 1
        if not self._flood.strike(identity, now):
            return [ReplyTo(identity, reply)], False
        self.stats["cut_off"] += 1
        return [], True

    def cut(self, now: float) -> list[bytes]:
        return self._flood.cut(now)  # type: ignore[return-value]

    def expire(self, now: float) -> None:
        self._flood.expire(now)
        self._costly.forget_idle(now)
