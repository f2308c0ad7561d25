"""The machine for one IRC client: bytes in, outputs out, ``now`` passed in. Pure.

The owner (the server's actor) calls, for each client socket::

    connection = Connection(conn, config, registry, now)
    outputs = connection.receive_data(data, now)   # what the socket read
    outputs = connection.handle(event, now)        # what the chat service answered
    outputs = connection.tick(now)                 # at connection.next_deadline()
    outputs = connection.lost(now)                 # the socket closed under us

and acts on each output (``boundary.SendLine``, ``Close``, or a request for the
service). Nothing here raises on anything a client sends: a bad line is
answered with a numeric (417 too long, 421 unknown, FAIL INVALID_UTF8, ...);
a flood (more than ``flood_burst`` lines at once, then ``flood_rate`` a
second) is told ERROR and closed.

The phases and the commands each one handles are in ``COMMANDS``, one table:
a command in another phase is held while registration waits for the service
(and handled after), else answered 451. Liveness: a registered client silent
for ``ping_interval`` is sent PING; silent ``ping_timeout`` more, it is
closed; one not registered within ``registration_timeout`` is closed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from ..limits import RateLimiter
from . import chat, history, queries, registration
from . import numerics as rpl
from .boundary import (
    Delivered,
    Disconnect,
    HistoryResult,
    JoinResult,
    ListResult,
    NamesResult,
    Output,
    RecipientAway,
    Registered,
    RegisterRefused,
    RequestFailed,
    Stored,
    TargetsResult,
    TopicChanged,
    TopicInfo,
    UserJoined,
    UserParted,
    UserQuit,
    WhoResult,
)
from .config import IRCConfig
from .lines import Line, LineError, LineSplitter, parse
from .registry import Registry
from .session import IrcPhase, IrcSession

Handler = Callable[[IrcSession, Line], None]

_OPEN = frozenset({IrcPhase.UNREGISTERED, IrcPhase.REGISTERING, IrcPhase.REGISTERED})
_NOT_WAITING = frozenset({IrcPhase.UNREGISTERED, IrcPhase.REGISTERED})
_REGISTERED = frozenset({IrcPhase.REGISTERED})

# Every command: its handler, and the phases in which it is handled.
COMMANDS: dict[str, tuple[Handler, frozenset[IrcPhase]]] = {
    "CAP": (registration.on_cap, _OPEN),
    "PASS": (registration.on_pass, _NOT_WAITING),
    "NICK": (registration.on_nick, _NOT_WAITING),
    "USER": (registration.on_user, _NOT_WAITING),
    "PING": (registration.on_ping, _OPEN),
    "PONG": (registration.on_pong, _OPEN),
    "QUIT": (registration.on_quit, _OPEN),
    "MOTD": (registration.on_motd, _REGISTERED),
    "JOIN": (chat.on_join, _REGISTERED),
    "PART": (chat.on_part, _REGISTERED),
    "PRIVMSG": (chat.on_privmsg, _REGISTERED),
    "NOTICE": (chat.on_notice, _REGISTERED),
    "TAGMSG": (chat.on_tagmsg, _REGISTERED),
    "TOPIC": (chat.on_topic, _REGISTERED),
    "NAMES": (queries.on_names, _REGISTERED),
    "LIST": (queries.on_list, _REGISTERED),
    "WHO": (queries.on_who, _REGISTERED),
    "WHOIS": (queries.on_whois, _REGISTERED),
    "ISON": (queries.on_ison, _REGISTERED),
    "USERHOST": (queries.on_userhost, _REGISTERED),
    "AWAY": (queries.on_away, _REGISTERED),
    "MODE": (queries.on_mode, _REGISTERED),
    "CHATHISTORY": (history.on_chathistory, _REGISTERED),
}


def _disconnect(session: IrcSession, event: Disconnect) -> None:
    session.close(event.reason)


# What each event from the service does to the client.
EVENTS: dict[type, Callable[[IrcSession, Any], None]] = {
    Registered: registration.on_registered,
    RegisterRefused: registration.on_register_refused,
    JoinResult: chat.on_joined,
    Stored: chat.on_stored,
    RecipientAway: chat.on_recipient_away,
    RequestFailed: chat.on_failed,
    TopicInfo: chat.on_topic_info,
    TopicChanged: chat.on_topic_changed,
    Delivered: chat.on_delivered,
    UserJoined: chat.on_user_joined,
    UserParted: chat.on_user_parted,
    UserQuit: chat.on_user_quit,
    NamesResult: queries.on_names_result,
    ListResult: queries.on_room_list,
    WhoResult: queries.on_who_result,
    HistoryResult: history.on_history_result,
    TargetsResult: history.on_targets_result,
    Disconnect: _disconnect,
}


class Connection:
    def __init__(self, conn: Hashable, config: IRCConfig, registry: Registry, now: float) -> None:
        self.session = IrcSession(conn, config, registry)
        self._splitter = LineSplitter()
        self._flood = RateLimiter(config.flood_rate, config.flood_burst, max_sources=1)
        self._opened = now
        self._heard = now  # when the client last sent anything
        self._pinged: float | None = None  # when we sent a PING it has not answered
        self._waiting: deque[Line] = deque()  # lines held while registration waits

    @property
    def conn(self) -> Hashable:
        return self.session.conn

    @property
    def phase(self) -> IrcPhase:
        return self.session.phase

    @property
    def closed(self) -> bool:
        return self.session.phase is IrcPhase.CLOSED

    def receive_data(self, data: bytes, now: float) -> list[Output]:
        """Take what the client's socket read; the answers, in order."""
        session = self.session
        if self.closed:
            return []
        if data:
            self._heard = now
            self._pinged = None
        for raw in self._splitter.feed(data):
            if not self._flood.allow(0, now):
                session.close("Excess flood")
            if self.closed:
                break
            if raw is None:
                session.reply(rpl.ERR_INPUTTOOLONG, "Input line was too long")
                continue
            try:
                line = parse(raw)
            except LineError as refusal:
                self._refuse(refusal)
                continue
            if line is not None:
                self._dispatch(line)
        return session.take_outputs()

    def handle(self, event: object, now: float) -> list[Output]:
        """Take an event from the chat service (one of ``EVENTS``'s types)."""
        if self.closed:
            return []
        handler = EVENTS.get(type(event))
        if handler is None:
            raise TypeError(f"not an event for an IRC connection: {event!r}")
        handler(self.session, event)
        while self._waiting and self.phase in _NOT_WAITING:
            self._dispatch(self._waiting.popleft())
        return self.session.take_outputs()

    def tick(self, now: float) -> list[Output]:
        """Keep time: PING a silent client, close a dead or unregistered one."""
        session = self.session
        config = session.config
        if self.closed:
            return []
        if session.phase is not IrcPhase.REGISTERED:
            if now - self._opened >= config.registration_timeout:
                session.close("Registration timed out")
        elif self._pinged is not None:
            if now - self._pinged >= config.ping_timeout:
                session.close(f"Ping timeout: {int(now - self._heard)} seconds")
        elif now - self._heard >= config.ping_interval:
            self._pinged = now
            session.send(session.server_line("PING", config.server_name, trailing=True))
        return session.take_outputs()

    def next_deadline(self) -> float | None:
        """When ``tick`` has something to do; None once closed."""
        config = self.session.config
        if self.closed:
            return None
        if self.phase is not IrcPhase.REGISTERED:
            return self._opened + config.registration_timeout
        if self._pinged is not None:
            return self._pinged + config.ping_timeout
        return self._heard + config.ping_interval

    def lost(self, now: float) -> list[Output]:
        """The socket closed or failed: nothing more can be written to it."""
        if self.closed:
            return []
        self.session.end("Connection closed")
        return self.session.take_outputs()

    def _dispatch(self, line: Line) -> None:
        session = self.session
        entry = COMMANDS.get(line.command)
        if entry is None:
            session.reply(rpl.ERR_UNKNOWNCOMMAND, line.command, "Unknown command")
            return
        handler, phases = entry
        if session.phase in phases:
            handler(session, line)
        elif session.phase is IrcPhase.REGISTERING:
            if len(self._waiting) >= session.config.max_pending_lines:
                session.close("Too many lines before registration")
            else:
                self._waiting.append(line)
        else:
            session.reply(rpl.ERR_NOTREGISTERED, "You have not registered")

    def _refuse(self, refusal: LineError) -> None:
        session = self.session
        if refusal.kind == "too-long":
            session.reply(rpl.ERR_INPUTTOOLONG, "Input line was too long")
        elif refusal.kind == "utf8":
            session.fail(refusal.command, "INVALID_UTF8", refusal.sentence)
        elif refusal.kind == "command":
            session.reply(rpl.ERR_UNKNOWNCOMMAND, refusal.command, refusal.sentence)
        else:
            session.reply(rpl.ERR_UNKNOWNERROR, refusal.command, refusal.sentence)
