"""Packing payloads into commands by count and by bytes, for both modes. Pure.

Every command that carries messages (MSG, BATCH, DM, POST, ROOM, DELIVER) is
bounded twice: by how many payloads it carries and by about how many bytes.
The first payload always fits, so a message near the size limit still goes
out, alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass
class Budget:
    """What one command may still carry; ``admits`` before each ``take``."""

    max_count: int
    max_bytes: int
    count: int = 0
    size: int = 0

    def admits(self, nbytes: int) -> bool:
        """True when a payload of ``nbytes`` fits (an empty command takes anything)."""
        if self.count == 0:
            return True
        return self.count < self.max_count and self.size + nbytes <= self.max_bytes

    def take(self, nbytes: int) -> None:
        self.count += 1
        self.size += nbytes

    def fill(self, payloads: list[bytes], more: Iterable[bytes]) -> None:
        """Append ``more`` to ``payloads`` in order while each fits; the first that does
        not ends it (``more`` is read no further: it may be encoded lazily)."""
        for payload in more:
            if not self.admits(len(payload)):
                return
            self.take(len(payload))
            payloads.append(payload)


def pack(payloads: Sequence[bytes], max_count: int, max_bytes: int) -> list[list[bytes]]:
    """``payloads`` in order, as consecutive groups that each fit one command."""
    groups: list[list[bytes]] = []
    budget = Budget(max_count, max_bytes)
    for payload in payloads:
        if not groups or not budget.admits(len(payload)):
            groups.append([])
            budget = Budget(max_count, max_bytes)
        groups[-1].append(payload)
        budget.take(len(payload))
    return groups


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``."""
    if size < 1:
        raise ValueError("a chunk holds at least one item")
    for start in range(0, len(items), size):
        yield items[start : start + size]
