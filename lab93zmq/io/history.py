"""The HISTORY and OUTBOX answers, the same for every actor: the newest messages of
its inbox, and what it still waits to deliver.

The request's ``limit`` (see actor.py) is a whole number N >= 0: the newest N
messages, oldest first (0: none); absent or null: every message. Anything
else is a front end's mistake: it is logged and answered as "every message".
Its ``room``, when it names one, keeps only that room's messages (a name that
is not a room's is logged and answered with none).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ..core.message import Message
from ..core.rooms import RoomError, check_room

log = logging.getLogger(__name__)


class HistorySource(Protocol):
    def history(
        self, limit: int | None = None, room: str | None = None, chat_only: bool = False
    ) -> list[Message]: ...

    def outbox(self) -> list[Message]: ...


def history_limit(body: dict[str, Any]) -> int | None:
    """The ``limit`` of a HISTORY request: a whole number >= 0, or None for all."""
    limit = body.get("limit")
    if limit is None or (type(limit) is int and limit >= 0):
        return limit
    log.warning("a HISTORY limit of %r is not a whole number >= 0; answering with all", limit)
    return None


def answer_history(inbox: HistorySource, body: dict[str, Any]) -> dict[str, Any]:
    """The body of the HISTORY_RESULT for a HISTORY request ``body``."""
    room = body.get("room")
    if room is not None:
        try:
            room = check_room(room)
        except RoomError as error:
            log.warning("a HISTORY request for no room: %s", error)
            return {"messages": []}
    messages = inbox.history(history_limit(body), room, chat_only=True)
    return {"messages": [m.to_wire_dict() for m in messages]}


def answer_outbox(inbox: HistorySource) -> dict[str, Any]:
    """The body of the OUTBOX_RESULT: the inbox's outbox, oldest first."""
    return {"messages": [m.to_wire_dict() for m in inbox.outbox()]}
