"""Secure broadcast mode with real CURVE sockets, on loopback only (``broadcast_live``).

Every node binds 127.0.0.1 and beacons only to 127.255.255.255 (``-i lo``);
key pairs are made with ``security.generate_keypair`` under tmp_path, and each
node's authorized-keys directory there holds copies of the public certificates
it trusts, named ``NAME.key``. Waits end as soon as their condition holds; a
check that something did *not* happen waits for evidence that it would have
by then (more beacons refused, later traffic taken), never for a fixed time.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone

import pytest
import zmq
from broadcast_live import INTERVAL, Live, announce_of, beacon_to
from live import wait_for
from procs import reserved_beacon_port

from lab93zmq.core import wire
from lab93zmq.core.broadcast.actions import SendToPeer, Verb
from lab93zmq.core.message import Message, make_id
from lab93zmq.core.signing import node_id_of, signed_bytes
from lab93zmq.io import security, signing
from lab93zmq.io.actor import PipeKind
from lab93zmq.io.store import Inbox

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def bob_port():
    """A second beacon port, bob's alone: he hears only what the test sends there."""
    with reserved_beacon_port() as port:
        yield port


def message(author: str, content: str, origin: str, seq: int = 1, to: str | None = None):
    sent_at = datetime.now(timezone.utc)
    return Message(make_id(sent_at, os.urandom(10)), author, to, None, content, sent_at,
                   origin, seq)


class Mallory:
    """An endpoint with a key of her own (a CURVE ROUTER), so that no handshake with it
    can pass as anyone else's, and a monitor that sees every connection made to it."""

    def __init__(self, keys: security.KeyPair) -> None:
        self.router = zmq.Context.instance().socket(zmq.ROUTER)
        self.router.linger = 0
        security.make_server(self.router, keys)
        self.port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.monitor = self.router.get_monitor_socket(zmq.EVENT_ACCEPTED)
        self.monitor.linger = 0
        self.accepted = 0

    def connections(self) -> int:
        """How many TCP connections she accepted so far (never blocks)."""
        while self.monitor.poll(0):
            self.monitor.recv_multipart()
            self.accepted += 1
        return self.accepted

    def close(self) -> None:
        self.router.disable_monitor()
        self.monitor.close()
        self.router.close()


class Dealer:
    """A raw CURVE DEALER holding ``keys``, connected to ``live``'s ROUTER: a program
    that is not a lab93 node but holds an authorized key, crafting commands."""

    def __init__(self, keys: security.KeyPair, live: Live) -> None:
        self.node_id = node_id_of(keys.public_raw)  # the node id its key stands for
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        security.make_client(self.sock, keys, live.config.secure.keys.public_raw)
        self.sock.connect(f"tcp://127.0.0.1:{live.node.router_port}")

    def send(self, name: str, payloads=(), **header) -> None:
        frames = wire.command(name, {"node": self.node_id, **header}, list(payloads)).frames()
        self.sock.send_multipart(frames)

    def close(self) -> None:
        self.sock.close()


def test_two_trusting_nodes_chat_both_ways_and_a_bye_alone_drops_a_peer_at_once(room):
    alice = room.start("alice", "bob")
    bob = room.start("bob", "alice")
    wait_for([alice, bob], lambda: alice.connected_to(1) and bob.connected_to(1))
    to_bob = alice.post("hello bob")
    to_alice = bob.post("hello alice")
    dm = bob.post("just for you", to="alice")
    wait_for([alice, bob], lambda: to_bob in alice.accepted() and {to_alice, dm} <= bob.accepted())
    wait_for([alice, bob], lambda: len(alice.incoming()) == 2 and bob.incoming() == ["hello bob"])
    assert sorted(alice.incoming()) == ["hello alice", "just for you"]
    assert "secure (key " in alice.handle.ready_detail
    table = alice.request(PipeKind.SCAN, PipeKind.SCAN_RESULT)["beacons"]
    assert [b["key"] for b in table] == [room.keys["bob"].public.decode()]
    for node in (alice, bob):
        assert node.node.stats["spoofed"] == node.node.stats["bad_frames"] == 0
    # A LEAVING alone would only put bob in doubt (it can be forged); his BYE over
    # the authenticated link drops him at once. Without it, his dropped connection
    # would say "bob is gone (connection lost ...)" after the link grace.
    bob.leave_with_only(SendToPeer)
    bob.stop()
    wait_for([alice], lambda: "bob left" in alice.notices())
    assert not [n for n in alice.notices() if "gone" in n]


def test_an_untrusted_secure_node_gets_nothing_and_is_named_once(room):
    alice = room.start("alice", "bob")
    bob = room.start("bob", "alice")
    carol = room.start("carol", "alice", "bob")  # she trusts them; they do not trust her
    carol_key = security.key_text(room.keys["carol"].public_raw)
    named = (f"carol's node at 127.0.0.1 has a key not in {room.tmp_path / 'alice-authorized'}: "
             f"{carol_key}; it is ignored")
    wait_for([alice, bob, carol], lambda: alice.connected_to(1) and named in alice.notices())
    # Carol connects to them (their keys are hers to trust), but their ZAP refuses her key.
    refused = "the other side does not know our key; ask its operator to authorize it"
    wait_for([alice, bob, carol], lambda: any(refused in n for n in carol.notices()))
    wait_for([alice], lambda: "refused a peer whose key is not authorized" in alice.notices())
    carol.post("let me in")
    said = alice.post("members only")
    wait_for([alice, bob, carol], lambda: said in alice.accepted() and bob.incoming())
    wait_for([alice, bob, carol], lambda: len(carol.of(PipeKind.STATUS)) > 0)
    # Three more beacons of carol's refused by both: she had intervals to get in.
    ignored = {n: n.node.stats["ignored_beacons"] for n in (alice, bob)}
    wait_for([alice, bob, carol],
             lambda: all(n.node.stats["ignored_beacons"] >= ignored[n] + 3 for n in ignored))
    assert bob.incoming() == ["members only"] and alice.incoming() == []
    assert carol.incoming() == []
    assert alice.notices().count(named) == 1  # once per node, not per beacon
    assert alice.request(PipeKind.WHO, PipeKind.WHO_RESULT)["users"] == ["alice", "bob"]
    assert alice.node.stats["ignored_beacons"] > 1


def test_a_plain_node_and_a_secure_one_both_say_why_and_nothing_crosses(room):
    alice = room.start("alice", "bob")
    bob = room.start("bob", plain=True)
    to_alice = "bob's node at 127.0.0.1 runs without --secure; it is ignored"
    to_bob = "alice's node at 127.0.0.1 runs --secure; run with --secure to chat with it"
    wait_for([alice, bob], lambda: to_alice in alice.notices() and to_bob in bob.notices())
    bob.post("anyone?")
    alice.post("anyone here?")
    # Three more beacons of the other's refused by each: intervals for anything to cross.
    ignored = {n: n.node.stats["ignored_beacons"] for n in (alice, bob)}
    wait_for([alice, bob],
             lambda: all(n.node.stats["ignored_beacons"] >= ignored[n] + 3 for n in ignored))
    assert alice.notices() == [to_alice] and bob.notices() == [to_bob]
    assert alice.incoming() == bob.incoming() == []
    assert not alice.connected_to(1) and not bob.connected_to(1)
    # Not peers, but /scan shows who is out there; /who, whom one chats with.
    [seen_by_bob] = bob.request(PipeKind.SCAN, PipeKind.SCAN_RESULT)["beacons"]
    assert (seen_by_bob["user"], "key" in seen_by_bob) == ("alice", True)
    [seen_by_alice] = alice.request(PipeKind.SCAN, PipeKind.SCAN_RESULT)["beacons"]
    assert (seen_by_alice["user"], "key" in seen_by_alice) == ("bob", False)
    assert bob.request(PipeKind.WHO, PipeKind.WHO_RESULT)["users"] == ["bob"]


def sealed(keys: security.KeyPair, message: Message) -> Message:
    """``message`` signed with ``keys``' Ed25519 key, as its author's node would."""
    return replace(message, signature=signing.Signer(keys.sign_seed)(signed_bytes(message)))


def test_an_insider_s_forgeries_are_refused_and_only_her_own_signed_messages_taken(room):
    alice = room.start("alice", "bob", "carol")
    bob = room.start("bob", "alice")
    wait_for([alice, bob], lambda: alice.connected_to(1) and bob.connected_to(1))
    bob.post("I am bob")
    wait_for([alice, bob], lambda: alice.incoming() == ["I am bob"])
    keys = room.keys["carol"]
    carol = Dealer(keys, alice)  # an authorized key, but not a node: she crafts commands
    try:
        carol.send(Verb.DM, [sealed(keys, message("bob", "from bob", carol.node_id, to="alice"))])
        carol.send(Verb.DM, [message("carol", "unsigned", carol.node_id, seq=2, to="alice")])
        relayed = [
            sealed(keys, message("bob", "carol in bob's name", bob.handle.node_id, seq=2)),
            sealed(keys, message("alice", "in alice's own", alice.handle.node_id, seq=7)),
            sealed(keys, message("dave", "dave, whom nobody knows", os.urandom(16).hex())),
        ]
        carol.send(Verb.BATCH, relayed, room="general", vector={})  # never asked for
        carol.send(Verb.DM, [sealed(keys, message("carol", "from carol", carol.node_id,
                                                  seq=3, to="alice"))])
        wait_for([alice], lambda: len(alice.incoming()) == 2)
    finally:
        carol.close()
    assert alice.incoming() == ["I am bob", "from carol"]
    assert alice.node.stats["spoofed"] == 2 and alice.node.stats["unsolicited"] == 1
    senders = [m["from"] for b in alice.of(PipeKind.INCOMING) for m in b["messages"]]
    assert senders == ["bob", "carol"]


def test_forged_leaving_and_moving_beacons_do_not_disturb_a_connected_peer(room):
    alice = room.start("alice", "bob")
    bob = room.start("bob", "alice")
    wait_for([alice, bob], lambda: alice.connected_to(1) and bob.connected_to(1))
    alice.post("one")
    wait_for([alice, bob], lambda: bob.incoming() == ["one"])
    mallory = Mallory(room.keys["mallory"])
    try:
        forged_at = time.monotonic()
        beacon_to(room.beacon_port, announce_of(alice).leaving())
        beacon_to(room.beacon_port,
                  announce_of(alice, router_port=mallory.port, pub_port=mallory.port))
        def refused() -> bool:
            stats = bob.node.stats  # a copy each time
            return stats["moves_refused"] >= 1 and stats["leavings_doubted"] >= 1

        wait_for([bob], refused, "the forged LEAVING and move taken as doubt and refused")
        # Bob took alice's traffic after the LEAVING's 1.5-interval grace: had the doubt
        # not been cleared, she would have been dropped by then.
        wait_for([alice, bob],
                 lambda: bob.heard_since(alice.handle.node_id, forged_at + 2 * INTERVAL))
        assert mallory.connections() == 0  # bob never went to her endpoint
    finally:
        mallory.close()
    assert bob.request(PipeKind.WHO, PipeKind.WHO_RESULT)["users"] == ["alice", "bob"]
    assert bob.connected_to(1)
    assert bob.notices() == ["alice joined from 127.0.0.1"]  # no "left", "gone", "rejoined"
    alice.post("two")
    wait_for([alice, bob], lambda: bob.incoming() == ["one", "two"])


def test_a_forged_beacon_heard_first_leads_nowhere_and_the_real_one_takes_over(room, bob_port):
    # Bob listens on a beacon port of his own: he hears only the beacons the test sends.
    alice = room.start("alice", "bob")
    bob = room.start("bob", "alice", beacon_port=bob_port)
    mallory = Mallory(room.keys["mallory"])  # her own key, not alice's
    try:
        beacon_to(bob_port, announce_of(alice, router_port=mallory.port, pub_port=mallory.port))
        wait_for([bob], lambda: bob.node.stats["handshakes_failed"] >= 1)
        wait_for([bob], lambda: mallory.connections() > 0)  # bob did go to her endpoint
        # The sentence is security.handshake_problem's; the notice names the peer.
        assert [n for n in bob.notices() if n.startswith("alice's node at 127.0.0.1: ")]
        said = bob.post("for alice only")  # queued for a peer that never authenticated
        # Alice's real beacon: her link is not up, so bob moves to her real ports (and
        # alice, who could not hear him, hears his).
        beacon_to(bob_port, announce_of(alice))
        beacon_to(room.beacon_port, announce_of(bob))
        wait_for([alice, bob], lambda: said in bob.accepted() and alice.incoming())
        assert alice.incoming() == ["for alice only"]
        # And left it for good: while he kept his old sockets, they would reconnect every
        # fraction of a second; none does while he takes two intervals of alice's traffic.
        moved = time.monotonic()
        alice_id = alice.handle.node_id
        wait_for([alice, bob], lambda: bob.heard_since(alice_id, moved + INTERVAL))
        tried = mallory.connections()  # attempts made before the move, counted late
        wait_for([alice, bob], lambda: bob.heard_since(alice_id, moved + 3 * INTERVAL))
        assert mallory.connections() == tried
    finally:
        mallory.close()
    assert "alice rejoined from 127.0.0.1" in bob.notices()


class Relay:
    """What an attacker on the path sees: a TCP relay on 127.0.0.1 forwarding to
    ``targets`` and recording every byte, both ways."""

    def __init__(self, targets: list[int]) -> None:
        self.listeners: list[tuple[socket.socket, int]] = []
        for target in targets:
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            self.listeners.append((listener, target))
        self.ports = [listener.getsockname()[1] for listener, _ in self.listeners]
        self.recorded = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            for listener, target in self.listeners:
                selector.register(listener, selectors.EVENT_READ, target)
            while not self._stop.is_set():  # bounded: close() sets it
                for key, _ in selector.select(0.05):
                    if isinstance(key.data, int):
                        conn, _ = key.fileobj.accept()
                        upstream = socket.create_connection(("127.0.0.1", key.data))
                        selector.register(conn, selectors.EVENT_READ, upstream)
                        selector.register(upstream, selectors.EVENT_READ, conn)
                        continue
                    try:
                        chunk = key.fileobj.recv(65536)
                    except OSError:
                        chunk = b""
                    if chunk:
                        self.recorded += chunk
                        key.data.sendall(chunk)
                    else:
                        for sock in (key.fileobj, key.data):
                            selector.unregister(sock)
                            sock.close()
            for key in list(selector.get_map().values()):
                key.fileobj.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.mark.parametrize("secure", [True, False], ids=["secure", "plain-control"])
def test_what_crosses_the_wire_is_ciphertext(room, secure, bob_port):
    # Bob listens on a beacon port of his own, so the only beacon for alice he hears
    # is the forged one, which points him at the relay in front of her real ports.
    alice = room.start("alice", "bob", plain=not secure)
    bob = room.start("bob", "alice", plain=not secure, beacon_port=bob_port)
    relay = Relay([alice.node.router_port, alice.node.pub_port])
    try:
        forged = announce_of(alice, router_port=relay.ports[0], pub_port=relay.ports[1])
        sent = time.monotonic()
        beacon_to(bob_port, forged)

        def heard_over_the_relay() -> bool:
            # A BEAT came through the relay: bob's SUB is subscribed.
            peer = bob.node.session.peers.get(alice.handle.node_id)
            return peer is not None and peer.last_seen > sent + INTERVAL / 2

        wait_for([alice, bob], heard_over_the_relay)
        secret = "the password is swordfish"
        alice.post(secret)
        wait_for([alice, bob], lambda: bob.incoming() == [secret])
    finally:
        relay.close()
    assert (secret.encode() in relay.recorded) is not secure
    assert (Verb.MSG.encode() in relay.recorded) is not secure


def test_a_flooding_key_is_cut_off_and_the_others_are_served(room):
    alice = room.start("alice", "bob", "carol")
    bob = room.start("bob", "alice")
    wait_for([alice, bob], lambda: alice.connected_to(1) and bob.connected_to(1))
    carol = Dealer(room.keys["carol"], alice)
    try:
        garbage = 30
        for _ in range(garbage):
            carol.sock.send_multipart([wire.SIGNATURE, b"SYNC", os.urandom(32)])
        carol.send(Verb.DM, [message("carol", "after the flood", carol.node_id, to="alice")])
        def stats(key: str) -> int:
            return alice.node.stats[key]  # a copy each time

        wait_for([alice], lambda: stats("bad_frames") + stats("cut_off_frames") == garbage + 1)
    finally:
        carol.close()
    assert stats("cut_offs") == 1
    assert stats("bad_frames") > 20 and stats("cut_off_frames") >= 1
    assert [n for n in alice.notices() if "carol" in n] == [
        "carol sent too many bad messages; ignored for 30 s"
    ]
    said = bob.post("still served")
    wait_for([alice, bob], lambda: said in bob.accepted() and alice.incoming() == ["still served"])


def test_commands_in_alice_s_node_id_before_she_comes_leave_her_link_working(room):
    bob = room.start("bob", "alice", "mallory")
    alice_keys = room.keys["alice"]
    alice_id = node_id_of(alice_keys.public_raw)  # known to all: it is her key's
    mallory = Dealer(room.keys["mallory"], bob)  # an insider, crafting commands
    try:
        mallory.node_id = alice_id  # every command says it is alice's node
        mallory.send(Verb.ROOMS, rooms=[{"name": "general", "topic": None}])
        mallory.send(Verb.SYNC, room="general", vector={})
        wait_for([bob], lambda: bob.node.stats["spoofed"] >= 2, "both refused")
    finally:
        mallory.close()
    alice = room.start("alice", "bob")
    wait_for([alice, bob], lambda: alice.connected_to(1) and bob.connected_to(1))
    assert alice.handle.node_id == alice_id
    for n in range(10):
        alice.post(f"alice {n}")
    wait_for([alice, bob], lambda: len(bob.incoming()) == 10)
    assert bob.incoming() == [f"alice {n}" for n in range(10)]
    bob.post("hi alice")
    wait_for([alice, bob], lambda: alice.incoming() == ["hi alice"])


def test_a_message_an_earlier_run_wrote_under_another_name_is_taken_out_and_told(room):
    # An earlier run (before -u had to be the key's name) wrote a line as 'mallory' with
    # alice's key. No peer takes it: offered at every meeting, it got alice cut off as
    # a spoofer, and held up her later posts in the room (bob's mark stops below it).
    earlier = room.add(Live(replace(room.config("alice"), user="mallory",
                                    secure=room.keys.secure("alice", "bob"))))
    misnamed = earlier.post("x")
    wait_for([earlier], lambda: bool(earlier.of(PipeKind.STATUS)))
    earlier.stop()
    bob = room.start("bob", "alice")
    alice = room.start("alice", "bob")
    wait_for([alice], lambda: bool(alice.of(PipeKind.REJECTED)), "the misnamed line told")
    [told] = alice.of(PipeKind.REJECTED)
    assert told["id"] == misnamed
    assert told["reason"] == ("'x' is written as 'mallory', but a secure node speaks as its"
                              " key's name, 'alice'; it is taken out of the inbox")
    honest = alice.post("honest")
    wait_for([alice, bob], lambda: honest in alice.accepted() and "honest" in bob.incoming())
    assert bob.incoming() == ["honest"]
    assert bob.node.stats["spoofed"] == bob.node.stats["cut_offs"] == 0
    alice.stop()
    again = room.start("alice", "bob")  # told once: a later run has nothing to tell
    wait_for([again, bob], lambda: again.connected_to(1))
    assert again.of(PipeKind.REJECTED) == []
    again.stop()
    with Inbox(again.config.db_path) as inbox:
        assert misnamed not in inbox  # never offered again
        assert [m.content for m in inbox.history()] == ["honest"]
