"""Secure broadcast mode's trust decisions (core/broadcast/trust.py): pure, no network."""

from __future__ import annotations

from dataclasses import replace

import pytest
from factories import NODE_A, fake_signature, fake_trust, key_of, make_message

from lab93zmq.core import z85
from lab93zmq.core.broadcast.actions import RouterPeer
from lab93zmq.core.broadcast.faults import SpoofedSender
from lab93zmq.core.broadcast.trust import BeaconCheck, KeyTrust
from lab93zmq.core.errors import ProtocolError
from lab93zmq.core.presence import Beacon, BeaconKind, Peer
from lab93zmq.core.signing import node_id_of, signed_bytes

OURS = "0" * 32
HOST = "198.18.93.2"
BOB_KEY, CAROL_KEY = key_of("bob"), key_of("carol")
BOB, ALICE = node_id_of(BOB_KEY), node_id_of(key_of("alice"))
NODE_B = BOB


def secure() -> KeyTrust:
    return KeyTrust(fake_trust("alice", ("bob",)), OURS, "alice")


def plain() -> KeyTrust:
    return KeyTrust(None, OURS, "alice")


def beacon(kind: BeaconKind = BeaconKind.ANNOUNCE, key: bytes = BOB_KEY, **changes) -> Beacon:
    fields = dict(router_port=5000, pub_port=6000, user="robert", key=key)
    fields.update(changes)
    node_id = fields.pop("node_id", node_id_of(key) if key else NODE_B)
    return Beacon(kind, node_id, "broadcast", **fields)


def peer_of(b: Beacon) -> Peer:
    return Peer(b.node_id, b.user, b.mode, "198.18.93.2", b.router_port, b.pub_port, 0.0, 0.0,
                b.key)


def signed(seq: int, origin: str, author: str, by: str | None = None, **fields):
    """A message of ``origin`` signed (fake) by key name ``by`` (default: ``author``)."""
    message = make_message(seq, origin=origin, author=author, **fields)
    return replace(message, signature=fake_signature(by or author, signed_bytes(message)))


def test_plain_and_secure_nodes_refuse_each_other_and_secure_ones_unknown_keys():
    assert plain().refusal(beacon(key=b""), "198.18.93.2") is None
    assert plain().refusal(beacon(), "198.18.93.2").text == (
        "robert's node at 198.18.93.2 runs --secure; run with --secure to chat with it"
    )
    assert secure().refusal(beacon(key=b""), "198.18.93.2").text == (
        "robert's node at 198.18.93.2 runs without --secure; it is ignored"
    )
    unknown = secure().refusal(beacon(key=CAROL_KEY), "198.18.93.3")
    assert unknown.reason == CAROL_KEY  # told once per key: a new key is news
    assert unknown.text == (f"robert's node at 198.18.93.3 has a key not in keys/: "
                            f"{z85.encode(CAROL_KEY).decode()}; it is ignored")
    assert secure().refusal(beacon(), "198.18.93.2") is None


def test_names_come_from_keys_and_a_removed_key_links_nothing():
    trust = secure()
    seen = peer_of(beacon())
    assert trust.named(seen).user == "bob"  # its beacon says robert
    assert trust.named(peer_of(beacon(key=CAROL_KEY))) is None
    assert trust.linkable(peer_of(beacon(key=CAROL_KEY))).user == "robert"
    assert plain().named(seen) is seen


def test_a_beacon_is_judged_against_the_peer_on_record():
    trust = secure()
    known = peer_of(beacon())
    assert trust.judge(beacon(), HOST, None, up=True) is BeaconCheck.TAKE  # a newcomer
    assert trust.judge(beacon(BeaconKind.LEAVING), HOST, known, up=True) is BeaconCheck.DOUBT
    other = beacon(BeaconKind.LEAVING, pub_port=7)
    assert trust.judge(other, HOST, known, up=True) is BeaconCheck.IGNORE
    assert trust.judge(beacon(router_port=9), HOST, known, up=True) is BeaconCheck.REFUSE_MOVE
    assert trust.judge(beacon(user="bob"), HOST, known, up=True) is BeaconCheck.REFUSE_MOVE
    restarted = beacon(router_port=9)
    assert trust.judge(restarted, HOST, known, up=False) is BeaconCheck.TAKE
    assert trust.judge(beacon(), HOST, known, up=True) is BeaconCheck.TAKE  # nothing moves
    # Heard from another address while connected where it is: a forger's, or a lesser route.
    assert trust.judge(beacon(), "198.18.93.66", known, up=True) is BeaconCheck.REFUSE_MOVE
    assert plain().judge(beacon(BeaconKind.LEAVING), HOST, known, up=True) is BeaconCheck.TAKE


def test_a_secure_node_id_is_its_key_s_and_a_beacon_claiming_another_is_refused():
    trust = secure()
    assert trust.node_id == ALICE != OURS and plain().node_id == OURS
    forged = trust.refusal(beacon(node_id=NODE_A), "198.18.93.66")
    assert forged.reason == "forged" and forged.tell is False  # logged, never a notice
    assert "claims node aaaaaaaa, which is not that key's" in forged.text


def test_a_command_speaks_for_the_node_id_of_its_connection_s_key_only():
    trust = secure()
    trust.check_sender(BOB, None, None, "bob")
    trust.check_sender(BOB, BOB, "bob", None)  # the same name over our SUB
    with pytest.raises(SpoofedSender, match="bob's key sent a command as node aaaaaaaa"):
        trust.check_sender(NODE_A, None, None, "bob")  # nobody binds an id: it is a key's
    with pytest.raises(SpoofedSender):
        trust.check_sender(ALICE, None, None, "bob")  # our own origin speaks as us
    with pytest.raises(ProtocolError, match="on the ROUTER without an authenticated key"):
        trust.check_sender(BOB, None, None, None)
    with pytest.raises(ProtocolError, match="no longer linked"):
        trust.check_sender(BOB, BOB, None, None)


def test_a_message_is_taken_only_with_its_origin_key_s_name_and_signature():
    trust = secure()
    honest = signed(1, BOB, "bob")
    renamed = signed(2, BOB, "carol")  # signed by bob, named carol
    forged = signed(3, BOB, "bob", by="carol")  # an insider's signature, bob's name
    unsigned = make_message(4, origin=BOB, author="bob")
    stranger = signed(1, node_id_of(CAROL_KEY), "carol")  # carol's key is not authorized
    ours = signed(1, ALICE, "alice", by="bob")  # in our own origin
    assert trust.authentic(honest, NODE_A) is None  # whoever relays it
    assert "its origin" in trust.authentic(renamed, NODE_A).text
    for message in (forged, unsigned, ours):
        assert "does not carry their signature" in trust.authentic(message, NODE_A).text
    assert "no authorized key's node" in trust.authentic(stranger, NODE_A).text
    assert trust.authentic(signed(1, ALICE, "alice"), BOB) is None  # ours, really
    assert trust.filter([honest, forged, stranger], NODE_A)[0] == [honest]
    assert plain().authentic(forged, NODE_A) is None
    sealed = trust.seal(make_message(5, origin=ALICE, author="alice"))
    assert trust.authentic(sealed, BOB) is None and plain().seal(unsigned) is unsigned


def test_a_msg_carries_only_its_publisher_s_messages_and_a_dm_comes_from_its_author():
    trust = secure()
    own = signed(1, BOB, "bob")
    relayed = signed(1, ALICE, "alice")
    assert trust.published(BOB, [own]) == ([own], [])
    with pytest.raises(SpoofedSender, match=f"{BOB[:8]} published a message of {ALICE[:8]}"):
        trust.published(BOB, [own, relayed])
    assert plain().published(BOB, [own, relayed]) == ([own, relayed], [])
    dm = signed(1, ALICE, "alice", to="bob")
    assert trust.direct(dm, BOB).stat == "spoofed"
    assert trust.direct(dm, ALICE) is None and plain().direct(dm, BOB) is None


def test_bad_input_is_held_against_a_key_in_secure_mode_else_a_node_or_connection():
    trust, open_ = secure(), plain()
    conn = RouterPeer(b"conn-1", "bob")
    assert trust.source(None, None, conn.user_id, conn.conn) == ("key", "bob")
    assert trust.source(NODE_B, "bob", None, None) == ("key", "bob")
    assert trust.source(NODE_B, None, None, None) == ("node", NODE_B)  # no longer linked
    assert trust.source(None, None, None, b"conn-1") is None  # no key: nobody to blame
    assert open_.source(None, None, None, b"conn-1") == ("conn", b"conn-1")
    assert open_.source(NODE_B, "bob", None, None) == ("node", NODE_B)
    assert open_.source(None, None, None, None) is None
    named = trust.named(peer_of(beacon()))
    assert trust.peer_source(named) == ("key", "bob")
    assert open_.peer_source(named) == ("node", NODE_B)
