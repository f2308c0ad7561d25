"""What a protocol core tells the front end, in both modes. Pure.

A core returns these among its outputs; the actor's shell passes each to
``actor.send_events``, which writes the typed pipe messages listed in actor.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .message import Message, parse_time, time_text


@dataclass(frozen=True)
class Incoming:
    """A message new to this inbox."""

    message: Message


@dataclass(frozen=True)
class Accepted:
    """These posts are delivered (what that means depends on the mode)."""

    ids: tuple[str, ...]


@dataclass(frozen=True)
class Rejected:
    """This post can never be delivered; ``id`` None when it had none."""

    id: str | None
    reason: str


@dataclass(frozen=True)
class Status:
    """The connection state changed (or its description did)."""

    connected: bool
    detail: str


@dataclass(frozen=True)
class Notice:
    """Something a user may want to know."""

    text: str


@dataclass(frozen=True)
class Users:
    """The answer to WHO: who is on the network (``room`` None), or in ``room``; and
    the away text of each of them who is away (name, text), in name order."""

    users: tuple[str, ...]
    connected: bool = True
    room: str | None = None
    away: tuple[tuple[str, str], ...] = ()

    @property
    def away_texts(self) -> dict[str, str]:
        return dict(self.away)


@dataclass(frozen=True)
class Posted:
    """These drafts are authored and stored (committed): a send is durable from here."""

    messages: tuple[Message, ...]


@dataclass(frozen=True)
class Topic:
    """``room``'s topic is now ``text``, set by ``by`` at ``at`` (the winning topic
    message: the greatest (sent_at, id) among the room's)."""

    room: str
    text: str
    by: str
    at: datetime

    @classmethod
    def of(cls, message: Message) -> Topic:
        """The topic a topic message sets (a room message: it has a room)."""
        if message.room is None:
            raise ValueError("a direct message sets no topic")
        return cls(message.room, message.content, message.author, message.sent_at)

    def body(self) -> dict[str, Any]:
        return {"text": self.text, "by": self.by, "at": time_text(self.at)}


@dataclass(frozen=True)
class Joined:
    """We are in ``room`` now (subscribed); its topic as known then; ``first``: this
    inbox was never in it before."""

    room: str
    topic: Topic | None
    first: bool


@dataclass(frozen=True)
class Parted:
    """We left ``room``: nothing of it is stored from now on."""

    room: str


@dataclass(frozen=True)
class Member:
    """``user`` came to (``joined``) or left a room we are in."""

    room: str
    user: str
    joined: bool


@dataclass(frozen=True)
class RoomInfo:
    """One room heard on the network: how many are in it, its topic, whether we are."""

    name: str
    members: int
    topic: str | None
    joined: bool


@dataclass(frozen=True)
class RoomList:
    """The answer to ROOMS: every room heard on the network, sorted by name."""

    rooms: tuple[RoomInfo, ...]


Event = (
    Incoming
    | Accepted
    | Rejected
    | Status
    | Notice
    | Users
    | Topic
    | Joined
    | Parted
    | Member
    | RoomList
    | Posted
)


def pipe_forms(events: Iterable[Event]) -> list[tuple[str, dict[str, Any]]]:
    """The pipe messages for ``events``, in order; a run of Incoming becomes one message.

    One pipe message per chat message cost a receiving broadcast node ~40 % of
    its actor thread at 10k messages/s (JSON and the GIL); a run costs one.
    """
    forms: list[tuple[str, dict[str, Any]]] = []
    for event in events:
        if isinstance(event, Incoming) and forms and forms[-1][0] == "incoming":
            forms[-1][1]["messages"].append(event.message.to_wire_dict())
        elif isinstance(event, Posted) and forms and forms[-1][0] == "posted":
            forms[-1][1]["messages"] += [m.to_wire_dict() for m in event.messages]
        else:
            forms.append(pipe_form(event))
    return forms


def pipe_form(event: Event) -> tuple[str, dict[str, Any]]:
    """The pipe message kind (actor.PipeKind's value) and body for ``event``."""
    if isinstance(event, Incoming):
        return "incoming", {"messages": [event.message.to_wire_dict()]}
    if isinstance(event, Accepted):
        return "accepted", {"ids": list(event.ids)}
    if isinstance(event, Rejected):
        return "rejected", {"id": event.id, "reason": event.reason}
    if isinstance(event, Status):
        return "status", {"connected": event.connected, "detail": event.detail}
    if isinstance(event, Notice):
        return "notice", {"text": event.text}
    if isinstance(event, Users):
        body = {"room": event.room, "users": list(event.users), "connected": event.connected,
                "away": dict(event.away)}
        return "who_result", body
    if isinstance(event, Posted):
        return "posted", {"messages": [m.to_wire_dict() for m in event.messages]}
    if isinstance(event, Topic):
        return "topic", {"room": event.room, **event.body()}
    if isinstance(event, Joined):
        topic = None if event.topic is None else event.topic.body()
        return "joined", {"room": event.room, "topic": topic, "first": event.first}
    if isinstance(event, Parted):
        return "parted", {"room": event.room}
    if isinstance(event, Member):
        return "member", {"room": event.room, "user": event.user, "joined": event.joined}
    if isinstance(event, RoomList):
        rooms = [
            {"name": r.name, "members": r.members, "topic": r.topic, "joined": r.joined}
            for r in event.rooms
        ]
        return "rooms_result", {"rooms": rooms}
    raise TypeError(f"no pipe message for {event!r}")  # a new event type without a form is a bug


def from_pipe_form(kind: str, body: dict[str, Any]) -> list[Event]:
    """The events a pipe message carries (``pipe_form``'s inverse, a run of INCOMING
    as one Incoming each); messages are rebuilt without checking them again."""
    if kind == "incoming":
        return [Incoming(Message.from_checked_dict(f)) for f in body["messages"]]
    if kind == "posted":
        return [Posted(tuple(Message.from_checked_dict(f) for f in body["messages"]))]
    if kind == "accepted":
        return [Accepted(tuple(body["ids"]))]
    if kind == "rejected":
        return [Rejected(body["id"], body["reason"])]
    if kind == "status":
        return [Status(bool(body["connected"]), body["detail"])]
    if kind == "notice":
        return [Notice(body["text"])]
    if kind == "who_result":
        away = tuple(sorted(dict(body.get("away") or {}).items()))
        return [Users(tuple(body["users"]), bool(body.get("connected", True)), body.get("room"),
                      away)]
    if kind == "topic":
        return [_topic(body["room"], body)]
    if kind == "joined":
        topic = body["topic"]
        room = body["room"]
        return [Joined(room, None if topic is None else _topic(room, topic), bool(body["first"]))]
    if kind == "parted":
        return [Parted(body["room"])]
    if kind == "member":
        return [Member(body["room"], body["user"], bool(body["joined"]))]
    if kind == "rooms_result":
        rooms = body["rooms"]
        infos = (RoomInfo(r["name"], r["members"], r["topic"], bool(r["joined"])) for r in rooms)
        return [RoomList(tuple(infos))]
    raise ValueError(f"no event for the pipe message {kind!r}")


def _topic(room: str, body: dict[str, Any]) -> Topic:
    return Topic(room, body["text"], body["by"], parse_time(body["at"], "at"))
