"""CHATHISTORY's queries on the server's store (core/repeater/irc_history.py asks them).

Read-only queries of the messages a repeater server numbered, by its order
(``server_seq``). They are built with peewee's query builder on the inbox's
own message model, so they read whatever database the inbox is on; they use
the indexes the server order has (a room's chain, a user's direct chain).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import peewee as pw

from ..core.message import TOPIC, Message, time_text
from ..core.repeater.irc_history import Edge, Page, Place
from .server_order import from_row


def _when(at: datetime) -> str:
    """A time as the inbox stores ``sent_at`` (UTC, microseconds): it sorts as text."""
    return time_text(at.astimezone(timezone.utc))


class IRCHistory:
    """``irc_history.HistoryStore`` over an ``Inbox``; used by the actor that owns it."""

    def __init__(self, inbox: Any) -> None:
        self._message = inbox._message  # the inbox's model class and the columns it reads
        self._columns = inbox._columns

    def _numbered(self, server_id: str) -> Any:
        m = self._message
        chat = m.kind.is_null() | (m.kind != TOPIC)
        return (m.server_id == server_id) & m.server_seq.is_null(False) & chat

    def irc_place(self, server_id: str, message_id: str) -> Place | None:
        m = self._message
        row = (
            m.select(m.server_seq, m.sent_at)
            .where((m.id == message_id) & (m.server_id == server_id) & m.server_seq.is_null(False))
            .tuples()
            .first()
        )
        return None if row is None else Place(row[0], datetime.fromisoformat(row[1]))

    def irc_page(self, server_id: str, page: Page) -> list[Message]:
        m = self._message
        where = self._numbered(server_id)
        conversation = page.conversation
        if conversation.room is not None:
            where &= (m.room == conversation.room) & m.recipient.is_null(True)
        elif conversation.pair is not None:
            one, other = conversation.pair
            where &= m.recipient.is_null(False) & (
                ((m.author == one) & (m.recipient == other))
                | ((m.author == other) & (m.recipient == one))
            )
        else:
            return []
        if page.above is not None:
            where &= self._bound(page.above, older_end=True)
        if page.below is not None:
            where &= self._bound(page.below, older_end=False)
        order = m.server_seq.desc() if page.newest else m.server_seq.asc()
        query = m.select(*self._columns).where(where).order_by(order).limit(page.limit)
        found = [from_row(row) for row in query.tuples()]
        return list(reversed(found)) if page.newest else found

    def _bound(self, edge: Edge, older_end: bool) -> Any:
        """The messages on the page's side of ``edge``."""
        m = self._message
        column, value = (
            (m.server_seq, edge.seq) if edge.seq is not None else (m.sent_at, _when(edge.at))
        )
        if older_end:
            return column >= value if edge.inclusive else column > value
        return column <= value if edge.inclusive else column < value

    def irc_targets(
        self, server_id: str, rooms: Sequence[str], user: str, low: datetime, high: datetime
    ) -> list[tuple[str | None, str | None, datetime]]:
        m = self._message
        numbered = self._numbered(server_id)
        start, end = _when(low), _when(high)
        found: list[tuple[str | None, str | None, datetime]] = []
        for room in rooms:
            latest = (
                m.select(pw.fn.MAX(m.sent_at))
                .where(numbered & (m.room == room) & m.recipient.is_null(True))
                .scalar()
            )
            if latest is not None and start <= latest <= end:
                found.append((room, None, datetime.fromisoformat(latest)))
        peers: dict[str, str] = {}
        query = (
            m.select(m.author, m.recipient, pw.fn.MAX(m.sent_at))
            .where(
                numbered & m.recipient.is_null(False) & ((m.author == user) | (m.recipient == user))
            )
            .group_by(m.author, m.recipient)
        )
        for author, recipient, latest in query.tuples():
            peer = recipient if author == user else author
            peers[peer] = max(peers.get(peer, latest), latest)
        for peer, latest in peers.items():
            if start <= latest <= end:
                found.append((None, peer, datetime.fromisoformat(latest)))
        return found
