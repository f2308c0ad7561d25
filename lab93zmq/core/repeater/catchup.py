"""A client catching up, pure: its chains, and when to fetch what they lack.

Live messages (ROOM on the feed, DELIVER on the connection) and replayed ones
(BATCH, the answer to FETCH) go into the same chains (chain.py), so the
client sees one server order. Whatever shows a hole - a message whose
``prev`` is past the tip, a head (TICK, PING) past the tip - makes the fetch
schedule (fetch.py) ask for it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ProtocolError
from ..message import Message
from ..wire import header_int
from .chain import DIRECT, ROOM, Chains, Numbered
from .commands import BATCH_LIMIT
from .fetch import FetchSchedule
from .outputs import SendToServer

Entry = tuple[int, int, Message]  # (seq, prev, message), as commands.numbered gives them


class CatchUp:
    """One client's chains and fetch schedule; ``arrived``: what is now in order."""

    def __init__(self, retry: float, limit: int = BATCH_LIMIT) -> None:
        self.chains = Chains()
        self.fetches = FetchSchedule(retry, limit)
        self.arrived: list[Numbered] = []  # to be stored with the next flush

    def new_server(self, marks: dict[str, int | None] | None) -> None:
        """Another server: its chains start where our marks for it say (None: afresh)."""
        self.chains = Chains()
        self.chains.resume(marks)

    def live(self, chain: str, entries: Sequence[Entry]) -> None:
        """Messages of one chain as they happen (ROOM: the room, DELIVER: direct)."""
        if any(message.is_direct != (chain == DIRECT) for _, _, message in entries):
            raise ProtocolError(
                "DELIVER carries direct messages only"
                if chain == DIRECT
                else "a direct message on the PUB"
            )
        for seq, prev, message in entries:
            self._take(chain, seq, prev, message)

    def replayed(self, header: dict, entries: Sequence[Entry], now: float) -> bool:
        """A BATCH; True when more follows (fetch the next page at once)."""
        room = self.chains[ROOM]
        taken = 0
        if room.tip is None:  # a new client: the tail starts here
            arrived = room.start(header_int(header, "room"))
            self.arrived += arrived
            taken += len(arrived)
        for seq, prev, message in entries:
            taken += self._take(DIRECT if message.is_direct else ROOM, seq, prev, message)
        if header.get("more") is True:
            return True
        # Something still missing (lost on the PUB, or live traffic past this
        # answer)? Ask again, at once if this answer helped.
        self.fetches.answered(missing=self.chains.gap(), helped=taken > 0, now=now)
        return False

    def head(self, chain: str, head: int) -> None:
        """The server's last number in ``chain`` is ``head`` (TICK, PING)."""
        if self.chains.behind(chain, head):
            self.fetches.want()

    def fetch(self, now: float) -> SendToServer:
        return self.fetches.request(self.chains.tips(), now)

    def due(self, now: float) -> list[SendToServer]:
        """The FETCH to send now, if the schedule says so."""
        return [self.fetch(now)] if self.fetches.due(now) else []

    def take_arrived(self) -> list[Numbered]:
        arrived, self.arrived = self.arrived, []
        return arrived

    def _take(self, chain: str, seq: int, prev: int, message: Message) -> int:
        """One numbered message into its chain; how many are now in order."""
        taken = self.chains[chain].take(seq, prev, message)
        if taken.gap:
            self.fetches.want()
        self.arrived += taken.arrived
        return len(taken.arrived)
