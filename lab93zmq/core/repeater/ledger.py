"""What a client writes to its inbox, pure: arrivals, answers to its posts, its marks.

Everything one turn of the client brought is written in one transaction: the
messages that arrived in order (with the server's numbers), the posts the
server acknowledged (out of the outbox, with their numbers) or refused, and
the *marks* - the tip of each chain - under ``state_key(server, user)``, so a
restarted client resumes exactly where it left off.
"""

from __future__ import annotations

import json
import logging

from ..errors import StoreError
from ..events import Accepted, Event, Incoming, Rejected
from ..inbox import ClientInbox
from ..message import Message
from ..saving import save_batch
from .chain import DIRECT, ROOM
from .window import PostWindow

log = logging.getLogger(__name__)

CHAINS = (ROOM, DIRECT)  # the chains whose tips the marks keep

Tips = dict[str, "int | None"]


def state_key(server_id: str, user: str) -> str:
    """Where a client keeps its marks for one server and user (inbox meta)."""
    return f"repeater:{server_id}:{user}"


class ClientLedger:
    """The client's side of its inbox: what to write at the next flush, and the marks."""

    def __init__(self, inbox: ClientInbox, user: str) -> None:
        self.inbox = inbox
        self.user = user
        self.saved_tips: Tips = {}

    def marks(self, server_id: str) -> Tips | None:
        """The tips saved for this server, or None (never seen, or unreadable)."""
        saved = self.inbox.get_meta(state_key(server_id, self.user))
        if saved is None:
            return None
        try:
            marks = json.loads(saved)
            tips = {name: marks[name] for name in CHAINS}
            if any(type(tip) is not int or tip < 0 for tip in tips.values()):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable repeater marks in the inbox; starting afresh")
            return None
        return tips

    def due(self, tips: Tips, window: PostWindow) -> bool:
        """Answers or moved marks wait to be written."""
        return window.answered or tips != self.saved_tips

    def commit(
        self,
        server_id: str | None,
        tips: Tips,
        window: PostWindow,
        arrived: list[tuple[int, Message]],
    ) -> list[Event]:
        """Write what ``arrived``, the answers and the marks in one transaction; the
        events for the front end (new messages in server order, accepted, rejected)."""
        arrived = sorted(arrived, key=lambda item: item[0])
        acked, rejected = window.take_answers()
        with self.inbox.transaction():
            fresh = self._save(server_id, arrived)
            gone = [mid for mid, _ in acked] + [mid for mid, _ in rejected]
            if gone:
                self.inbox.acknowledge(gone)
            if acked:
                self._number(server_id, acked)
            if server_id and None not in tips.values() and tips != self.saved_tips:
                # {"room": R, "dm": D}: each chain's tip under its name
                self.inbox.set_meta(state_key(server_id, self.user), json.dumps(tips))
        self.saved_tips = dict(tips)
        events: list[Event] = [
            Incoming(m) for (_, m), new in zip(arrived, fresh, strict=True) if new
        ]
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
        except StoreError as exc:
            log.warning("the inbox refused server numbers (%s); one by one", exc)
        for mid, seq in acked:
            try:
                self.inbox.set_server_seqs(server_id, [(mid, seq)])
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
