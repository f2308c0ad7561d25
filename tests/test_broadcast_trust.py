"""Secure broadcast mode's trust decisions (core/broadcast/trust.py): pure, no network."""

from __future__ import annotations

import pytest
from factories import NODE_A, NODE_B, make_message

from lab93zmq.core import z85
from lab93zmq.core.broadcast.actions import RouterPeer
from lab93zmq.core.broadcast.faults import SpoofedSender
from lab93zmq.core.broadcast.trust import MAX_BOUND, BeaconCheck, KeyTrust, Trust
from lab93zmq.core.errors import ProtocolError
from lab93zmq.core.presence import Beacon, BeaconKind, Peer

OURS = "0" * 32
BOB_KEY, CAROL_KEY = b"B" * 32, b"C" * 32


def secure() -> KeyTrust:
    return KeyTrust(Trust(b"A" * 32, {BOB_KEY: "bob"}.get, "keys/"), OURS, "alice")


def plain() -> KeyTrust:
    return KeyTrust(None, OURS, "alice")


def beacon(kind: BeaconKind = BeaconKind.ANNOUNCE, key: bytes = BOB_KEY, **changes) -> Beacon:
    fields = dict(router_port=5000, pub_port=6000, user="robert", key=key)
    fields.update(changes)
    return Beacon(kind, NODE_B, "broadcast", **fields)


def peer_of(b: Beacon) -> Peer:
    return Peer(b.node_id, b.user, b.mode, "198.18.93.2", b.router_port, b.pub_port, 0.0, 0.0,
                b.key)


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
    assert trust.judge(beacon(), None, up=True) is BeaconCheck.TAKE  # a newcomer
    assert trust.judge(beacon(BeaconKind.LEAVING), known, up=True) is BeaconCheck.DOUBT
    assert trust.judge(beacon(BeaconKind.LEAVING, pub_port=7), known, up=True) is BeaconCheck.IGNORE
    assert trust.judge(beacon(router_port=9), known, up=True) is BeaconCheck.REFUSE_MOVE
    assert trust.judge(beacon(user="bob"), known, up=True) is BeaconCheck.REFUSE_MOVE
    assert trust.judge(beacon(router_port=9), known, up=False) is BeaconCheck.TAKE  # restarted
    assert trust.judge(beacon(), known, up=True) is BeaconCheck.TAKE  # nothing moves
    assert plain().judge(beacon(BeaconKind.LEAVING), known, up=True) is BeaconCheck.TAKE


def test_the_first_authenticated_command_binds_a_node_id_to_its_key_name():
    trust = secure()
    trust.check_sender(NODE_B, None, None, "bob")
    trust.check_sender(NODE_B, NODE_B, "bob", None)  # the same name over our SUB
    with pytest.raises(SpoofedSender, match="carol's key sent a command as node bbbbbbbb"):
        trust.check_sender(NODE_B, None, None, "carol")
    with pytest.raises(SpoofedSender):
        trust.check_sender(OURS, None, None, "bob")  # our own origin speaks as us
    with pytest.raises(ProtocolError, match="on the ROUTER without an authenticated key"):
        trust.check_sender(NODE_A, None, None, None)
    with pytest.raises(ProtocolError, match="no longer linked"):
        trust.check_sender(NODE_A, NODE_A, None, None)


def test_bindings_are_bounded():
    trust = secure()
    for n in range(MAX_BOUND - 1):  # our own origin is the first
        trust.authenticate(f"{n + 1:032x}", "bob", "the ROUTER")
    with pytest.raises(ProtocolError, match="too many node ids"):
        trust.authenticate("f" * 32, "bob", "the ROUTER")


def test_a_message_must_carry_the_name_its_origin_is_bound_to():
    trust = secure()
    trust.authenticate(NODE_B, "bob", "the ROUTER")
    honest = make_message(1, origin=NODE_B, author="bob")
    forged = make_message(2, origin=NODE_B, author="carol")
    unbound = make_message(1, origin=NODE_A, author="dave")
    assert trust.authentic(honest, NODE_A) is None
    fault = trust.authentic(forged, NODE_A)
    assert fault.stat == "spoofed" and "its origin bbbbbbbb is bob" in fault.text
    assert trust.authentic(unbound, NODE_B) is None  # relayed, never met: taken as relayed
    assert trust.filter([honest, forged, unbound], NODE_A)[0] == [honest, unbound]
    assert plain().authentic(forged, NODE_A) is None


def test_a_msg_carries_only_its_publisher_s_messages_and_a_dm_comes_from_its_author():
    trust = secure()
    own = make_message(1, origin=NODE_B, author="bob")
    relayed = make_message(1, origin=NODE_A)
    assert trust.published(NODE_B, [own]) == ([own], [])
    with pytest.raises(SpoofedSender, match="bbbbbbbb published a message of aaaaaaaa"):
        trust.published(NODE_B, [own, relayed])
    assert plain().published(NODE_B, [own, relayed]) == ([own, relayed], [])
    dm = make_message(1, origin=NODE_A, to="alice")
    assert trust.direct(dm, NODE_B).stat == "spoofed"
    assert trust.direct(dm, NODE_A) is None and plain().direct(dm, NODE_B) is None


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
