"""Room names: what a user may type, what the wire carries, how it is shown. Pure.

A room name is 1 to 32 characters: lowercase ``a``-``z``, digits, ``-``,
``_`` and ``.``, starting with a letter or a digit. Users may type it with a
leading ``#`` and in any case (``#Ops`` is ``ops``); it is shown as ``#ops``.
The default room, where a node without ``--room`` is, is ``general``: exactly
the one room of version 0.1.0.
"""

from __future__ import annotations

import re

from .errors import MessageError

DEFAULT_ROOM = "general"
MAX_ROOM_CHARS = 32
_ROOM = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}\Z")
RULE = (
    f"1 to {MAX_ROOM_CHARS} letters a-z, digits, '-', '_' or '.', starting with a letter or digit"
)


class RoomError(MessageError):
    """A room name is not valid."""

    def __init__(self, text: object, problem: str | None = None) -> None:
        """``problem``: the sentence, when it is not the name that is wrong (a room the
        node is not in)."""
        problem = problem or f"{text!r} is not a room name: {RULE}"
        Exception.__init__(self, problem)  # the sentence alone, not "message field ..."
        self.field = "room"
        self.problem = problem
        self.text = text


# Texts already found to name a room, and the room: a pipeline names the same one for
# every line. Bounded: a text is at most 34 characters, and the table is emptied at 512.
_NAMED: dict[str, str] = {}


def room_name(text: object) -> str:
    """The room ``text`` names (``#Ops`` -> ``ops``); RoomError when it names none."""
    if not isinstance(text, str):
        raise RoomError(text)
    named = _NAMED.get(text)
    if named is not None:
        return named
    folded = text.strip()
    if folded.startswith("#"):
        folded = folded[1:]
    folded = folded.lower()
    if not folded.isascii() or not _ROOM.match(folded):
        raise RoomError(text)
    if len(_NAMED) >= 512:
        _NAMED.clear()
    _NAMED[text] = folded
    return folded


def check_room(value: object) -> str:
    """A room name exactly as the wire and the inbox carry it (no '#', lowercase)."""
    if not isinstance(value, str) or not value.isascii() or not _ROOM.match(value):
        raise RoomError(value)
    return value


def shown(room: str) -> str:
    """How a room is written for people: ``#ops``."""
    return f"#{room}"
