"""What a protocol core tells the front end, in both modes. Pure.

A core returns these among its outputs; the actor's shell passes each to
``actor.send_events``, which writes the typed pipe messages listed in actor.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .message import Message


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
    """The answer to WHO."""

    users: tuple[str, ...]
    connected: bool = True


@dataclass(frozen=True)
class Posted:
    """These drafts are authored and stored (committed): a send is durable from here."""

    messages: tuple[Message, ...]


Event = Incoming | Accepted | Rejected | Status | Notice | Users | Posted


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
    """The pipe message kind (actor.Kind's value) and body for ``event``."""
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
        return "who_result", {"users": list(event.users), "connected": event.connected}
    if isinstance(event, Posted):
        return "posted", {"messages": [m.to_wire_dict() for m in event.messages]}
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
        return [Users(tuple(body["users"]), bool(body.get("connected", True)))]
    raise ValueError(f"no event for the pipe message {kind!r}")
