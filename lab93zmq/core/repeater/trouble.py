"""A client's store troubles, pure: the server's store, and its own inbox.

*The server cannot store* (ERROR ``unavailable``: its disk is full or
read-only, its database out of reach): the posts it names stay in the outbox,
nothing is sent for the ``retry`` seconds the server asks, then the whole
outbox goes again (the server dedupes by id). The user is told once, and
once more when an ACK shows the server stores again.

*Our own inbox cannot be written* (``StoreUnavailable`` from a flush): what
arrived this turn and the answers to our posts are not stored, so the chains
go back to the marks last written and the outbox is sent again - the server
answers again and the missed messages are fetched again, once the inbox can
be written (tried every ``RETRY`` seconds). Nothing is lost and nothing is
counted as held that is not in the inbox. A post the inbox cannot keep is
rejected at once (window.py), with the reason.

``Troubles`` is a mixin of ``ClientCore``, which has the attributes named below.
"""

from __future__ import annotations

from ..events import Notice
from .commit import RETRY

MAX_RETRY = 60.0  # seconds: the longest wait a server's ``retry`` may ask for


class Troubles:
    """The server's and the inbox's faults as a client lives with them."""

    endpoint: str | None
    posts: object  # window.PostWindow
    catchup: object  # catchup.ClientCatchUp
    ledger: object  # ledger.ClientLedger
    rooms: object  # roomset.RoomSet
    server_fault: str | None = None  # the server said it cannot store (None: it can)
    inbox_fault: str | None = None  # our inbox cannot be written (None: it can)
    inbox_retry: float = 0.0  # when to try writing the inbox again

    def server_unavailable(self, header: dict, now: float) -> list[Notice]:
        """ERROR ``unavailable``: hold the posts; tell the user once."""
        reason = str(header.get("reason") or "the repeater cannot store posts now")
        retry = header.get("retry")
        if not isinstance(retry, (int, float)) or isinstance(retry, bool) or not 0 < retry:
            retry = RETRY
        self.posts.hold(now + min(float(retry), MAX_RETRY))  # type: ignore[attr-defined]
        told, self.server_fault = self.server_fault, reason
        if told is not None:
            return []
        return [Notice(f"{reason}; your posts wait in the outbox and go out by themselves")]

    def server_stores(self) -> list[Notice]:
        """An ACK came: the server stores again."""
        if self.server_fault is None:
            return []
        self.server_fault = None
        return [Notice(f"the repeater at {self.endpoint} stores posts again")]

    def inbox_writable(self, now: float) -> bool:
        """False while a failed write waits to be tried again."""
        return self.inbox_fault is None or now >= self.inbox_retry

    def inbox_failed(self, error: Exception, now: float) -> list[Notice]:
        """A flush could not write the inbox: go back to what it holds (see above)."""
        self.inbox_retry = now + RETRY
        self.catchup.new_server(self.ledger.saved, self.rooms.names)  # type: ignore[attr-defined]
        self.catchup.fetches.want()  # type: ignore[attr-defined]
        self.posts.restart()  # type: ignore[attr-defined]
        told, self.inbox_fault = self.inbox_fault, str(error)
        if told == self.inbox_fault:
            return []
        return [
            Notice(
                f"{error}; messages are not taken in until it can be written (they are"
                " fetched again then), and new posts are refused"
            )
        ]

    def inbox_works(self) -> list[Notice]:
        if self.inbox_fault is None:
            return []
        self.inbox_fault = None
        return [Notice("the inbox can be written again; catching up")]
