"""A chat service in memory, and a network of IRC clients on a Gateway, for the IRC tests.

A plain module (not a test module, not conftest): tests import it by name.
``FakeService`` answers every request as the real service must (see
lab93zmq/core/irc/boundary.py): a room's news to everyone, a post's echo only
as ``Stored``, history oldest first. ``IRCNet`` drives one Gateway with a fake
clock and hands each client the lines it was sent, parsed.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from lab93zmq.core.irc import boundary as b
from lab93zmq.core.irc.config import IRCConfig
from lab93zmq.core.irc.gateway import Gateway
from lab93zmq.core.irc.lines import Line, parse
from lab93zmq.core.irc.names import fold

# Clients read lines longer than they may send; ours pass 512 bytes only for a huge mapped nick.
SERVER_BODY_BYTES = 2048
T0 = datetime(2026, 11, 24, 20, 1, 2, 123456, tzinfo=timezone.utc)


@dataclass
class FakeService:
    rooms: dict[str, dict[str, str]] = field(default_factory=dict)  # room -> {fold: name}
    topics: dict[str, b.RoomTopic] = field(default_factory=dict)
    messages: list[b.ChatMessage] = field(default_factory=list)
    users: dict[Hashable, str] = field(default_factory=dict)  # IRC conn -> name
    lab93: set[str] = field(default_factory=set)  # folded names of lab93 users online
    refuse_posts: str | None = None  # a reason to refuse every post with
    fail_history: bool = False
    requests: list[b.Request] = field(default_factory=list)
    clock: datetime = T0

    def tick_clock(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def _name(self, conn: Hashable) -> str:
        return self.users[conn]

    def store(self, sender: str, content: str, *, room=None, to=None, **flags) -> b.ChatMessage:
        message = b.ChatMessage(
            id=f"m{len(self.messages) + 1:04d}",
            sender=sender,
            room=room,
            recipient=to,
            content=content,
            sent_at=self.tick_clock(),
            **flags,
        )
        self.messages.append(message)
        return message

    # What a lab93 client does, as the service reports it.
    def lab93_join(self, name: str, room: str) -> list[object]:
        self.lab93.add(fold(name))
        self.rooms.setdefault(room, {})[fold(name)] = name
        return [b.NamesTaken((name,)), b.UserJoined(room, name)]

    def lab93_quit(self, name: str) -> list[object]:
        self.lab93.discard(fold(name))
        for members in self.rooms.values():
            members.pop(fold(name), None)
        return [b.UserQuit(name, "lab93 client left"), b.NamesTaken((name,), taken=False)]

    def lab93_post(self, name: str, content: str, *, room=None, to=None, **flags) -> list[object]:
        return [b.Delivered(self.store(name, content, room=room, to=to, **flags))]

    def handle(self, request: b.Request) -> list[object]:
        self.requests.append(request)
        conn = request.conn
        if isinstance(request, b.Register):
            if fold(request.name) in self.lab93:
                return [b.RegisterRefused(conn, "Nickname is already in use", in_use=True)]
            self.users[conn] = request.name
            return [b.Registered(conn)]
        name = self.users.get(conn, "?")
        if isinstance(request, b.JoinRoom):
            self.rooms.setdefault(request.room, {})[fold(name)] = name
            members = tuple(self.rooms[request.room].values())
            joined = b.JoinResult(conn, request.room, self.topics.get(request.room), members)
            return [joined, b.UserJoined(request.room, name)]
        if isinstance(request, b.PartRoom):
            self.rooms.get(request.room, {}).pop(fold(name), None)
            return [b.UserParted(request.room, name, request.reason)]
        if isinstance(request, (b.PostRoom, b.PostDirect)):
            if self.refuse_posts is not None:
                return [b.RequestFailed(conn, request, self.refuse_posts)]
            if isinstance(request, b.PostDirect):
                # The service names the recipient as the user is called, whatever the case typed.
                known = {fold(n): n for n in [*self.users.values(), *self._lab93_names()]}
                known.update({key: key for key in self.lab93 if key not in known})
                if fold(request.to) not in known:
                    return [b.RequestFailed(conn, request, "No such user", no_such_target=True)]
                where = {"to": known[fold(request.to)]}
            else:
                where = {"room": request.room}
            message = self.store(
                name, request.text, action=request.action, notice=request.notice, **where
            )
            return [b.Stored(conn, request, message), b.Delivered(message)]
        if isinstance(request, b.SetTopic):
            topic = b.RoomTopic(request.text, name, self.tick_clock())
            self.topics[request.room] = topic
            return [b.TopicChanged(request.room, topic)]
        if isinstance(request, b.GetTopic):
            return [b.TopicInfo(conn, request, self.topics.get(request.room))]
        if isinstance(request, b.Names):
            return [b.NamesResult(conn, request, tuple(self.rooms.get(request.room, {}).values()))]
        if isinstance(request, b.ListRooms):
            rooms = tuple(
                b.RoomSummary(room, len(members), getattr(self.topics.get(room), "text", None))
                for room, members in sorted(self.rooms.items())
            )
            return [b.ListResult(conn, request, rooms)]
        if isinstance(request, (b.WhoRequest, b.Whois)):
            return [b.WhoResult(conn, request, self._who(request))]
        if isinstance(request, b.HistoryRequest):
            if self.fail_history:
                return [b.RequestFailed(conn, request, "The store is unreachable")]
            return [b.HistoryResult(conn, request, self._history(name, request))]
        if isinstance(request, b.HistoryTargets):
            return [b.TargetsResult(conn, request, self._targets(name, request))]
        if isinstance(request, b.QuitRequest):
            self.users.pop(conn, None)
            for members in self.rooms.values():
                members.pop(fold(name), None)
            return [b.UserQuit(name, request.reason)]
        return []  # SetAway

    def _who(self, request: b.WhoRequest | b.Whois) -> tuple[b.UserInfo, ...]:
        irc = {fold(n) for n in self.users.values()}
        if isinstance(request, b.WhoRequest) and request.room is not None:
            names = list(self.rooms.get(request.room, {}).values())
        else:
            wanted = fold(request.name or "")
            names = [n for n in [*self.users.values(), *self._lab93_names()] if fold(n) == wanted]
        return tuple(
            b.UserInfo(
                n,
                irc=fold(n) in irc,
                rooms=tuple(r for r, m in sorted(self.rooms.items()) if fold(n) in m),
            )
            for n in names
        )

    def _lab93_names(self) -> list[str]:
        found = {}
        for members in self.rooms.values():
            for key, name in members.items():
                if key in self.lab93:
                    found[key] = name
        return list(found.values())

    def _conversation(self, me: str, request: b.HistoryRequest) -> list[b.ChatMessage]:
        if request.room is not None:
            return [m for m in self.messages if m.room == request.room]
        pair = {fold(me), fold(request.peer or "")}
        return [
            m
            for m in self.messages
            if m.recipient is not None and {fold(m.sender), fold(m.recipient)} == pair
        ]

    def _history(self, me: str, request: b.HistoryRequest) -> tuple[b.ChatMessage, ...]:
        found = self._conversation(me, request)
        limit = request.limit
        selector = request.selector

        def index(ref: b.Ref) -> float:
            """Where ``ref`` falls: a message's own index, or between two (x.5)."""
            if isinstance(ref, b.MsgRef):
                for i, m in enumerate(found):
                    if m.id == ref.id:
                        return i
                return len(found)
            before = sum(1 for m in found if m.sent_at < ref.at)
            return before - 0.5

        if isinstance(selector, b.Latest):
            low = -1 if selector.after is None else index(selector.after)
            picked = [m for i, m in enumerate(found) if i > low][-limit:]
        elif isinstance(selector, b.Before):
            picked = [m for i, m in enumerate(found) if i < index(selector.ref)][-limit:]
        elif isinstance(selector, b.After):
            picked = [m for i, m in enumerate(found) if i > index(selector.ref)][:limit]
        elif isinstance(selector, b.Around):
            at, half = index(selector.ref), limit // 2
            before = [m for i, m in enumerate(found) if i < at][-half:] if half else []
            picked = before + [m for i, m in enumerate(found) if i >= at][: limit - len(before)]
        else:
            start, end = index(selector.start), index(selector.end)
            inside = [m for i, m in enumerate(found) if min(start, end) < i < max(start, end)]
            picked = inside[:limit] if start < end else inside[-limit:]
        return tuple(picked)

    def _targets(self, me: str, request: b.HistoryTargets) -> tuple[b.HistoryTarget, ...]:
        low, high = sorted((request.start, request.end))
        latest: dict[tuple[str | None, str | None], datetime] = {}
        for m in self.messages:
            if m.room is not None:
                key = (m.room, None)
            elif fold(m.sender) == fold(me):
                key = (None, m.recipient)
            elif fold(m.recipient or "") == fold(me):
                key = (None, m.sender)
            else:
                continue
            latest[key] = m.sent_at
        found = sorted(
            (b.HistoryTarget(room, peer, at) for (room, peer), at in latest.items()),
            key=lambda target: target.latest,
        )
        return tuple(t for t in found if low <= t.latest <= high)[: request.limit]


class IRCNet:
    """One Gateway, the fake service behind it, a fake clock, and what each client got."""

    def __init__(self, config: IRCConfig | None = None, service: FakeService | None = None):
        self.gateway = Gateway(config or IRCConfig())
        self.service = service or FakeService()
        self.now = 0.0
        self.inbox: dict[Hashable, list[Line]] = {}
        self.closed: dict[Hashable, str] = {}
        self.held: list[b.Request] = []  # requests not yet given to the service
        self.hold = False  # when True, requests wait in ``held`` (answer with ``release``)

    def connect(self, conn: Hashable) -> None:
        self.inbox[conn] = []
        self.run(self.gateway.open(conn, self.now))

    def send(self, conn: Hashable, *lines: str | bytes) -> list[Line]:
        """The client writes ``lines``; returns what it was sent back, and takes them out."""
        data = b"".join(
            line if isinstance(line, bytes) else line.encode() + b"\r\n" for line in lines
        )
        self.run(self.gateway.receive(conn, data, self.now))
        return self.take(conn)

    def raw(self, conn: Hashable, data: bytes) -> list[Line]:
        self.run(self.gateway.receive(conn, data, self.now))
        return self.take(conn)

    def deliver(self, *events: object) -> None:
        for event in events:
            self.run(self.gateway.deliver(event, self.now))

    def tick(self, now: float) -> None:
        self.now = now
        self.run(self.gateway.tick(now))

    def release(self) -> None:
        held, self.held = self.held, []
        for request in held:
            self.deliver(*self.service.handle(request))

    def take(self, conn: Hashable) -> list[Line]:
        lines, self.inbox[conn] = self.inbox.get(conn, []), []
        return lines

    def run(self, outputs: list[b.Output]) -> None:
        for output in outputs:
            if isinstance(output, b.SendLine):
                assert output.data.endswith(b"\r\n")
                line = parse(output.data, max_body=SERVER_BODY_BYTES)
                assert line is not None
                self.inbox.setdefault(output.conn, []).append(line)
            elif isinstance(output, b.Close):
                self.closed[output.conn] = output.reason
            elif self.hold:
                self.held.append(output)
            else:
                self.deliver(*self.service.handle(output))

    def register(self, conn: Hashable, nick: str, caps: str = "") -> list[Line]:
        """Connect ``conn`` and register it as ``nick`` (asking for ``caps`` first)."""
        self.connect(conn)
        lines = [f"CAP REQ :{caps}"] if caps else []
        lines += [f"NICK {nick}", "USER u 0 * :Real Name", "CAP END"]
        got = self.send(conn, *lines)
        assert any(line.command == "001" for line in got), got
        return got


def commands(lines: list[Line]) -> list[str]:
    return [line.command for line in lines]


def texts(lines: list[Line], command: str = "PRIVMSG") -> list[str]:
    return [line.params[-1] for line in lines if line.command == command]
