"""A client's chains, pure: numbered messages put back in order by their ``prev``.

The server numbers every message it stores from one sequence; a client sees
that sequence through *chains* (the room; the direct messages to or from its
user), and every message it receives names ``prev``, the number before it in
its chain. A chain's *tip* is the last number held with no hole before it: a
message whose ``prev`` is the tip comes next, one whose ``prev`` is further
on waits until what comes before it is here. Chains are kept by name, so a
chain per room is one more name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..message import Message

log = logging.getLogger(__name__)

ROOM, DIRECT = "room", "dm"  # the chains of one client, named as the FETCH header names them
MAX_BUFFER = 20_000  # out-of-order messages a chain holds before it drops them (and fetches)

Numbered = tuple[int, Message]  # (seq, message)


@dataclass(frozen=True)
class Taken:
    """What one message did to its chain: the messages now in order (it, and what
    waited for it), and whether a hole before it is known (fetch it)."""

    arrived: list[Numbered] = field(default_factory=list)
    gap: bool = False


@dataclass
class Chain:
    """One ordered stream a client receives."""

    name: str
    tip: int | None  # the last number held without a hole before it; None: not started
    waiting: dict[int, Numbered] = field(default_factory=dict)  # prev -> (seq, message)

    def take(self, seq: int, prev: int, message: Message) -> Taken:
        """One numbered message: in order (with what waited for it), or kept for later."""
        if self.tip is None or prev > self.tip:
            # Not next in line: keep it until what comes before it is here.
            self.waiting[prev] = (seq, message)
            if len(self.waiting) > MAX_BUFFER:
                self.waiting.clear()  # they will come again with a fetch
            return Taken(gap=self.tip is not None)
        if seq <= self.tip:
            return Taken()  # held already (replay overlapping live)
        if prev < self.tip:
            log.warning(
                "repeater numbering moved (%s %d after %d, tip %d)", self.name, seq, prev, self.tip
            )
        self.tip = seq
        return Taken([(seq, message), *self.drain()])

    def start(self, tip: int) -> list[Numbered]:
        """A chain not started yet starts after ``tip``; what waited for it follows."""
        self.tip = tip
        return self.drain()

    def drain(self) -> list[Numbered]:
        """What waited for the tip, in order; what the tip passed is forgotten."""
        arrived = []
        while self.tip in self.waiting:
            seq, message = self.waiting.pop(self.tip)
            arrived.append((seq, message))
            self.tip = seq
        if self.waiting:
            for stale in [p for p, (s, _) in self.waiting.items() if s <= self.tip]:
                del self.waiting[stale]
        return arrived

    def follow(self, head: int) -> bool:
        """The server says its head is ``head``; below our tip it lost messages:
        follow its numbers from there (True), or we would skip its next ones."""
        if self.tip is None or head >= self.tip:
            return False
        log.warning("the repeater's %s head is %d, below ours (%d)", self.name, head, self.tip)
        self.tip = head
        self.waiting.clear()
        return True


class Chains:
    """Every chain of one client, by name: a fresh client holds the direct chain from
    its start (0) and the room from wherever its first replay begins."""

    def __init__(self) -> None:
        self.by_name: dict[str, Chain] = {ROOM: Chain(ROOM, None), DIRECT: Chain(DIRECT, 0)}

    def __getitem__(self, name: str) -> Chain:
        return self.by_name[name]

    def resume(self, marks: dict[str, int | None] | None) -> None:
        """Take up where the marks saved for this server left off (None: a new client)."""
        for name, tip in (marks or {}).items():
            self.by_name[name].tip = tip

    def follow(self, heads: dict[str, object]) -> bool:
        """The server's heads per chain (WELCOME); True when one is below our tip: the
        server lost messages we hold, and each such chain now follows its numbers."""
        behind = False
        for name, head in heads.items():
            if type(head) is int and self.by_name[name].follow(head):
                behind = True
        return behind

    def tips(self) -> dict[str, int | None]:
        return {name: chain.tip for name, chain in self.by_name.items()}

    def gap(self) -> bool:
        """Something is known to be missing: a message waits for one before it."""
        return any(chain.waiting for chain in self.by_name.values())

    def behind(self, name: str, head: int) -> bool:
        """The server's last number in chain ``name`` is ``head``: do we lack some?
        (Never for a chain not started: its first replay decides where it starts.)"""
        tip = self.by_name[name].tip
        return tip is not None and head > tip
