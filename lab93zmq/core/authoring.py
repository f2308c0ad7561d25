"""Authoring: what a front end asks to send (a Draft), and our own numbering. Pure.

A node is the only author of its origin: it numbers what it writes itself,
one counter per *scope* (``(ROOM, room)`` per room, and ``DIRECT``), and a number is used
only once the message holding it is stored, so a scope's sequence has no
holes (peers' contiguous marks depend on that). The same pieces serve both
modes; the cores author, the shells only carry drafts over the pipe.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .errors import MessageError
from .message import ACTION, Message, check_content, check_fields, make_id, parse_time
from .rooms import DEFAULT_ROOM, check_room

ROOM = "room"  # the scope of a room's messages is (ROOM, room)
DIRECT = "direct"  # the scope of direct messages


@dataclass(frozen=True)
class Draft:
    """A front end's request to send a message; the core that authors it adds the rest.

    ``room`` is the room of a room post (None: ``general``), None for a direct one.
    ``kind`` is None for chat or ``"action"`` (/me); a topic is set by the TOPIC
    request, never posted as a draft."""

    id: str
    content: str
    subject: str | None
    to: str | None
    sent_at: datetime
    room: str | None = None
    kind: str | None = None

    @property
    def scope(self) -> Hashable:
        return (ROOM, self.room or DEFAULT_ROOM) if self.to is None else DIRECT

    def body(self) -> dict[str, Any]:
        """The pipe form (a JSON object); ``kind`` only when there is one."""
        body = {
            "id": self.id,
            "content": self.content,
            "subject": self.subject,
            "to": self.to,
            "sent_at": self.sent_at.isoformat(timespec="microseconds"),
            "room": self.room,
        }
        if self.kind is not None:
            body["kind"] = self.kind
        return body

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Draft:
        """A Draft from its pipe form; MessageError (RoomError) for a bad room or a
        kind a draft may not have."""
        sent_at = parse_time(body["sent_at"])
        room = body.get("room")
        if room is not None:
            room = check_room(room)
        kind = body.get("kind")
        if kind not in (None, ACTION):
            raise MessageError("kind", f"of a posted message is {ACTION} or absent, not {kind!r}")
        return cls(body["id"], body["content"], body["subject"], body["to"], sent_at, room, kind)

    def author(self, user: str, origin: str, origin_seq: int) -> Message:
        """The Message this draft becomes; MessageError when a field is invalid.

        Every check ``Message(...)`` makes, then the Message built without its dataclass
        ``__init__`` (a third of the cost of authoring a post); a time not in UTC takes
        the constructor, which normalises it."""
        room = None if self.to is not None else self.room or DEFAULT_ROOM
        if getattr(self.sent_at, "tzinfo", None) is timezone.utc:
            check_fields(self.id, user, self.to, self.subject, self.content, self.sent_at,
                         origin, origin_seq, room, self.kind)
            message = Message.trusted(self.id, user, self.to, self.subject, self.content,
                                      self.sent_at, origin, origin_seq, room, self.kind)
        else:
            message = Message(id=self.id, author=user, recipient=self.to,
                              subject=self.subject, content=self.content,
                              sent_at=self.sent_at, origin=origin, origin_seq=origin_seq,
                              room=room, kind=self.kind)
        text = self.__dict__.get("_sent_text")  # the time as the pipe wrote it
        if text is not None and message.sent_at is self.sent_at:
            message.__dict__["_sent_text"] = text
        return message

    def in_room(self, room: str) -> Draft:
        """This room post, in ``room`` (the current one, for a draft that named none):
        a copy of its fields, a third of what a constructor call costs."""
        draft = object.__new__(Draft)
        draft.__dict__.update(self.__dict__)
        draft.__dict__["room"] = room
        return draft

    def check(self, user: str, origin: str) -> None:
        """MessageError when ``author`` would refuse this draft (every field's own check,
        without building the Message)."""
        room = None if self.to is not None else self.room
        check_fields(self.id, user, self.to, self.subject, self.content, self.sent_at,
                     origin, 1, room, self.kind)

    def authored(self, author: str, origin: str, origin_seq: int, room: str | None) -> Message:
        """The Message an actor stored for this draft, from what the actor gave it (its
        author, origin, number and room: POSTED in rows), without checking again what
        it checked; a draft whose time is not UTC is built (and normalised) in full."""
        if self.sent_at.tzinfo is not timezone.utc:
            return self.author(author, origin, origin_seq)
        return Message.trusted(self.id, author, self.to, self.subject, self.content,
                               self.sent_at, origin, origin_seq, room, self.kind)


def checked_drafts(
    texts: list[str], subject: str | None, to: str | None, room: str | None,
    kind: str | None, user: str, origin: str, clock: Callable[[], datetime], entropy: bytes,
) -> list[Draft | MessageError]:
    """A Draft for each of ``texts`` (a room post in ``room``, or one ``to`` a user), its
    time ``clock()`` and its id's random part the next 10 bytes of ``entropy``, checked
    as ``Draft.check`` checks one - or the MessageError that refuses it.

    What the texts share (author, addressee, subject, room, kind, origin) is checked
    once, and then each text's content only: the ids and times made here are valid. A
    burst of piped lines so pays for its lines, not for the fields of each. When a
    shared field is bad, each draft is checked in full and refused for it, as alone."""
    drafts: list[Draft | MessageError] = []
    sample = clock()
    try:
        check_fields(make_id(sample, bytes(10)), user, to, subject, "-", sample, origin, 1,
                     None if to is not None else room, kind)
        shared = kind is None or kind == ACTION
    except MessageError:
        shared = False
    for index, text in enumerate(texts):
        sent_at = clock()
        # Filled in place, not through the frozen dataclass's __init__ (one
        # object.__setattr__ a field): a third of drafting a line, for values set once.
        draft = object.__new__(Draft)
        draft.__dict__.update(
            id=make_id(sent_at, entropy[10 * index : 10 * index + 10]), content=text,
            subject=subject, to=to, sent_at=sent_at, room=room, kind=kind,
        )  # fmt: skip
        try:
            if shared and sent_at.tzinfo is timezone.utc:
                check_content(text)
            else:
                draft.check(user, origin)
        except MessageError as error:
            drafts.append(error)
            continue
        drafts.append(draft)
    return drafts


class Numbering:
    """Our origin's next numbers, one counter per scope.

    ``first(scope)`` says where a scope starts (the inbox's highest number
    plus one); it is asked once per scope, when the scope is first used.
    """

    def __init__(self, first: Callable[[Hashable], int]) -> None:
        self._first = first
        self._next: dict[Hashable, int] = {}

    def peek(self, scope: Hashable) -> int:
        """The number the next message of ``scope`` gets."""
        if scope not in self._next:
            self._next[scope] = self._first(scope)
        return self._next[scope]

    def take(self, scope: Hashable, count: int = 1) -> int:
        """Use ``count`` numbers (their messages are stored); the first of them."""
        first = self.peek(scope)
        self._next[scope] = first + count
        return first

    def seen(self, scope: Hashable, seq: int) -> None:
        """An older copy of this inbox already used numbers up to ``seq``."""
        if seq >= self.peek(scope):
            self._next[scope] = seq + 1
