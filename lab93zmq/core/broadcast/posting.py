"""Our own posts in broadcast mode: authoring, numbering, publishing, "accepted". Pure.

We are our origin's only author: each room's messages are numbered 1, 2, 3,
... and direct messages in a sequence of their own, and a number is used only
once its message is stored, so our sequence in a room never has a hole
(peers' contiguous marks depend on that). A topic is a room message too.

A room post is *accepted* once discovery had one interval and every live
peer in its room holds it (at least one such peer): marks are contiguous, so
every pending post numbered up to the lowest mark any of them reported for
our origin in that room is held by all of them. When every peer of the room
has gone, the posts some peer reported holding before it went are accepted
too: at least one peer holds them, and no live peer lacks them (a peer that
leaves right after its last report was lost on a SUB still connecting must
not strand them). The marks peers report live in ``roomsync.RoomSync``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..authoring import DIRECT, ROOM, Draft, Numbering
from ..batching import pack
from ..errors import MessageError, StoreError, StoreLost
from ..events import Accepted, Rejected
from ..inbox import BroadcastInbox
from ..message import TOPIC, Message
from .actions import BATCH_BYTES, BATCH_MESSAGES, Output, PublishFrames, Verb, published_frames

DUPLICATE = "a message with this id is already in the inbox"


@dataclass(frozen=True)
class RoomPosts:
    """Our room messages, numbered and stored: to publish."""

    messages: tuple[Message, ...]


@dataclass(frozen=True)
class DirectPost:
    """Our direct message, numbered and in the outbox: to offer."""

    message: Message


Authored = Rejected | RoomPosts | DirectPost


class Posting:
    """Our origin's numbering and the room posts of this run not yet accepted."""

    def __init__(self, node_id: str, user: str, store: BroadcastInbox, interval: float,
                 now: float, seal: Callable[[Message], Message] = lambda message: message,
                 ) -> None:
        self.node_id = node_id
        self.seal = seal  # secure mode signs each message we author (``KeyTrust.seal``)
        self.user = user
        self.store = store
        self.interval = float(interval)
        self.started = now
        self._discovery_due: float | None = now + self.interval
        # The numbers our next message of each scope gets (rooms add a scope per room).
        self.numbers = Numbering(self._first_number)
        # Per room: post id -> its number, in numbering (= posting) order.
        self._pending: dict[str, dict[str, int]] = {}

    def _first_number(self, scope: Hashable) -> int:
        if scope == DIRECT:
            return self.store.next_origin_seq(self.node_id, direct=True)
        _, room = scope  # (ROOM, room)
        return self.store.next_origin_seq(self.node_id, direct=False, room=room)

    def author(self, drafts: Sequence[Draft]) -> list[Authored]:
        """Author a burst of posts and store them, in posting order.

        A run of room posts is numbered and stored in one transaction; if the
        inbox refuses any of it (an id it already holds), nothing of it is kept
        and the run is stored one by one instead, so each refused post is named
        and the numbers stay contiguous.
        """
        authored: list[Authored] = []
        room: list[Draft] = []
        for draft in drafts:
            if draft.to is None:
                room.append(draft)
                continue
            authored += self._room(room)
            room = []
            authored.append(self._one(draft))
        return authored + self._room(room)

    def topic(self, room: str, text: str, message_id: str, sent_at: datetime) -> Authored:
        """Author and store a topic message of ``room`` (the next number of the room)."""
        scope = (ROOM, room)
        try:
            message = self.seal(Message(message_id, self.user, None, None, text, sent_at,
                                        self.node_id, self.numbers.peek(scope), room=room,
                                        kind=TOPIC))
            if not self.store.save(message):
                raise StoreError(DUPLICATE)
        except (MessageError, StoreError) as error:
            return Rejected(message_id, str(error))
        self.numbers.take(scope)
        return RoomPosts((message,))

    def publish(self, messages: Sequence[Message]) -> list[Output]:
        """Our stored room messages as MSGs on their rooms' topics, each of at most
        BATCH_MESSAGES / about BATCH_BYTES; each is pending until every live peer in its
        room holds it."""
        by_room: dict[str, list[Message]] = {}
        for message in messages:
            assert message.room is not None
            self._pending.setdefault(message.room, {})[message.id] = message.origin_seq
            by_room.setdefault(message.room, []).append(message)
        outputs: list[Output] = []
        for room, posts in by_room.items():
            header = {"node": self.node_id, "room": room}
            groups = pack([m.encode() for m in posts], BATCH_MESSAGES, BATCH_BYTES)
            outputs += [PublishFrames(published_frames(Verb.MSG, header, g)) for g in groups]
        return outputs

    def saw_own(self, messages: Sequence[Message]) -> None:
        """Room messages of our origin came back from peers: an older copy of this inbox
        used their numbers, so ours continue above them."""
        for message in messages:
            if message.origin == self.node_id:
                self.numbers.seen((ROOM, message.room), message.origin_seq)

    @property
    def waiting(self) -> bool:
        """Some room post of this run is not accepted yet."""
        return bool(self._pending)

    def waiting_in(self) -> set[str]:
        """The rooms where some post of this run is not accepted yet."""
        return set(self._pending)

    def accepted(self, now: float, held_by_all: Callable[[str], int]) -> list[Output]:
        """The pending posts now accepted. ``held_by_all(room)`` is the lowest mark for our
        origin in ``room`` that each live peer in it reported (when none is left, the
        highest any peer reported this run, see above)."""
        if not self._pending or now < self.started + self.interval:
            return []
        done: list[str] = []
        for room, pending in list(self._pending.items()):
            floor = held_by_all(room)
            held = []
            for message_id, seq in pending.items():  # numbering order = posting order
                if seq > floor:
                    break
                held.append(message_id)
            for message_id in held:
                del pending[message_id]
            if not pending:
                del self._pending[room]
            done += held
        return [Accepted(tuple(done))] if done else []

    def tick(self, now: float) -> None:
        if self._discovery_due is not None and now >= self._discovery_due:
            self._discovery_due = None

    def next_deadline(self) -> float | None:
        """The end of the first interval, while posts wait for it."""
        return self._discovery_due if self._pending else None

    def _room(self, drafts: Sequence[Draft]) -> list[Authored]:
        if len(drafts) <= 1:
            return [self._one(draft) for draft in drafts]
        rejected: list[Authored] = []
        authored: list[tuple[Draft, Message]] = []
        seen: set[str] = set()
        taken: Counter[Hashable] = Counter()  # numbers used per scope (room) in this run
        for draft in drafts:
            if draft.id in seen:
                rejected.append(Rejected(draft.id, DUPLICATE))
                continue
            seq = self.numbers.peek(draft.scope) + taken[draft.scope]
            try:
                authored.append((draft, self.seal(draft.author(self.user, self.node_id, seq))))
            except MessageError as error:
                rejected.append(Rejected(draft.id, str(error)))
                continue
            seen.add(draft.id)
            taken[draft.scope] += 1
        try:
            with self.store.transaction():
                fresh = self.store.save_within([(m, None, None) for _, m in authored])
                if not all(fresh):
                    raise StoreError(DUPLICATE)  # roll the whole run back
        except StoreLost:
            raise  # the inbox file is gone: the node stops, posting nothing more
        except StoreError:
            return rejected + [self._one(draft) for draft, _ in authored]
        for scope, count in taken.items():
            self.numbers.take(scope, count)
        return rejected + [RoomPosts(tuple(message for _, message in authored))]

    def _one(self, draft: Draft) -> Authored:
        direct = draft.scope == DIRECT
        try:
            message = self.seal(draft.author(self.user, self.node_id,
                                             self.numbers.peek(draft.scope)))
            if direct:
                self.store.queue(message)
            elif not self.store.save(message):
                raise StoreError(DUPLICATE)
        except StoreLost:
            raise
        except (MessageError, StoreError) as error:
            return Rejected(draft.id, str(error))
        self.numbers.take(draft.scope)
        return DirectPost(message) if direct else RoomPosts((message,))
