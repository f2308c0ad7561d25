"""Catch-up between broadcast peers: per-origin sequences and version vectors. Pure.

Every node numbers the messages it authors 1, 2, 3, ... (its *origin
sequence*). A *version vector* maps an origin (a node id, 32 lowercase hex
digits) to the highest ``n`` such that the holder has **all** of that origin's
messages ``1..n`` - a contiguous high-water mark, so "I have 7" really means
nothing up to 7 is missing. Origins never heard of are simply absent (mark 0).

Two peers swap vectors when they meet (and after a gap, or with a periodic
digest); each then sends the other, for every origin, the messages above the
other's mark. The store computes the marks; this module decides what to send
and when a live gap calls for an exchange.
"""

from __future__ import annotations

from collections.abc import Mapping

from .digests import sha256
from .errors import ProtocolError
from .presence import is_node_id

MAX_VECTOR_ENTRIES = 10_000
# The highest mark or sequence number: SQLite's largest INTEGER, where they are
# stored and compared. A larger one from a peer is a SyncError, not an
# OverflowError when the inbox is asked for messages above it.
MAX_SEQ = 2**63 - 1

Vector = dict[str, int]


class SyncError(ProtocolError):
    """A version vector from a peer is not valid."""


def wanted_from(peer_vector: Mapping[str, int], my_vector: Mapping[str, int]) -> dict[str, int]:
    """What I must send a peer: ``{origin: after_seq}`` means send that origin's seq > after_seq.

    Only origins where my mark is above the peer's appear. Messages I hold
    above my own mark (beyond a gap) are not promised here; the store may
    send them too, since receivers drop duplicates by id.
    """
    return {
        origin: peer_vector.get(origin, 0)
        for origin, mine in my_vector.items()
        if mine > peer_vector.get(origin, 0)
    }


def digest(vector: Mapping[str, int]) -> str:
    """A short fingerprint of a vector: 16 hex digits of the SHA-256 of its entries with a
    mark above 0, sorted by origin, each written ``origin:mark\n`` in ASCII. Equal
    vectors (marks of 0 left out) have equal digests."""
    text = "".join(f"{origin}:{mark}\n" for origin, mark in sorted(vector.items()) if mark > 0)
    fingerprint: str = sha256(text.encode("ascii")).hexdigest()
    return fingerprint[:16]


DIGEST_CHARS = 16


def _check_origin(origin: object) -> str:
    if not isinstance(origin, str) or not is_node_id(origin):
        raise SyncError(f"origin {origin!r} is not 32 lowercase hex digits")
    return origin


def _check_count(value: object, what: str, minimum: int) -> int:
    # bool is an int in Python; on the wire true/false are not numbers.
    if type(value) is not int:
        raise SyncError(f"{what} {value!r} is not a whole number")
    if value < minimum:
        raise SyncError(f"{what} {value} is below {minimum}")
    if value > MAX_SEQ:
        raise SyncError(f"{what} {value} is above {MAX_SEQ}")
    return value


def encode_vector(vector: Mapping[str, int]) -> dict[str, int]:
    """The wire form of our own vector: a plain object, keys sorted.

    Not checked again: every origin in it was checked when it became known
    (``SequenceTracker.observe`` / ``merge``), and this runs on every BEAT.
    """
    return dict(sorted(vector.items()))


def decode_vector(obj: object) -> Vector:
    """Validate a vector decoded from JSON; raises SyncError naming what is wrong."""
    if not isinstance(obj, dict):
        raise SyncError("a version vector must be a JSON object")
    if len(obj) > MAX_VECTOR_ENTRIES:
        raise SyncError(f"a version vector has {len(obj)} entries, more than {MAX_VECTOR_ENTRIES}")
    return {
        _check_origin(origin): _check_count(mark, f"mark for {origin}", 0)
        for origin, mark in obj.items()
    }


class SequenceTracker:
    """Follows contiguous marks as messages arrive live, and says when one is missing.

    Seed it with the store's vector. ``observe`` returns True while an origin
    has a gap (a message arrived whose predecessors have not), which is the
    actor's cue to start a version-vector exchange with the sender - rate
    limited by the actor, since every message after a gap reports it too.
    Messages that arrive ahead of a gap are remembered, so when the gap is
    filled the mark jumps over them.
    """

    def __init__(self, vector: Mapping[str, int] | None = None) -> None:
        self._marks: Vector = {}
        self._ahead: dict[str, set[int]] = {}
        if vector:
            self.merge(vector)

    def mark(self, origin: str) -> int:
        return self._marks.get(origin, 0)

    def vector(self) -> Vector:
        """The current marks, as sent to peers."""
        return dict(self._marks)

    def has_gap(self, origin: str) -> bool:
        return bool(self._ahead.get(origin))

    def gaps(self) -> list[str]:
        """Origins with a message missing below one already received."""
        return sorted(origin for origin, ahead in self._ahead.items() if ahead)

    def observe(self, origin: str, seq: int) -> bool:
        """Record that message ``seq`` of ``origin`` is now held; True if the origin has a gap."""
        mark = self._marks.get(origin)
        if mark is None:  # a known origin was checked when it became known
            _check_origin(origin)
            mark = 0
        if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
            _check_count(seq, "sequence number", 1)
        if seq == mark + 1 and origin not in self._ahead:  # the common case: next in line
            self._marks[origin] = seq
            return False
        if seq > mark + 1:
            self._ahead.setdefault(origin, set()).add(seq)
        elif seq == mark + 1:
            self._marks[origin] = seq
            self._advance(origin)
        return self.has_gap(origin)

    def merge(self, vector: Mapping[str, int]) -> None:
        """Raise marks to a vector the store reports (e.g. after an exchange filled a gap)."""
        for origin, mark in decode_vector(dict(vector)).items():
            if mark > self._marks.get(origin, 0):
                self._marks[origin] = mark
                self._advance(origin)

    def _advance(self, origin: str) -> None:
        ahead = self._ahead.get(origin)
        if ahead is None:
            return
        mark = self._marks[origin]
        ahead.difference_update([s for s in ahead if s <= mark])
        while mark + 1 in ahead:
            mark += 1
            ahead.discard(mark)
        self._marks[origin] = mark
        if not ahead:
            del self._ahead[origin]
