"""Which repeater a client uses and which key it trusts: ServerChooser, without sockets.

Beacons are Peer values, known_servers is a dict: every decision the client
shell used to make over real sockets is checked here on its outputs.
"""

from __future__ import annotations

import pytest

from lab93zmq.core import z85
from lab93zmq.core.errors import SecurityError
from lab93zmq.core.events import Notice
from lab93zmq.core.presence import Peer, PeerChanged, PeerJoined, PeerLeft
from lab93zmq.core.repeater.chooser import (
    GivenServer,
    RefuseServer,
    Secure,
    ServerChooser,
    UseServer,
)
from lab93zmq.core.repeater.outputs import PinKey, ProbeBeacons

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
OWN_KEY = "x" * 40


class Known:
    """known_servers as a dict: ``host:port`` -> raw key."""

    path = "/home/alice/.config/lab93/known_servers"

    def __init__(self, lines: dict[str, bytes] | None = None) -> None:
        self.lines = dict(lines or {})

    def keys(self) -> frozenset[bytes]:
        return frozenset(self.lines.values())

    def get(self, where: str) -> bytes | None:
        return self.lines.get(where)


def peer(
    node: str = "a",
    address: str = "127.0.0.1",
    port: int = 5190,
    key: bytes = b"",
    seen: float = 1.0,
    mode: str = "repeater",
    user: str = "hub",
) -> Peer:
    return Peer(node * 32, user, mode, address, port, 40000, seen, seen, key)


def secure(known: Known, server_key: bytes | None = None) -> Secure:
    return Secure(known, OWN_KEY, "/home/alice/.config/lab93/id.key", server_key)


def notices(outputs) -> list[str]:
    return [o.text for o in outputs if isinstance(o, Notice)]


def uses(outputs) -> list[UseServer]:
    return [o for o in outputs if isinstance(o, UseServer)]


# -- told where the server is ---------------------------------------------------------


def test_a_given_server_is_used_at_once_and_no_beacon_is_needed():
    chooser = ServerChooser("alice", GivenServer("127.0.0.1", 5190, frozenset()), None)
    assert not chooser.listens
    assert chooser.start() == [UseServer("tcp://127.0.0.1:5190", None)]


def test_a_secure_client_uses_the_pinned_or_known_key_of_a_given_server():
    given = GivenServer("::1", 5190, frozenset())
    pinned = ServerChooser("alice", given, secure(Known(), server_key=KEY))
    assert pinned.start() == [UseServer("tcp://[::1]:5190", KEY)]
    known = ServerChooser("alice", given, secure(Known({"[::1]:5190": OTHER_KEY})))
    assert known.start() == [UseServer("tcp://[::1]:5190", OTHER_KEY)] and not known.listens


def test_a_secure_client_learns_an_unknown_key_from_the_servers_own_beacon():
    given = GivenServer("localhost", 5190, frozenset({"localhost", "127.0.0.1"}))
    chooser = ServerChooser("alice", given, secure(Known()))
    assert chooser.listens
    start = chooser.start()
    assert notices(start) == [
        "learning the key of the repeater at localhost:5190 from its beacon (first use;"
        " --server-key KEY pins it instead)"
    ]
    assert start[1:] == [ProbeBeacons(), UseServer(None)]
    elsewhere = peer("b", address="127.0.0.2", key=OTHER_KEY)
    out = chooser.heard([PeerJoined(elsewhere)], [elsewhere], 1.0)
    assert uses(out) == []  # not the server it was told about
    right = peer("a", key=KEY, seen=2.0)
    out = chooser.heard([PeerJoined(right)], [elsewhere, right], 2.0)
    assert out[0] == PinKey("127.0.0.1:5190", KEY)
    assert uses(out) == [UseServer("tcp://127.0.0.1:5190", KEY)]


def test_a_given_servers_failed_handshake_ends_the_client_with_what_to_do():
    chooser = ServerChooser(
        "alice", GivenServer("127.0.0.1", 5190, frozenset()), secure(Known(), server_key=KEY)
    )
    chooser.start()
    with pytest.raises(SecurityError) as refused:
        chooser.handshake_failed("the other side does not know our key; ask", "tcp://h:1")
    assert str(refused.value) == (
        f"the repeater at tcp://h:1: the other side does not know our key; ask (our key {OWN_KEY}:"
        " give /home/alice/.config/lab93/id.key to its operator, to save as"
        " authorized_keys/alice.key)"
    )
    with pytest.raises(SecurityError, match=r"\(we expect the key "):
        chooser.handshake_failed("it holds another key than the one we expect", "tcp://h:1")


# -- found by beacon ---------------------------------------------------------------------


def test_the_first_repeater_heard_is_used_and_followed_and_dropped_when_it_leaves():
    chooser = ServerChooser("alice", None, None)
    assert chooser.start() == [ProbeBeacons(), UseServer(None)]
    late, early = peer("b", seen=2.0, user="late"), peer("a", seen=1.0)
    broadcast = peer("c", mode="broadcast", seen=0.5)
    out = chooser.heard([PeerJoined(late), PeerJoined(early)], [broadcast, late, early], 2.0)
    assert notices(out) == ["using the repeater of hub at 127.0.0.1:5190 (found by its beacon)"]
    assert uses(out) == [UseServer("tcp://127.0.0.1:5190", None)]
    assert chooser.heard([], [late, early], 3.0) == []  # nothing new: nothing to do
    moved = peer("a", port=6000, seen=3.0)
    out = chooser.heard([PeerChanged(moved, early)], [late, moved], 3.0)
    assert uses(out) == [UseServer("tcp://127.0.0.1:6000", None)]
    out = chooser.heard([PeerLeft(moved, "leaving")], [late], 4.0)
    assert notices(out)[0] == "the repeater of hub went away"
    assert uses(out) == [UseServer("tcp://127.0.0.1:5190", None)]  # the other one
    out = chooser.heard([PeerLeft(late, "expired")], [], 5.0)
    assert uses(out) == [UseServer(None)]


def test_a_plain_client_skips_secure_repeaters_and_says_so_once_a_while():
    chooser = ServerChooser("alice", None, None)
    locked = peer(key=KEY)
    out = chooser.heard([PeerJoined(locked)], [locked], 1.0)
    assert notices(out) == [
        "the repeater of hub at 127.0.0.1:5190 runs --secure; ignored (run with --secure to use it)"
    ]
    assert uses(out) == []
    assert chooser.heard([], [locked], 2.0) == []  # said once...
    assert notices(chooser.heard([], [locked], 62.0))  # ...and again after a quiet minute


def test_a_secure_client_prefers_a_key_it_trusted_before_wherever_it_is_now():
    known = Known({"10.0.0.9:5190": KEY})
    chooser = ServerChooser("alice", None, secure(known))
    plain = peer("p", seen=0.5)
    stranger = peer("s", key=OTHER_KEY, seen=1.0)
    friend = peer("f", address="10.0.0.7", key=KEY, seen=2.0)
    out = chooser.heard([PeerJoined(plain)], [plain, stranger, friend], 2.0)
    assert "runs without --secure; ignored" in notices(out)[0]
    assert uses(out) == [UseServer("tcp://10.0.0.7:5190", KEY)]
    assert not [o for o in out if isinstance(o, PinKey)]  # trusted already


def test_a_secure_client_pins_a_new_key_on_first_use():
    chooser = ServerChooser("alice", None, secure(Known()))
    first = peer(key=KEY)
    out = chooser.heard([PeerJoined(first)], [first], 1.0)
    assert out[0] == PinKey("127.0.0.1:5190", KEY)
    text = z85.encode(KEY).decode()
    assert notices(out)[0] == (
        f"trusting the key {text} of the repeater of hub at 127.0.0.1:5190 (first use;"
        f" pinned in {Known.path})"
    )


def test_a_changed_key_is_refused_saying_which_line_to_remove():
    chooser = ServerChooser("alice", None, secure(Known({"127.0.0.1:5190": KEY})))
    changed = peer(key=OTHER_KEY)
    out = chooser.heard([PeerJoined(changed)], [changed], 1.0)
    [refusal] = notices(out)
    assert refusal.startswith("refused the repeater of hub at 127.0.0.1:5190: it shows the key")
    assert f"remove the line for 127.0.0.1:5190 from {Known.path}" in refusal
    assert uses(out) == []
    assert chooser.heard([], [changed], 100.0) == []  # refused for good: said once


def test_a_new_key_at_the_same_address_makes_a_new_connection():
    known = Known()
    chooser = ServerChooser("alice", None, secure(known))
    first = peer(key=KEY)
    chooser.heard([PeerJoined(first)], [first], 1.0)
    known.lines["127.0.0.1:5190"] = KEY  # the shell carried out the PinKey
    known.lines["elsewhere:1"] = OTHER_KEY  # and the new key is trusted too
    rekeyed = peer(key=OTHER_KEY, seen=2.0)
    out = chooser.heard([PeerChanged(rekeyed, first)], [rekeyed], 2.0)
    assert uses(out) == [UseServer(None), UseServer("tcp://127.0.0.1:5190", OTHER_KEY)]


def test_a_failed_handshake_refuses_that_repeater_and_looks_for_another():
    chooser = ServerChooser("alice", None, None)
    bad, good = peer("a", seen=1.0), peer("b", port=6000, seen=2.0)
    chooser.heard([PeerJoined(bad)], [bad, good], 2.0)
    out = chooser.handshake_failed("the handshake failed", "tcp://127.0.0.1:5190")
    assert out == [
        RefuseServer(),
        Notice("not using the repeater at tcp://127.0.0.1:5190: the handshake failed"),
        UseServer(None),
    ]
    out = chooser.heard([], [bad, good], 3.0)
    assert uses(out) == [UseServer("tcp://127.0.0.1:6000", None)]


def test_found_by_beacon_a_refusal_with_no_other_repeater_ends_the_client_as_with_a():
    # The only repeater heard does not know our key: waiting on would only end in "not
    # delivered (no repeater known)". The client ends with the sentence it gives when
    # told where the server is (-a).
    chooser = ServerChooser("mallory", None, secure(Known()))
    hub = peer("a", key=KEY)
    chooser.heard([PeerJoined(hub)], [hub], 1.0)
    with pytest.raises(SecurityError) as refused:
        chooser.handshake_failed("the other side does not know our key; ask", "tcp://h:1", 2.0)
    assert str(refused.value) == (
        f"the repeater at tcp://h:1: the other side does not know our key; ask (our key {OWN_KEY}:"
        " give /home/alice/.config/lab93/id.key to its operator, to save as"
        " authorized_keys/mallory.key)"
    )


def test_when_every_repeater_heard_refused_each_one_is_named():
    chooser = ServerChooser("alice", None, None)
    first, second = peer("a", seen=1.0), peer("b", port=6000, seen=2.0)
    chooser.heard([PeerJoined(first)], [first, second], 2.0)
    out = chooser.handshake_failed("the handshake failed", "tcp://127.0.0.1:5190", 2.0)
    assert RefuseServer() in out  # the second one is still there to try
    assert uses(chooser.heard([], [first, second], 3.0)) == [
        UseServer("tcp://127.0.0.1:6000", None)
    ]
    with pytest.raises(SecurityError) as refused:
        chooser.handshake_failed("the handshake failed", "tcp://127.0.0.1:6000", 3.0)
    assert str(refused.value) == (
        "the repeaters at tcp://127.0.0.1:5190 and tcp://127.0.0.1:6000: the handshake failed"
    )


def test_a_client_that_gave_up_chooses_nothing_more():
    chooser = ServerChooser("alice", None, None)
    chooser.give_up()
    found = peer()
    assert chooser.heard([PeerJoined(found)], [found], 1.0) == []
