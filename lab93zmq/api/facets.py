"""What both faces of a Node (blocking and asyncio) share without waiting: the rooms
it is in, the topics it has heard, and drafts checked before they are sent."""

from __future__ import annotations

import os
from datetime import datetime, timezone

from ..core.authoring import Draft, checked_drafts
from ..core.errors import MessageError, UsageError
from ..core.events import Topic
from ..core.message import ACTION, check_name, make_id
from ..core.rooms import RoomError, room_name, shown
from ..io.config import NodeConfig
from .pipe import PipeClient


class NodeFacets:
    """Mixed into ``api.node.Node`` and ``aio.Node`` (which set ``node_id``)."""

    node_id: str
    _client: PipeClient

    def _init_facets(self, config: NodeConfig) -> None:
        self.user: str = config.user
        self._joined = list(config.rooms)  # the rooms we are in, the current one first
        self._last_room = config.rooms[0]  # the current room while we are in none

    @property
    def room(self) -> str:
        """The current room: where ``send`` posts unless told otherwise."""
        return self._joined[0] if self._joined else self._last_room

    @property
    def rooms(self) -> list[str]:
        """The rooms this node is in, the current one first."""
        return list(self._joined)

    def topic(self, room: str | None = None) -> Topic | None:
        """The topic of ``room`` (default: the current one) as this node knows it, or
        None (none set, or a room this node is not in)."""
        return self._client.topics.get(self._room_or_current(room))

    def _room_or_current(self, room: str | None) -> str:
        return room_name(room) if room is not None else self.room

    def _room_to_part(self, room: str | None) -> str:
        """The room ``part(room)`` leaves: one this node is in, else RoomError."""
        if not self._joined:
            where = "in no room" if room is None else f"not in {shown(room_name(room))}"
            raise RoomError(room, f"this node is {where}: there is no room to part")
        name = self._room_or_current(room)
        if name not in self._joined:
            rooms = ", ".join(map(shown, self._joined))
            raise RoomError(room, f"this node is not in {shown(name)} (it is in {rooms})")
        return name

    def _now_in(self, room: str) -> None:
        """Joined ``room``: it is the current room now."""
        if room in self._joined:
            self._joined.remove(room)
        self._joined.insert(0, room)

    def _left(self, room: str) -> None:
        if room in self._joined:
            self._joined.remove(room)
        if not self._joined:
            self._last_room = room

    def draft(
        self, text: str, *, subject: str | None = None, to: str | None = None,
        room: str | None = None, id: str | None = None, action: bool = False,
    ) -> Draft:
        """The draft ``send`` would post, checked now (MessageError names a bad field);
        ``action``: an action (/me), shown as "* alice waves"."""
        room = self._room_of_post(to, room)
        sent_at = _utc_now()
        message_id = make_id(sent_at, os.urandom(10)) if id is None else id
        kind = ACTION if action else None
        draft = Draft(message_id, text, subject, to, sent_at, room, kind)
        draft.check(self.user, self._origin)  # every field's own check
        return draft

    def _drafts(
        self, texts: list[str], *, subject: str | None = None, to: str | None = None,
        room: str | None = None, action: bool = False,
    ) -> list[Draft | MessageError]:
        """What ``draft`` makes of each of ``texts`` (the same fields but the text), or
        the MessageError that refuses it: the command line's piped lines, a burst at a
        time, each line's content checked and what they share once."""
        try:
            room = self._room_of_post(to, room)
        except MessageError as error:
            if to is None:
                raise  # not the lines' fault: a room this node is not in
            return [error] * len(texts)  # each line is refused for its addressee
        return checked_drafts(
            texts, subject, to, room, ACTION if action else None, self.user,
            self._origin, _utc_now, os.urandom(10 * len(texts)),
        )  # fmt: skip

    def _room_of_post(self, to: str | None, room: str | None) -> str | None:
        """The room a post goes to: None for a direct message to ``to`` (its name
        checked: MessageError), else ``room`` or the current one."""
        if to is None:
            return self._room_or_current(room)
        check_name(to, "to")
        if room is not None:
            raise UsageError("a direct message (to=...) has no room; give one or the other")
        return None

    @property
    def _origin(self) -> str:
        """Our node id, for a draft's checks (zeros before the node has one)."""
        return self.node_id or "0" * 32


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)
