"""Away texts: what ``/away TEXT`` sets, how it is checked, and whom it is told. Pure.

A user is *away* with a short text (IRC's AWAY): ``/who`` shows it beside the
name, and whoever sends that user a direct message is told it once per text
(IRC's 301). No text means *here*. The same rule checks the text wherever it
comes from: a typed ``/away``, the Python API, a peer's ROOMS, a repeater's
AWAY and USERS.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MAX_AWAY_CHARS = 200  # IRC's usual AWAYLEN
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class AwayTextError(ValueError):
    """An away text that breaks the rule (the text says which way)."""


def away_text(value: object) -> str | None:
    """The away text ``value`` sets: None (here) for None or blank text, else the text
    without surrounding blanks: one line of at most MAX_AWAY_CHARS characters, valid
    Unicode. AwayTextError otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise AwayTextError("an away text must be text")
    text = value.strip()
    if not text:
        return None
    if len(text) > MAX_AWAY_CHARS:
        raise AwayTextError(f"an away text is at most {MAX_AWAY_CHARS} characters")
    if _CONTROL.search(text):
        raise AwayTextError("an away text is one line, without control characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise AwayTextError("an away text must be valid Unicode") from None
    return text


def away_map(value: object) -> dict[str, str]:
    """A ``{NAME: TEXT}`` field (USERS, WHO_RESULT): AwayTextError when it is not one."""
    if not isinstance(value, dict):
        raise AwayTextError("'away' must be an object of names and away texts")
    found: dict[str, str] = {}
    for name, text in value.items():
        checked = away_text(text)
        if checked is not None:
            found[name] = checked
    return found


def combined(texts: Iterable[str | None]) -> str | None:
    """The away text of a user with several nodes or sessions: away only when every one
    of them is (one of them here: the user is here), with the first text by name order
    of what was given; None for no nodes at all."""
    texts = list(texts)
    if not texts or any(text is None for text in texts):
        return None
    return sorted(text for text in texts if text is not None)[0]


def who_line_names(users: Iterable[str], away: Mapping[str, str]) -> list[str]:
    """The names /who shows: ``bob (away: lunch)`` for one who is away."""
    return [f"{user} (away: {away[user]})" if user in away else user for user in users]


class AwayNotices:
    """Which away texts a sender was told already: each user's once per text."""

    def __init__(self) -> None:
        self._told: dict[str, str] = {}

    def notice(self, user: str, text: str | None) -> str | None:
        """The line to show after a direct message to ``user`` who is away with ``text``
        (None: here), or None when it was told already. Back and away again with the
        same text is told again."""
        if text is None:
            self._told.pop(user, None)
            return None
        if self._told.get(user) == text:
            return None
        self._told[user] = text
        return f"{user} is away: {text}"
