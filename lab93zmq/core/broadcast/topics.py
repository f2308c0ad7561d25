"""Each room's topic: which topic message wins, and when a new one changes it. Pure.

A topic is a room message of kind ``topic`` (its content is the topic), stored
and replicated like any other. The room's topic is the one with the greatest
(sent_at, id) - the same rule on every node, so two topics set at once end
the same everywhere. A node setting a topic dates it after the topic it knows
(``date``), so a topic set after seeing another always wins.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..events import Topic
from ..inbox import BroadcastInbox
from ..message import Message

TICK = timedelta(microseconds=1)  # the smallest step a message's time can take


def rank(message: Message) -> tuple[datetime, str]:
    """What decides between two topics of a room: the greater wins."""
    return message.sent_at, message.id


class Topics:
    """The winning topic message of each room we asked about, read from the inbox once."""

    def __init__(self, store: BroadcastInbox) -> None:
        self.store = store
        self._current: dict[str, Message | None] = {}

    def current(self, room: str) -> Message | None:
        if room not in self._current:
            self._current[room] = self.store.current_topic(room)
        return self._current[room]

    def text(self, room: str) -> str | None:
        topic = self.current(room)
        return topic.content if topic is not None else None

    def event(self, room: str) -> Topic | None:
        topic = self.current(room)
        return Topic.of(topic) if topic is not None else None

    def offer(self, message: Message) -> Topic | None:
        """A topic message of ``message.room`` was stored: the TOPIC event when it wins."""
        room = message.room
        assert room is not None and message.is_topic
        known = self.current(room)
        if known is not None and rank(known) >= rank(message):
            return None
        self._current[room] = message
        return Topic.of(message)

    def date(self, room: str, wanted: datetime) -> datetime:
        """When a topic set now in ``room`` is dated: ``wanted``, or just after the topic
        it replaces if that one is dated later (clocks differ)."""
        known = self.current(room)
        if known is not None and known.sent_at >= wanted:
            return known.sent_at + TICK
        return wanted
