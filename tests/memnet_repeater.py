"""An in-memory network for the repeater cores: one ServerCore, any ClientCores.

The one place tests carry out the repeater cores' outputs (``outputs.py``)
without sockets: ``RepeaterNet`` plays the ROUTER, the PUB and each client's
DEALER and SUB, delivers frames in order, and can lose chosen ones, so every
recovery path is exercised exactly; ``now`` is its fake clock. Like ZeroMQ's
PUB, it hands a room's traffic only to the SUBs subscribed to its topic
(``ClientEnd.topics``), and ``ClientEnd.feed`` records every frame list a
client's SUB received, so a test can tell it never saw a room it is not in. Written to
fold into ``tests/memnet.py`` as its repeater adapter.

``Net`` and ``Client`` add real inboxes in a test's directory: a server core
on one, and client cores made by name, each on its own.

A plain module (not a test module, not conftest): tests import it by name.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable
from datetime import timedelta

from factories import T0

from lab93zmq.core.endpoints import host_of
from lab93zmq.core.events import Accepted, Incoming
from lab93zmq.core.message import Message, make_id
from lab93zmq.core.repeater.client import ClientCore
from lab93zmq.core.repeater.outputs import (
    ConnectServer,
    DisconnectServer,
    FollowRooms,
    ProbeBeacons,
    PublishRoom,
    ReplyTo,
    SendToServer,
    SubscribeFeed,
)
from lab93zmq.core.repeater.server import ServerCore
from lab93zmq.core.rooms import DEFAULT_ROOM
from lab93zmq.core.wire import Command
from lab93zmq.io.store import Inbox

SERVER = "tcp://server:5190"

Lose = Callable[[Command], bool]  # True: this command is lost on its way


class ClientEnd:
    """One client core on the net: its connection and everything that reached it."""

    def __init__(self, net: RepeaterNet, name: str, core: ClientCore) -> None:
        self.net = net
        self.name = name
        self.core = core
        self.identity: bytes | None = None  # its DEALER, as the ROUTER names it
        self.subscribed: str | None = None
        self.topics: frozenset[str] = frozenset()  # the rooms its SUB subscribed to
        self.feed: list[tuple[str, Command]] = []  # (room, command) of all its SUB received
        self.events: list = []  # what it told its front end (and GiveUp, PinKey)
        self.sent: list[Command] = []  # every command it sent the server
        self.from_server: deque[list[bytes]] = deque()
        self.from_pub: deque[list[bytes]] = deque()

    def apply(self, outputs) -> None:
        """Carry out what the core returned."""
        for out in outputs:
            if isinstance(out, SendToServer):
                self.sent.append(out.command)
                if self.identity is not None:
                    self.net.to_server.append((self.identity, out.command.frames()))
                else:
                    self.events += self.core.send_failed(out, self.net.now)
            elif isinstance(out, ConnectServer):
                assert out.endpoint == self.net.endpoint, out.endpoint
                self.identity = b"id-%d" % next(self.net.identities)
                self.from_server.clear()
            elif isinstance(out, DisconnectServer):
                self.identity = None
                self.from_server.clear()
            elif isinstance(out, SubscribeFeed):
                self.subscribed = out.endpoint
            elif isinstance(out, FollowRooms):
                self.topics = out.rooms
            elif isinstance(out, ProbeBeacons):
                pass  # no beacons in memory
            else:
                assert not isinstance(out, (ReplyTo, PublishRoom)), out
                self.events.append(out)

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def gone(self) -> None:
        """The process ended: nothing more reaches it."""
        self.identity = None
        self.subscribed = None
        self.topics = frozenset()
        self.from_server.clear()
        self.from_pub.clear()


class RepeaterNet:
    """A server core and client cores, wired in memory; ``now`` is the fake clock."""

    def __init__(self, server: ServerCore, now: float, endpoint: str = SERVER) -> None:
        self.server = server
        self.now = now
        self.endpoint = endpoint
        self.server_up = True
        self.identities = itertools.count(1)
        self.clients: dict[str, ClientEnd] = {}
        self.to_server: deque[tuple[bytes, list[bytes]]] = deque()
        self.lose_pub: dict[str, Lose] = {}  # client name -> what it loses on the SUB
        self.lose_reply: dict[str, Lose] = {}  # and on its DEALER
        self.published: list[Command] = []
        self.replies: list[tuple[bytes, Command]] = []
        self.server_events: list = []

    @property
    def feed(self) -> str:
        return f"tcp://{host_of(self.endpoint)}:{self.server.pub_port}"

    def attach(self, name: str, core: ClientCore) -> ClientEnd:
        end = self.clients[name] = ClientEnd(self, name, core)
        return end

    def route(self, outputs) -> None:
        """Carry out what the server returned."""
        for out in outputs:
            if isinstance(out, ReplyTo):
                self.replies.append((out.identity, out.command))
                for end in self.clients.values():
                    if end.identity == out.identity:
                        lose = self.lose_reply.get(end.name)
                        if lose is None or not lose(out.command):
                            end.from_server.append(out.command.frames())
            elif isinstance(out, PublishRoom):
                self.published.append(out.command)
                for end in self.clients.values():
                    if end.subscribed == self.feed and out.room in end.topics:
                        end.feed.append((out.room, out.command))
                        lose = self.lose_pub.get(end.name)
                        if lose is None or not lose(out.command):
                            end.from_pub.append(out.frames())
            else:
                self.server_events.append(out)

    def run(self, limit: int = 10_000) -> None:
        """Deliver everything in flight, flushing every core, until the net is quiet."""
        for _ in range(limit):
            busy = False
            while self.to_server:
                identity, frames = self.to_server.popleft()
                busy = True
                if self.server_up:
                    self.route(self.server.receive(identity, frames, self.now))
            if self.server_up:
                self.route(self.server.flush(self.now))
            for end in list(self.clients.values()):
                while end.from_server:
                    busy = True
                    end.apply(end.core.receive(end.from_server.popleft(), self.now))
                while end.from_pub:
                    busy = True
                    end.apply(end.core.receive_pub(end.from_pub.popleft(), self.now))
                end.apply(end.core.flush(self.now))
            if not busy and not self.to_server:
                return
        raise AssertionError("the link never went quiet")

    def advance(self, seconds: float, step: float = 0.25) -> None:
        """Let time pass in small steps, ticking everyone."""
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            if self.server_up:
                self.route(self.server.tick(self.now))
            for client in list(self.clients.values()):
                client.apply(client.core.tick(self.now))
            self.run()


PUB_PORT = 40123


class Client:
    """One client core with its inbox, on the net; ``options`` go to its ClientCore
    (``rooms``, ``listen``, ...) - again at each restart."""

    def __init__(self, net: Net, name: str, user: str, path, **options) -> None:
        self.net = net
        self.user = user
        self.path = path
        self.options = options
        self.inbox = Inbox(path)
        self.end = net.attach(name, ClientCore(self.inbox, user, net.now, **options))
        self._n = itertools.count(1)

    # What reached it, and how it is connected: the net's end of it.
    core = property(lambda self: self.end.core)
    events = property(lambda self: self.end.events)
    sent = property(lambda self: self.end.sent)
    identity = property(lambda self: self.end.identity)
    subscribed = property(lambda self: self.end.subscribed)
    from_server = property(lambda self: self.end.from_server)

    def apply(self, outputs) -> None:
        self.end.apply(outputs)

    def of(self, kind) -> list:
        return self.end.of(kind)

    def connect(self) -> None:
        self.apply(self.core.use_server(SERVER, self.net.now))
        self.net.run()

    def say(self, content: str, to: str | None = None, room: str | None = None) -> Message:
        n = next(self._n)
        room = None if to is not None else room or DEFAULT_ROOM
        origin = self.inbox.node_id
        message = Message(
            id=make_id(T0 + timedelta(seconds=n), os.urandom(10)),
            author=self.user,
            recipient=to,
            subject=None,
            content=content,
            sent_at=T0,
            origin=origin,
            origin_seq=self.inbox.next_origin_seq(origin, to is not None, room or DEFAULT_ROOM),
            room=room,
        )
        self.apply(self.core.submit(message))
        return message

    def set_topic(self, room: str, text: str) -> None:
        """The front end sets ``room``'s topic now (the wall clock follows the fake one)."""
        now = T0 + timedelta(seconds=self.net.now)
        self.apply(self.core.set_topic(room, text, now, os.urandom(10)))

    def restart(self, **options) -> None:
        """The client process ends and starts again on the same inbox (with other
        ``options``, if given)."""
        self.inbox.close()
        self.inbox = Inbox(self.path)
        self.end.gone()
        self.options = options or self.options
        self.end.core = ClientCore(self.inbox, self.user, self.net.now, **self.options)

    def incoming(self, room: str | None = None) -> list[str]:
        """The contents of the messages it was shown (only ``room``'s, if given)."""
        return [
            e.message.content
            for e in self.events
            if isinstance(e, Incoming) and (room is None or e.message.room == room)
        ]

    def accepted(self) -> list[str]:
        return [i for e in self.events if isinstance(e, Accepted) for i in e.ids]


class Net(RepeaterNet):
    """The in-memory net with a server on a real inbox, and clients made by name."""

    def __init__(self, tmp_path, **server_options) -> None:
        self.tmp = tmp_path
        self.server_options = server_options
        self.server_inbox = Inbox(tmp_path / "server.db")
        super().__init__(ServerCore(self.server_inbox, PUB_PORT, 1000.0, **server_options), 1000.0)
        self.people: list[Client] = []

    def client(
        self, user: str, *, db: str | None = None, connect: bool = True, **options
    ) -> Client:
        name = user if db is None else f"{user}@{db}"
        c = Client(self, name, user, self.tmp / f"{db or user}.db", **options)
        self.people.append(c)
        if connect:
            c.connect()
        return c

    def restart_server(self) -> None:
        """A crash: no goodbye; a new core on the same inbox file."""
        self.server_inbox.close()
        self.server_inbox = Inbox(self.tmp / "server.db")
        self.server = ServerCore(self.server_inbox, PUB_PORT, self.now, **self.server_options)

    def close(self) -> None:
        for c in self.people:
            c.inbox.close()
        self.server_inbox.close()
