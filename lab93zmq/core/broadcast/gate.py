"""Bad input, held against its source: counted, logged, and past a limit cut off. Pure.

A source of bad input (frames that do not parse, bad or spoofed messages;
each frame list counts once) may send FLOOD_BURST of them, then FLOOD_RATE a
second; past that it is cut off for ``penalty`` seconds: whatever it sends is
ignored, and the facade closes its links (and links it again once the
penalty is over, if it is still live). An honest peer sends none at all.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from ..flood import FloodGate
from .actions import RouterPeer
from .faults import Fault
from .trust import KeyTrust, Source

log = logging.getLogger(__name__)

FLOOD_BURST = 20
FLOOD_RATE = 2.0
PENALTY = 30.0


class Gate:
    """The flood cut-off of one node, over the sources ``KeyTrust`` names."""

    def __init__(self, trust: KeyTrust, stats: Counter[str], penalty: float = PENALTY) -> None:
        self.trust = trust
        self.stats = stats
        self.flood = FloodGate(FLOOD_BURST, FLOOD_RATE, penalty)
        self.penalty = self.flood.penalty  # at least as long as the bucket takes to refill

    def source(self, via: str | None, via_name: str | None,
               sender: RouterPeer | None) -> Source | None:
        """Whom a frame list's bad input counts against (``KeyTrust.source``)."""
        if sender is None:
            return self.trust.source(via, via_name, None, None)
        return self.trust.source(via, via_name, sender.user_id, sender.conn)

    def admits(self, source: Source | None, now: float) -> bool:
        """False (counted) while ``source`` is cut off: drop what it sent unread."""
        if source is not None and self.flood.is_cut(source, now):
            self.stats["cut_off_frames"] += 1
            return False
        return True

    def is_cut(self, source: Source, now: float) -> bool:
        return self.flood.is_cut(source, now)

    def judge(self, faults: Sequence[Fault], source: Source | None, now: float) -> bool:
        """Count and log what one frame list did wrong and strike its source once, if any
        of it is held against it; True when this strike cuts the source off."""
        for fault in faults:
            self.stats[fault.stat] += 1
            log.log(fault.level, "%s", fault.text)
        if source is None or not any(fault.strike for fault in faults):
            return False
        if not self.flood.strike(source, now):
            return False
        self.stats["cut_offs"] += 1
        return True

    def cut_text(self, source: Source, name: str | None) -> str:
        """What the user hears about a cut-off (once per cut-off); ``name`` is the linked
        peer's, when it was one."""
        kind, who = source
        if name is None:
            name = str(who) if kind == "key" else "a connection"
        text = f"{name} sent too many bad messages; ignored for {self.penalty:g} s"
        log.info("%s (%s)", text, source)  # the user hears it as a notice
        return text

    def over(self, now: float) -> list[Source]:
        """The cut-offs that ended by ``now``."""
        ended = self.flood.expire(now)
        for source in ended:
            log.info("the cut-off of %s is over", source)
        return ended  # type: ignore[return-value]

    def next_deadline(self) -> float | None:
        return self.flood.next_deadline()
