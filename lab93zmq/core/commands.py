"""What a typed or piped line means: a message, or a chat command. Pure.

``parse_line`` turns one line into a small frozen value; the front end acts on
it. A line starting with ``/`` is a command; ``//`` sends a line that starts
with a single ``/``. An unknown command raises CommandError with a hint — it is
never sent as a message.

Every command is one row of ``COMMANDS``: its name, its usage, its line of
/help, what its arguments are (for tab completion) and its parser. Adding a
command is adding a row (and, if it asks the node something, a row of the
front end's action table, frontend/actions.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .away import AwayTextError, away_text
from .errors import Lab93Error
from .message import ACTION, MAX_TOPIC_CHARS
from .rooms import RoomError, room_name
from .saying import Say as Say
from .saying import said

DEFAULT_HISTORY = 20
# The most /history shows at once: more is a flood for a terminal and one huge
# answer on the actor's pipe; --history prints a whole inbox.
MAX_HISTORY = 10_000

# What a command's argument is, for tab completion.
USER, ROOM, COMMAND = "user", "room", "command"


class CommandError(Lab93Error):
    """That command is not understood; type /help for the list."""


# -- what a line means ------------------------------------------------------------


@dataclass(frozen=True)
class Quit:
    pass


@dataclass(frozen=True)
class Scan:
    pass


@dataclass(frozen=True)
class Who:
    """Who is in ``room`` (None: the current room)."""

    room: str | None = None


@dataclass(frozen=True)
class History:
    count: int = DEFAULT_HISTORY
    capped: bool = False  # more was asked for than MAX_HISTORY


@dataclass(frozen=True)
class Help:
    """The list of commands, or one command's usage (``name``)."""

    name: str | None = None


@dataclass(frozen=True)
class Join:
    room: str


@dataclass(frozen=True)
class Part:
    """Leave ``room`` (None: the current one)."""

    room: str | None = None


@dataclass(frozen=True)
class Rooms:
    pass


@dataclass(frozen=True)
class ShowOrSetTopic:
    """Show the current room's topic (``text`` None) or set it."""

    text: str | None = None


@dataclass(frozen=True)
class Outbox:
    pass


@dataclass(frozen=True)
class Away:
    """Be away with ``text`` (None: be back)."""

    text: str | None = None


@dataclass(frozen=True)
class Clear:
    pass


@dataclass(frozen=True)
class Nothing:
    """A blank line: nothing to send."""


Action = (
    Say | Quit | Scan | Who | History | Help | Join | Part | Rooms | ShowOrSetTopic | Outbox
    | Away | Clear | Nothing
)


@dataclass(frozen=True)
class Defaults:
    """What plain text gets when the line does not say: ``--subject`` and ``--to``."""

    subject: str | None = None
    to: str | None = None


# -- the parsers, one per command ---------------------------------------------------


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


def _room(text: str) -> str:
    try:
        return room_name(text)
    except RoomError as error:
        raise CommandError(str(error)) from None


def _no_arguments(action: Action) -> Callable[[str, Defaults], Action]:
    def parse(rest: str, defaults: Defaults) -> Action:
        if rest:
            raise CommandError("takes no arguments")
        return action

    return parse


def _msg(rest: str, defaults: Defaults) -> Action:
    user, text = _split_word(rest)
    if not user or not text:
        raise CommandError("needs a user and a text")
    return Say(text, defaults.subject, user)


def _me(rest: str, defaults: Defaults) -> Action:
    if not rest:
        raise CommandError("needs what you do")
    return Say(rest, defaults.subject, defaults.to, ACTION)


def _subject(rest: str, defaults: Defaults) -> Action:
    subject, text = _split_word(rest)
    if not subject or not text:
        raise CommandError("needs a subject and a text (quote a subject of several words)")
    return Say(text, subject, defaults.to)


def _optional_room(make: Callable[[str | None], Action]) -> Callable[[str, Defaults], Action]:
    def parse(rest: str, defaults: Defaults) -> Action:
        if " " in rest:
            raise CommandError("takes one room")
        return make(_room(rest) if rest else None)

    return parse


def _join(rest: str, defaults: Defaults) -> Action:
    if not rest or " " in rest:
        raise CommandError("takes one room")
    return Join(_room(rest))


def _topic(rest: str, defaults: Defaults) -> Action:
    if len(rest) > MAX_TOPIC_CHARS:
        raise CommandError(f"a topic is at most {MAX_TOPIC_CHARS} characters")
    return ShowOrSetTopic(rest or None)


def _away(rest: str, defaults: Defaults) -> Action:
    try:
        return Away(away_text(rest))
    except AwayTextError as error:
        raise CommandError(str(error)) from None


def _history(rest: str, defaults: Defaults) -> Action:
    if not rest:
        return History()
    # ASCII digits only: str.isdigit also takes "²" and "٣", which int() refuses or
    # reads. However many digits: past MAX_HISTORY the answer is the same.
    digits = rest.lstrip("0")
    if not (rest.isascii() and rest.isdigit()) or not digits:
        raise CommandError("N is a whole number from 1 up")
    if len(digits) > len(str(MAX_HISTORY)) or int(digits) > MAX_HISTORY:
        return History(MAX_HISTORY, capped=True)
    return History(int(digits))


def _help(rest: str, defaults: Defaults) -> Action:
    name = rest.lstrip("/").lower()
    if name and name not in COMMANDS:
        raise CommandError(f"there is no command /{name}{_did_you_mean(name)}")
    return Help(name or None)


@dataclass(frozen=True)
class ChatCommand:
    name: str
    arguments: str  # as /help shows them: "USER TEXT..."
    summary: str
    parse: Callable[[str, Defaults], Action]
    completes: tuple[str, ...] = ()  # what each argument is (USER, ROOM, COMMAND)

    @property
    def usage(self) -> str:
        return f"/{self.name} {self.arguments}".rstrip()


COMMANDS: dict[str, ChatCommand] = {
    command.name: command
    for command in (
        ChatCommand("msg", "USER TEXT...", "send TEXT to USER only", _msg, (USER,)),
        ChatCommand("me", "ACTION...", "say what you do: /me waves shows * alice waves", _me),
        ChatCommand("subject", "SUBJECT TEXT...",
                "send TEXT with a subject (quote a subject of several words)", _subject),
        ChatCommand("join", "ROOM", "join ROOM (catch up on it) and talk there", _join, (ROOM,)),
        ChatCommand("part", "[ROOM]", "leave ROOM (default: the current room)",
                _optional_room(Part), (ROOM,)),
        ChatCommand("rooms", "", "list every room on the network (yours marked *)",
                _no_arguments(Rooms())),
        ChatCommand("topic", "[TEXT]", "show the current room's topic, or set it to TEXT", _topic),
        ChatCommand("who", "[ROOM]", "list who is in ROOM (default: the current room)",
                _optional_room(Who), (ROOM,)),
        ChatCommand("away", "[TEXT]", "be away with TEXT (shown in /who, told to whoever"
                    " sends you a direct message); no TEXT: be back", _away),
        ChatCommand("scan", "", "list every node and repeater heard on the network",
                _no_arguments(Scan())),
        ChatCommand("history", "[N]",
                f"show the last N messages of the inbox (default {DEFAULT_HISTORY},"
                f" at most {MAX_HISTORY:,})", _history),
        ChatCommand("outbox", "", "list what still waits to be delivered, and for whom",
                _no_arguments(Outbox())),
        ChatCommand("clear", "", "clear the screen", _no_arguments(Clear())),
        ChatCommand("help", "[COMMAND]", "list the commands, or say how to use one", _help,
                (COMMAND,)),
        ChatCommand("quit", "", "leave (Ctrl-D does the same)", _no_arguments(Quit())),
    )
}


def _help_text() -> str:
    width = max(len(command.usage) for command in COMMANDS.values()) + 2
    rows = [f"  {command.usage:<{width}} {command.summary}" for command in COMMANDS.values()]
    return "\n".join(
        ["Commands:", *rows,
         "Any other line is sent to the current room; start it with // to send a line"
         " beginning with /."]
    )


HELP = _help_text()


def _did_you_mean(name: str) -> str:
    import difflib  # only for a mistyped command: not at every start

    close = difflib.get_close_matches(name, COMMANDS, n=1, cutoff=0.6)
    return f" (did you mean /{close[0]}?)" if close else ""


def parse_line(line: str, subject: str | None = None, to: str | None = None) -> Action:
    """Interpret one line. ``subject`` and ``to`` are the defaults for plain text
    (from ``--subject`` and ``--to``)."""
    say = said(line, subject, to)
    if say is not None:
        return say
    line = line.rstrip("\r\n")
    if not line.strip():
        return Nothing()
    name, _, rest = line[1:].partition(" ")
    name = name.lower()
    command = COMMANDS.get(name)
    if command is None:
        raise CommandError(f"unknown command /{name}{_did_you_mean(name)}; type /help for the list")
    try:
        return command.parse(rest.strip(), Defaults(subject, to))
    except CommandError as error:
        raise CommandError(f"/{name}: {error}; usage: {command.usage}") from None
