"""Every room the server keeps, pure: its topic and size, for ROOMS and first joins.

The server keeps every room anyone posted to. ``RoomDirectory`` knows each
room's current topic (``topics.TopicBoard``, read from the inbox the first
time it is asked and kept up to date by every commit) and how many messages
it holds (read from the inbox at the first ROOMS, counted on from there);
with ``ServerMembership`` it answers ROOMS in ROOMLIST pages that each fit a header.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from ..batching import Budget
from ..inbox import ServerInbox
from ..wire import Command
from .commands import RepeaterVerb
from .commit import Numbered
from .topics import TopicBoard

# A ROOMLIST page's rooms: a hundred rooms with long topics in any script (six
# bytes a character once JSON escapes them) still fit 64 KiB headers, in pages.
PAGE_BYTES = 48 * 1024
PAGE_ROOMS = 500


class RoomDirectory:
    """The rooms of one server's inbox."""

    def __init__(self, inbox: ServerInbox) -> None:
        self.inbox = inbox
        self.server_id = inbox.node_id
        self.topics = TopicBoard(lambda room: inbox.numbered_topic(self.server_id, room))
        self._sizes: dict[str, int] | None = None  # messages per room, once asked

    def stored(self, fresh: Sequence[Numbered]) -> None:
        """A commit stored these (numbered) messages. (Its hot path: little per message.)"""
        sizes = self._sizes
        for numbered in fresh:
            message = numbered.post.message
            if message.kind is not None:
                self.topics.consider(message, numbered.seq)
            if sizes is not None and message.room is not None:
                sizes[message.room] = sizes.get(message.room, 0) + 1

    def sizes(self) -> dict[str, int]:
        if self._sizes is None:
            self._sizes = {
                room: count for room, (count, _) in self.inbox.room_heads(self.server_id).items()
            }
        return self._sizes

    def listing(self, occupied: Mapping[str, int]) -> list[dict]:
        """Every room with messages or with someone in it, sorted by name."""
        sizes = self.sizes()
        entries = []
        for room in sorted(sizes.keys() | occupied.keys()):
            topic = self.topics.current(room)
            entries.append(
                {
                    "name": room,
                    "users": occupied.get(room, 0),
                    "topic": None if topic is None else topic.content,
                    "messages": sizes.get(room, 0),
                }
            )
        return entries

    def pages(self, occupied: Mapping[str, int]) -> list[Command]:
        """The answer to ROOMS: ROOMLIST pages, each ``more`` but the last."""
        groups: list[list[dict]] = [[]]
        budget = Budget(PAGE_ROOMS, PAGE_BYTES)
        for entry in self.listing(occupied):
            size = len(json.dumps(entry))  # as Command.frames writes it (ASCII escapes)
            if not budget.admits(size):
                groups.append([])
                budget = Budget(PAGE_ROOMS, PAGE_BYTES)
            groups[-1].append(entry)
            budget.take(size)
        return [
            RepeaterVerb.ROOMLIST.command({"rooms": group, "more": index < len(groups) - 1})
            for index, group in enumerate(groups)
        ]
