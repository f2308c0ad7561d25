"""A line that is plain text: the message it says, without the command table. Pure.

Most piped lines are plain text, and ``--send`` is always: ``said`` makes their
``Say`` here, so a send-only run imports the command table (``commands.py``,
a frozen value a command) only when a line is a command, or blank.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Say:
    """Send ``text``; ``to`` None means the current room; ``kind`` "action" for /me."""

    text: str
    subject: str | None = None
    to: str | None = None
    kind: str | None = None


def said(line: str, subject: str | None = None, to: str | None = None) -> Say | None:
    """The ``Say`` of a line of plain text (``//`` sends one that starts with ``/``);
    None when the line is blank or a command, which ``commands.parse_line`` reads."""
    line = line.rstrip("\r\n")
    if line.startswith("//"):
        return Say(line[1:], subject, to)
    if line.startswith("/") or not line.strip():
        return None
    return Say(line, subject, to)
