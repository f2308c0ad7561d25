"""The beacon codec, the live-peer table and the beacon schedule: pure, fake clock."""

from __future__ import annotations

import itertools
import random
import struct

import pytest

from lab93zmq.core.presence import (
    HEADER_SIZE,
    MAX_BEACON_SIZE,
    Beacon,
    BeaconError,
    BeaconKind,
    BeaconSchedule,
    Discovery,
    OldBeacon,
    OldVersion,
    PeerChanged,
    PeerJoined,
    PeerLeft,
    PeerTable,
    ProbeSeen,
    wants_answer,
)

pytestmark = pytest.mark.timeout(30)

OWN = "00" * 16
ALICE = "a1" * 16
BOB = "b0" * 16


def announce(node=ALICE, user="alice", router=5190, pub=40123, mode="broadcast", kind=None):
    return Beacon(kind or BeaconKind.ANNOUNCE, node, mode, router, pub, user)


# -- codec -----------------------------------------------------------------


def test_encode_matches_the_documented_layout():
    beacon = Beacon(BeaconKind.ANNOUNCE, "0123456789abcdef" * 2, "repeater", 5190, 40123, "zoë")
    expected = (
        b"L93B"
        + bytes([2, 1, 2])
        + bytes.fromhex("0123456789abcdef" * 2)
        + struct.pack(">HHH", 5190, 40123, 4)
        + "zoë".encode()
    )
    assert beacon.encode() == expected
    assert len(expected) == HEADER_SIZE + 4 == 33


@pytest.mark.parametrize(
    "beacon",
    [
        announce(),
        announce(mode="repeater", user="x" * 64),
        announce(kind=BeaconKind.LEAVING),
        announce(user="😀" * 64),  # the longest user name: 256 bytes
        Beacon.probe(BOB),
        Beacon.probe(BOB, "scanner"),
    ],
)
def test_round_trip(beacon):
    data = beacon.encode()
    assert len(data) <= MAX_BEACON_SIZE
    assert Beacon.decode(data) == beacon


def test_decode_accepts_bytearray_and_memoryview():
    data = announce().encode()
    assert Beacon.decode(bytearray(data)) == Beacon.decode(memoryview(data)) == announce()


def test_a_version_1_beacon_says_who_sent_it_so_it_can_be_told_to_upgrade():
    old = _with(announce(user="zoë").encode(), 4, b"\x01")  # 0.1 wrote the same layout
    with pytest.raises(OldVersion) as caught:
        Beacon.decode(old)
    assert caught.value.old == OldBeacon(1, ALICE, "broadcast", "zoë", BeaconKind.ANNOUNCE)
    assert caught.value.old.sentence("198.18.93.7") == (
        "zoë's node at 198.18.93.7 speaks lab93 protocol 1 (lab93-node 0.1); this node"
        " speaks 2 — upgrade it"
    )
    assert Discovery.read(old, "198.18.93.7") == caught.value.old
    assert Discovery(OWN, 1.0, 0.0).hear(old, "198.18.93.7", 0.0) == []  # no peer of ours
    nameless = _with(Beacon.probe(BOB).encode(), 4, b"\x01")
    assert Discovery.read(nameless, "198.18.93.7").sentence("198.18.93.7").startswith(
        "a node at 198.18.93.7 speaks lab93 protocol 1"
    )


def _with(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


VALID = announce().encode()


@pytest.mark.parametrize(
    "data, problem",
    [
        (b"", "too short"),
        (VALID[: HEADER_SIZE - 1], "too short"),
        (VALID[:-1], "header says"),
        (VALID + b"\0", "header says"),
        (_with(VALID, 0, b"ZRE\x01"), "magic"),
        (_with(VALID, 4, b"\x09"), "version 9"),
        (_with(VALID, 4, b"\x01") + b"trailing", "malformed beacon of version 1"),
        (_with(VALID, 5, b"\x00"), "kind"),
        (_with(VALID, 5, b"\x09"), "kind"),
        (_with(VALID, 6, b"\x07"), "mode"),
        (_with(VALID, 6, b"\x00"), "needs mode"),
        (_with(VALID, 23, b"\0\0"), "port 0"),
        (_with(VALID, 25, b"\0\0"), "port 0"),
        (_with(VALID, 27, b"\x01\x01") + b"x" * 252, "over 256"),
        (_with(VALID, 27, b"\0\x02")[:HEADER_SIZE] + b"\xff\xfe", "UTF-8"),
        (_with(VALID, 27, b"\0\x00")[:HEADER_SIZE], "must not be empty"),
        (_with(VALID, 27, b"\0\x03")[:HEADER_SIZE] + b"a b", "spaces or control"),
        (_with(VALID, 27, b"\0\x02")[:HEADER_SIZE] + b"a\n", "spaces or control"),
        ("not bytes", "must be bytes"),
    ],
)
def test_decode_names_what_is_wrong(data, problem):
    with pytest.raises(BeaconError, match=problem):
        Beacon.decode(data)


def test_beacon_error_is_a_value_error():
    assert issubclass(BeaconError, ValueError)


@pytest.mark.parametrize(
    "fields, problem",
    [
        ((BeaconKind.ANNOUNCE, "A1" * 16, "broadcast", 1, 2, "a"), "node id"),
        ((BeaconKind.ANNOUNCE, "a1" * 15, "broadcast", 1, 2, "a"), "node id"),
        ((1, ALICE, "broadcast", 1, 2, "a"), "kind"),
        ((BeaconKind.ANNOUNCE, ALICE, "server", 1, 2, "a"), "mode"),
        ((BeaconKind.ANNOUNCE, ALICE, "broadcast", 70000, 2, "a"), "not a port"),
        ((BeaconKind.ANNOUNCE, ALICE, "broadcast", True, 2, "a"), "not a port"),
        ((BeaconKind.LEAVING, ALICE, "broadcast", 1, 0, "a"), "port 0"),
        ((BeaconKind.ANNOUNCE, ALICE, "broadcast", 1, 2, "x" * 65), "longer than 64"),
        ((BeaconKind.ANNOUNCE, ALICE, "broadcast", 1, 2, "\ud800"), "Unicode"),
        ((BeaconKind.PROBE, ALICE, "none", 0, 0, None), "must be a string"),
    ],
)
def test_construction_validates(fields, problem):
    with pytest.raises(BeaconError, match=problem):
        Beacon(*fields)


def _decode_or_error(data: bytes) -> None:
    """Decoding any bytes either returns a Beacon or raises BeaconError, nothing else."""
    try:
        result = Beacon.decode(data)
    except BeaconError:
        return
    assert isinstance(result, Beacon)
    assert result.encode() == data  # whatever decodes is canonical


def test_fuzz_random_bytes_never_crash():
    rng = random.Random(93)
    for size in [0, 1, 4, 28, 29, 30, 54, 92, 285, 286, 1000]:
        for _ in range(200):
            _decode_or_error(rng.randbytes(size))
    for _ in range(2000):  # 54 bytes crashed pyre's parser
        _decode_or_error(rng.randbytes(54))


def test_fuzz_truncations_and_mutations_of_a_valid_packet():
    rng = random.Random(5190)
    data = announce(user="éric").encode()
    for end in range(len(data)):
        with pytest.raises(BeaconError):
            Beacon.decode(data[:end])
    for _ in range(3000):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        _decode_or_error(bytes(mutated))
    # Right magic and version, random rest: the hard case for a parser.
    for _ in range(3000):
        _decode_or_error(b"L93B\x02" + rng.randbytes(rng.randint(0, 300)))
        _decode_or_error(b"L93B\x01" + rng.randbytes(rng.randint(0, 300)))  # 0.1's


# -- peer table ------------------------------------------------------------


def test_join_refresh_and_source_address():
    table = PeerTable(OWN, interval=1.0)
    events = table.on_beacon(announce(), "198.18.93.2", now=10.0)
    assert [type(e) for e in events] == [PeerJoined]
    peer = events[0].peer
    assert (peer.node_id, peer.user, peer.mode) == (ALICE, "alice", "broadcast")
    assert peer.endpoint == ("198.18.93.2", 5190, 40123)
    assert table.on_beacon(announce(), "198.18.93.2", now=11.0) == []
    assert table.get(ALICE).last_seen == 11.0
    assert [p.node_id for p in table.live()] == [ALICE]


def test_own_beacons_and_probes_are_not_peers():
    table = PeerTable(OWN, interval=1.0)
    assert table.on_beacon(announce(node=OWN), "127.0.0.1", 1.0) == []
    assert table.on_beacon(Beacon.probe(OWN), "127.0.0.1", 1.0) == []
    assert table.on_beacon(Beacon.probe(BOB), "127.0.0.1", 1.0) == [ProbeSeen(BOB, "127.0.0.1")]
    assert len(table) == 0 and table.live() == [] and table.get(BOB) is None
    assert table.next_deadline() is None


def test_restart_with_new_ports_replaces_the_endpoint():
    table = PeerTable(OWN, interval=1.0)
    table.on_beacon(announce(pub=40123), "127.0.0.1", 1.0)
    events = table.on_beacon(announce(pub=40999), "127.0.0.1", 1.5)
    assert len(events) == 1 and isinstance(events[0], PeerChanged)
    assert events[0].previous.pub_port == 40123
    assert events[0].peer.endpoint == ("127.0.0.1", 5190, 40999)
    assert table.get(ALICE).pub_port == 40999


def test_name_change_is_reported():
    table = PeerTable(OWN, interval=1.0)
    table.on_beacon(announce(), "127.0.0.1", 1.0)
    (event,) = table.on_beacon(announce(user="alicia"), "127.0.0.1", 2.0)
    assert isinstance(event, PeerChanged) and event.peer.user == "alicia"


def test_multihomed_peer_does_not_flap_but_a_moved_peer_moves():
    table = PeerTable(OWN, interval=1.0)
    table.on_beacon(announce(), "198.18.93.2", 1.0)
    # The same instance heard on its other interface: life, not a move.
    assert table.on_beacon(announce(), "10.0.0.2", 1.2) == []
    assert table.get(ALICE).address == "198.18.93.2"
    assert table.get(ALICE).last_seen == 1.2
    assert table.on_beacon(announce(), "198.18.93.2", 2.0) == []
    # The old address went quiet for two intervals: the peer has moved.
    (event,) = table.on_beacon(announce(), "10.0.0.2", 4.0)
    assert isinstance(event, PeerChanged) and event.peer.address == "10.0.0.2"


def test_leaving_drops_at_once_but_only_for_the_instance_on_record():
    table = PeerTable(OWN, interval=1.0)
    table.on_beacon(announce(pub=2), "127.0.0.1", 1.0)
    # A late LEAVING from the instance before a restart (other ports): ignored.
    assert table.on_beacon(announce(pub=1, kind=BeaconKind.LEAVING), "127.0.0.1", 1.1) == []
    assert ALICE in table
    (event,) = table.on_beacon(announce(pub=2, kind=BeaconKind.LEAVING), "127.0.0.1", 1.2)
    assert event == PeerLeft(event.peer, "leaving") and event.peer.node_id == ALICE
    assert ALICE not in table
    assert table.on_beacon(announce(pub=2, kind=BeaconKind.LEAVING), "127.0.0.1", 1.3) == []


def test_expiry_after_five_silent_intervals_and_traffic_counts_as_life():
    table = PeerTable(OWN, interval=1.0)
    table.on_beacon(announce(), "127.0.0.1", 0.0)
    table.on_beacon(announce(node=BOB, user="bob"), "127.0.0.2", 1.0)
    assert table.next_deadline() == 5.0
    assert table.expire(4.999) == []
    assert table.on_traffic(ALICE, 4.5) is True
    assert table.on_traffic("cc" * 16, 4.5) is False
    assert table.next_deadline() == 6.0  # bob's, now the oldest
    (gone,) = table.expire(6.0)
    assert gone.reason == "expired" and gone.peer.node_id == BOB
    assert [p.node_id for p in table.live()] == [ALICE]
    assert table.next_deadline() == 9.5
    assert [e.peer.node_id for e in table.expire(9.5)] == [ALICE]
    assert table.next_deadline() is None


def test_a_dropped_link_and_no_beacon_for_one_and_a_half_intervals_means_lost():
    table = PeerTable(OWN, interval=1.0)
    table.on_beacon(announce(), "127.0.0.1", 10.0)
    assert table.on_link_down(ALICE, 10.3) is True
    assert table.next_deadline() == pytest.approx(11.8)  # before the 5-interval expiry
    assert table.on_traffic(ALICE, 10.5)  # frames read after the drop prove nothing
    assert table.expire(11.79) == []
    (gone,) = table.expire(11.8)
    assert gone.reason == "lost" and gone.peer.node_id == ALICE
    assert ALICE not in table and table.next_deadline() is None


def test_a_beacon_after_the_drop_keeps_the_peer():
    table = PeerTable(OWN, interval=1.0)
    table.on_beacon(announce(), "127.0.0.1", 10.0)
    table.on_link_down(ALICE, 10.3)
    assert table.on_beacon(announce(), "127.0.0.1", 10.9) == []  # alive, same endpoint
    assert table.next_deadline() == pytest.approx(15.9)  # only the silence rule is left
    assert table.expire(12.0) == []


def test_a_link_that_comes_back_clears_the_doubt_but_repeated_drops_do_not_postpone_it():
    table = PeerTable(OWN, interval=1.0)
    table.on_beacon(announce(), "127.0.0.1", 0.0)
    table.on_link_down(ALICE, 0.5)
    table.on_link_up(ALICE)
    assert table.next_deadline() == 5.0
    table.on_link_down(ALICE, 1.0)
    table.on_link_down(ALICE, 2.4)  # still failing: the first drop counts
    assert [e.reason for e in table.expire(2.5)] == ["lost"]


def test_link_events_for_unknown_or_departed_peers_are_ignored():
    table = PeerTable(OWN, interval=1.0)
    assert table.on_link_down(ALICE, 0.0) is False
    table.on_link_up(ALICE)
    table.on_beacon(announce(pub=2), "127.0.0.1", 0.0)
    table.on_link_down(ALICE, 0.1)
    table.on_beacon(announce(pub=2, kind=BeaconKind.LEAVING), "127.0.0.1", 0.2)
    table.on_beacon(announce(pub=2), "127.0.0.1", 0.3)  # back: no doubt left over
    assert table.expire(3.0) == [] and table.next_deadline() == pytest.approx(5.3)


def test_silence_wins_over_a_drop_when_both_are_due():
    table = PeerTable(OWN, interval=1.0, link_grace=2.0)
    table.on_beacon(announce(), "127.0.0.1", 0.0)
    table.on_link_down(ALICE, 4.0)
    assert [e.reason for e in table.expire(6.0)] == ["expired"]


def test_live_is_sorted_by_user():
    table = PeerTable(OWN, interval=1.0)
    table.on_beacon(announce(node=ALICE, user="zed"), "127.0.0.1", 0.0)
    table.on_beacon(announce(node=BOB, user="amy"), "127.0.0.1", 0.0)
    assert [p.user for p in table.live()] == ["amy", "zed"]


@pytest.mark.parametrize(
    "args", [("xyz", 1.0), (OWN, 0.0), (OWN, 1.0, 0), (OWN, 1.0, 5, 0.0), (OWN, 1.0, 5, 6.0)]
)
def test_table_rejects_bad_settings(args):
    with pytest.raises(ValueError):
        PeerTable(*args)


def test_wants_answer_for_newcomers_restarts_and_probes_only():
    table = PeerTable(OWN, interval=1.0)
    assert wants_answer(table.on_beacon(announce(), "127.0.0.1", 0.0))
    assert not wants_answer(table.on_beacon(announce(), "127.0.0.1", 0.5))
    assert wants_answer(table.on_beacon(announce(pub=9), "127.0.0.1", 0.6))
    assert wants_answer(table.on_beacon(Beacon.probe(BOB), "127.0.0.1", 0.7))
    leaving = announce(pub=9, kind=BeaconKind.LEAVING)
    assert not wants_answer(table.on_beacon(leaving, "127.0.0.1", 0.8))


# -- beacon schedule -------------------------------------------------------


def test_schedule_beacons_at_start_then_every_interval():
    schedule = BeaconSchedule(1.0, now=100.0)
    assert schedule.due(100.0)
    schedule.sent(100.0)
    assert not schedule.due(100.99)
    assert schedule.next_deadline() == 101.0
    assert schedule.due(101.0)


def test_answers_are_immediate_but_rate_limited():
    schedule = BeaconSchedule(1.0, now=0.0)
    schedule.sent(0.0)  # the start-up beacon
    schedule.request_answer()  # a newcomer right after our start-up beacon
    assert schedule.due(0.001)  # the start-up beacon was no answer: answer at once
    schedule.sent(0.001)
    # The answer went out; the periodic beacon restarts from it.
    assert schedule.next_deadline() == pytest.approx(1.001)
    schedule.request_answer()  # a second newcomer: one answer per answer_gap
    assert schedule.next_deadline() == pytest.approx(0.101)
    assert not schedule.due(0.05)
    assert schedule.due(0.101)
    schedule.sent(0.101)
    schedule.sent(0.5)  # (say the actor beaconed for another reason)
    schedule.request_answer()  # a probe long after the last answer: answer at once
    assert schedule.due(0.7)
    schedule.sent(0.7)
    assert not schedule.due(0.75)


def test_a_request_before_the_first_beacon_waits_for_it_and_is_answered_by_it():
    schedule = BeaconSchedule(1.0, now=5.0)
    schedule.request_answer()
    assert schedule.next_deadline() == 5.0
    schedule.sent(5.0)
    schedule.request_answer()  # that start-up beacon was an answer: the rate limit holds
    assert schedule.next_deadline() == pytest.approx(5.1)


def test_a_periodic_beacon_is_not_an_answer():
    schedule = BeaconSchedule(1.0, now=0.0)
    for now in (0.0, 1.0, 2.0):
        assert schedule.due(now)
        schedule.sent(now)
    schedule.request_answer()  # just after a periodic beacon: still answered at once
    assert schedule.next_deadline() == 2.0
    assert schedule.due(2.001)


def test_a_burst_of_requests_costs_one_beacon():
    schedule = BeaconSchedule(1.0, now=0.0)
    schedule.sent(0.0)
    for _ in range(50):
        schedule.request_answer()
    sent_at = []
    for step in range(1, 101):  # one second in 10 ms steps
        now = step / 100
        if schedule.due(now):
            schedule.sent(now)
            sent_at.append(now)
    # One answer at once; the next periodic beacon is then due at 1.01.
    assert sent_at == [pytest.approx(0.01)]


def test_newcomers_arriving_all_the_time_cost_ten_answers_per_interval():
    schedule = BeaconSchedule(1.0, now=0.0)
    schedule.sent(0.0)
    sent_at = []
    for step in range(1, 1001):  # a request every millisecond for one second
        now = step / 1000
        schedule.request_answer()
        if schedule.due(now):
            schedule.sent(now)
            sent_at.append(now)
    assert len(sent_at) == 10
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(sent_at))


def test_a_doubt_keeps_its_reason_and_remove_drops_at_once():
    table = PeerTable(OWN, 1.0)
    table.on_beacon(announce(ALICE, "alice"), "10.0.0.1", 0.0)
    table.on_beacon(announce(BOB, "bob"), "10.0.0.2", 0.0)
    assert table.doubt(ALICE, 0.1, "unconfirmed")
    assert table.doubt(ALICE, 1.0, "lost")  # the first doubt stands
    assert not table.doubt("f" * 32, 0.1, "lost")
    [left] = table.expire(0.1 + table.link_grace)
    assert (left.peer.user, left.reason) == ("alice", "unconfirmed")
    bye = table.remove(BOB, "bye")
    assert bye is not None and (bye.peer.user, bye.reason) == ("bob", "bye")
    assert table.remove(BOB, "bye") is None and len(table) == 0


def test_newcomers_are_limited_per_address_and_the_table_is_capped():
    from lab93zmq.core.presence import NEWCOMER_BURST

    table = PeerTable(OWN, 1.0, max_peers=20)
    ids = [f"{n:032x}" for n in range(1, 40)]
    joined = [table.on_beacon(announce(node, "mallory"), "10.0.0.66", 0.0) for node in ids]
    assert sum(1 for events in joined if events) == NEWCOMER_BURST
    assert table.on_beacon(announce(ALICE), "10.0.0.1", 0.0)  # another address is welcome
    # One more per interval from the busy address; known ids keep beaconing freely.
    assert table.on_beacon(announce(ids[30], "mallory"), "10.0.0.66", 1.0)
    assert not table.on_beacon(announce(ids[31], "mallory"), "10.0.0.66", 1.0)
    assert table.on_beacon(announce(ids[0], "mallory", router=6000), "10.0.0.66", 1.0)
    for n in range(2, 30):  # a full table turns every newcomer away
        table.on_beacon(announce(f"{1000 + n:032x}", "x"), f"10.0.1.{n}", 1.0)
    assert len(table) == 20 and table.refused > 0
    assert not table.on_beacon(announce(BOB), "10.0.0.2", 1.0)


def test_discovery_answers_a_newcomer_early_only_when_it_announces():
    from lab93zmq.core.presence import Discovery

    ours = announce(OWN, "me")
    speaker = Discovery(OWN, 1.0, 0.0, ours)
    assert speaker.beacon_due(0.0) == ours.encode()  # the start-up beacon
    assert speaker.beacon_due(0.5) is None
    [joined] = speaker.take(announce(ALICE), "10.0.0.1", 0.5)
    assert joined.peer.user == "alice"
    assert speaker.beacon_due(0.5) == ours.encode()  # an early answer for the newcomer
    assert speaker.next_deadline() == 1.5  # then the periodic one
    listener = Discovery(OWN, 1.0, 0.0)  # a repeater client: hears, never announces
    assert listener.take(announce(ALICE), "10.0.0.1", 0.0)
    assert listener.beacon_due(10.0) is None
    assert listener.next_deadline() == 5.0  # alice's expiry
