"""Repeater actors over real sockets on 127.0.0.1, driven through their pipes.

Random ports, short heartbeats, and every wait is on an event with a
deadline - never a sleep.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest
import zmq
from procs import reserved_tcp_port
from repeater_nodes import (
    CLIENT_FAST,
    FAST,
    Node,
    all_accepted,
    connected,
    got,
    start_client,
    start_server,
)
from zmq.utils.monitor import recv_monitor_message

from lab93zmq.core.message import MAX_CONTENT_BYTES
from lab93zmq.core.wire import MAX_FRAME_BYTES, SIGNATURE, Command, decode
from lab93zmq.io.actor import PipeKind
from lab93zmq.io.config import NodeConfig
from lab93zmq.io.repeater_client import ClientActor
from lab93zmq.io.repeater_server import ServerActor
from lab93zmq.io.store import Inbox

pytestmark = pytest.mark.timeout(60)


# -- the basics -------------------------------------------------------------------------


def test_server_reports_its_real_endpoints(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    actor = server.actor
    assert actor.router_port and actor.pub_port and actor.router_port != actor.pub_port
    assert actor.router_endpoint == f"tcp://127.0.0.1:{actor.router_port}"
    assert actor.router_endpoint in server.handle.ready_detail
    assert actor.pub_endpoint in server.handle.ready_detail
    assert actor.server_id == server.handle.node_id


def test_two_clients_chat(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    alice = start_client(nodes, tmp_path, "alice", server.actor.router_port)
    assert alice.wait_kind(PipeKind.STATUS).body["connected"] is False  # "connecting to ..."
    status = alice.wait_kind(PipeKind.STATUS)
    assert status.body == {
        "connected": True,
        "detail": f"connected to repeater at tcp://127.0.0.1:{server.actor.router_port}",
    }
    bob = connected(start_client(nodes, tmp_path, "bob", server.actor.router_port))
    ids = [alice.post("hi bob"), alice.post("lunch?", to="bob")]
    bob_id = bob.post("hi alice")
    all_accepted(alice, ids)
    all_accepted(bob, [bob_id])
    got(bob, 2)
    got(alice, 1)
    # The room message comes over the SUB and the direct one over the DEALER: server
    # order holds within each (DESIGN: room order), not between the two sockets.
    assert sorted(bob.incoming()) == ["hi bob", "lunch?"]
    assert alice.incoming() == ["hi alice"]
    bob.handle.request(PipeKind.WHO)
    assert bob.wait_kind(PipeKind.WHO_RESULT).body["users"] == ["alice", "bob"]
    bob.handle.request(PipeKind.HISTORY, limit=2)
    history = bob.wait_kind(PipeKind.HISTORY_RESULT).body["messages"]
    # arrival order in bob's inbox: his own post raced the others
    assert len(history) == 2
    assert {m["content"] for m in history} <= {"hi bob", "lunch?", "hi alice"}


def test_the_server_front_end_can_post_and_list_users(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    alice = connected(start_client(nodes, tmp_path, "alice", server.actor.router_port))
    mid = server.post("welcome, everyone")
    assert server.wait_kind(PipeKind.ACCEPTED).body["ids"] == [mid]
    got(alice, 1)
    assert alice.events[-1].body["messages"][-1]["from"] == "server"
    server.handle.request(PipeKind.WHO)
    assert server.wait_kind(PipeKind.WHO_RESULT).body["users"] == ["alice"]
    empty = server.post("")
    server.wait_kind(PipeKind.REJECTED, id=empty)  # fails the test if it never comes
    assert empty not in server.accepted()


def test_away_client_gets_exactly_what_it_missed(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    port = server.actor.router_port
    alice = connected(start_client(nodes, tmp_path, "alice", port))
    bob = connected(start_client(nodes, tmp_path, "bob", port))
    all_accepted(alice, [alice.post("before")])
    got(bob, 1)
    bob.stop()
    ids = [alice.post(f"missed {n}") for n in range(10)] + [alice.post("psst", to="bob")]
    all_accepted(alice, ids)
    bob = connected(start_client(nodes, tmp_path, "bob", port))
    got(bob, 11)
    all_accepted(alice, [alice.post("after")])
    got(bob, 12)
    assert bob.incoming() == [*[f"missed {n}" for n in range(10)], "psst", "after"]
    # Back once more: nothing at all is new.
    bob.stop()
    bob = connected(start_client(nodes, tmp_path, "bob", port))
    bob.handle.request(PipeKind.WHO)  # a round trip after the replay
    bob.wait_kind(PipeKind.WHO_RESULT)
    assert bob.incoming() == []


def test_new_client_gets_the_last_100_room_messages(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    port = server.actor.router_port
    alice = connected(start_client(nodes, tmp_path, "alice", port))
    ids = [alice.post(f"m{n}") for n in range(130)]
    ids.append(alice.post("for carol", to="carol"))
    ids.append(alice.post("for dave", to="dave"))
    all_accepted(alice, ids)
    carol = connected(start_client(nodes, tmp_path, "carol", port))
    got(carol, 101)
    carol.handle.request(PipeKind.WHO)
    carol.wait_kind(PipeKind.WHO_RESULT)
    assert carol.incoming() == [*[f"m{n}" for n in range(30, 130)], "for carol"]


# -- privacy -------------------------------------------------------------------------------


def test_direct_messages_stay_private_and_wait_for_an_absent_recipient(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    port = server.actor.router_port
    alice = connected(start_client(nodes, tmp_path, "alice", port))
    eve = connected(start_client(nodes, tmp_path, "eve", port))
    ids = [alice.post("secret for bob", to="bob"), alice.post("room news")]
    all_accepted(alice, ids)
    got(eve, 1)
    bob = connected(start_client(nodes, tmp_path, "bob", port))
    got(bob, 2)
    assert bob.incoming() == ["secret for bob", "room news"]
    # Eve again from a fresh inbox (a full replay): still nothing private.
    eve2 = connected(start_client(nodes, tmp_path, "eve", port, db="eve-new"))
    got(eve2, 1)
    eve2.handle.request(PipeKind.WHO)
    eve2.wait_kind(PipeKind.WHO_RESULT)
    assert eve.incoming() == ["room news"]
    assert eve2.incoming() == ["room news"]


# -- crash and restart ---------------------------------------------------------------------


def test_server_restart_mid_stream_loses_nothing_and_duplicates_nothing(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    port = server.actor.router_port
    alice = connected(start_client(nodes, tmp_path, "alice", port))
    bob = connected(start_client(nodes, tmp_path, "bob", port))
    a_lines = [f"a{n}" for n in range(300)]
    b_lines = [f"b{n}" for n in range(300)]
    ids = {"alice": [alice.post(t) for t in a_lines], "bob": [bob.post(t) for t in b_lines]}
    alice.wait(lambda n: len(n.accepted()) >= 20, what="some ACCEPTED")
    server.stop(abrupt=True)  # sockets closed, no goodbye, inbox as it was: like kill -9
    down = [f"c{n}" for n in range(20)]
    ids["alice"] += [alice.post(t) for t in down]  # while no server runs
    server = start_server(nodes, tmp_path, port=port)  # same inbox, same port
    after = [f"d{n}" for n in range(20)]
    ids["bob"] += [bob.post(t) for t in after]
    all_accepted(alice, ids["alice"])
    all_accepted(bob, ids["bob"])
    want_alice = b_lines + after
    want_bob = a_lines + down
    got(alice, len(want_alice))
    got(bob, len(want_bob))
    for node in (alice, bob):
        node.handle.request(PipeKind.WHO)  # one more round trip: nothing else comes
        node.wait_kind(PipeKind.WHO_RESULT)
    assert Counter(alice.incoming()) == Counter(want_alice)
    assert Counter(bob.incoming()) == Counter(want_bob)
    # Room order is the server's: each author's lines arrive in their order.
    assert [c for c in bob.incoming() if c[0] == "a"] == a_lines
    assert [c for c in alice.incoming() if c[0] == "b"] == b_lines
    assert False in alice.statuses() and alice.statuses()[-1] is True
    for node in (alice, bob):
        node.stop()
        with Inbox(node.actor.config.db_path) as inbox:
            assert inbox.outbox() == []
    server.stop()
    with Inbox(tmp_path / "server.db") as inbox:
        assert inbox.count() == 640


def test_clean_stops_say_goodbye(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    port = server.actor.router_port
    alice = connected(start_client(nodes, tmp_path, "alice", port))
    bob = connected(start_client(nodes, tmp_path, "bob", port))
    bob.stop()  # BYE: gone from WHO well before the 5 s session timeout could forget him
    # His BYE and alice's WHO travel on different connections: ask until it shows.
    deadline = time.monotonic() + 2.0
    while True:
        alice.handle.request(PipeKind.WHO)
        users = alice.wait_kind(PipeKind.WHO_RESULT).body["users"]
        if users == ["alice"] or time.monotonic() > deadline:
            break
    assert users == ["alice"]
    server.stop()  # BYE to alice: she reconnects without waiting to notice
    closed = f"the repeater at tcp://127.0.0.1:{port} closed; reconnecting"
    assert alice.wait_kind(PipeKind.STATUS, connected=False, detail=closed)
    server = start_server(nodes, tmp_path, port=port)
    connected(alice)
    all_accepted(alice, [alice.post("back")])


def test_no_server_reachable_reports_disconnected_and_keeps_the_outbox(nodes, tmp_path):
    with reserved_tcp_port() as port:  # a port nobody listens on
        alice = start_client(nodes, tmp_path, "alice", port)
        mid = alice.post("into the void")
        connecting = alice.wait_kind(PipeKind.STATUS, connected=False)
        assert connecting.body["detail"] == f"connecting to the repeater at tcp://127.0.0.1:{port}"
        no_answer = f"no answer from the repeater at tcp://127.0.0.1:{port}"
        assert alice.wait_kind(PipeKind.STATUS, connected=False, detail=no_answer)
        alice.stop()
    assert not alice.accepted()
    with Inbox(tmp_path / "alice.db") as inbox:
        assert [m.id for m in inbox.outbox()] == [mid]


def test_too_big_a_post_is_rejected(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    alice = connected(start_client(nodes, tmp_path, "alice", server.actor.router_port))
    big = alice.post('"' * MAX_CONTENT_BYTES)
    empty = alice.post("")
    reason = alice.wait_kind(PipeKind.REJECTED, id=big).body["reason"]
    assert reason.startswith("the message is larger")
    assert "content" in alice.wait_kind(PipeKind.REJECTED, id=empty).body["reason"]


# -- many at once, and garbage ---------------------------------------------------------------


def test_twenty_clients_at_once(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    port = server.actor.router_port
    users = [f"user{n:02d}" for n in range(20)]
    clients = [start_client(nodes, tmp_path, u, port) for u in users]
    for c in clients:
        connected(c)
    sent = {
        c.actor.config.user: [c.post(f"{c.actor.config.user} says {n}") for n in range(10)]
        for c in clients
    }
    for c in clients:
        all_accepted(c, sent[c.actor.config.user])
    for c in clients:
        got(c, 190)
    for c in clients:
        me = c.actor.config.user
        assert sorted(c.incoming()) == sorted(
            f"{u} says {n}" for u in users if u != me for n in range(10)
        )


def _raw_dealer() -> zmq.Socket:
    """A bare DEALER that speaks whatever a test sends, not the client protocol."""
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.linger = 0
    return raw


def test_garbage_frames_do_not_stop_service(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    port = server.actor.router_port
    alice = connected(start_client(nodes, tmp_path, "alice", port))
    bob = connected(start_client(nodes, tmp_path, "bob", port))
    raw = _raw_dealer()
    raw.connect(f"tcp://127.0.0.1:{port}")
    try:
        garbage = [
            [os.urandom(64)],
            [os.urandom(8), os.urandom(8), os.urandom(8)],
            [b"XYZ\x01", b"HELLO", b"{}"],
            [b"L93\x63", b"HELLO", b"{}"],
            [SIGNATURE, b"HELLO", b"not json"],
            [SIGNATURE, b"NONSENSE", b"{}"],
            [SIGNATURE, b"POST", b"{}", os.urandom(MAX_FRAME_BYTES)],  # as big as allowed
            [SIGNATURE, b"FETCH", b"[1, 2]"],
        ]
        expected = [
            "malformed",
            "malformed",
            "malformed",
            "version",
            "malformed",
            "unknown-command",
            "malformed",
            "malformed",
        ]
        codes = []
        for frames in garbage:
            raw.send_multipart(frames)
            assert raw.poll(5000), "no ERROR reply"
            reply = decode(raw.recv_multipart())
            assert reply.name == "ERROR"
            codes.append(reply.header["code"])
        assert codes == expected
        all_accepted(alice, [alice.post("still here")])
        got(bob, 1)
        assert bob.incoming() == ["still here"]
    finally:
        raw.close()


def test_a_frame_over_the_limit_cuts_its_sender_off_and_no_one_else(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    port = server.actor.router_port
    alice = connected(start_client(nodes, tmp_path, "alice", port))
    bob = connected(start_client(nodes, tmp_path, "bob", port))
    raw = _raw_dealer()
    monitor = raw.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    raw.connect(f"tcp://127.0.0.1:{port}")
    try:
        assert monitor.poll(5000)
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED
        raw.send_multipart([SIGNATURE, b"POST", b"{}", os.urandom(MAX_FRAME_BYTES + 1)])
        assert monitor.poll(5000), "the server kept the connection"
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
        assert not raw.poll(200)  # and it got no answer
        all_accepted(alice, [alice.post("still here")])
        got(bob, 1)
        assert bob.incoming() == ["still here"]
    finally:
        raw.close()
        monitor.close()


def test_a_stuck_client_does_not_slow_the_others(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    port = server.actor.router_port
    ctx = zmq.Context.instance()
    stuck = ctx.socket(zmq.DEALER)  # says hello, subscribes, then never reads again
    stuck.linger = 0
    stuck.rcvhwm = 10
    stuck.connect(f"tcp://127.0.0.1:{port}")
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.rcvhwm = 10
    try:
        stuck.send_multipart(Command("HELLO", {"user": "slow", "node": "f" * 32}).frames())
        assert stuck.poll(5000)
        welcome = decode(stuck.recv_multipart())
        sub.connect(f"tcp://127.0.0.1:{welcome.header['pub_port']}")
        sub.subscribe(b"")
        alice = connected(start_client(nodes, tmp_path, "alice", port))
        bob = connected(start_client(nodes, tmp_path, "bob", port))
        ids = [alice.post("x" * 2000 + f" {n}") for n in range(1500)]
        all_accepted(alice, ids)
        got(bob, 1500)
        assert len(set(bob.incoming())) == 1500
    finally:
        stuck.close()
        sub.close()


# -- discovery --------------------------------------------------------------------------------


def test_client_without_address_finds_the_repeater_by_its_beacon(nodes, tmp_path, beacon_port):
    config = NodeConfig(
        user="hub",
        db_path=tmp_path / "server.db",
        address="127.0.0.1",
        port=0,
        interfaces=("lo",),
        beacon_port=beacon_port,
        beacon_interval=0.5,
    )
    server = Node(ServerActor(config, **FAST))
    nodes.append(server)
    client_config = NodeConfig(
        user="alice",
        db_path=tmp_path / "alice.db",
        address=None,
        interfaces=("lo",),
        beacon_port=beacon_port,
        beacon_interval=0.5,
    )
    alice = Node(ClientActor(client_config, **CLIENT_FAST))
    nodes.append(alice)
    notice = alice.wait_kind(PipeKind.NOTICE)
    assert notice.body["text"] == (
        f"using the repeater of hub at 127.0.0.1:{server.actor.router_port} (found by its beacon)"
    )
    connected(alice)
    all_accepted(alice, [alice.post("found you")])
    alice.handle.request(PipeKind.SCAN)
    [found] = alice.wait_kind(PipeKind.SCAN_RESULT).body["beacons"]
    assert found["node"] == server.actor.server_id
    assert (found["mode"], found["user"], found["address"]) == ("repeater", "hub", "127.0.0.1")
    assert (found["router"], found["pub"]) == (server.actor.router_port, server.actor.pub_port)
    server.handle.request(PipeKind.SCAN)  # the server scans too (and does not list itself)
    assert server.wait_kind(PipeKind.SCAN_RESULT).body["beacons"] == []
