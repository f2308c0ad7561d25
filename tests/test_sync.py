"""Version vectors and live gap detection: pure."""

from __future__ import annotations

import json

import pytest

from lab93zmq.core.sync import (
    MAX_VECTOR_ENTRIES,
    SequenceTracker,
    SyncError,
    decode_vector,
    encode_vector,
    wanted_from,
)

pytestmark = pytest.mark.timeout(30)

A = "aa" * 16
B = "bb" * 16
C = "cc" * 16


def test_wanted_from_lists_only_what_the_peer_lacks():
    mine = {A: 5, B: 2, C: 7}
    peer = {A: 5, B: 4, "dd" * 16: 9}
    assert wanted_from(peer, mine) == {C: 0}
    assert wanted_from({A: 3}, mine) == {A: 3, B: 0, C: 0}
    assert wanted_from(mine, mine) == {}
    assert wanted_from(mine, {}) == {}


def test_two_peers_converge_after_an_exchange():
    left = {A: 4, B: 1}
    right = {B: 3, C: 2}
    to_right = wanted_from(right, left)
    to_left = wanted_from(left, right)
    assert to_right == {A: 0}
    assert to_left == {B: 1, C: 0}
    # Apply: each side now holds the other's marks too.
    for origin, after in to_right.items():
        right[origin] = max(right.get(origin, after), left[origin])
    for origin, after in to_left.items():
        left[origin] = max(left.get(origin, after), right[origin])
    assert left == right == {A: 4, B: 3, C: 2}


def test_vector_wire_form_round_trips_through_json():
    vector = {B: 2, A: 0, C: 10**12}
    wire = json.loads(json.dumps(encode_vector(vector)))
    assert list(encode_vector(vector)) == [A, B, C]  # keys sorted
    assert decode_vector(wire) == vector


@pytest.mark.parametrize(
    "obj, problem",
    [
        ([1, 2], "JSON object"),
        (None, "JSON object"),
        ({"AA" * 16: 1}, "hex"),
        ({"zz" * 16: 1}, "hex"),
        ({"aa": 1}, "hex"),
        ({A: -1}, "below 0"),
        ({A: 1.5}, "whole number"),
        ({A: "3"}, "whole number"),
        ({A: True}, "whole number"),
        ({A: None}, "whole number"),
    ],
)
def test_decode_vector_rejects_bad_input(obj, problem):
    with pytest.raises(SyncError, match=problem):
        decode_vector(obj)


def test_decode_vector_limits_entries():
    big = {f"{n:032x}": 1 for n in range(MAX_VECTOR_ENTRIES + 1)}
    with pytest.raises(SyncError, match="more than"):
        decode_vector(big)
    del big[f"{MAX_VECTOR_ENTRIES:032x}"]
    assert len(decode_vector(big)) == MAX_VECTOR_ENTRIES


def test_sync_error_is_a_value_error():
    assert issubclass(SyncError, ValueError)


def test_tracker_in_order_has_no_gap():
    tracker = SequenceTracker({A: 2})
    assert tracker.observe(A, 3) is False
    assert tracker.observe(B, 1) is False
    assert tracker.vector() == {A: 3, B: 1}


def test_tracker_reports_a_gap_until_it_is_filled():
    tracker = SequenceTracker({A: 2})
    assert tracker.observe(A, 5) is True  # 3 and 4 are missing
    assert tracker.observe(A, 6) is True
    assert tracker.mark(A) == 2 and tracker.gaps() == [A]
    assert tracker.observe(A, 3) is True  # 4 still missing
    assert tracker.mark(A) == 3
    assert tracker.observe(A, 4) is False  # the mark jumps over 5 and 6
    assert tracker.mark(A) == 6 and tracker.gaps() == []
    assert tracker.observe(A, 2) is False  # a duplicate changes nothing
    assert tracker.mark(A) == 6


def test_tracker_merge_closes_a_gap_filled_by_an_exchange():
    tracker = SequenceTracker()
    assert tracker.observe(A, 3) is True
    assert tracker.observe(A, 4) is True
    tracker.merge({A: 2})  # the store got 1 and 2 from a peer
    assert tracker.mark(A) == 4 and not tracker.has_gap(A)
    tracker.merge({A: 1})  # marks never go down
    assert tracker.mark(A) == 4


@pytest.mark.parametrize("origin, seq", [("nope", 1), (A, 0), (A, -2), (A, 1.0), (A, True)])
def test_tracker_rejects_bad_input(origin, seq):
    with pytest.raises(SyncError):
        SequenceTracker().observe(origin, seq)
