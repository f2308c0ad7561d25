"""One room's catch-up between broadcast peers: marks, floors, pulls, hold-back. Pure.

Every room a node is in has its own ``RoomSync``: the version vector of the
room (``tracker``: per origin, the contiguous mark counted from the origin's
*floor*), what each peer last reported holding of it, the pulls under way
and the messages held back. Catch-up is pull-based, per (peer, room), with at
most one SYNC outstanding per pair (``pull_timeout``):

* a **listening** node pulls when it meets a peer in the room, on a gap in
  an origin's sequence, when a HAVE (or SYNC, BATCH) shows the peer holds
  more, when a BEAT's digest for the room is neither ours nor that of the
  vector the peer last reported (it holds something we have not heard of),
  and again at once after a BATCH that made progress while the peer holds
  still more. Soon after storing new messages it publishes HAVE (at
  most one per ``have_gap``), so their authors learn fast who holds them.
* **Joining** (a first join, or a rejoin after /part): until a tail was
  given, each pull asks for one (``tail``: the room's newest TAIL messages
  the asker lacks, plus its current topic); the answer's ``floors`` say where
  the node's interest in each origin begins (below: older than the tail,
  never asked for). Over the tails of one join an origin's floor is the
  lowest any answer gave (more messages, never fewer), and never below the
  floor it had before; our own origin has none (we hold all of it).
* a **send-only** node (``listen`` False) stores nothing of the room: it
  *peeks* (a SYNC with ``peek``, answered with the peer's vector only), to
  learn which peers hold its posts, and answers SYNCs from what it holds,
  which is how peers that missed its posts get them.

Each author's messages are shown in that author's order: one that arrives
ahead of a gap is stored at once but held back until the gap is filled - or,
if nobody can fill it, until ``hold_for`` has passed. Topic messages are
stored and counted like any other, never shown (``Topics`` tells who wins).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..batching import Budget
from ..events import Incoming
from ..inbox import BroadcastInbox, RoomState
from ..message import Message
from ..saving import save_batch
from ..sync import SequenceTracker, Vector, digest, encode_vector, wanted_from
from .actions import (
    BATCH_BYTES,
    BATCH_MESSAGES,
    Output,
    PublishFrames,
    SendToPeer,
    Verb,
    published_frames,
)
from .actions import command_frames as frames_of
from .faults import log_conflicts

log = logging.getLogger(__name__)

MAX_ASKED = 4  # SYNCs to one peer whose answers we still take (one per pull_timeout)
TAIL = 100  # the newest messages of a room a first join (or a rejoin) is given
MAX_TAIL = 1000  # the most a SYNC may ask for


def behind(theirs: Mapping[str, int], mine: Mapping[str, int]) -> bool:
    """True when ``theirs`` holds some origin further than ``mine``."""
    return any(mark > mine.get(origin, 0) for origin, mark in theirs.items())


@dataclass
class Taken:
    """What storing a room's messages gave: events to show, whether an origin has a gap,
    the messages the inbox refused (another holds that origin and number), and the new
    topic messages (for ``Topics``)."""

    outputs: list[Output] = field(default_factory=list)
    gap: bool = False
    conflicts: list[tuple[Message, str]] = field(default_factory=list)
    topics: list[Message] = field(default_factory=list)
    unsolicited: bool = False  # a BATCH answering no SYNC of ours: its messages were dropped


@dataclass(frozen=True)
class SyncRequest:
    """A SYNC, checked: the asker's vector of ``room``, and what it asks for."""

    room: str
    vector: Vector
    tail: int | None = None  # the newest N it lacks (a join), else everything above its marks
    peek: bool = False  # only our vector (a send-only node asking who holds its posts)


class RoomSync:
    """One room's catch-up state (see the module docstring)."""

    def __init__(self, room: str, node_id: str, store: BroadcastInbox, state: RoomState | None,
                 listen: bool, interval: float,
                 current_topic: Callable[[str], Message | None] | None = None) -> None:
        self.room = room
        # The room's winning topic message (``Topics.current``, which reads the inbox once).
        self.current_topic = current_topic or store.current_topic
        self.node_id = node_id
        self.store = store
        self.listen = listen
        stayed = state is not None and state.joined and state.floors is not None
        self.floors: dict[str, int] = dict(state.floors or {}) if state is not None else {}
        self._base_floors = dict(self.floors)  # before this join's tails
        self._join_floors: dict[str, int] = {}  # each origin's lowest over this join's tails
        self.joining = listen and not stayed
        self.tracker = SequenceTracker(store.origin_marks(room, self.floors))
        self.pull_timeout = max(2 * interval, 0.5)
        self.hold_for = max(2 * interval, 1.0)
        self.have_gap = interval / 10
        self._held: dict[str, dict[int, tuple[Message, float]]] = {}  # origin -> seq -> held
        self._reported: dict[str, Vector] = {}  # peer -> its last reported vector
        self._digests: dict[str, str] = {}  # peer -> the digest of its last reported vector
        # peer -> (sent, asked a tail whose floors count)
        self._pulling: dict[str, tuple[float, bool]] = {}
        # peer -> SYNCs sent it that no BATCH answered yet: only that many BATCHes of the
        # peer are taken, so nobody can push messages on us that we did not ask for.
        self._asked: dict[str, int] = {}
        self._peeks: dict[str, float] = {}  # send-only: peer -> when to peek at it next
        self._have_due: float | None = None
        self._last_have: float | None = None
        self._digest: str | None = None  # ours, until the vector changes
        self.published_top = 0  # our highest number published in the room this run
        self.confirmed = 0  # the highest mark for our origin any peer reported, this run

    def vector(self) -> Vector:
        return self.tracker.vector()

    def digest(self) -> str:
        if self._digest is None:
            self._digest = digest(self.tracker.vector())
        return self._digest

    # -- what peers tell us ------------------------------------------------------------

    def heard(self, peer: str, vector: Vector) -> None:
        """A peer reported what it holds of the room."""
        self._reported[peer] = vector
        self._digests.pop(peer, None)  # computed when a BEAT asks
        self.confirmed = max(self.confirmed, vector.get(self.node_id, 0))

    def reported_mark(self, peer: str, origin: str) -> int:
        return self._reported.get(peer, {}).get(origin, 0)

    def forget(self, peer: str) -> None:
        """Its link ended (or it left the room): what it reported and our pull are void."""
        for table in (self._reported, self._digests, self._pulling, self._peeks, self._asked):
            table.pop(peer, None)

    def meet(self, peer: str, now: float) -> list[Output]:
        """A peer in the room (or, for a send-only node, any peer in it) is met: exchange."""
        return self.pull(peer, now)

    def on_have(self, peer: str, vector: Vector, now: float) -> list[Output]:
        """A HAVE: pull when the peer holds more of some origin than we do."""
        self.heard(peer, vector)
        return self._pull_if_behind(peer, vector, now)

    def on_digest(self, peer: str, their_digest: str, now: float) -> list[Output]:
        """The room's digest in a peer's BEAT. Equal to ours: it holds what we hold (our own
        posts included). Equal to its last reported vector's: pull if that one is ahead of
        ours (a pull lost on the way is asked again). Else it holds something we have not
        heard of: pull."""
        if their_digest == self.digest():
            self.heard(peer, self.tracker.vector())
            return []
        reported = self._reported.get(peer)
        if reported is not None:
            if peer not in self._digests:
                self._digests[peer] = digest(reported)
            if self._digests[peer] == their_digest:  # still lacking what it reported?
                return self._pull_if_behind(peer, reported, now)
        return self.pull(peer, now) if self.listen else []

    # -- pulls -------------------------------------------------------------------------------

    def pull(self, peer: str, now: float, floors_count: bool = True) -> list[Output]:
        """SYNC to a peer unless one is already on its way: a tail while joining (its
        floors taken unless ``floors_count`` is False), a peek when send-only."""
        since = self._pulling.get(peer)
        if since is not None and now < since[0] + self.pull_timeout:
            return []
        header: dict[str, object] = {"node": self.node_id, "room": self.room,
                                     "vector": encode_vector(self.tracker.vector())}
        tail = self.joining
        if tail:
            header["tail"] = TAIL
        if not self.listen:
            header["peek"] = True
            self._peeks[peer] = now + self.pull_timeout  # asked again unless answered
        self._pulling[peer] = (now, tail and floors_count)
        self._asked[peer] = min(self._asked.get(peer, 0) + 1, MAX_ASKED)
        return [SendToPeer(peer, frames_of(Verb.SYNC, header))]

    def want_peeks(self, peers: Iterable[str], now: float) -> None:
        """Send-only: we published; ask these peers their vector soon (they need a moment
        to store what we sent)."""
        for peer in peers:
            at = now + self.have_gap
            self._peeks[peer] = min(self._peeks.get(peer, at), at)

    def _pull_if_behind(self, peer: str, vector: Vector, now: float,
                        floors_count: bool = True) -> list[Output]:
        if self.listen and behind(vector, self.tracker.vector()):
            return self.pull(peer, now, floors_count)
        return []

    # -- answering ---------------------------------------------------------------------------

    def answer(self, peer: str, request: SyncRequest, now: float) -> list[Output]:
        """A SYNC: one BATCH (bounded) - what the asker lacks, the tail it asked for, or for
        a peek our vector only - and our own pull if it holds more than we do."""
        self.heard(peer, request.vector)
        mine = self.tracker.vector()
        header: dict[str, object] = {"node": self.node_id, "room": self.room,
                                     "vector": encode_vector(mine)}
        payloads: list[bytes] = []
        if request.tail is not None and not request.peek:
            messages, floors = self._tail(request.vector, request.tail)
            header["floors"] = encode_vector(floors)
            payloads = _pack(messages)
        elif not request.peek:
            payloads = self._wanted(request.vector, mine)
        outputs: list[Output] = [SendToPeer(peer, frames_of(Verb.BATCH, header, payloads))]
        # A send-only peer is in no room: its tail gives us its posts, never floors.
        counts = not request.peek
        return outputs + self._pull_if_behind(peer, request.vector, now, counts)

    def _wanted(self, vector: Vector, mine: Vector) -> list[bytes]:
        """What the asker lacks above its marks, origin by origin, as much as fits."""
        payloads: list[bytes] = []
        budget = Budget(BATCH_MESSAGES, BATCH_BYTES)
        wanted = wanted_from(vector, mine)
        for origin in sorted(wanted):
            room = BATCH_MESSAGES - budget.count
            if room <= 0 or budget.size >= BATCH_BYTES:
                break
            found = self.store.origin_after(origin, wanted[origin], room, self.room)
            budget.fill(payloads, (message.encode() for message in found))
        return payloads

    def _tail(self, vector: Vector, count: int) -> tuple[list[Message], dict[str, int]]:
        """The room's newest ``count`` messages the asker lacks (oldest first, after the
        current topic), and the floors that tail sets: for an origin in it, the number
        below its first there; for any other origin, our mark (all of it is older)."""
        newest = self.store.newest(self.room, count)
        firsts: dict[str, int] = {}
        for message in newest:
            firsts[message.origin] = min(firsts.get(message.origin, message.origin_seq),
                                         message.origin_seq)
        floors = {origin: first - 1 for origin, first in firsts.items()}
        for origin, mark in self.tracker.vector().items():
            floors.setdefault(origin, mark)
        lacking = [m for m in reversed(newest) if m.origin_seq > vector.get(m.origin, 0)]
        topic = self.current_topic(self.room)
        if topic is not None and all(m.id != topic.id for m in lacking):
            lacking.insert(0, topic)  # the topic is given with every tail, however old
        return lacking, floors

    # -- what comes back ---------------------------------------------------------------------

    def expects(self, peer: str) -> bool:
        """A SYNC of ours to ``peer`` awaits its answer (a BATCH of it would be taken)."""
        return self._asked.get(peer, 0) > 0

    def on_batch(self, peer: str, vector: Vector, floors: Vector | None,
                 messages: Sequence[Message], now: float) -> Taken:
        """A BATCH from a peer: store its messages (listening), take the floors of a tail we
        asked it for, and pull again at once if it made progress and the peer holds more.
        Send-only: its vector tells whether it holds our posts; peek again if not yet."""
        self.heard(peer, vector)
        asked = self._asked.get(peer, 0)
        if asked == 0:
            # No SYNC of ours awaits an answer from it: what it holds is worth a pull,
            # what it pushes is not taken (a forger's or a very late answer).
            taken = Taken(unsolicited=bool(messages))
            taken.outputs += self._pull_if_behind(peer, vector, now)
            return taken
        if asked == 1:
            del self._asked[peer]
        else:
            self._asked[peer] = asked - 1
        pulled = self._pulling.pop(peer, None)
        if not self.listen:
            if vector.get(self.node_id, 0) < self.published_top:
                self._peeks[peer] = now + self.have_gap
            else:
                self._peeks.pop(peer, None)
            return Taken()
        before = self.tracker.vector()
        taken = self.take(messages, now)
        if pulled is not None and pulled[1] and floors is not None:
            taken.outputs += self._floor(floors)
        mine = self.tracker.vector()
        if mine != before and behind(vector, mine):
            taken.outputs += self.pull(peer, now)
        return taken

    def _floor(self, floors: Vector) -> list[Output]:
        """A tail we asked for came with ``floors``: merge them (see the module docstring),
        keep them, and show what was held back below them."""
        for origin, floor in floors.items():
            if origin == self.node_id:
                continue  # we hold all of our own origin: no floor for it
            lowest = min(self._join_floors.get(origin, floor), floor)
            self._join_floors[origin] = lowest
            self.floors[origin] = max(self._base_floors.get(origin, 0), lowest)
        self.joining = False
        self.store.save_room_state(self.room, RoomState(True, False, dict(self.floors)))
        self.tracker.merge(self.floors)
        self._digest = None
        outputs: list[Output] = []
        for origin in list(self._held):
            outputs += self._release(origin, everything=False)
        return outputs

    def take(self, messages: Sequence[Message], now: float) -> Taken:
        """Store the room's messages; INCOMING for the new ones in each author's order."""
        taken = Taken()
        if not messages:
            return taken
        saved = save_batch(self.store, [(m, None, None) for m in messages])
        fresh, taken.conflicts = saved.fresh, log_conflicts(saved.conflicts)
        touched: dict[str, None] = {}  # origins in order of first appearance
        tracker, all_held, shown = self.tracker, self._held, taken.outputs
        for message, new in zip(messages, fresh, strict=True):
            origin, seq = message.origin, message.origin_seq
            taken.gap = tracker.observe(origin, seq) or taken.gap
            if not new:
                continue
            if message.is_topic:
                taken.topics.append(message)
                continue
            if origin not in all_held and seq <= tracker.mark(origin):
                shown.append(Incoming(message))  # in order, nothing held before it: shown
                continue
            held = all_held.setdefault(origin, {})
            held[seq] = (message, now + self.hold_for)
            touched[origin] = None
        self._digest = None
        if any(fresh):
            self._want_have(now)  # tell the authors soon that we hold them
        for origin in touched:
            taken.outputs += self._release(origin, everything=False)
        return taken

    def published(self, seq: int) -> None:
        """We published our own message number ``seq`` of the room: we hold it."""
        self.tracker.observe(self.node_id, seq)
        self.published_top = max(self.published_top, seq)
        self._digest = None

    # -- time ------------------------------------------------------------------------------

    def due(self, now: float) -> list[Output]:
        """Our HAVE when due, the peeks due, and what waited too long for a gap."""
        outputs: list[Output] = []
        if self._have_due is not None and now >= self._have_due:
            self._have_due = None
            self._last_have = now
            header = {"node": self.node_id, "room": self.room,
                      "vector": encode_vector(self.tracker.vector())}
            outputs.append(PublishFrames(published_frames(Verb.HAVE, header)))
        for peer in [p for p, at in self._peeks.items() if at <= now]:
            del self._peeks[peer]
            outputs += self.pull(peer, now)
        return outputs + self._release_overdue(now)

    def next_deadline(self) -> float | None:
        deadlines = [_hold_deadline(held) for held in self._held.values()]
        deadlines += self._peeks.values()
        if self._have_due is not None:
            deadlines.append(self._have_due)
        return min(deadlines, default=None)

    def _want_have(self, now: float) -> None:
        if not self.listen:
            return
        at = now if self._last_have is None else max(now, self._last_have + self.have_gap)
        self._have_due = at if self._have_due is None else min(self._have_due, at)

    def _release_overdue(self, now: float) -> list[Output]:
        """Give up waiting for a gap nobody filled: show what was held, in order."""
        outputs: list[Output] = []
        for origin in [o for o, held in self._held.items() if _hold_deadline(held) <= now]:
            log.info("showing %d messages of %s in #%s without the ones before them",
                     len(self._held[origin]), origin[:8], self.room)
            outputs += self._release(origin, everything=True)
        return outputs

    def _release(self, origin: str, everything: bool) -> list[Output]:
        """INCOMING for the held messages of ``origin`` now in order (or all of them)."""
        held = self._held.get(origin)
        if not held:
            return []
        mark = self.tracker.mark(origin)
        ready = sorted(seq for seq in held if everything or seq <= mark)
        outputs: list[Output] = [Incoming(held.pop(seq)[0]) for seq in ready]
        if not held:
            del self._held[origin]
        return outputs


def _pack(messages: Sequence[Message]) -> list[bytes]:
    """As many of ``messages`` as one BATCH takes, in order."""
    payloads: list[bytes] = []
    Budget(BATCH_MESSAGES, BATCH_BYTES).fill(payloads, (message.encode() for message in messages))
    return payloads


def _hold_deadline(held: dict[int, tuple[Message, float]]) -> float:
    return min(until for _, until in held.values())
