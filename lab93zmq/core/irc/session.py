"""One IRC client's state, and the ways the command handlers answer it. Pure.

An ``IrcSession`` is what ``connection.Connection`` and the handler modules
(``registration``, ``chat``, ``history``) share: who the client is, its
CAPs, its channels and their members, and the outputs gathered while one
input is handled (``take_outputs`` hands them over).
"""

from __future__ import annotations

import enum
from collections.abc import Hashable

from .boundary import Close, Output, QuitRequest, Request, SendLine
from .caps import CapState
from .config import IRCConfig
from .lines import Line
from .names import fold, nick_for
from .registry import Registry

USER_IDENT = "lab93"  # the user part of every source: nick!lab93@<user_host>


class IrcPhase(enum.Enum):
    UNREGISTERED = "unregistered"  # collecting PASS, NICK, USER, CAP
    REGISTERING = "registering"  # Register asked of the service, no answer yet
    REGISTERED = "registered"
    CLOSED = "closed"


class IrcSession:
    def __init__(self, conn: Hashable, config: IRCConfig, registry: Registry) -> None:
        self.conn = conn
        self.config = config
        self.registry = registry
        self.phase = IrcPhase.UNREGISTERED
        self.nick: str | None = None  # an IRC user's nick is its lab93 name
        self.username: str | None = None
        self.realname = ""
        self.password: str | None = None  # what PASS gave
        self.caps = CapState()
        self.invisible = False  # user mode +i, kept and shown, with no other effect
        self.away: str | None = None
        # room -> {folded name: name} of its members, for the rooms this client is in.
        self.channels: dict[str, dict[str, str]] = {}
        self.joining: set[str] = set()  # JoinRoom asked, JoinResult not yet here
        self._refs = 0
        self._batches = 0
        self._outputs: list[Output] = []

    # --- who ---------------------------------------------------------------------

    @property
    def me(self) -> str:
        """The client's nick as numerics name it ('*' before it has one)."""
        return self.nick or "*"

    @property
    def registered(self) -> bool:
        return self.phase is IrcPhase.REGISTERED

    def is_me(self, name: str) -> bool:
        return self.nick is not None and fold(name) == fold(self.nick)

    def source(self, name: str) -> str:
        """The source of what user ``name`` says or does: nick!lab93@host."""
        return f"{nick_for(name)}!{USER_IDENT}@{self.config.user_host}"

    def next_ref(self) -> int:
        self._refs += 1
        return self._refs

    def next_batch(self) -> str:
        self._batches += 1
        return f"b{self._batches}"

    # --- answering ---------------------------------------------------------------

    def send(self, line: Line) -> None:
        self._outputs.append(SendLine(self.conn, line.to_bytes()))

    def send_all(self, lines: list[Line]) -> None:
        conn = self.conn
        self._outputs.extend(SendLine(conn, line.to_bytes()) for line in lines)

    def server_line(self, command: str, *params: str, trailing: bool = False) -> Line:
        return Line(command, params, self.config.server_name, trailing=trailing)

    def reply(self, numeric: str, *params: str) -> None:
        """A numeric to the client: ``:<server> <numeric> <nick> <params...>``."""
        self.send(Line(numeric, (self.me, *params), self.config.server_name, trailing=True))

    def fail(self, command: str, code: str, *context: str) -> None:
        """A standard reply: FAIL <command> <code> [<context>...] :<description> (the last)."""
        self.send(Line("FAIL", (command, code, *context), self.config.server_name, trailing=True))

    def request(self, request: Request) -> None:
        self._outputs.append(request)

    def close(self, reason: str) -> None:
        """ERROR and Close; the service hears QuitRequest if it had heard Register."""
        if self.phase is IrcPhase.CLOSED:
            return
        self.send(Line("ERROR", (f"Closing Link: {self.me} ({reason})",), trailing=True))
        self._outputs.append(Close(self.conn, reason))
        self.end(reason)

    def end(self, reason: str) -> None:
        """The connection is over (closed by us or by the peer): free its name."""
        if self.phase in (IrcPhase.REGISTERING, IrcPhase.REGISTERED):
            self._outputs.append(QuitRequest(self.conn, reason))
        if self.nick is not None:
            self.registry.release(self.nick, self.conn)
        self.phase = IrcPhase.CLOSED

    def take_outputs(self) -> list[Output]:
        outputs, self._outputs = self._outputs, []
        return outputs
