"""CHATHISTORY for the IRC face, pure: a selector made into pages of the server's order.

A conversation's history is its messages in the order this server numbered
them (``server_seq``): the order every lab93 client and every IRC client saw
them live. A ``msgid`` names one message, so its number is an exact place in
that order; a timestamp is compared with each message's ``sent_at`` (the
author's time, all lab93 keeps). Topic messages are never history lines
(docs/IRC.rst: CHATHISTORY returns PRIVMSG and NOTICE only).

The store answers two plain questions (``HistoryStore``): where one message
is, and one page of a conversation between two edges, the newest or the
oldest ``limit`` of it. ``answer`` turns each selector of boundary.py into one
or two such pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..irc.boundary import After, Around, Before, Between, Latest, MsgRef, Ref, Selector
from ..message import Message


@dataclass(frozen=True)
class Conversation:
    """A room's messages (``room``), or the direct messages between the two ``pair``."""

    room: str | None = None
    pair: tuple[str, str] | None = None


@dataclass(frozen=True)
class Edge:
    """One end of a page: a server number (a message) or a time; ``inclusive``: the end
    itself belongs to the page."""

    seq: int | None = None
    at: datetime | None = None
    inclusive: bool = False


@dataclass(frozen=True)
class Page:
    """At most ``limit`` messages of ``conversation`` strictly between ``above`` (the older
    end) and ``below`` (the newer end), each None for no bound; the newest of them
    (``newest``) or the oldest. Always returned oldest first."""

    conversation: Conversation
    above: Edge | None
    below: Edge | None
    newest: bool
    limit: int


@dataclass(frozen=True)
class Place:
    """Where a stored message is: its server number and its time."""

    seq: int
    at: datetime


class HistoryStore(Protocol):
    """What CHATHISTORY asks of the server's store (io/irc_store.py has it)."""

    def irc_place(self, server_id: str, message_id: str) -> Place | None:
        """The message ``message_id`` as this server numbered it, or None."""
        ...

    def irc_page(self, server_id: str, page: Page) -> list[Message]:
        """One page of chat (topic messages left out), oldest first."""
        ...

    def irc_targets(
        self, server_id: str, rooms: Sequence[str], user: str, low: datetime, high: datetime
    ) -> list[tuple[str | None, str | None, datetime]]:
        """(room, None, latest) for each of ``rooms`` and (None, peer, latest) for each
        user ``user`` had direct messages with, whose latest chat falls in [low, high]."""
        ...


def answer(
    store: HistoryStore,
    server_id: str,
    conversation: Conversation,
    selector: Selector,
    limit: int,
) -> list[Message]:
    """At most ``limit`` messages of ``conversation`` chosen by ``selector``, oldest first.
    A msgid this server never numbered gives an empty answer."""

    def edge(ref: Ref, inclusive: bool = False) -> Edge | None:
        if isinstance(ref, MsgRef):
            place = store.irc_place(server_id, ref.id)
            return None if place is None else Edge(seq=place.seq, inclusive=inclusive)
        return Edge(at=ref.at, inclusive=inclusive)

    def page(above: Edge | None, below: Edge | None, newest: bool, count: int) -> list[Message]:
        if count <= 0:
            return []
        return store.irc_page(server_id, Page(conversation, above, below, newest, count))

    if isinstance(selector, Latest):
        if selector.after is None:
            return page(None, None, True, limit)
        after = edge(selector.after)
        return [] if after is None else page(after, None, True, limit)
    if isinstance(selector, Before):
        before = edge(selector.ref)
        return [] if before is None else page(None, before, True, limit)
    if isinstance(selector, After):
        after = edge(selector.ref)
        return [] if after is None else page(after, None, False, limit)
    if isinstance(selector, Around):
        below = edge(selector.ref)
        if below is None:
            return []
        # About half before it; the rest from it on (the message itself included).
        earlier = page(None, below, True, limit // 2)
        later = page(edge(selector.ref, inclusive=True), None, False, limit - len(earlier))
        return earlier + later
    if isinstance(selector, Between):
        start, end = edge(selector.start), edge(selector.end)
        if start is None or end is None:
            return []
        if _earlier(store, server_id, selector.end, selector.start):
            return page(end, start, True, limit)  # counted from start, the newer end
        return page(start, end, False, limit)
    raise TypeError(f"not a history selector: {selector!r}")


def _earlier(store: HistoryStore, server_id: str, first: Ref, second: Ref) -> bool:
    """Does ``first`` come before ``second``? Two messages by number, else by time."""
    places = [
        store.irc_place(server_id, ref.id) if isinstance(ref, MsgRef) else None
        for ref in (first, second)
    ]
    if places[0] is not None and places[1] is not None:
        return places[0].seq < places[1].seq
    times = [
        place.at if place is not None else getattr(ref, "at", None)
        for place, ref in zip(places, (first, second), strict=True)
    ]
    return times[0] is not None and times[1] is not None and times[0] < times[1]
