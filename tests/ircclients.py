"""Real IRC clients for the live tests: the ``irc`` package (PyPI) on loopback.

A plain module (not a test module, not conftest): tests import it by name.
One ``irc.client.Reactor`` drives every client of a test in the test's own
thread (``pump`` runs it for a bounded time), so nothing here sleeps blindly
and nothing is shared between threads. Each ``IRCUser`` keeps every event it
was sent, with the IRCv3 tags the library parsed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import irc.client

WAIT = 15.0
CAPS = "echo-message server-time message-tags batch draft/chathistory"


@dataclass(frozen=True)
class Seen:
    """One event a client was sent: its type (``pubmsg``, ``join``, ``001``, ...)."""

    type: str
    nick: str
    target: str
    arguments: tuple[str, ...]
    tags: dict

    @property
    def text(self) -> str:
        return self.arguments[-1] if self.arguments else ""


class IRCClients:
    """The reactor of one test and its clients."""

    def __init__(self) -> None:
        self.reactor = irc.client.Reactor()
        self.reactor.add_global_handler("all_events", self._record, -10)
        self.users: dict[object, IRCUser] = {}

    def _record(self, connection, event) -> None:
        user = self.users.get(connection)
        if user is None or event.type == "all_raw_messages":
            return
        tags = {tag["key"]: tag["value"] for tag in (event.tags or [])}
        source = event.source or ""
        nick = source.split("!")[0] if source else ""
        user.seen.append(
            Seen(event.type, nick, event.target or "", tuple(event.arguments or ()), tags)
        )

    def pump(self, seconds: float = 0.05) -> None:
        self.reactor.process_once(seconds)

    def wait(self, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.pump()

    def connect(self, port: int, nick: str, caps: str = CAPS, password: str | None = None,
                **options) -> IRCUser:
        connection = self.reactor.server()
        user = IRCUser(self, connection, nick)
        self.users[connection] = user
        connection.connect("127.0.0.1", port, nick, password=password, username=nick,
                           ircname=f"{nick} on IRC", **options)
        self.wait(lambda: user.has("welcome"), f"{nick}'s welcome")
        if caps:
            connection.send_raw(f"CAP REQ :{caps}")
            self.wait(lambda: any(s.type == "cap" and "ACK" in s.arguments for s in user.seen),
                      f"{nick}'s CAP ACK")
        return user

    def close(self) -> None:
        for user in list(self.users.values()):
            user.disconnect()


class IRCUser:
    def __init__(self, clients: IRCClients, connection, nick: str) -> None:
        self.clients = clients
        self.connection = connection
        self.nick = nick
        self.seen: list[Seen] = []

    def has(self, type_: str, **fields) -> bool:
        return any(self.matching(type_, **fields))

    def matching(self, type_: str, **fields) -> list[Seen]:
        return [s for s in self.seen if s.type == type_
                and all(getattr(s, k) == v for k, v in fields.items())]

    def wait_for(self, type_: str, what: str | None = None, **fields) -> Seen:
        self.clients.wait(lambda: self.has(type_, **fields),
                          what or f"{self.nick}: {type_} {fields}")
        return self.matching(type_, **fields)[0]

    def messages(self, target: str | None = None) -> list[tuple[str, str]]:
        """(nick, text) of every PRIVMSG it was sent (to ``target``, if given)."""
        return [(s.nick, s.text) for s in self.seen
                if s.type in ("pubmsg", "privmsg") and (target is None or s.target == target)]

    def send(self, target: str, text: str) -> None:
        self.connection.privmsg(target, text)

    def raw(self, line: str) -> None:
        self.connection.send_raw(line)

    def join(self, channel: str) -> None:
        """JOIN and wait for the end of its names (366)."""

        def ends() -> int:
            return sum(1 for s in self.seen if s.type == "endofnames" and channel in s.arguments)

        before = ends()
        self.connection.join(channel)
        self.clients.wait(lambda: ends() > before, f"{self.nick} in {channel}")

    def disconnect(self) -> None:
        if self.connection.is_connected():
            self.connection.disconnect("bye")
        self.clients.users.pop(self.connection, None)
