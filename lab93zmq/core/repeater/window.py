"""A client's posts, pure: the outbox, the window of posts in flight, their answers.

Every post is kept in the inbox's outbox until the server acknowledges it
(or refuses it for good), so none is lost to a crash, a restart or a dead
server. At most ``window`` posts are in flight (sent, not answered); the rest
wait in order. Each post is encoded once, when it is submitted (or loaded
from the outbox): that is the size checked and the payload sent, as often as
it has to be sent.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..authoring import DIRECT, ROOM, Draft, Numbering
from ..batching import pack
from ..errors import MessageError, StoreError, StoreFault, StoreLost
from ..events import Event, Posted, Rejected
from ..inbox import ClientInbox, Transactional
from ..message import MAX_WIRE_BYTES, TOPIC, Message, make_id
from ..wire import MAX_HEADER_INT
from .commands import RepeaterVerb, listed
from .outputs import SendToServer
from .topics import topic_time

log = logging.getLogger(__name__)

WINDOW = 1000  # posts a client has in flight (sent, not acknowledged)
POST_LIMIT = 100  # messages in one POST
POST_BYTES = 1024 * 1024  # and at most this many bytes


@dataclass(frozen=True)
class Outgoing:
    """A post in the outbox, with its wire form."""

    message: Message
    payload: bytes


def outgoing(message: Message) -> Outgoing | Rejected:
    """``message`` encoded, or Rejected when it is too big to send."""
    payload = message.encode()
    if len(payload) > MAX_WIRE_BYTES:
        return Rejected(message.id, f"the message is larger than {MAX_WIRE_BYTES} bytes encoded")
    return Outgoing(message, payload)


def author(draft: Draft, user: str, origin: str, numbering: Numbering) -> Outgoing | Rejected:
    """``draft`` as our message with the next number of its scope, encoded; Rejected
    when a field is invalid or it is too big (then no number is used)."""
    try:
        message = draft.author(user, origin, numbering.peek(draft.scope))
    except MessageError as exc:
        return Rejected(draft.id, f"not a valid message: {exc}")
    post = outgoing(message)
    if isinstance(post, Outgoing):
        numbering.take(draft.scope)
    return post


def numbering(inbox: Transactional, origin: str) -> Numbering:
    """``origin``'s own numbers, each scope going on where ``inbox`` leaves off: a room's
    scope is (ROOM, room), direct messages are DIRECT."""

    def first(scope: Hashable) -> int:
        if scope == DIRECT:
            return inbox.next_origin_seq(origin, True)
        _, room = scope  # type: ignore[misc]
        return inbox.next_origin_seq(origin, False, room)

    return Numbering(first)


def author_topic(
    room: str,
    text: str,
    now: datetime,
    entropy: bytes,
    current: Message | None,
    user: str,
    origin: str,
    numbers: Numbering,
) -> Outgoing | Rejected:
    """A topic message setting ``room``'s topic to ``text``, dated to win over the
    ``current`` one (see topics.py); Rejected when the text cannot be a topic."""
    sent_at = topic_time(now, current)
    scope = (ROOM, room)
    try:
        message = Message(
            id=make_id(sent_at, entropy),
            author=user,
            recipient=None,
            subject=None,
            content=text,
            sent_at=sent_at,
            origin=origin,
            origin_seq=numbers.peek(scope),
            room=room,
            kind=TOPIC,
        )
    except MessageError as exc:
        return Rejected(None, f"not a valid topic: {exc}")
    post = outgoing(message)
    if isinstance(post, Outgoing):
        numbers.take(scope)
    return post


class PostWindow:
    """The outbox in memory, what is to be sent, what is in flight, what was answered."""

    def __init__(self, inbox: ClientInbox, window: int = WINDOW) -> None:
        self.inbox = inbox
        self.window = window
        self.outbox: OrderedDict[str, Outgoing] = OrderedDict(
            (m.id, Outgoing(m, m.encode())) for m in inbox.outbox()
        )
        self._unsent: deque[str] = deque()
        self._inflight: dict[str, float] = {}  # id -> when it went out
        self.held_until: float | None = None  # the server cannot store now: send nothing till then
        # answers to write with the next flush
        self.acked: list[tuple[str, int]] = []
        self.rejected: list[tuple[str, str]] = []

    # -- in -----------------------------------------------------------------------

    def submit(self, posts: Sequence[Outgoing]) -> None:
        """Keep these posts in the outbox (one transaction) and send them when connected;
        StoreError (nothing kept) when the inbox cannot store them."""
        self.inbox.queue_many([post.message for post in posts])
        for post in posts:
            mid = post.message.id
            if mid not in self.outbox:
                self.outbox[mid] = post
                self._unsent.append(mid)

    def keep(self, posts: Sequence[Outgoing | Rejected]) -> list[Event]:
        """``submit`` the posts that can be sent (committed before this returns):
        Posted for them, and the rejections of the others."""
        kept = [post for post in posts if isinstance(post, Outgoing)]
        events: list[Event] = [post for post in posts if isinstance(post, Rejected)]
        try:
            self.submit(kept)
        except StoreLost:
            raise  # the node stops
        except StoreFault as exc:  # the inbox cannot be written now: none is kept
            log.warning("could not keep %d post(s): %s", len(kept), exc)
            reason = f"not stored in the inbox: {exc}"
            return events + [Rejected(post.message.id, reason) for post in kept]
        except StoreError:  # one clashes with a stored message: keep the others
            kept = self._one_by_one(kept, events)
        if kept:
            events.append(Posted(tuple(post.message for post in kept)))
        return events

    def _one_by_one(self, posts: Sequence[Outgoing], events: list[Event]) -> list[Outgoing]:
        kept = []
        for post in posts:
            try:
                self.submit([post])
            except StoreLost:
                raise
            except StoreError as exc:
                log.warning("could not keep post %s: %s", post.message.id, exc)
                events.append(Rejected(post.message.id, f"not stored in the inbox: {exc}"))
            else:
                kept.append(post)
        return kept

    def on_ack(self, header: dict) -> None:
        """An ACK: these posts are stored, under these numbers."""
        for mid, seq in listed(header):
            if isinstance(mid, str) and type(seq) is int and 0 < seq <= MAX_HEADER_INT:
                self.acked.append((mid, seq))
                self._inflight.pop(mid, None)

    def on_reject(self, header: dict) -> None:
        """A REJECT: these posts can never be stored."""
        for mid, reason in listed(header):
            if isinstance(mid, str) and mid in self.outbox:
                self.rejected.append((mid, str(reason)))
                self._inflight.pop(mid, None)
            else:
                log.warning("the repeater rejected a message: %s", reason)

    @property
    def answered(self) -> bool:
        """Answers wait to be written."""
        return bool(self.acked or self.rejected)

    def take_answers(self) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
        """The answers to write now (acknowledged, rejected), forgotten here."""
        answers = self.acked, self.rejected
        self.acked, self.rejected = [], []
        return answers

    def settle(self, acked: list[str], rejected: list[str]) -> tuple[list[str], list[str]]:
        """Answers written: drop those posts from the outbox; which were still in it."""
        return (
            [mid for mid in acked if self.outbox.pop(mid, None) is not None],
            [mid for mid in rejected if self.outbox.pop(mid, None) is not None],
        )

    # -- out ----------------------------------------------------------------------

    def restart(self) -> None:
        """A new session: send the whole outbox again (the server dedupes by id)."""
        self._inflight.clear()
        self._unsent = deque(self.outbox)
        self.held_until = None

    def hold(self, until: float) -> None:
        """The server cannot store posts now: take back what is in flight and send it
        all again, in order, from ``until`` on."""
        self.restart()
        self.held_until = until

    def stop(self) -> None:
        """The session is gone: nothing is in flight, nothing to send until the next."""
        self._inflight.clear()
        self._unsent.clear()

    def posts(self, now: float) -> list[SendToServer]:
        """POSTs for what waits, within the window, each at most POST_LIMIT messages
        and POST_BYTES bytes."""
        if self.held_until is not None:
            if now < self.held_until:
                return []
            self.held_until = None
        ids: list[str] = []
        while self._unsent and len(self._inflight) < self.window:
            mid = self._unsent.popleft()
            if mid in self.outbox and mid not in self._inflight:
                self._inflight[mid] = now
                ids.append(mid)
        out: list[SendToServer] = []
        start = 0
        for group in pack([self.outbox[mid].payload for mid in ids], POST_LIMIT, POST_BYTES):
            command = RepeaterVerb.POST.command({}, group)
            out.append(SendToServer(command, tuple(ids[start : start + len(group)])))
            start += len(group)
        return out

    def unsent(self, ids: Sequence[str]) -> None:
        """A POST could not be sent (the DEALER is full): its posts go first next time."""
        for mid in reversed(ids):
            if mid in self._inflight:
                del self._inflight[mid]
                self._unsent.appendleft(mid)

    def next_deadline(self, bound: float) -> float | None:
        """When the oldest post in flight counts as unanswered (or held posts go out)."""
        if self.held_until is not None and self._unsent:
            return self.held_until
        return min(self._inflight.values()) + bound if self._inflight else None

    def expire(self, now: float, bound: float) -> None:
        """Answers lost on the way: once the oldest post is ``bound`` seconds in flight,
        send everything again; the server dedupes by id."""
        if self._inflight and now >= min(self._inflight.values()) + bound:
            self.restart()
