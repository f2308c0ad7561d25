"""Who is in which room, for a broadcast node: our rooms, and what each peer announced.
Pure.

Our rooms are the ones we post in (the first is the *current* one, where a
post that names no room goes); a listening node is *in* them: subscribed to
their topics, announced to peers (ROOMS, BEAT), and their state kept in the
inbox (``RoomState``: joined, parted, floors). A send-only node (``listen``
False) posts in its rooms but is in none of them as far as anyone knows: it
announces no room and writes no state, so the next run that listens resumes
exactly where the last one did.

A peer's membership is what its last ROOMS or BEAT said (the rooms it is in;
ROOMS adds each one's topic). A peer that announced at least one room is a
*person* on the network (listed by /who, counted in the status line, its
comings and goings told); one that announced none is a pipeline, never told.
``MEMBER`` events say who came to or left the rooms we are in; a peer that
restarted (its record replaced) is compared with what it announced before,
so a restart is no coming and going.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..away import combined
from ..events import Member, RoomInfo, RoomList
from ..inbox import BroadcastInbox, RoomState
from ..rooms import DEFAULT_ROOM


@dataclass
class Announced:
    """What one peer said of its rooms."""

    user: str
    rooms: frozenset[str] = frozenset()
    topics: dict[str, str | None] = field(default_factory=dict)
    away: str | None = None  # its away text, as its last ROOMS said (None: here)


@dataclass(frozen=True)
class Change:
    """What a peer's announcement changed: the rooms it came to and left, and whether it
    is a person now for the first time (or again)."""

    came: tuple[str, ...]
    left: tuple[str, ...]
    appeared: bool


class Membership:
    """Our rooms and every linked peer's announced rooms."""

    def __init__(self, store: BroadcastInbox, user: str, rooms: Sequence[str],
                 listen: bool) -> None:
        self.store = store
        self.user = user
        self.listen = listen
        self.ours: list[str] = list(dict.fromkeys(rooms)) or [DEFAULT_ROOM]
        self.away: str | None = None  # our away text (/away), announced in our ROOMS
        self._peers: dict[str, Announced] = {}
        self._former: dict[str, Announced] = {}  # restarted peers: what they said before

    # -- our rooms -------------------------------------------------------------------

    @property
    def current(self) -> str | None:
        """Where a post that names no room goes: the room joined last (None: in none)."""
        return self.ours[0] if self.ours else None

    def is_ours(self, room: str) -> bool:
        return room in self.ours

    def in_room(self, room: str) -> bool:
        """In the room as the others know it: listening, and it is one of ours."""
        return self.listen and room in self.ours

    def announced(self) -> list[str]:
        """The rooms we announce (none when send-only)."""
        return sorted(self.ours) if self.listen else []

    def join(self, room: str) -> tuple[bool, bool]:
        """Be in ``room`` (it becomes current); whether it is new to us, and whether this
        inbox was never in it before (a first join). Its state is kept (listening)."""
        state = self.state(room)
        first = state is None
        if room in self.ours:
            self.ours.remove(room)
            self.ours.insert(0, room)
            return False, first
        self.ours.insert(0, room)
        self._enter(room, state)
        return True, first

    def start(self, room: str) -> None:
        """One of the rooms we start in: joined, keeping what the inbox knew of it."""
        self._enter(room, self.state(room))

    def adopt(self, room: str) -> bool:
        """A send-only run is told to post to ``room``: one of ours from now on (not the
        current one); False when it was already."""
        if room in self.ours:
            return False
        self.ours.append(room)
        return True

    def part(self, room: str) -> bool:
        """Leave ``room``; False when we were not in it."""
        if room not in self.ours:
            return False
        self.ours.remove(room)
        state = self.state(room)
        if self.listen:
            floors = state.floors if state is not None else None
            self.store.save_room_state(room, RoomState(joined=False, parted=True, floors=floors))
        return True

    def state(self, room: str) -> RoomState | None:
        """The inbox's record of ``room`` (catch-up keeps the floors there as they change)."""
        return self.store.room_states().get(room)

    def _enter(self, room: str, state: RoomState | None) -> None:
        if self.listen and (state is None or not state.joined):
            floors = state.floors if state is not None else None
            self.store.save_room_state(room, RoomState(joined=True, parted=False, floors=floors))

    # -- what peers announced ------------------------------------------------------------

    def heard(self, peer: str, user: str, rooms: Iterable[str],
              topics: Mapping[str, str | None] | None = None,
              away: str | None = None) -> Change:
        """A peer's ROOMS (with ``topics`` and its ``away`` text) or BEAT (without) named
        the rooms it is in."""
        known = self._peers.get(peer) or self._former.pop(peer, None) or Announced(user)
        before = known.rooms
        was_person = bool(before) and peer in self._peers
        known.user = user
        known.rooms = frozenset(rooms)
        if topics is not None:
            known.topics = dict(topics)
            known.away = away
        else:
            known.topics = {r: t for r, t in known.topics.items() if r in known.rooms}
        self._peers[peer] = known
        return Change(tuple(sorted(known.rooms - before)), tuple(sorted(before - known.rooms)),
                      bool(known.rooms) and not was_person)

    def forget(self, peer: str, quiet: bool) -> tuple[str, ...]:
        """Its link ended: the rooms it was in. ``quiet`` (it restarted, it will be back at
        once): what it said is kept to compare its next announcement with."""
        known = self._peers.pop(peer, None)
        if known is None:
            return ()
        if quiet:
            self._former[peer] = known
            return ()
        return tuple(sorted(known.rooms))

    def is_person(self, peer: str) -> bool:
        known = self._peers.get(peer)
        return known is not None and bool(known.rooms)

    def rooms_of(self, peer: str) -> frozenset[str]:
        known = self._peers.get(peer)
        return known.rooms if known is not None else frozenset()

    def members(self, room: str, among: Iterable[str]) -> list[str]:
        """The peers of ``among`` (node ids) that announced ``room``."""
        return [peer for peer in among if room in self.rooms_of(peer)]

    def member_events(self, user: str, came: Iterable[str], left: Iterable[str]) -> list[Member]:
        """MEMBER for the rooms we are in that ``user`` came to or left."""
        if not self.listen:
            return []
        events = [Member(room, user, True) for room in came if room in self.ours]
        return events + [Member(room, user, False) for room in left if room in self.ours]

    # -- the front end's questions ------------------------------------------------------

    def room_list(self, among: Iterable[str], topic_of: Mapping[str, str | None]) -> RoomList:
        """Every room heard on the network: the peers' of ``among`` and ours, with how many
        are in each (ourselves included when listening) and its topic - ours for a room we
        are in (``topic_of``), else the one last announced."""
        counts: dict[str, int] = {}
        topics: dict[str, str | None] = {}
        for peer in among:
            known = self._peers.get(peer)
            for room in known.rooms if known is not None else ():
                counts[room] = counts.get(room, 0) + 1
                if known.topics.get(room) is not None:
                    topics[room] = known.topics[room]
        for room in self.ours:
            counts[room] = counts.get(room, 0) + (1 if self.listen else 0)
            topics[room] = topic_of.get(room)
        return RoomList(tuple(
            RoomInfo(room, counts[room], topics.get(room), room in self.ours)
            for room in sorted(counts)
        ))

    def users(self, room: str | None, among: Mapping[str, str]) -> tuple[str, ...]:
        """Who is on the network (``room`` None) or in ``room``: the persons of ``among``
        (node id -> user), and ourselves (in a room: when we listen in it), sorted, each
        once."""
        users = {user for peer, user in among.items() if self.is_person(peer)
                 and (room is None or room in self.rooms_of(peer))}
        if room is None or self.in_room(room):
            users.add(self.user)
        return tuple(sorted(users))

    def away_of(self, users: Iterable[str],
                among: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        """The away texts of ``users`` (name, text), in name order: ours for our user
        (with our other nodes'), a peer's as its persons' nodes announced (``combined``:
        away only when each of that user's nodes is)."""
        nodes: dict[str, list[str | None]] = {}
        for peer, user in among.items():
            known = self._peers.get(peer)
            if known is not None and known.rooms:
                nodes.setdefault(user, []).append(known.away)
        if self.listen:
            nodes.setdefault(self.user, []).append(self.away)
        found = ((user, combined(nodes.get(user, ()))) for user in sorted(set(users)))
        return tuple((user, text) for user, text in found if text is not None)
