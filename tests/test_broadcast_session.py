"""Broadcast sessions over the in-memory network (``memnet.BroadcastLan``) with a fake
clock: pure, no sockets. Each node has a real inbox file (SQLite, no network).
Secure mode's sessions: test_broadcast_session_secure.py.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from factories import T0, make_message
from memnet import LanNode

from lab93zmq.core import wire
from lab93zmq.core.authoring import Draft
from lab93zmq.core.broadcast.actions import (
    ARRIVES_ON,
    BATCH_MESSAGES,
    Channel,
    PublishFrames,
    Verb,
    command_frames,
    published_frames,
    verb_on,
)
from lab93zmq.core.events import Accepted, Notice, Rejected, Status
from lab93zmq.core.message import Message, make_id
from lab93zmq.core.presence import Beacon, BeaconKind, sighting
from lab93zmq.io.store import Inbox

pytestmark = pytest.mark.timeout(30)

MSG, BEAT, SYNC, BATCH, DM = Verb.MSG, Verb.BEAT, Verb.SYNC, Verb.BATCH, Verb.DM
HAVE = Verb.HAVE
INTERVAL = 1.0


def test_each_command_has_one_socket_and_its_frames_decode():
    assert verb_on("MSG", Channel.PUB) is Verb.MSG and verb_on("MSG", Channel.ROUTER) is None
    assert verb_on("SYNC", Channel.ROUTER) is Verb.SYNC and verb_on("SYNC", Channel.PUB) is None
    assert verb_on("HELLO", Channel.ROUTER) is None
    assert set(ARRIVES_ON) == set(Verb)
    command = wire.decode(command_frames(Verb.ACK, {"node": "a" * 32, "ids": []}))
    assert (command.name, command.header) == ("ACK", {"node": "a" * 32, "ids": []})


# -- meeting ------------------------------------------------------------------------


def test_two_nodes_meet_at_once_and_swap_what_each_wrote_alone(lan):
    alice = lan.node("alice")
    for n in range(3):
        alice.post(f"a{n}")
    lan.run(2.0)
    bob = lan.node("bob")
    bob.post("b0")
    # A newcomer is answered at once (the rate limit, interval / 10, counts answers only).
    lan.run(0.0)
    assert alice.session.who().users == bob.session.who().users == ("alice", "bob")
    assert sorted(bob.incoming()) == ["a0", "a1", "a2"]
    assert alice.incoming() == ["b0"]
    assert alice.contents() == bob.contents() == ["a0", "a1", "a2", "b0"]
    lan.run(3.0)
    # Exactly once, however many heartbeats went by.
    assert sorted(bob.incoming()) == ["a0", "a1", "a2"] and alice.incoming() == ["b0"]
    assert [n for n, _, _ in bob.sent].count(SYNC) == 1


def test_status_and_notices_say_who_is_there(lan):
    alice = lan.node("alice")
    assert alice.of(Status) == [Status(False, "no broadcast peers heard yet on lan")]
    lan.node("bob")
    lan.node("carol")
    lan.run(0.1)
    assert alice.of(Status)[-1] == Status(True, "2 peers: bob, carol")
    assert Notice("bob joined from 198.18.93.2") in alice.of(Notice)
    lan.nodes["bob"].stop()
    lan.nodes["carol"].stop(clean=False)
    lan.run(0.1)
    assert Notice("bob left") in alice.of(Notice)
    assert alice.of(Status)[-1] == Status(True, "1 peer: carol")
    lan.run(5.0)
    assert Notice("carol is gone (silent for 5 s)") in alice.of(Notice)
    assert alice.of(Status)[-1] == Status(False, "no broadcast peers left on lan")
    assert alice.subs == set()


def test_a_killed_peer_whose_link_dropped_is_gone_after_one_and_a_half_intervals(lan):
    alice, bob = lan.node("alice"), lan.node("bob")
    lan.run(0.5)
    bob.stop(clean=False)  # kill -9: no LEAVING, but its kernel closes the connections
    outputs = alice.session.on_link_down(bob.node_id, lan.now)
    probe = Beacon.decode(outputs[0].data)
    assert probe.kind is BeaconKind.PROBE and probe.node_id == alice.node_id
    lan.perform(alice, outputs)
    lan.run(1.5 * INTERVAL - 0.01)
    assert alice.session.who().users == ("alice", "bob")
    lan.run(0.01)
    assert alice.session.who().users == ("alice",)
    assert Notice("bob is gone (connection lost, no beacon for 1.5 s)") in alice.of(Notice)
    assert alice.subs == set()


def test_a_live_peer_whose_link_dropped_answers_the_probe_and_stays(lan):
    alice, bob, carol = lan.node("alice"), lan.node("bob"), lan.node("carol")
    lan.run(0.5)
    lan.perform(alice, alice.session.on_link_down(bob.node_id, lan.now))
    # Bob answered the probe at once; carol's drop right after sends none (rate limit),
    # and her next periodic beacon comes within the grace.
    assert alice.session.on_link_down(carol.node_id, lan.now) == []
    lan.run(10 * INTERVAL)
    assert alice.session.who().users == ("alice", "bob", "carol")
    assert not [n for n in alice.of(Notice) if "gone" in n.text]
    # The doubt was cleared by the answer; a later drop is judged on its own.
    lan.perform(alice, alice.session.on_link_down(bob.node_id, lan.now))
    lan.perform(alice, alice.session.on_link_up(bob.node_id, lan.now))
    lan.nodes["bob"].stop(clean=False)
    lan.run(2 * INTERVAL)
    # Reconnected: only silence drops it now.
    assert alice.session.who().users == ("alice", "bob", "carol")
    lan.run(5 * INTERVAL)
    assert alice.session.who().users == ("alice", "carol")
    assert Notice("bob is gone (silent for 5 s)") in alice.of(Notice)


def test_link_events_for_strangers_are_ignored(lan):
    alice = lan.node("alice")
    assert alice.session.on_link_down("c" * 32, lan.now) == []
    assert alice.session.on_link_up("c" * 32, lan.now) == []


def test_any_traffic_keeps_a_peer_alive(lan):
    alice = lan.node("alice")
    bob = lan.node("bob")
    lan.run(0.1)
    # Bob's beacons stop reaching alice, but his heartbeats on the PUB still do.
    lan.drop = lambda src, dst, label: label == "beacon" and (src, dst) == (bob, alice)
    lan.run(12.0)
    assert alice.session.who().users == ("alice", "bob")
    lan.cut = {frozenset((bob.name, alice.name))}
    lan.run(5.0)
    assert alice.session.who().users == ("alice",)


# -- gaps and digests --------------------------------------------------------------


def test_a_gap_in_the_live_stream_is_repaired_at_once(lan):
    alice, bob = lan.node("alice"), lan.node("bob")
    lan.run(0.1)
    lost = {"a1"}
    lan.drop = lambda src, dst, name: name == MSG and _last_content(src) in lost
    for n in range(4):
        alice.post(f"a{n}")
    lan.drop = lambda *args: False
    # a2 showed the gap: a1 was pulled at once, and a2 waited for it to be shown in order.
    assert bob.incoming() == ["a0", "a1", "a2", "a3"]
    assert bob.room().vector()[alice.node_id] == 4


def test_a_gap_nobody_fills_holds_messages_back_only_briefly(lan):
    alice, bob = lan.node("alice"), lan.node("bob")
    lan.run(0.1)
    alice.post("a0")
    # a1 is lost live, and so is every attempt to repair it for a while.
    lan.drop = lambda src, dst, name: name in (SYNC, BATCH) or (
        name == MSG and _last_content(src) == "a1"
    )
    alice.post("a1")
    alice.post("a2")
    assert bob.incoming() == ["a0"]  # a2 is stored, but waits for a1
    assert [m.content for m in bob.inbox.history()] == ["a0", "a2"]
    lan.run(bob.room().hold_for + 0.1)
    assert bob.incoming() == ["a0", "a2"]  # waited long enough: shown without a1
    lan.drop = lambda *args: False
    lan.run(2.0)
    assert bob.incoming() == ["a0", "a2", "a1"]  # and a1 when it finally comes


def test_a_lost_last_message_is_repaired_by_the_heartbeat_digest(lan):
    alice, bob = lan.node("alice"), lan.node("bob")
    lan.run(0.1)
    alice.post("a0")
    lan.drop = lambda src, dst, name: name == MSG
    alice.post("a1")  # nothing after it shows a gap
    lan.drop = lambda *args: False
    assert bob.incoming() == ["a0"]
    lan.run(1.1)  # one heartbeat later
    assert bob.incoming() == ["a0", "a1"]


def test_a_partition_heals_and_both_sides_hold_everything_exactly_once(lan):
    a, b, c = lan.node("a"), lan.node("b"), lan.node("c")
    lan.run(0.1)
    a.post("before")
    lan.cut = {frozenset("ac"), frozenset("bc")}
    lan.run(6.0)  # long enough to expire each other
    assert c.session.who().users == ("c",) and a.session.who().users == ("a", "b")
    a.post("a-side")
    b.post("b-side")
    c.post("c-side")
    lan.cut = set()
    lan.run(2.0)
    everything = ["a-side", "b-side", "before", "c-side"]
    for node in (a, b, c):
        assert node.contents() == everything
        assert sorted(node.incoming() + [m for m in everything if _authored(node, m)]) == everything


def test_a_long_catch_up_goes_in_bounded_batches(lan):
    alice, bob = lan.node("alice"), lan.node("bob")
    lan.run(0.1)
    bob.stop()  # bob stays in the room, away: he will miss nothing of it
    total = 2 * BATCH_MESSAGES + 50
    for n in range(total):
        alice.post(f"m{n}")
    bob.start()
    lan.run(0.1)
    assert len(bob.incoming()) == total
    batches = [count for name, to, count in alice.sent if name == BATCH and to == bob.node_id]
    assert max(batches) <= BATCH_MESSAGES and len([c for c in batches if c]) == 3
    assert len(set(bob.incoming())) == total


# -- a departed author ---------------------------------------------------------------


def test_messages_of_an_author_who_left_are_relayed_by_a_third_node(lan):
    alice, carol = lan.node("alice"), lan.node("carol")
    lan.run(0.1)
    carol.post("carol was here")
    carol.post("and left")
    carol.stop()
    lan.run(0.5)
    assert alice.session.who().users == ("alice",)
    bob = lan.node("bob")
    lan.run(0.1)
    assert bob.incoming() == ["carol was here", "and left"]
    assert all(m.origin == carol.node_id for m in bob.inbox.history())


def test_a_returning_node_catches_up_and_restart_keeps_its_identity(lan):
    alice, bob = lan.node("alice"), lan.node("bob")
    lan.run(0.1)
    bob.post("b1")
    bob.stop()
    bob_id = bob.node_id
    alice.post("while bob was away")
    lan.run(1.0)
    bob.reopen()
    assert bob.inbox.node_id == bob_id
    bob.start()
    lan.run(0.1)
    assert bob.incoming() == ["while bob was away"]
    bob.post("b2")
    assert [m.origin_seq for m in bob.inbox.history() if m.origin == bob_id] == [1, 2]
    assert "b2" in alice.incoming()


# -- direct messages ------------------------------------------------------------------


def test_a_direct_message_waits_for_its_addressee_and_reaches_only_it(lan):
    alice, carol = lan.node("alice"), lan.node("carol")
    lan.run(0.1)
    dm = alice.post("for bob only", to="bob")
    assert Notice("bob is not online; the message waits in the outbox") in alice.of(Notice)
    lan.run(3.0)
    assert dm not in alice.accepted()
    assert [m.id for m in alice.inbox.outbox()] == [dm]
    bob = lan.node("bob")
    lan.run(0.1)
    assert bob.incoming() == ["for bob only"]
    assert dm in alice.accepted()
    assert alice.inbox.outbox() == []
    assert dm not in carol.inbox and carol.incoming() == []
    assert all(name != DM for name, to, _ in alice.sent if to == carol.node_id)
    lan.run(3.0)
    assert bob.incoming() == ["for bob only"]  # exactly once


def test_a_lost_direct_message_or_ack_is_offered_again(lan):
    alice, bob = lan.node("alice"), lan.node("bob")
    lan.run(0.1)
    lan.drop = lambda src, dst, name: name in ("DM", "ACK") and lan.now < 1.0
    dm = alice.post("hello", to="bob")
    assert dm not in alice.accepted()
    lan.drop = lambda src, dst, name: name == "ACK" and lan.now < 2.5
    lan.run(4.0)
    assert dm in alice.accepted()
    assert bob.incoming() == ["hello"]


def test_a_direct_message_from_the_outbox_is_offered_after_a_restart(lan):
    alice = lan.node("alice")
    alice.post("kept", to="bob")
    alice.stop()
    alice.reopen()
    alice.start()
    bob = lan.node("bob")
    lan.run(0.1)
    assert bob.incoming() == ["kept"]
    assert alice.inbox.outbox() == []


def test_a_misaddressed_direct_message_is_not_stored_or_acknowledged(lan):
    alice, carol = lan.node("alice"), lan.node("carol")
    lan.run(0.1)
    message = _message(alice.node_id, "to bob", to="bob")
    frames = wire.command(DM, {"node": alice.node_id}, [message]).frames()
    outputs = carol.session.receive(frames, lan.now)
    assert outputs == []
    assert message.id not in carol.inbox
    assert carol.session.stats["misaddressed"] == 1


# -- accepted ---------------------------------------------------------------------------


def test_a_post_is_accepted_after_discovery_once_every_live_peer_holds_it(lan):
    alice, bob, carol = lan.node("alice"), lan.node("bob"), lan.node("carol")
    # Carol gets nothing that carries messages, from anyone (bob would relay it).
    lan.drop = lambda src, dst, name: dst is carol and name in (MSG, BATCH)
    first = alice.post("early")
    lan.run(0.5)
    assert bob.incoming() == ["early"]
    assert first not in alice.accepted()  # before one interval, and carol lacks it
    lan.run(1.0)
    assert first not in alice.accepted()  # carol still lacks it
    lan.drop = lambda *args: False
    lan.run(1.7)  # carol asks again pull_timeout (2 s) after her lost first SYNC
    assert carol.incoming() == ["early"]
    assert alice.accepted() == {first}
    assert len(alice.of(Accepted)) == 1


def test_posts_a_peer_held_are_accepted_when_the_peers_that_never_said_so_leave(lan):
    alice, bob, carol = lan.node("alice"), lan.node("bob"), lan.node("carol")
    lan.run(1.5)
    # Carol's reports never reach alice (say they met a SUB still connecting).
    lan.drop = lambda src, dst, name: src is carol and dst is alice and name in (BEAT, HAVE)
    held = alice.post("held by both")
    lan.run(0.5)
    assert held not in alice.accepted()  # carol, live, has not said she holds it
    bob.stop()
    lan.run(0.1)
    assert held not in alice.accepted()
    carol.stop()  # the last peer leaves; bob reported holding it before he left
    lan.run(0.1)
    assert alice.accepted() == {held}
    lost = alice.post("after everyone left")
    lan.run(3.0)
    assert lost not in alice.accepted()  # no peer ever held this one


def test_no_peer_means_no_accepted_and_no_busy_loop(lan):
    alice = lan.node("alice")
    message_id = alice.post("anyone?")
    lan.run(5.0)
    assert alice.accepted() == set()
    assert alice.session.next_deadline() > lan.now
    bob = lan.node("bob")  # the message stays and is offered when a peer comes
    lan.run(1.5)
    assert bob.incoming() == ["anyone?"] and alice.accepted() == {message_id}


def test_an_invalid_post_is_rejected(lan):
    alice = lan.node("alice")
    post = Draft(make_id(T0, b"x" * 10), "", None, None, T0)
    outputs = alice.session.post(post, lan.now)
    assert outputs == [Rejected(post.id, "message field 'content' must not be empty")]


# -- garbage ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frames",
    [
        [],
        [b"junk"],
        [wire.SIGNATURE, b"SYNC", b"{not json"],
        [b"L93\x01", b"SYNC", b"{}"],  # another version
        [wire.SIGNATURE, b"SYNC", b"{}"],  # no node
        [wire.SIGNATURE, b"SYNC", b'{"node": "' + b"b" * 32 + b'"}'],  # no vector
        [wire.SIGNATURE, b"SYNC", b'{"node": "' + b"b" * 32 + b'", "vector": {"x": 1}}'],
        [wire.SIGNATURE, b"HELLO", b'{"node": "' + b"b" * 32 + b'"}'],
        [wire.SIGNATURE, b"MSG", b'{"node": "' + b"b" * 32 + b'"}'],  # a PUB command on the ROUTER
        [wire.SIGNATURE, b"ACK", b'{"node": "' + b"b" * 32 + b'", "ids": 7}'],
    ],
)
def test_garbage_frames_are_counted_and_dropped(lan, frames):
    alice = lan.node("alice")
    assert alice.session.receive(frames, lan.now) == []
    assert alice.session.stats["bad_frames"] == 1


def test_garbage_on_a_sub_and_beacons_is_counted_and_service_goes_on(lan):
    alice, bob = lan.node("alice"), lan.node("bob")
    lan.run(0.1)
    session = alice.session
    assert session.receive_beacon(b"\x00" * 54, "198.18.93.9", lan.now) == []
    assert session.receive_beacon(b"L93B" + bytes(300), "198.18.93.9", lan.now) == []
    assert session.stats["bad_beacons"] == 2
    general = {"node": bob.node_id, "room": "general"}
    bad = published_frames(MSG, general, (b'{"v": 1}',))
    assert session.receive(bad, lan.now, via=bob.node_id) == []
    spoofed = published_frames(MSG, {**general, "node": "c" * 32},
                               [_message("c" * 32, "x").encode()])
    assert session.receive(spoofed, lan.now, via=bob.node_id) == []
    dm = _message(bob.node_id, "dm on the pub", to="alice")
    assert session.receive(published_frames(MSG, general, [dm.encode()]), lan.now,
                           via=bob.node_id) == []
    ops = make_message(1, "of #ops", origin=bob.node_id, room="ops")
    assert session.receive(published_frames(MSG, general, [ops.encode()]), lan.now,
                           via=bob.node_id) == []  # another room's message on #general
    untopical = wire.command(MSG, general, [_message(bob.node_id, "x")]).frames()
    assert session.receive(untopical, lan.now, via=bob.node_id) == []  # no topic at all
    assert session.stats["bad_frames"] == 5
    bob.post("still fine")
    assert alice.incoming() == ["still fine"]


def test_a_batch_with_one_bad_message_keeps_the_good_ones(lan):
    alice, bob = lan.node("alice"), lan.node("bob")
    lan.run(0.1)
    good = _message(bob.node_id, "good", seq=1)
    frames = wire.Command(
        BATCH, {"node": bob.node_id, "room": "general", "vector": {}}, (b"{}", good.encode())
    ).frames()
    alice.session.catchup.get("general").pull(bob.node_id, lan.now)  # a BATCH answers a SYNC
    lan.perform(alice, alice.session.receive(frames, lan.now))
    assert alice.incoming() == ["good"]
    assert alice.session.stats["bad_messages"] == 1


def test_messages_read_in_a_row_are_stored_in_one_transaction(lan, monkeypatch):
    alice, bob = lan.node("alice"), lan.node("bob")
    lan.run(0.1)
    calls = []
    save_many = alice.inbox.save_many
    monkeypatch.setattr(alice.inbox, "save_many", lambda batch: calls.append(len(batch))
                        or save_many(batch))
    general = {"node": bob.node_id, "room": "general"}
    published = [
        published_frames(MSG, general, [_message(bob.node_id, f"m{n}", seq=n).encode()])
        for n in (1, 2, 3)
    ]
    batch = [published[0], [b"junk"], published[1], published[2]]
    lan.perform(alice, alice.session.receive_many(batch, lan.now, via=bob.node_id))
    assert alice.incoming() == ["m1", "m2", "m3"]
    assert calls == [3]
    assert alice.session.stats["bad_frames"] == 1


# -- bursts ---------------------------------------------------------------------------------


def _count_calls(monkeypatch, inbox: Inbox, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(inbox, name)

    def counting(batch, *args):
        calls.append(len(batch))
        return real(batch, *args)

    monkeypatch.setattr(inbox, name, counting)
    return calls


def test_a_burst_of_posts_is_one_transaction_and_one_msg(lan, monkeypatch):
    alice, bob = lan.node("alice"), lan.node("bob")
    lan.run(1.5)
    saves = _count_calls(monkeypatch, alice.inbox, "save_within")  # in Posting's transaction
    others = _count_calls(monkeypatch, alice.inbox, "save_many")
    before = len(alice.outputs)
    drafts = [alice.draft(f"line {n}") for n in range(BATCH_MESSAGES + 5)]
    alice.post_many(drafts)
    assert saves == [BATCH_MESSAGES + 5] and others == []
    published = [o for o in alice.outputs[before:] if isinstance(o, PublishFrames)]
    commands = [wire.decode_published(o.frames) for o in published]
    msgs = [command for room, command in commands if command.name == MSG and room == "general"]
    assert [len(c.payloads) for c in msgs] == [BATCH_MESSAGES, 5]
    assert bob.incoming() == [f"line {n}" for n in range(BATCH_MESSAGES + 5)]
    seqs = sorted(m.origin_seq for m in alice.inbox.history() if m.origin == alice.node_id)
    assert seqs == list(range(1, BATCH_MESSAGES + 6))
    lan.run(0.5)
    assert alice.accepted() == {d.id for d in drafts}


def test_a_burst_keeps_posting_order_around_direct_messages_and_bad_posts(lan):
    alice, bob = lan.node("alice"), lan.node("bob")
    lan.run(1.5)
    first, dm, second = alice.draft("one"), alice.draft("psst", to="bob"), alice.draft("two")
    twice = alice.draft("three")
    empty = alice.draft("")
    alice.post_many([first, dm, second, twice, twice, empty])
    rejected = {e.id: e.reason for e in alice.of(Rejected)}
    assert set(rejected) == {twice.id, empty.id}  # the second copy of twice, and the empty one
    assert "already in the inbox" in rejected[twice.id]
    assert bob.incoming() == ["one", "psst", "two", "three"]
    lan.run(0.5)
    assert alice.accepted() == {first.id, dm.id, second.id, twice.id}
    room = sorted(
        (m.origin_seq, m.content) for m in alice.inbox.history()
        if m.origin == alice.node_id and not m.is_direct
    )
    assert room == [(1, "one"), (2, "two"), (3, "three")]


def test_a_burst_with_an_id_already_stored_is_rolled_back_and_numbered_without_holes(lan):
    alice, bob = lan.node("alice"), lan.node("bob")
    lan.run(1.5)
    old = alice.draft("old")
    alice.post_many([old])
    burst = [alice.draft("new 1"), old, alice.draft("new 2")]
    alice.post_many(burst)
    assert [e.id for e in alice.of(Rejected)] == [old.id]
    room = sorted(
        (m.origin_seq, m.content) for m in alice.inbox.history() if m.origin == alice.node_id
    )
    assert room == [(1, "old"), (2, "new 1"), (3, "new 2")]
    assert bob.incoming() == ["old", "new 1", "new 2"]
    lan.run(1.0)
    assert [n for n, _, _ in bob.sent].count(SYNC) == 1  # no gap was ever seen


def test_a_msg_of_many_with_a_gap_before_it_is_pulled_and_shown_in_order(lan):
    alice, bob = lan.node("alice"), lan.node("bob")
    lan.run(1.5)
    lan.drop = lambda src, dst, name: name == MSG and not _authored(src, "second burst 0")
    alice.post_many([alice.draft(f"first burst {n}") for n in range(3)])
    lan.drop = lambda *args: False
    alice.post_many([alice.draft(f"second burst {n}") for n in range(3)])
    expected = [f"first burst {n}" for n in range(3)] + [f"second burst {n}" for n in range(3)]
    assert bob.incoming() == expected


@pytest.mark.parametrize("count", [0, BATCH_MESSAGES + 1])
def test_a_msg_with_no_or_too_many_messages_is_dropped(lan, count):
    alice, bob = lan.node("alice"), lan.node("bob")
    lan.run(0.1)
    payloads = tuple(_message(bob.node_id, f"m{n}", seq=n + 1).encode() for n in range(count))
    frames = wire.Command(MSG, {"node": bob.node_id}, payloads).frames()
    assert alice.session.receive(frames, lan.now, via=bob.node_id) == []
    assert alice.session.stats["bad_frames"] == 1


# -- scan and who -------------------------------------------------------------------------


def test_scan_lists_the_live_table_in_the_scan_json_form(lan):
    alice = lan.node("alice")
    bob = lan.node("bob")
    repeater = Beacon(BeaconKind.ANNOUNCE, "e" * 32, "repeater", 7000, 7001, "srv")
    lan.perform(alice, alice.session.receive_beacon(repeater.encode(), "198.18.93.50", lan.now))
    lan.run(0.5)
    wall = datetime(2026, 11, 24, 21, 0, 0, tzinfo=timezone.utc)
    table = alice.session.scan(lan.now, wall)
    assert [b["user"] for b in table] == ["bob", "srv"]
    seen = sighting(Beacon(BeaconKind.ANNOUNCE, bob.node_id, "broadcast", bob.router_port,
                           bob.pub_port, "bob"), bob.address, wall)
    assert table[0].keys() == seen.to_json().keys()
    assert table[0]["address"] == bob.address and table[0]["router"] == bob.router_port
    assert alice.session.who().users == ("alice", "bob")  # a repeater is listed by scan, not by who
    assert alice.subs == {bob.node_id}


# -- helpers ------------------------------------------------------------------------------


def _last_content(node: LanNode) -> str:
    return node.inbox.history(1)[0].content


def _authored(node: LanNode, content: str) -> bool:
    return any(m.content == content and m.origin == node.node_id for m in node.inbox.history())


def _message(origin: str, content: str, to: str | None = None, seq: int = 1) -> Message:
    return make_message(seq, content, origin=origin, author="someone", to=to)
