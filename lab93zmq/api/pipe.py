"""The program's side of the actor pipe, sans-IO: what to send, and what arrived.

Both faces of the API (blocking ``api.node`` and ``aio``) drive one
``PipeClient``; they differ only in how they wait. It turns calls into pipe
messages and pipe messages into *settlements* for whoever waits:

* a post is settled by its ``POSTED`` (the stored Message) or ``REJECTED``; a
  burst posted together (``post_burst``) once every one of its drafts is, with
  the list of what each became;
* a question (``WHO``, ``SCAN``, ``HISTORY``, ``OUTBOX``, …) by the next answer of its
  kind: the actor answers in the order it was asked, on one ordered pipe;
* everything else is an event (a message for ``receive``, or a typed event).

It also keeps what ``flush`` needs: the posts of this session not yet
accepted. Events come from an ``ActorHandle`` as the values the actor built
(EVENTS); from any other pipe as JSON, and their messages, checked by the
actor already, are rebuilt without checking them again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.authoring import Draft
from ..core.away import AwayTextError, away_text
from ..core.errors import Lab93Error, RefusedError, UsageError, error_of_kind
from ..core.events import (
    Accepted,
    Event,
    Incoming,
    Joined,
    Parted,
    Posted,
    Rejected,
    RoomList,
    Topic,
    Users,
    from_pipe_form,
)
from ..core.message import Message
from ..core.sighting import Sighting
from ..io.actor import Handover, PipeKind, PipeMessage, posts_body

log = logging.getLogger(__name__)

# The answer each question gets.
ANSWERS = {
    PipeKind.WHO: PipeKind.WHO_RESULT,
    PipeKind.SCAN: PipeKind.SCAN_RESULT,
    PipeKind.HISTORY: PipeKind.HISTORY_RESULT,
    PipeKind.ROOMS: PipeKind.ROOMS_RESULT,
    PipeKind.OUTBOX: PipeKind.OUTBOX_RESULT,
}


def away_request(text: str | None) -> PipeMessage:
    """AWAY with ``text`` (None or blank: back); UsageError naming the rule otherwise."""
    try:
        return PipeMessage(PipeKind.AWAY, {"text": away_text(text)})
    except AwayTextError as error:
        raise UsageError(str(error)) from None


@dataclass(frozen=True)
class Settled:
    """What ``token`` waited for: ``value``, or ``error`` to raise."""

    token: Hashable
    value: Any = None
    error: Lab93Error | None = None


@dataclass(frozen=True)
class Arrived:
    """A message for ``receive`` and iteration, in the order the CLI prints them."""

    message: Message


@dataclass(frozen=True)
class Happened:
    """A typed event for ``next_event``."""

    event: Event


@dataclass(frozen=True)
class Failed:
    """The actor cannot go on (its FATAL sentence). It may still be running (a repeater
    client refused by its server keeps taking posts into its outbox until STOP), or
    its thread may have ended: the owner tells which."""

    error: Lab93Error


@dataclass(frozen=True)
class Ended:
    """The actor stopped (STOPPED): nothing more comes from it."""


Item = Settled | Arrived | Happened | Failed | Ended

# The three ways to read what arrived: messages only, events only, or both in order.
MESSAGES, EVENTS, EVERYTHING = "messages", "events", "everything"


class Arrivals:
    """Messages and events as they arrived, for three readers at once.

    ``receive`` reads messages, ``next_event`` events, ``poll`` both in their one
    order; what one reader leaves is kept for the others, and nothing is read twice.
    """

    def __init__(self) -> None:
        self._messages: deque[tuple[int, Message]] = deque()
        self._events: deque[tuple[int, Event]] = deque()
        self._count = 0

    def add(self, item: Arrived | Happened) -> None:
        self._count += 1
        if isinstance(item, Arrived):
            self._messages.append((self._count, item.message))
        else:
            self._events.append((self._count, item.event))

    def ready(self, view: str) -> bool:
        if view == MESSAGES:
            return bool(self._messages)
        if view == EVENTS:
            return bool(self._events)
        return bool(self._messages or self._events)

    def take(self, view: str) -> Message | Event:
        """The next item for ``view``; only when ``ready(view)``."""
        if view == MESSAGES or (
            view == EVERYTHING
            and self._messages
            and (not self._events or self._messages[0][0] < self._events[0][0])
        ):
            return self._messages.popleft()[1]
        return self._events.popleft()[1]

    def after_waiting(self, view: str, error: Lab93Error | None) -> Message | Event | None:
        """What a wait for ``view`` ends with: its next item, else ``error`` raised (the
        node cannot go on), else None (the time ran out, or the node ended cleanly)."""
        if self.ready(view):
            return self.take(view)
        if error is not None:
            raise error
        return None


def settle(future: Any, settled: Settled) -> None:
    """Give ``future`` (an asyncio or a concurrent one) the value or the error it
    waited for, unless its caller gave up on it already (cancelled it)."""
    if future.done():
        return
    if settled.error is not None:
        future.set_exception(settled.error)
    else:
        future.set_result(settled.value)


class _Burst:
    """Drafts whose waiter is settled once: with the one Message (or error) of a single
    post, or with the list of what each of a burst became."""

    __slots__ = ("token", "results", "left", "single")

    def __init__(self, token: Hashable, size: int, single: bool) -> None:
        self.token = token
        self.results: list[Message | Lab93Error | None] = [None] * size
        self.left = size
        self.single = single

    def settle(self, indices: list[int], result: Message | Lab93Error) -> Settled | None:
        for index in indices:
            if self.results[index] is None:
                self.results[index] = result
                self.left -= 1
        if self.left:
            return None
        if not self.single:
            return Settled(self.token, self.results)
        [only] = self.results
        if isinstance(only, Lab93Error):
            return Settled(self.token, error=only)
        return Settled(self.token, only)


class PipeClient:
    """Bookkeeping for one node's pipe. Not thread-safe: one owner drives it.

    ``bursts``: the actor takes a burst of drafts as one POSTS message; ``handover``:
    handed over as they are (``actor.Handover``), the actor being in this process."""

    def __init__(self, bursts: bool = False, handover: Handover | None = None) -> None:
        self.bursts = bursts
        self.handover = handover
        # draft id -> who waits for its POSTED, where it stands among its burst, and
        # the draft itself (a POSTED in rows names only what the actor gave it)
        self._posting: dict[str, tuple[_Burst, list[int], Draft]] = {}
        self.unaccepted: dict[str, Message] = {}  # posted this session, not yet accepted
        self._asking: dict[PipeKind, deque[Hashable]] = {kind: deque() for kind in ANSWERS}
        # JOIN and PART are answered by the JOINED / PARTED event naming the room.
        self._moving: dict[tuple[PipeKind, str], deque[Hashable]] = {}
        self.topics: dict[str, Topic] = {}  # the topic of each room we are in, as known
        self.ended = False

    # -- calls -> pipe messages ------------------------------------------------

    def post(self, drafts: Iterable[tuple[Draft, Hashable]]) -> list[PipeMessage]:
        """POSTs for ``drafts``; each one's token is settled with its stored Message, or
        with the error that refused it."""
        posted = []
        for draft, token in drafts:
            self._posting[draft.id] = (_Burst(token, 1, single=True), [0], draft)
            posted.append(draft)
        return self._requests(posted)

    def post_burst(self, drafts: Sequence[Draft], token: Hashable) -> list[PipeMessage]:
        """POSTs for ``drafts``; ``token`` is settled once every one of them is, with a
        list of what each became: its stored Message, or the error that refused it."""
        burst = _Burst(token, len(drafts), single=False)
        for index, draft in enumerate(drafts):
            waiting = self._posting.get(draft.id)
            if waiting is not None and waiting[0] is burst:
                waiting[1].append(index)  # the same id twice: stored once, settled together
            else:
                self._posting[draft.id] = (burst, [index], draft)
        return self._requests(drafts)

    def _requests(self, drafts: Sequence[Draft]) -> list[PipeMessage]:
        if not drafts:
            return []
        if self.bursts and self.handover is not None:
            return [self.handover.give(list(drafts))]
        if self.bursts:
            return [PipeMessage(PipeKind.POSTS, posts_body(list(drafts)))]
        return [PipeMessage(PipeKind.POST, draft.body()) for draft in drafts]

    def ask(self, kind: PipeKind, token: Hashable, **body: Any) -> PipeMessage:
        """A question; ``token`` is settled with the answer's body."""
        self._asking[kind].append(token)
        return PipeMessage(kind, body)

    def move(self, kind: PipeKind, room: str, token: Hashable) -> PipeMessage:
        """JOIN or PART ``room``; ``token`` is settled with the Joined / Parted event."""
        self._moving.setdefault((kind, room), deque()).append(token)
        return PipeMessage(kind, {"room": room})

    def waiting(self) -> list[Hashable]:
        """Every token not settled yet (to fail them when the actor is gone)."""
        asked = [token for queue in self._asking.values() for token in queue]
        asked += [token for queue in self._moving.values() for token in queue]
        posting = list({id(burst): burst.token for burst, _, _ in self._posting.values()}.values())
        return posting + asked

    # -- pipe messages -> items -------------------------------------------------

    def take(self, message: PipeMessage) -> list[Item]:
        kind, body = message.kind, message.body
        if kind is PipeKind.EVENTS:  # handed over as they are: nothing to rebuild
            items: list[Item] = []
            for event in body["events"]:
                if isinstance(event, Users):
                    items += self._answered(PipeKind.WHO, event)
                elif isinstance(event, RoomList):
                    items += self._answered(PipeKind.ROOMS, list(event.rooms))
                else:
                    items += self._event(event)
            return items
        if kind is PipeKind.STOPPED:
            self.ended = True
            return [Ended()]
        if kind is PipeKind.FATAL:
            return [Failed(error_of_kind(body.get("error_class"), body["error"]))]
        for question, answer in ANSWERS.items():
            if kind is answer:
                return self._answer(question, body)
        if kind is PipeKind.POSTED and "rows" in body:
            return self._posted_rows(body["rows"])
        try:
            events = from_pipe_form(kind.value, body)
        except (KeyError, TypeError, ValueError) as error:
            log.error("ignored a %s from the actor: %s", kind.value, error)  # our own bug
            return []
        items = []
        for event in events:
            items += self._event(event)
        return items

    def _answer(self, question: PipeKind, body: dict[str, Any]) -> list[Item]:
        if not self._asking[question]:
            return []  # nobody asked (a front end that asked and then left)
        if question is PipeKind.SCAN:
            return self._answered(question, [Sighting.from_json(b) for b in body["beacons"]])
        if question in (PipeKind.HISTORY, PipeKind.OUTBOX):
            messages = [Message.from_checked_dict(f) for f in body["messages"]]
            return self._answered(question, messages)
        if question is PipeKind.ROOMS:
            [rooms] = from_pipe_form("rooms_result", body)
            return self._answered(question, list(rooms.rooms))  # type: ignore[union-attr]
        [users] = from_pipe_form("who_result", body)
        return self._answered(question, users)

    def _answered(self, question: PipeKind, value: Any) -> list[Item]:
        """The next asker of ``question`` settled with ``value``."""
        askers = self._asking[question]
        if not askers:
            return []  # nobody asked (a front end that asked and then left)
        return [Settled(askers.popleft(), value)]

    def _event(self, event: Event) -> list[Item]:
        if isinstance(event, Incoming):
            return [Arrived(event.message)]
        if isinstance(event, Posted):
            return self._posted(event.messages)
        if isinstance(event, Joined):
            if event.topic is not None:
                self.topics[event.room] = event.topic
            return self._moved(PipeKind.JOIN, event.room, event)
        if isinstance(event, Parted):
            self.topics.pop(event.room, None)
            return self._moved(PipeKind.PART, event.room, event)
        if isinstance(event, Topic):
            self.topics[event.room] = event
        if isinstance(event, Accepted):
            for message_id in event.ids:
                self.unaccepted.pop(message_id, None)
            return [Happened(event)]
        if isinstance(event, Rejected):
            self.unaccepted.pop(event.id or "", None)
            waiting = self._posting.pop(event.id or "", None)
            if waiting is not None:
                burst, indices, _ = waiting
                settled = burst.settle(indices, RefusedError(f"not sent: {event.reason}"))
                return [settled, Happened(event)] if settled else [Happened(event)]
            return [Happened(event)]
        return [Happened(event)]

    def _moved(self, kind: PipeKind, room: str, event: Event) -> list[Item]:
        items: list[Item] = []
        waiting = self._moving.get((kind, room))
        if waiting:
            items.append(Settled(waiting.popleft(), event))
            if not waiting:
                del self._moving[(kind, room)]
        return [*items, Happened(event)]

    def _posted(self, messages: tuple[Message, ...]) -> list[Item]:
        items: list[Item] = []
        for message in messages:
            self.unaccepted[message.id] = message
            waiting = self._posting.pop(message.id, None)
            if waiting is not None:
                burst, indices, _ = waiting
                settled = burst.settle(indices, message)
                if settled is not None:
                    items.append(settled)
        return items

    def _posted_rows(self, rows: list[list[Any]]) -> list[Item]:
        """POSTED as rows: each draft we hold, authored as the actor says it was."""
        items: list[Item] = []
        for mid, author, origin, seq, room in rows:
            waiting = self._posting.pop(mid, None)
            if waiting is None:
                log.error("the actor stored a post nobody made: %s", mid)  # our own bug
                continue
            burst, indices, draft = waiting
            message = draft.authored(author, origin, seq, room)
            self.unaccepted[mid] = message
            settled = burst.settle(indices, message)
            if settled is not None:
                items.append(settled)
        return items
