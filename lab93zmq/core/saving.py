"""Saving a batch of messages, with a one-by-one fallback, for every core. Pure.

A batch goes to the inbox in one transaction. When the inbox refuses it (a
message clashes with a stored one: same origin and number, another id), the
batch is rolled back and saved one by one, so every good message is kept and
each refusal is returned as a conflict for the caller to log or count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .errors import StoreError, StoreFault
from .inbox import Row
from .message import Message


class Saves(Protocol):
    def save_many(self, batch: Sequence[Row]) -> list[bool]: ...


@dataclass(frozen=True)
class SaveResult:
    """For each row, whether it was new; and the rows the inbox refused, with why."""

    fresh: list[bool]
    conflicts: list[tuple[Message, str]] = field(default_factory=list)


def save_batch(inbox: Saves, rows: Sequence[Row]) -> SaveResult:
    try:
        return SaveResult(inbox.save_many(rows))
    except StoreFault:
        raise  # the store fails, not a row: nothing to save one by one
    except StoreError:
        pass
    fresh: list[bool] = []
    conflicts: list[tuple[Message, str]] = []
    for row in rows:
        try:
            fresh += inbox.save_many([row])
        except StoreFault:
            raise
        except StoreError as error:
            conflicts.append((row[0], str(error)))
            fresh.append(False)
    return SaveResult(fresh, conflicts)
