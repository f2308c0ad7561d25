"""How lines look on a terminal: colours, marks and the bell, or nothing at all.

Colour (and every other escape code) only when standard output is a terminal,
``NO_COLOR`` is unset or empty (https://no-color.org), ``TERM`` is not
``dumb``, and the output is not ``--json``. Without it, lines are plain text:
a pipe or a file never receives an escape code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# Foreground colours a name may get: the six of the basic palette that read on a
# dark and on a light background, and their bright forms (no black, white or grey).
NICK_COLOURS = (31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96)
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

BELL = "\a"


def colour_wanted(environ: Mapping[str, str], isatty: bool, json_mode: bool) -> bool:
    """Whether lines may carry colour and other escape codes."""
    if json_mode or not isatty:
        return False
    if environ.get("NO_COLOR", ""):
        return False
    return environ.get("TERM", "") != "dumb"


def nick_colour(name: str) -> int:
    """The colour of ``name``: the same in every run and on every machine."""
    import zlib  # only a run that shows names in colour needs it

    return NICK_COLOURS[zlib.crc32(name.encode("utf-8", "surrogateescape")) % len(NICK_COLOURS)]


def visible(text: str) -> str:
    """``text`` without its escape codes: what the terminal shows of it."""
    return _ESCAPE.sub("", text)


def _can_encode(text: str, encoding: str | None) -> bool:
    try:
        text.encode(encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


@dataclass(frozen=True)
class Style:
    """Paints parts of a line; ``colour`` False paints nothing. ``bell``: ring the
    terminal's bell for a mention (a terminal only, colour or not)."""

    colour: bool = False
    bell: bool = False
    delivered_mark: str = "\u2713"  # ✓
    queued_mark: str = "(queued)"

    @classmethod
    def for_terminal(
        cls, environ: Mapping[str, str], isatty: bool, json_mode: bool, encoding: str | None
    ) -> Style:
        delivered = "\u2713" if _can_encode("\u2713", encoding) else "(delivered)"
        return cls(
            colour=colour_wanted(environ, isatty, json_mode),
            bell=isatty and not json_mode,
            delivered_mark=delivered,
        )

    def _sgr(self, codes: str, text: str) -> str:
        return f"\x1b[{codes}m{text}\x1b[0m" if self.colour and text else text

    def nick(self, name: str, own: bool = False) -> str:
        return self._sgr("1" if own else str(nick_colour(name)), name)

    def dim(self, text: str) -> str:
        return self._sgr("2", text)

    def room(self, text: str) -> str:
        return self._sgr("36", text)

    def highlight(self, text: str) -> str:
        """A line that names you, or a direct message to you: bold on yellow."""
        return self._sgr("1;30;43", text)

    def mark(self, delivered: bool) -> str:
        return self.dim(self.delivered_mark if delivered else self.queued_mark)


PLAIN = Style()
