"""A client's chains, pure: numbered messages put back in order by their ``prev``.

The server numbers every message it stores from one sequence; a client sees
that sequence through *chains* - one per room it is in, and the direct
messages to or from its user - and every message it receives names
``prev``, the number before it in its chain. A chain's *tip* is the last
number held with no hole before it: a message whose ``prev`` is the tip
comes next, one whose ``prev`` is further on waits until what comes before
it is here.

A room chain not started yet (tip None) is being joined: the next replay
says where it starts (a first join: before the room's last messages; a join
after a PART: at the tip it left with, or later). ``Marks`` is what a client
keeps of its chains per (server, user), so a restart resumes each exactly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..message import Message
from ..rooms import check_room, shown

log = logging.getLogger(__name__)

MAX_BUFFER = 20_000  # out-of-order messages a chain holds before it drops them (and fetches)
JOIN_TAIL = 100  # a room's last messages a first join asks for

Numbered = tuple[int, Message]  # (seq, message)


@dataclass(frozen=True)
class Chained:
    """What one message did to its chain: the messages now in order (it, and what
    waited for it), and whether a hole before it is known (fetch it)."""

    arrived: list[Numbered] = field(default_factory=list)
    gap: bool = False


@dataclass
class Chain:
    """One ordered stream a client receives."""

    name: str  # for logs: "#ops", "direct"
    tip: int | None  # the last number held without a hole before it; None: not started
    after: int | None = None  # not started: the tip it had when it left (None: never in it)
    waiting: dict[int, Numbered] = field(default_factory=dict)  # prev -> (seq, message)

    def take(self, seq: int, prev: int, message: Message) -> Chained:
        """One numbered message: in order (with what waited for it), or kept for later."""
        if self.tip is None or prev > self.tip:
            # Not next in line: keep it until what comes before it is here.
            self.waiting[prev] = (seq, message)
            if len(self.waiting) > MAX_BUFFER:
                self.waiting.clear()  # they will come again with a fetch
            return Chained(gap=self.tip is not None)
        if seq <= self.tip:
            return Chained()  # held already (replay overlapping live)
        if prev < self.tip:
            log.warning(
                "repeater numbering moved (%s %d after %d, tip %d)", self.name, seq, prev, self.tip
            )
        self.tip = seq
        return Chained([(seq, message), *self.drain()])

    def start(self, tip: int) -> list[Numbered]:
        """A chain not started yet starts after ``tip``; what waited for it follows."""
        self.tip = tip
        return self.drain()

    def drain(self) -> list[Numbered]:
        """What waited for the tip, in order; what the tip passed is forgotten."""
        arrived = []
        while self.tip in self.waiting:
            seq, message = self.waiting.pop(self.tip)
            arrived.append((seq, message))
            self.tip = seq
        if self.waiting:
            for stale in [p for p, (s, _) in self.waiting.items() if s <= self.tip]:
                del self.waiting[stale]
        return arrived

    def follow(self, head: int) -> bool:
        """The server says its head is ``head``; below our tip it lost messages:
        follow its numbers from there (True), or we would skip its next ones."""
        if self.tip is None or head >= self.tip:
            return False
        log.warning("the repeater's %s head is %d, below ours (%d)", self.name, head, self.tip)
        self.tip = head
        self.waiting.clear()
        return True


@dataclass
class Marks:
    """Where a client stands with one server, as its inbox keeps it (JSON)::

        {"rooms": {room: tip}, "parted": {room: tip}, "dm": tip}

    ``rooms``: each room it holds a tip in - also one it is not in this run
    (started without it), which it resumes in full when it is back;
    ``parted``: each room it left with PART, and its tip then."""

    rooms: dict[str, int] = field(default_factory=dict)
    parted: dict[str, int] = field(default_factory=dict)
    dm: int = 0

    def to_json(self) -> str:
        return json.dumps({"rooms": self.rooms, "parted": self.parted, "dm": self.dm})

    @classmethod
    def parse(cls, text: str) -> Marks:
        """The marks ``to_json`` wrote - or lab93-node 0.1's ``{"room": R, "dm": D}``,
        whose one room is ``general``; ValueError when they are not sound."""
        try:
            found = json.loads(text)
            if "room" in found and "rooms" not in found:  # 0.1: one room
                found = {"rooms": {"general": found["room"]}, "parted": {}, "dm": found["dm"]}
            rooms, parted = found["rooms"], found["parted"]
            if not isinstance(rooms, dict) or not isinstance(parted, dict):
                raise TypeError("rooms and parted map rooms to tips")
            marks = cls(dict(rooms), dict(parted), found["dm"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not repeater marks: {exc}") from None
        tips = [marks.dm, *marks.rooms.values(), *marks.parted.values()]
        if any(type(tip) is not int or tip < 0 for tip in tips):
            raise ValueError("a tip is not a whole number >= 0")
        for room in (*marks.rooms, *marks.parted):
            check_room(room)  # RoomError is a ValueError
        return marks


class Chains:
    """Every chain of one client with one server: the direct chain and one per room it
    is in, plus the tips of rooms it is not in (``resting``, ``parted``)."""

    def __init__(self, marks: Marks | None = None, rooms: Iterable[str] = ()) -> None:
        marks = marks or Marks()
        self.direct = Chain("direct", marks.dm)  # a new client holds its direct chain from 0
        self.rooms: dict[str, Chain] = {}
        self.resting = dict(marks.rooms)
        self.parted = dict(marks.parted)
        for room in rooms:
            self.join(room)

    def join(self, room: str) -> bool:
        """Be in ``room``: resume it, or join it again, or for the first time (True)."""
        if room in self.rooms:
            return False
        if room in self.resting:
            self.rooms[room] = Chain(shown(room), self.resting.pop(room))
            return False
        self.rooms[room] = Chain(shown(room), None, after=self.parted.get(room))
        return room not in self.parted

    def part(self, room: str) -> None:
        """Leave ``room``: its tip is kept for a later join (which starts no earlier)."""
        chain = self.rooms.pop(room, None)
        if chain is not None and chain.tip is not None:
            self.parted[room] = chain.tip

    def start(self, room: str, tip: int) -> list[Numbered]:
        """A joining room starts after ``tip`` (the replay said so)."""
        self.parted.pop(room, None)
        return self.rooms[room].start(tip)

    def of(self, message: Message) -> Chain | None:
        """The chain ``message`` belongs to, None when it is of a room we are not in."""
        return self.direct if message.is_direct else self.rooms.get(message.room)

    def marks(self) -> Marks:
        started = {room: c.tip for room, c in self.rooms.items() if c.tip is not None}
        return Marks({**self.resting, **started}, dict(self.parted), self.direct.tip)

    def stands(self) -> dict[str, dict[str, int | None]]:
        """The ``rooms`` of a FETCH: a started room's tip; a joining room's old tip, if
        any, and how much of the room's history it wants."""
        return {
            room: {"after": chain.tip, "tail": None}
            if chain.tip is not None
            else {"after": chain.after, "tail": JOIN_TAIL}
            for room, chain in self.rooms.items()
        }

    def follow(self, heads: object, dm_head: object) -> bool:
        """The server's heads (WELCOME: ``{room: head}``, its ``dm_head``; what is not a
        whole number is no head); True when one is below our tip: the server lost
        messages we hold, and each such chain now follows its numbers."""
        behind = type(dm_head) is int and self.direct.follow(dm_head)
        for room, head in heads.items() if isinstance(heads, dict) else ():
            chain = self.rooms.get(room)
            if chain is not None and type(head) is int and chain.follow(head):
                behind = True
        return behind

    def gap(self) -> bool:
        """Something is known to be missing: a message waits for one before it, or a
        room is still to be started."""
        chains = [self.direct, *self.rooms.values()]
        return any(chain.waiting or chain.tip is None for chain in chains)

    def behind(self, chain: Chain | None, head: int) -> bool:
        """The server's last number in ``chain`` is ``head``: do we lack some?
        (Never for a chain not started: its first replay decides where it starts.)"""
        return chain is not None and chain.tip is not None and head > chain.tip
