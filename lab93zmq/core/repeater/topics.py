"""Rooms' topics, pure: which topic message wins, and when a new one is sent.

A topic is a room message of kind ``topic`` (its content is the topic), kept
and replicated like any other. The room's topic is the one of the greatest
``(sent_at, id)`` among its topic messages: every node applies that one rule,
so two people setting it at once end with the same topic everywhere. A node
setting a topic dates it ``max(now, current topic's sent_at + 1 µs)``, so a
topic set after seeing another always wins.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from ..message import Message

ONE_MICROSECOND = timedelta(microseconds=1)

# (server number or None, topic message): how a board is told a room's topic.
Entry = tuple["int | None", Message]


def wins(new: Message, current: Message | None) -> bool:
    """Does topic message ``new`` replace ``current`` as its room's topic?"""
    return current is None or (new.sent_at, new.id) > (current.sent_at, current.id)


def topic_time(now: datetime, current: Message | None) -> datetime:
    """When a topic set ``now`` is dated, so that it wins over ``current``."""
    if current is None:
        return now
    return max(now, current.sent_at + ONE_MICROSECOND)


class TopicBoard:
    """The current topic of each room, learned lazily from ``lookup`` (the inbox) and
    kept up to date with every topic message stored since."""

    def __init__(self, lookup: Callable[[str], Entry | None]) -> None:
        self._lookup = lookup
        self._entries: dict[str, Entry | None] = {}

    def numbered(self, room: str) -> Entry | None:
        """The room's topic message and its server number (None: not numbered here)."""
        if room not in self._entries:
            self._entries[room] = self._lookup(room)
        return self._entries[room]

    def current(self, room: str) -> Message | None:
        entry = self.numbered(room)
        return None if entry is None else entry[1]

    def consider(self, message: Message, seq: int | None = None) -> bool:
        """A topic message new to the inbox was stored; True when it is its room's topic
        now. (Looked up after the store, the room's topic may be this one already.)"""
        if not message.is_topic:
            return False
        current = self.current(message.room)
        if current is not None and current.id != message.id and not wins(message, current):
            return False
        self._entries[message.room] = (seq, message)
        return True
