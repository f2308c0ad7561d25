"""What a typed or piped line means: a message, or a chat command. Pure.

``parse_line`` turns one line into a small frozen value; the front end acts on
it. A line starting with ``/`` is a command; ``//`` sends a line that starts
with a single ``/``. An unknown command raises CommandError with a hint — it is
never sent as a message.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import Lab93Error

DEFAULT_HISTORY = 20
# The most /history shows at once: more is a flood for a terminal and one huge
# answer on the actor's pipe; --history prints a whole inbox.
MAX_HISTORY = 10_000

HELP = """\
Commands:
  /msg USER TEXT...          send TEXT to USER only
  /subject SUBJECT TEXT...   send TEXT with a subject (quote a subject of several words)
  /who                       list the users online
  /scan                      list every node and repeater heard on the network
  /history [N]               show the last N messages in the inbox (default 20,
                             at most 10000)
  /help                      show this help
  /quit                      leave (Ctrl-D does the same)
Any other line is sent to the room; start it with // to send a line beginning with /."""


class CommandError(Lab93Error):
    """That command is not understood; type /help for the list."""


@dataclass(frozen=True)
class Say:
    """Send ``text``; ``to`` None means the room."""

    text: str
    subject: str | None = None
    to: str | None = None


@dataclass(frozen=True)
class Quit:
    pass


@dataclass(frozen=True)
class Scan:
    pass


@dataclass(frozen=True)
class Who:
    pass


@dataclass(frozen=True)
class History:
    count: int = DEFAULT_HISTORY
    capped: bool = False  # more was asked for than MAX_HISTORY


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Nothing:
    """A blank line: nothing to send."""


Action = Say | Quit | Scan | Who | History | Help | Nothing


def _split_word(rest: str) -> tuple[str, str]:
    """The first word of ``rest`` (a quoted one may hold spaces) and what follows."""
    rest = rest.lstrip()
    if rest[:1] in ('"', "'"):
        quote = rest[0]
        end = rest.find(quote, 1)
        if end == -1:
            raise CommandError(f"the quote {quote} is never closed")
        return rest[1:end], rest[end + 1 :].strip()
    word, _, tail = rest.partition(" ")
    return word, tail.strip()


def _no_arguments(name: str, rest: str, action: Action) -> Action:
    if rest:
        raise CommandError(f"/{name} takes no arguments")
    return action


def parse_line(line: str, subject: str | None = None, to: str | None = None) -> Action:
    """Interpret one line. ``subject`` and ``to`` are the defaults for plain text
    (from ``--subject`` and ``--to``)."""
    line = line.rstrip("\r\n")
    if not line.strip():
        return Nothing()
    if line.startswith("//"):
        return Say(line[1:], subject, to)
    if not line.startswith("/"):
        return Say(line, subject, to)
    name, _, rest = line[1:].partition(" ")
    rest = rest.strip()
    if name == "quit":
        return _no_arguments(name, rest, Quit())
    if name == "scan":
        return _no_arguments(name, rest, Scan())
    if name == "who":
        return _no_arguments(name, rest, Who())
    if name == "help":
        return _no_arguments(name, rest, Help())
    if name == "history":
        if not rest:
            return History()
        # ASCII digits only: str.isdigit also takes "²" and "٣", which int() refuses or
        # reads. However many digits: past MAX_HISTORY the answer is the same.
        digits = rest.lstrip("0")
        if not (rest.isascii() and rest.isdigit()) or not digits:
            raise CommandError("usage: /history [N], N a whole number from 1 up")
        if len(digits) > len(str(MAX_HISTORY)) or int(digits) > MAX_HISTORY:
            return History(MAX_HISTORY, capped=True)
        return History(int(digits))
    if name == "msg":
        user, text = _split_word(rest)
        if not user or not text:
            raise CommandError("usage: /msg USER TEXT...")
        return Say(text, subject, user)
    if name == "subject":
        new_subject, text = _split_word(rest)
        if not new_subject or not text:
            raise CommandError("usage: /subject SUBJECT TEXT... (quote a subject of several words)")
        return Say(text, new_subject, to)
    raise CommandError(f"unknown command /{name}; type /help for the list")
