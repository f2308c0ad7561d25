"""Every IRC client of one listener, and the nick registry they share. Pure.

The server's actor owns the listening socket and the client sockets, polls
them in its loop and drives this object::

    gateway = Gateway(config)
    gateway.open(conn, now)                 # a socket was accepted
    outputs = gateway.receive(conn, data, now)
    outputs = gateway.lost(conn, now)       # it closed (EOF, an error)
    outputs = gateway.deliver(event, now)   # anything the chat service says
    outputs = gateway.tick(now)             # at gateway.next_deadline()

Outputs: ``SendLine(conn, data)`` - write it; ``Close(conn, reason)`` - write
what is queued, then close (the gateway has already forgotten ``conn``); the
requests for the service (``boundary.Request``), to be answered with
``deliver``. A connection's events are routed by their ``conn``; a room's
news goes to every connection (each keeps what concerns its channels); a
direct message to the one IRC user it is for; ``NamesTaken`` to the registry.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator

from .boundary import Close, Delivered, NamesTaken, Output
from .config import IRCConfig
from .connection import Connection
from .registry import Registry


class Gateway:
    def __init__(self, config: IRCConfig | None = None) -> None:
        self.config = config if config is not None else IRCConfig()
        self.registry = Registry()
        self._connections: dict[Hashable, Connection] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def __contains__(self, conn: object) -> bool:
        return conn in self._connections

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._connections.values()))

    def connection(self, conn: Hashable) -> Connection | None:
        return self._connections.get(conn)

    def open(self, conn: Hashable, now: float) -> list[Output]:
        """A client socket was accepted; ``conn`` must be new (a reused handle is a bug)."""
        if conn in self._connections:
            raise ValueError(f"connection {conn!r} is already open")
        self._connections[conn] = Connection(conn, self.config, self.registry, now)
        return []

    def receive(self, conn: Hashable, data: bytes, now: float) -> list[Output]:
        connection = self._connections.get(conn)
        if connection is None:
            return []
        return self._reaped(connection, connection.receive_data(data, now))

    def lost(self, conn: Hashable, now: float) -> list[Output]:
        connection = self._connections.pop(conn, None)
        return [] if connection is None else connection.lost(now)

    def deliver(self, event: object, now: float) -> list[Output]:
        """Route an event from the chat service to the connections it concerns."""
        if isinstance(event, NamesTaken):
            self.registry.set_taken(event.names, event.taken)
            return []
        conn = getattr(event, "conn", None)
        if conn is not None:
            connection = self._connections.get(conn)
            if connection is None:
                return []  # it closed meanwhile
            return self._reaped(connection, connection.handle(event, now))
        if isinstance(event, Delivered) and event.message.recipient is not None:
            holder = self.registry.holder(event.message.recipient)
            targets = [self._connections[holder]] if holder in self._connections else []
        else:
            targets = list(self._connections.values())
        outputs: list[Output] = []
        for connection in targets:
            outputs += self._reaped(connection, connection.handle(event, now))
        return outputs

    def tick(self, now: float) -> list[Output]:
        outputs: list[Output] = []
        for connection in list(self._connections.values()):
            deadline = connection.next_deadline()
            if deadline is not None and deadline <= now:
                outputs += self._reaped(connection, connection.tick(now))
        return outputs

    def next_deadline(self) -> float | None:
        deadlines = [
            deadline
            for connection in self._connections.values()
            if (deadline := connection.next_deadline()) is not None
        ]
        return min(deadlines, default=None)

    def close_all(self, reason: str) -> list[Output]:
        """The server stops: every client is told ERROR and closed."""
        outputs: list[Output] = []
        for connection in list(self._connections.values()):
            connection.session.close(reason)
            outputs += self._reaped(connection, connection.session.take_outputs())
        return outputs

    def _reaped(self, connection: Connection, outputs: list[Output]) -> list[Output]:
        if connection.closed:
            self._connections.pop(connection.conn, None)
            if not any(isinstance(output, Close) for output in outputs):
                outputs.append(Close(connection.conn, "closed"))
        return outputs
