"""Secure broadcast sessions (``trust`` given) over the in-memory network: keys are
played by name (``memnet.key_of``), the CURVE handshake by the network.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from factories import fake_signature, fake_trust, make_message
from memnet import key_of
from zmq.utils import z85

from lab93zmq.core import wire
from lab93zmq.core.broadcast.actions import (
    ConnectPeer,
    DisconnectPeer,
    RouterPeer,
    SendBeacon,
    Verb,
)
from lab93zmq.core.broadcast.gate import FLOOD_BURST, PENALTY
from lab93zmq.core.events import Member, Notice, Status
from lab93zmq.core.message import Message
from lab93zmq.core.notices import QUIET as PROBLEM_QUIET
from lab93zmq.core.presence import Beacon, BeaconKind
from lab93zmq.core.signing import node_id_of, signed_bytes

pytestmark = pytest.mark.timeout(30)

BATCH, SYNC = Verb.BATCH, Verb.SYNC
INTERVAL = 1.0


def _message(origin: str, content: str, to: str | None = None, seq: int = 1) -> Message:
    return make_message(seq, content, origin=origin, author="someone", to=to)


def test_secure_nodes_link_only_to_authorized_keys_and_say_so_once_per_node(lan):
    alice = lan.secure("alice", "bob")
    bob = lan.secure("bob", "alice")
    carol = lan.secure("carol", "alice", "bob")  # she trusts them; they do not trust her
    dave = lan.node("dave")  # plain
    lan.run(3.0)  # three beacons from everyone
    assert alice.session.who().users == bob.session.who().users == ("alice", "bob")
    assert alice.subs == {bob.node_id} and dave.subs == set()
    carol_key = z85.encode(key_of("carol")).decode()
    assert [n.text for n in alice.of(Notice)] == [
        "bob joined from 198.18.93.2",
        f"carol's node at 198.18.93.3 has a key not in keys/: {carol_key}; it is ignored",
        "dave's node at 198.18.93.4 runs without --secure; it is ignored",
    ]
    assert [n.text for n in dave.of(Notice)] == [
        f"{name}'s node at {node.address} runs --secure; run with --secure to chat with it"
        for name, node in (("alice", alice), ("bob", bob), ("carol", carol))
    ]
    dave.post("plain text")
    assert alice.incoming() == [] and dave.session.who().users == ("dave",)
    # Its own beacon carries its key.
    assert Beacon.decode(next(
        o.data for o in alice.session.tick(lan.now + INTERVAL) if isinstance(o, SendBeacon)
    )).key == key_of("alice")


def test_names_come_from_keys_and_a_message_in_another_name_is_dropped(lan):
    alice = lan.secure("alice", "bob")
    # Bob's node says "robert", but alice filed his key as bob.key.
    robert = lan.secure("robert", "alice", key_name="bob")
    lan.run(0.1)
    assert alice.session.who().users == ("alice", "bob")
    assert Notice("bob joined from 198.18.93.2") in alice.of(Notice)
    robert.post("I am robert")  # authored "robert" on a node whose key speaks as bob
    assert alice.incoming() == []
    assert alice.session.stats["spoofed"] == 1


def _signed(origin: str, content: str, author: str, by: str, seq: int = 1,
            to: str | None = None) -> Message:
    """A message of ``origin`` named ``author``, signed by key name ``by`` (fake keys)."""
    message = make_message(seq, content, origin=origin, author=author, to=to)
    return replace(message, signature=fake_signature(by, signed_bytes(message)))


def _held_anywhere(lan, ids) -> list[str]:
    return [f"{node.name}:{mid}" for node in lan.nodes.values() for mid in ids
            if node.inbox.get(mid) is not None]


def test_an_insider_s_fabricated_batch_and_dm_are_refused_and_never_relayed(lan):
    alice = lan.secure("alice", "bob", "carol")
    bob = lan.secure("bob", "alice", "carol")
    carol = lan.secure("carol", "alice", "bob")  # authorized by all: an insider
    lan.run(0.1)
    bob.post("from bob")
    assert alice.incoming() == carol.incoming() == ["from bob"]
    zed = "d" * 32
    forged = [
        _signed(bob.node_id, "bob's next, by carol", "bob", "carol", seq=2),  # foreign origin
        _signed(alice.node_id, "alice's own, by carol", "alice", "carol", seq=9),  # receiver's
        _signed(zed, "from a user never seen", "zed", "carol"),  # nobody's key
        replace(make_message(3, "bob's, unsigned", origin=bob.node_id, author="bob")),
    ]
    ids = [m.id for m in forged]
    header = {"node": carol.node_id, "room": "general", "vector": {}}
    as_carol = RouterPeer(b"c", "carol")
    # Asked for (alice pulls from carol) and unasked: the signatures refuse them either way.
    alice.session.catchup.get("general").pull(carol.node_id, lan.now)
    for _ in range(2):
        frames = wire.command(BATCH, header, forged).frames()
        lan.perform(alice, alice.session.receive(frames, lan.now, sender=as_carol))
    assert alice.session.stats["spoofed"] == 4  # the answer's four; the push was not read
    assert alice.session.stats["unsolicited"] == 1
    # Direct: in bob's name from carol's node, in carol's origin under bob's name, in alice's.
    dms = [_signed(bob.node_id, "psst", "bob", "carol", seq=5, to="alice"),
           _signed(carol.node_id, "psst", "bob", "carol", seq=5, to="alice"),
           _signed(alice.node_id, "psst", "alice", "carol", seq=5, to="alice")]
    frames = wire.command(Verb.DM, {"node": carol.node_id}, dms).frames()
    lan.perform(alice, alice.session.receive(frames, lan.now, sender=as_carol))
    assert alice.session.stats["spoofed"] == 7
    # A genuine message of carol's, asked for, is taken: the check is the signature.
    genuine = _signed(carol.node_id, "carol's own", "carol", "carol", seq=1)
    alice.session.catchup.get("general").pull(carol.node_id, lan.now)
    frames = wire.command(BATCH, header, [genuine]).frames()
    lan.perform(alice, alice.session.receive(frames, lan.now, sender=as_carol))
    lan.run(3.0)  # beats, digests, pulls: whatever alice holds she would relay by now
    assert alice.incoming() == ["from bob", "carol's own"]
    assert _held_anywhere(lan, ids + [m.id for m in dms]) == []
    assert bob.incoming() == ["carol's own"] and bob.session.stats["spoofed"] == 0


def test_a_command_in_alice_s_node_id_before_she_comes_leaves_her_link_working(lan):
    bob = lan.secure("bob", "alice", "mallory")
    mallory = lan.secure("mallory", "bob")
    lan.run(0.5)
    alice_id = node_id_of(key_of("alice"))  # alice's node id is her key's: known to all
    as_mallory = RouterPeer(b"m", "mallory")
    for command in (wire.command(SYNC, {"node": alice_id, "room": "general", "vector": {}}),
                    wire.command(Verb.ROOMS, {"node": alice_id, "rooms": []})):
        assert bob.session.receive(command.frames(), lan.now, sender=as_mallory) == []
    assert bob.session.stats["spoofed"] == 2
    # The beacon of alice's id with mallory's key (and mallory's ports) is refused too.
    lan.perform(bob, bob.session.receive_beacon(
        mallory.beacon(router_port=mallory.router_port), mallory.address, lan.now))
    alice = lan.secure("alice", "bob")
    assert alice.node_id == alice_id
    lan.run(0.5)
    for n in range(10):
        alice.post(f"alice {n}")
    lan.run(0.5)
    assert bob.incoming() == [f"alice {n}" for n in range(10)]
    bob.post("hi alice")
    lan.run(0.5)
    assert alice.incoming() == ["hi alice"]


def test_a_secure_leaving_is_only_doubt_and_bye_drops_at_once(lan):
    alice, bob = lan.secure("alice", "bob"), lan.secure("bob", "alice")
    lan.run(0.5)
    alice.session.on_link_up(bob.node_id, lan.now)
    # A forged LEAVING: bob answers the probe it causes, and stays.
    outputs = alice.session.receive_beacon(bob.beacon(BeaconKind.LEAVING), bob.address, lan.now)
    assert [Beacon.decode(o.data).kind for o in outputs if isinstance(o, SendBeacon)] == [
        BeaconKind.PROBE
    ]
    lan.perform(alice, outputs)
    lan.run(3 * INTERVAL)
    assert alice.session.who().users == ("alice", "bob")
    # His beacons no longer reach alice, but his heartbeats over the link do: still alive.
    lan.drop = lambda src, dst, label: label == "beacon" and (src, dst) == (bob, alice)
    lan.perform(alice, alice.session.receive_beacon(bob.beacon(BeaconKind.LEAVING), bob.address,
                                                    lan.now))
    lan.run(3 * INTERVAL)
    assert alice.session.who().users == ("alice", "bob")
    assert alice.session.stats["leavings_doubted"] == 2
    assert not [n for n in alice.of(Notice) if "bob left" in n.text or "gone" in n.text]
    # An honest exit says BYE over the link first: dropped at once.
    bob.stop()
    assert alice.session.who().users == ("alice",) and Notice("bob left") in alice.of(Notice)


def test_a_secure_leaving_with_no_sign_of_life_drops_the_peer_within_the_grace(lan):
    alice, bob = lan.secure("alice", "bob"), lan.secure("bob", "alice")
    lan.run(0.5)
    leaving = bob.beacon(BeaconKind.LEAVING)
    bob.stop(clean=False)  # its BYE was lost; only the LEAVING arrives
    lan.perform(alice, alice.session.receive_beacon(leaving, bob.address, lan.now))
    lan.run(1.5 * INTERVAL)
    assert alice.session.who().users == ("alice",)
    assert Notice("bob left") in alice.of(Notice)  # it said so; nothing said otherwise


def test_a_beacon_moving_a_connected_peer_is_refused_until_its_link_drops(lan):
    alice, bob = lan.secure("alice", "bob"), lan.secure("bob", "alice")
    lan.run(0.5)
    alice.session.on_link_up(bob.node_id, lan.now)
    forged = bob.beacon(router_port=9999, pub_port=9998)
    assert alice.session.receive_beacon(forged, bob.address, lan.now) == []
    assert alice.session.stats["moves_refused"] == 1
    assert alice.session.who().users == ("alice", "bob")
    # A restart closes the old connections: then the new endpoint is taken.
    alice.session.on_link_down(bob.node_id, lan.now)
    outputs = alice.session.receive_beacon(forged, bob.address, lan.now)
    assert [o.peer.router_port for o in outputs if isinstance(o, ConnectPeer)] == [9999]
    lan.perform(alice, outputs)
    lan.run(INTERVAL)  # greeted when he says which rooms he is in (his next BEAT)
    assert Notice("bob rejoined from 198.18.93.2") in alice.of(Notice)


def test_a_forged_endpoint_that_never_authenticates_does_not_hold_posts_back(lan):
    alice, bob = lan.secure("alice", "bob", "carol"), lan.secure("bob", "alice")
    lan.run(1.5)
    lan.perform(alice, alice.session.on_link_up(bob.node_id, lan.now))
    # "carol" is heard only as a forged beacon: a link that never completes a handshake.
    ghost = lan.node("carol", start=False)
    ghost.trust, ghost.key_name = fake_trust("carol", ()), "carol"
    ghost.node_id = node_id_of(key_of("carol"))
    lan.perform(alice, alice.session.receive_beacon(ghost.beacon(), "198.18.93.66", lan.now))
    # Carol never proved her key: not a peer yet.
    assert alice.session.who().users == ("alice", "bob")
    assert alice.of(Status)[-1] == Status(True, "1 peer: bob")
    said = alice.post("hello")
    lan.run(0.5)
    assert said in alice.accepted()  # bob, the one authenticated peer, holds it


def test_a_flooding_sub_is_cut_off_and_linked_again_after_the_penalty(lan):
    alice, bob = lan.secure("alice", "bob"), lan.secure("bob", "alice")
    lan.run(0.1)
    junk = [wire.SIGNATURE, b"BEAT", b"{}"]
    outputs = []
    for _ in range(FLOOD_BURST + 1):
        outputs += alice.session.receive(junk, lan.now, via=bob.node_id)
    assert outputs == [
        DisconnectPeer(bob.node_id),
        Member("general", "bob", False),  # gone from the room until the penalty is over
        Notice(f"bob sent too many bad messages; ignored for {PENALTY:g} s"),
    ]
    lan.perform(alice, outputs)
    assert alice.subs == set() and alice.session.stats["cut_offs"] == 1
    # Whatever his key sends meanwhile is ignored, whichever socket it comes by.
    sync = wire.command(SYNC, {"node": bob.node_id, "room": "general", "vector": {}}).frames()
    assert alice.session.receive(sync, lan.now, sender=RouterPeer(b"b", "bob")) == []
    assert alice.session.stats["cut_off_frames"] == 1
    lan.run(PENALTY + 0.1)  # his beacons kept him in the table
    assert alice.subs == {bob.node_id}
    lan.run(INTERVAL)  # greeted when he says which rooms he is in (his next BEAT)
    assert Notice("bob is back; reconnected from 198.18.93.2") in alice.of(Notice)
    bob.post("behaving now")
    assert alice.incoming() == ["behaving now"]


def test_handshake_problems_are_told_once_per_peer_and_problem(lan):
    alice, bob = lan.secure("alice", "bob"), lan.secure("bob", "alice")
    lan.run(0.1)
    session = alice.session
    problem = "the other side does not know our key; ask its operator to authorize it"
    told = session.on_handshake_failed(bob.node_id, problem, lan.now)
    assert told == [Notice(f"bob's node at 198.18.93.2: {problem}")]
    for _ in range(50):  # a peer retries every 100 ms
        assert session.on_handshake_failed(bob.node_id, problem, lan.now + 1) == []
    assert session.on_handshake_failed(None, "a handshake failed", lan.now) == [
        Notice("a handshake failed")
    ]
    assert session.on_handshake_failed(None, "a handshake failed", lan.now + 1) == []
    assert session.on_handshake_failed("e" * 32, problem, lan.now) == []  # not a peer
    assert session.on_handshake_failed(bob.node_id, problem, lan.now + PROBLEM_QUIET) == told
    assert session.stats["handshakes_failed"] == 55  # each one counts


def test_a_forged_address_heard_first_is_set_aside_and_never_displaces_the_real_one(lan):
    bob = lan.secure("bob", "alice")
    alice = lan.node("alice", start=False)
    alice.trust, alice.key_name = fake_trust("alice", ("bob",)), "alice"
    alice.node_id = node_id_of(key_of("alice"))
    forged = alice.beacon()  # her very beacon, from an address where nobody answers
    lan.perform(bob, bob.session.receive_beacon(forged, "198.18.93.66", lan.now))
    assert bob.session.peers.get(alice.node_id).address == "198.18.93.66"
    alice.start()  # her beacons come from her own address (the table keeps the first)
    lan.run(1.0)
    assert bob.session.who().users == ("bob",)  # nobody proved itself yet
    assert bob.of(Notice) == []  # and nobody is greeted
    for _ in range(40):  # the forger goes on at 20 a second, the proof time passes
        lan.now += 0.05
        lan.perform(bob, bob.session.receive_beacon(forged, "198.18.93.66", lan.now))
        lan.perform(bob, bob.session.tick(lan.now))
    lan.run(1.0)
    assert bob.session.stats["unproven"] == 1
    assert bob.session.peers.get(alice.node_id).address == alice.address
    assert bob.session.who().users == ("alice", "bob")
    assert [n.text for n in bob.of(Notice)] == [f"alice joined from {alice.address}"]
    for _ in range(400):  # the forger at 20 a second for 20 s: the link stays where it is
        lan.now += 0.05
        lan.perform(bob, bob.session.receive_beacon(forged, "198.18.93.66", lan.now))
        lan.perform(bob, bob.session.tick(lan.now))
        lan.run(0.0)
    assert bob.session.peers.get(alice.node_id).address == alice.address
    assert bob.session.stats["unproven"] == 1
    alice.post("still linked")
    lan.run(0.5)
    assert bob.incoming() == ["still linked"]
