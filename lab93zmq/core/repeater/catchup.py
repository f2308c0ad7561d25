"""A client catching up, pure: its chains, and when to fetch what they lack.

Live messages (ROOM on the feed, one room per topic; DELIVER on the
connection) and replayed ones (BATCH, the answer to FETCH) go into the same
chains (chain.py), so the client sees one server order per chain. Whatever
shows a hole - a message whose ``prev`` is past the tip, a head (TICK,
PING) past the tip, a room still to be started - makes the fetch schedule
(fetch.py) ask for it. Messages of a room the client is not in are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ProtocolError
from ..message import Message
from .chain import Chain, Chains, Marks, Numbered
from .commands import BATCH_LIMIT, room_marks
from .fetch import FetchSchedule
from .outputs import SendToServer

Entry = tuple[int, "int | None", Message]  # (seq, prev, message), as commands.numbered gives them


class ClientCatchUp:
    """One client's chains and fetch schedule; ``arrived``: what is now in order."""

    def __init__(self, retry: float, limit: int = BATCH_LIMIT) -> None:
        self.chains = Chains()
        self.fetches = FetchSchedule(retry, limit)
        self.arrived: list[Numbered] = []  # to be stored with the next flush
        self.answered: set[str] = set()  # rooms a BATCH has started or resumed
        self.outside: list[Message] = []  # rooms' topics sent outside their chain

    def new_server(self, marks: Marks | None, rooms: Sequence[str]) -> None:
        """Another server: its chains start where our marks for it say (None: afresh)."""
        self.chains = Chains(marks, rooms)

    def join(self, room: str) -> bool:
        """Be in ``room`` from now on (True: for the first time); fetch where it starts."""
        first = self.chains.join(room)
        self.fetches.want()
        return first

    def part(self, room: str) -> None:
        self.chains.part(room)

    def live_room(self, room: str, entries: Sequence[Entry]) -> None:
        """A ROOM from the feed, on ``room``'s topic: that room's messages only."""
        if any(message.is_direct or message.room != room for _, _, message in entries):
            raise ProtocolError(f"a ROOM on the topic of #{room} carries another room's message")
        chain = self.chains.rooms.get(room)
        if chain is None:
            return  # a room we just left, still draining from the feed
        for seq, prev, message in entries:
            self._take(chain, seq, prev, message)

    def live_direct(self, entries: Sequence[Entry]) -> None:
        """A DELIVER: direct messages only."""
        if any(not message.is_direct for _, _, message in entries):
            raise ProtocolError("DELIVER carries direct messages only")
        for seq, prev, message in entries:
            self._take(self.chains.direct, seq, prev, message)

    def replayed(self, header: dict, entries: Sequence[Entry], now: float) -> bool:
        """A BATCH; True when more follows (fetch the next page at once)."""
        starts = room_marks(header, "rooms")
        self.answered |= starts.keys() & self.chains.rooms.keys()
        taken = 0
        for room, chain in self.chains.rooms.items():
            if chain.tip is None and room in starts:  # joining: the room starts here
                arrived = self.chains.start(room, starts[room])
                self.arrived += arrived
                taken += len(arrived) + 1
        for seq, prev, message in entries:
            chain = self.chains.of(message)
            if chain is None:
                continue  # a room we are no longer in
            if prev is None:  # outside its chain: a joined room's current topic
                if message.is_topic:
                    self.arrived.append((seq, message))
                    self.outside.append(message)
                    taken += 1
                continue
            taken += self._take(chain, seq, prev, message)
        if header.get("more") is True:
            return True
        # Something still missing (lost on the PUB, or live traffic past this
        # answer)? Ask again, at once if this answer helped - or if a room was
        # joined after it was asked (not asked for yet is not a loss).
        unasked = any(c.tip is None and r not in starts for r, c in self.chains.rooms.items())
        helped = taken > 0 or unasked
        self.fetches.answered(missing=self.chains.gap(), helped=helped, now=now)
        return False

    def head(self, chain: Chain | None, head: int) -> None:
        """The server's last number in ``chain`` is ``head`` (TICK, PING)."""
        if self.chains.behind(chain, head):
            self.fetches.want()

    def fetch(self, now: float) -> SendToServer:
        return self.fetches.request(self.chains.stands(), self.chains.direct.tip, now)

    def due(self, now: float) -> list[SendToServer]:
        """The FETCH to send now, if the schedule says so."""
        return [self.fetch(now)] if self.fetches.due(now) else []

    def take_arrived(self) -> list[Numbered]:
        arrived, self.arrived = self.arrived, []
        return arrived

    def take_answered(self) -> tuple[set[str], list[Message]]:
        """The rooms answered since last asked, and the topics sent outside a chain."""
        answered, outside = self.answered, self.outside
        self.answered, self.outside = set(), []
        return answered, outside

    def _take(self, chain: Chain, seq: int, prev: int, message: Message) -> int:
        """One numbered message into its chain; how many are now in order."""
        taken = chain.take(seq, prev, message)
        if taken.gap:
            self.fetches.want()
        self.arrived += taken.arrived
        return len(taken.arrived)
