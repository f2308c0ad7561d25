"""Room catch-up between broadcast peers: version vectors, SYNC/BATCH/BEAT, hold-back. Pure.

Catch-up is pull-based: a node sends SYNC to a peer when they meet, when a
live MSG shows a gap in an origin's sequence, and when a BEAT (or a SYNC)
shows the peer holds more of some origin than it does. It keeps at most one
SYNC outstanding per peer (``pull_timeout``) and asks again at once after a
BATCH that made progress while the peer still holds more, so a long catch-up
goes in bounded batches with flow control. Every node answers SYNC from
everything it holds, so messages of authors who have left are relayed too.

Each author's messages are shown in that author's order: one that arrives
ahead of a gap is stored at once but held back until the gap is filled - or,
if nobody can fill it, until ``hold_for`` has passed.

Every piece of state that depends on *which messages* a vector speaks of lives
here and nowhere else: our marks (``tracker``), each peer's reported vector,
the outstanding pulls and the held-back messages. Rooms (a vector per room)
key these four by room, in this module only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..batching import Budget
from ..errors import ProtocolError
from ..events import Incoming
from ..inbox import BroadcastInbox
from ..message import Message
from ..presence import BeaconSchedule
from ..saving import save_batch
from ..sync import SequenceTracker, SyncError, Vector, decode_vector, encode_vector, wanted_from
from .actions import BATCH_BYTES, BATCH_MESSAGES, Output, PublishFrames, SendToPeer, Verb
from .actions import command_frames as frames_of
from .faults import Fault, bad_message, decode_each, log_conflicts

log = logging.getLogger(__name__)


def vector_of(header: Mapping[str, Any]) -> Vector:
    """The ``vector`` of a SYNC, BATCH or BEAT header; ProtocolError when it is not one."""
    if "vector" not in header:
        raise ProtocolError("header field 'vector' is missing")
    try:
        return decode_vector(header["vector"])
    except SyncError as error:
        raise ProtocolError(f"bad vector: {error}") from None


def behind(theirs: Mapping[str, int], mine: Mapping[str, int]) -> bool:
    """True when ``theirs`` holds some origin further than ``mine``."""
    return any(mark > mine.get(origin, 0) for origin, mark in theirs.items())


@dataclass
class Taken:
    """What storing room messages gave: events to show, whether an origin has a gap,
    and the messages the inbox refused (another message holds that origin number)."""

    outputs: list[Output] = field(default_factory=list)
    gap: bool = False
    conflicts: list[tuple[Message, str]] = field(default_factory=list)


def published_messages(payloads: Sequence[bytes]) -> list[Message]:
    """The room messages a MSG carries; ProtocolError (the whole MSG is dropped) otherwise."""
    if not 1 <= len(payloads) <= BATCH_MESSAGES:
        raise ProtocolError(f"MSG carries {len(payloads)} messages, not 1 to {BATCH_MESSAGES}")
    messages = [Message.decode(payload) for payload in payloads]
    if any(message.is_direct for message in messages):
        raise ProtocolError("a direct message was published to the room")
    return messages


def room_messages(sender: str, payloads: Sequence[bytes], what: str) -> tuple[list[Message],
                                                                              list[Fault]]:
    """The valid room messages among ``payloads``, and a fault for each other one."""
    decoded, faults = decode_each(sender, payloads, what)
    faults += [bad_message(sender, what, "a direct message") for m in decoded if m.is_direct]
    return [m for m in decoded if not m.is_direct], faults


class CatchUp:
    """Our marks, what each linked peer reported, pulls under way, messages held back.

    The facade calls it only for linked peers, and ``forget``s a peer whose
    link ends.
    """

    def __init__(self, node_id: str, store: BroadcastInbox, interval: float, now: float) -> None:
        self.node_id = node_id
        self.store = store
        self.tracker = SequenceTracker(store.origin_marks())
        self.beats = BeaconSchedule(interval, now)  # our BEAT: every interval, early after news
        self.pull_timeout = max(2 * interval, 0.5)
        # How long a message that arrived ahead of a gap waits for the gap to fill.
        self.hold_for = max(2 * interval, 1.0)
        self._held: dict[str, dict[int, tuple[Message, float]]] = {}  # origin -> seq -> held
        self._reported: dict[str, Vector] = {}  # peer -> its last reported holdings
        self._pulling: dict[str, float] = {}  # peer -> when our unanswered SYNC went
        self.confirmed = 0  # the highest mark for our origin any peer reported, this run

    def vector(self) -> Vector:
        return self.tracker.vector()

    # -- what peers tell us --------------------------------------------------------

    def heard(self, peer: str, vector: Vector) -> None:
        """A linked peer reported what it holds."""
        self._reported[peer] = vector
        self.confirmed = max(self.confirmed, vector.get(self.node_id, 0))

    def reported_mark(self, peer: str, origin: str) -> int:
        return self._reported.get(peer, {}).get(origin, 0)

    def forget(self, peer: str) -> None:
        """Its link ended: what it reported and our pull from it are void."""
        self._reported.pop(peer, None)
        self._pulling.pop(peer, None)

    def pull(self, peer: str, now: float) -> list[Output]:
        """Send SYNC to a peer unless one is already on its way."""
        since = self._pulling.get(peer)
        if since is not None and now < since + self.pull_timeout:
            return []
        self._pulling[peer] = now
        header = {"node": self.node_id, "vector": encode_vector(self.tracker.vector())}
        return [SendToPeer(peer, frames_of(Verb.SYNC, header))]

    def on_beat(self, peer: str, vector: Vector, now: float) -> list[Output]:
        """A BEAT: pull when the peer holds more of some origin than we do."""
        self.heard(peer, vector)
        return self._pull_if_behind(peer, vector, now)

    def answer(self, peer: str, vector: Vector, now: float) -> list[Output]:
        """A SYNC: one BATCH of what the asker lacks (bounded), and our own pull if it
        holds more than we do."""
        self.heard(peer, vector)
        mine = self.tracker.vector()
        payloads: list[bytes] = []
        budget = Budget(BATCH_MESSAGES, BATCH_BYTES)
        wanted = wanted_from(vector, mine)
        for origin in sorted(wanted):
            room = BATCH_MESSAGES - budget.count
            if room <= 0 or budget.size >= BATCH_BYTES:
                break
            for message in self.store.origin_after(origin, wanted[origin], room):
                data = message.encode()
                if not budget.admits(len(data)):
                    break
                budget.take(len(data))
                payloads.append(data)
        header = {"node": self.node_id, "vector": encode_vector(mine)}
        outputs: list[Output] = [SendToPeer(peer, frames_of(Verb.BATCH, header, payloads))]
        return outputs + self._pull_if_behind(peer, vector, now)

    def answered(self, peer: str, vector: Vector, before: Vector, now: float) -> list[Output]:
        """A BATCH from a linked peer was taken (our vector was ``before`` it): its pull is
        over; pull again at once if it made progress and the peer holds still more."""
        self.heard(peer, vector)
        self._pulling.pop(peer, None)
        mine = self.tracker.vector()
        if mine != before and behind(vector, mine):
            return self.pull(peer, now)
        return []

    def _pull_if_behind(self, peer: str, vector: Vector, now: float) -> list[Output]:
        return self.pull(peer, now) if behind(vector, self.tracker.vector()) else []

    # -- room messages in ------------------------------------------------------------

    def take(self, messages: Sequence[Message], now: float) -> Taken:
        """Store room messages; INCOMING for the new ones in each author's order."""
        taken = Taken()
        if not messages:
            return taken
        saved = save_batch(self.store, [(m, None, None) for m in messages])
        fresh, taken.conflicts = saved.fresh, log_conflicts(saved.conflicts)
        touched: dict[str, None] = {}  # origins in order of first appearance
        for message, new in zip(messages, fresh, strict=True):
            taken.gap = self.tracker.observe(message.origin, message.origin_seq) or taken.gap
            if new:
                held = self._held.setdefault(message.origin, {})
                held[message.origin_seq] = (message, now + self.hold_for)
                touched[message.origin] = None
        if any(fresh):
            self.beats.request_answer()  # tell the authors soon that we hold them
        for origin in touched:
            taken.outputs += self._release(origin, everything=False)
        return taken

    def published(self, seq: int) -> None:
        """We published our own room message number ``seq``: we hold it."""
        self.tracker.observe(self.node_id, seq)

    # -- time ----------------------------------------------------------------------------

    def beat(self, now: float) -> list[Output]:
        """Our BEAT on the PUB when one is due."""
        if not self.beats.due(now):
            return []
        self.beats.sent(now)
        header = {"node": self.node_id, "vector": encode_vector(self.tracker.vector())}
        return [PublishFrames(frames_of(Verb.BEAT, header))]

    def release_overdue(self, now: float) -> list[Output]:
        """Give up waiting for a gap nobody filled: show what was held, in order."""
        outputs: list[Output] = []
        for origin in [o for o, held in self._held.items() if _hold_deadline(held) <= now]:
            log.info("showing %d messages of %s without the ones before them",
                     len(self._held[origin]), origin[:8])
            outputs += self._release(origin, everything=True)
        return outputs

    def next_deadline(self) -> float:
        return min([self.beats.next_deadline(), *map(_hold_deadline, self._held.values())])

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


def _hold_deadline(held: dict[int, tuple[Message, float]]) -> float:
    return min(until for _, until in held.values())
