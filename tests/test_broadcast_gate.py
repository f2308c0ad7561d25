"""Bad input and the flood cut-off of broadcast mode (core/broadcast/gate.py, faults.py)."""

from __future__ import annotations

from collections import Counter

from factories import fake_trust

from lab93zmq.core.broadcast.actions import RouterPeer
from lab93zmq.core.broadcast.faults import Fault, SpoofedSender, rejected
from lab93zmq.core.broadcast.gate import FLOOD_BURST, FLOOD_RATE, PENALTY, Gate
from lab93zmq.core.broadcast.trust import KeyTrust
from lab93zmq.core.errors import ProtocolError

OURS = "0" * 32
BAD = [Fault("bad_frames", "dropped frames: junk")]


def gate(secure: bool = False, penalty: float = PENALTY) -> Gate:
    trust = fake_trust("alice", ()) if secure else None
    return Gate(KeyTrust(trust, OURS, "alice"), Counter(), penalty)


def test_each_fault_is_counted_and_a_frame_list_strikes_once():
    g = gate()
    source = ("node", "b" * 32)
    faults = [Fault("bad_messages", "one"), Fault("spoofed", "two"), Fault("bad_messages", "3")]
    assert g.judge(faults, source, 0.0) is False
    assert g.stats == Counter(bad_messages=2, spoofed=1)
    for _ in range(FLOOD_BURST - 1):  # the first list took one strike of the burst
        assert g.judge(BAD, source, 0.0) is False
    assert g.judge(BAD, source, 0.0) is True  # past the burst: cut off now, once
    assert g.stats["cut_offs"] == 1


def test_what_is_not_held_against_a_sender_never_cuts_it_off():
    g = gate()
    source = ("conn", b"x")
    misaddressed = [Fault("misaddressed", "to carol", strike=False)]
    assert not any(g.judge(misaddressed, source, 0.0) for _ in range(10 * FLOOD_BURST))
    assert g.stats["misaddressed"] == 10 * FLOOD_BURST and g.admits(source, 0.0)
    assert not any(g.judge(BAD, None, 0.0) for _ in range(10 * FLOOD_BURST))  # nobody to blame


def test_a_cut_off_source_is_ignored_for_the_penalty_then_let_in_again():
    g = gate()
    source = ("node", "b" * 32)
    assert [g.judge(BAD, source, 1.0) for _ in range(FLOOD_BURST + 1)][-1] is True
    assert not g.admits(source, 1.0) and g.stats["cut_off_frames"] == 1
    assert g.admits(("node", "c" * 32), 1.0)  # the others are served
    assert g.next_deadline() == 1.0 + PENALTY
    assert g.over(PENALTY) == []
    assert g.over(1.0 + PENALTY) == [source]
    assert g.admits(source, 1.0 + PENALTY) and g.next_deadline() is None


def test_the_penalty_lasts_at_least_as_long_as_the_bucket_takes_to_refill():
    assert gate(penalty=1.0).penalty == FLOOD_BURST / FLOOD_RATE
    assert gate(penalty=PENALTY).penalty == PENALTY


def test_the_cut_off_is_named_by_the_peer_the_key_or_as_a_connection():
    g = gate()
    assert g.cut_text(("key", "carol"), None) == (
        f"carol sent too many bad messages; ignored for {PENALTY:g} s"
    )
    assert g.cut_text(("node", "b" * 32), "bob").startswith("bob sent too many")
    assert g.cut_text(("conn", b"x"), None).startswith("a connection sent too many")


def test_sources_are_the_trust_s():
    plain, secure = gate(), gate(secure=True)
    sender = RouterPeer(b"conn", "bob")
    assert plain.source(None, None, sender) == ("conn", b"conn")
    assert secure.source(None, None, sender) == ("key", "bob")
    assert secure.source("b" * 32, "bob", None) == ("key", "bob")
    assert plain.source(None, None, None) is None


def test_a_refused_frame_list_is_a_bad_frame_and_a_spoofed_one_both():
    assert [f.stat for f in rejected(None, ProtocolError("junk"))] == ["bad_frames"]
    spoofed = rejected("b" * 32, SpoofedSender("carol as bob"))
    assert [f.stat for f in spoofed] == ["spoofed", "bad_frames"]
    assert "carol as bob" in spoofed[0].text and "bbbbbbbb" in spoofed[1].text
