"""What a client writes to its inbox, pure: arrivals, answers to its posts, its marks.

Everything one turn of the client brought is written in one transaction: the
messages that arrived in order (with the server's numbers), the posts the
server acknowledged (out of the outbox, with their numbers) or refused, and
the *marks* - the tip of each chain (``chain.Marks``) - under
``state_key(server, user)``, so a restarted client resumes exactly where it
left off. A send-only run writes no marks: the next run of that inbox that
listens still gets everything it missed.

Topic messages are not shown as messages: a new one that wins its room's
topic (``topics.py``) is told as a ``Topic`` event instead, in its place in
server order - a topic set before a message is told before it. (A topic the
server sends outside its chain, ``[seq, null]``, is older than the start of
the answer: its number puts it first.)
"""

from __future__ import annotations

import logging

from ..errors import StoreError, StoreFault
from ..events import Accepted, Event, Incoming, Rejected, Topic
from ..inbox import ClientInbox
from ..message import Message
from ..saving import save_batch
from .chain import Marks
from .topics import TopicBoard
from .window import PostWindow

log = logging.getLogger(__name__)


def state_key(server_id: str, user: str) -> str:
    """Where a client keeps its marks for one server and user (inbox meta)."""
    return f"repeater:{server_id}:{user}"


def last_server_key(user: str) -> str:
    """Where a client keeps the id of the last server that welcomed ``user`` (inbox meta)."""
    return f"repeater:last:{user}"


class ClientLedger:
    """The client's side of its inbox: what to write at the next flush, and the marks."""

    def __init__(self, inbox: ClientInbox, user: str) -> None:
        self.inbox = inbox
        self.user = user
        self.saved: Marks | None = None  # the marks last written (or read)
        self.topics = TopicBoard(self._topic_of)

    def _topic_of(self, room: str) -> tuple[None, Message] | None:
        message = self.inbox.current_topic(room)
        return None if message is None else (None, message)

    def marks(self, server_id: str) -> Marks | None:
        """The marks saved for this server, or None (never seen, or unreadable)."""
        saved = self.inbox.get_meta(state_key(server_id, self.user))
        if saved is None:
            return None
        try:
            return Marks.parse(saved)
        except ValueError as exc:
            log.warning("unreadable repeater marks in the inbox (%s); starting afresh", exc)
            return None

    def last_server(self) -> str | None:
        """The server that last welcomed this user from this inbox (None: none yet)."""
        return self.inbox.get_meta(last_server_key(self.user))

    def welcomed_by(self, server_id: str) -> None:
        if self.last_server() != server_id:
            self.inbox.set_meta(last_server_key(self.user), server_id)

    def due(self, marks: Marks | None, window: PostWindow) -> bool:
        """Answers or moved marks wait to be written (``marks`` None: none to write)."""
        return window.answered or (marks is not None and marks != self.saved)

    def commit(
        self,
        server_id: str | None,
        marks: Marks | None,
        window: PostWindow,
        arrived: list[tuple[int, Message]],
    ) -> list[Event]:
        """Write what ``arrived``, the answers and the ``marks`` (None: none, a send-only
        run) in one transaction; the events for the front end (new messages in server
        order, topics that won, accepted, rejected)."""
        arrived = sorted(arrived, key=lambda item: item[0])
        acked, rejected = window.take_answers()
        written = server_id and marks is not None and marks != self.saved
        with self.inbox.transaction():
            fresh = self._save(server_id, arrived)
            gone = [mid for mid, _ in acked] + [mid for mid, _ in rejected]
            if gone:
                self.inbox.acknowledge(gone)
            if acked:
                self._number(server_id, acked)
            if written:
                self.inbox.set_meta(state_key(server_id, self.user), marks.to_json())
        if written:  # only once committed: a failed commit leaves the marks as they were
            self.saved = marks
        events: list[Event] = []
        for (_, message), new in zip(arrived, fresh, strict=True):
            if not new:
                continue
            if not message.is_topic:
                events.append(Incoming(message))
            elif self.topics.consider(message):  # told in its place among the messages
                events.append(Topic.of(message))
        accepted, refused = window.settle([m for m, _ in acked], [m for m, _ in rejected])
        if accepted:
            events.append(Accepted(tuple(accepted)))
        reasons: dict[str, str] = {}
        for mid, reason in rejected:
            reasons.setdefault(mid, reason)
        for mid in refused:
            events.append(Rejected(mid, f"the repeater refused it: {reasons[mid]}"))
        return events

    def _number(self, server_id: str, acked: list[tuple[str, int]]) -> None:
        """Record the server's numbers for acknowledged posts."""
        try:
            self.inbox.set_server_seqs(server_id, acked)
            return
        except StoreFault:
            raise
        except StoreError as exc:
            log.warning("the inbox refused server numbers (%s); one by one", exc)
        for mid, seq in acked:
            try:
                self.inbox.set_server_seqs(server_id, [(mid, seq)])
            except StoreFault:
                raise
            except StoreError as exc:  # a numbering clash: keep the message, not the number
                log.warning("could not record server number %d: %s", seq, exc)

    def _save(self, server_id: str | None, arrived: list[tuple[int, Message]]) -> list[bool]:
        """Save what arrived; whether each was new. One whose number clashes with one
        held (the server reuses numbers after losing messages) is kept without it."""
        saved = save_batch(self.inbox, [(m, server_id, seq) for seq, m in arrived])
        if not saved.conflicts:
            return saved.fresh
        for message, reason in saved.conflicts:
            log.warning("message %s from the repeater: %s", message.id, reason)
        again = save_batch(self.inbox, [(m, None, None) for m, _ in saved.conflicts])
        for message, reason in again.conflicts:  # it clashes with a held message itself
            log.warning("dropped message %s from the repeater: %s", message.id, reason)
        kept = {m.id: new for (m, _), new in zip(saved.conflicts, again.fresh, strict=True)}
        return [
            new or kept.pop(m.id, False) for (_, m), new in zip(arrived, saved.fresh, strict=True)
        ]
