"""The I/O pieces every actor shares: socket tuning and draining, the poll timeout,
the HISTORY answer, handshake reports, the beacon edge. Real sockets on loopback."""

from __future__ import annotations

import pytest
import zmq
from factories import NODE_A, NODE_B, make_message

from lab93zmq.core.presence import Beacon, BeaconKind, Discovery, PeerJoined
from lab93zmq.core.wire import MAX_FRAME_BYTES
from lab93zmq.io.handshake import HandshakeMonitor
from lab93zmq.io.history import answer_history, history_limit
from lab93zmq.io.security import generate_keypair, make_server
from lab93zmq.io.sockets import bind, connect, drain, poll_timeout, tcp, tune
from lab93zmq.io.store import Inbox


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def test_tune_sets_what_every_network_socket_needs(ctx):
    sock = tune(ctx.socket(zmq.DEALER), hwm=7, sndtimeo=0)
    assert (sock.linger, sock.sndhwm, sock.rcvhwm, sock.sndtimeo) == (0, 7, 7, 0)
    assert sock.getsockopt(zmq.MAXMSGSIZE) == MAX_FRAME_BYTES
    one = tune(ctx.socket(zmq.ROUTER), rcvhwm=3, sndhwm=5)
    assert (one.rcvhwm, one.sndhwm) == (3, 5)


def pair(ctx) -> tuple[zmq.Socket, zmq.Socket]:
    server, client = tune(ctx.socket(zmq.ROUTER)), tune(ctx.socket(zmq.DEALER))
    connect(client, tcp("127.0.0.1", bind(server, "127.0.0.1", 0)))
    return server, client


def test_drain_takes_what_waits_and_no_more_than_its_bound(ctx):
    server, client = pair(ctx)
    for n in range(5):
        client.send_multipart([b"n", str(n).encode()])
    assert server.poll(5000)
    got = []
    while len(got) < 5:  # bounded: each turn takes at most 2
        assert server.poll(5000)
        turn = list(drain(server, limit=2))
        assert 1 <= len(turn) <= 2
        got += turn
    assert [r.frames[1:] for r in got] == [[b"n", str(n).encode()] for n in range(5)]
    assert got[0].user_id is None  # a plain connection has no key name
    assert list(drain(server)) == []  # nothing waits: it returns at once
    client.send_multipart([b"x"] * 10)
    client.send_multipart([b"y"])
    assert server.poll(5000)
    assert [r.frames[1:2] for r in drain(server, frames=5)] == [[b"x"]]  # past 5 frames: stop


def test_the_poll_timeout_is_the_earliest_deadline_rounded_up():
    assert poll_timeout([None, 10.5, 10.2], now=10.0) == 200
    assert poll_timeout([10.0001], now=10.0) == 1  # never wake just before it
    assert poll_timeout([9.0], now=10.0) == 0
    assert poll_timeout([None, None], now=10.0) is None  # nothing due: wait for input


def test_history_has_one_meaning_of_limit(tmp_path):
    assert history_limit({}) is None and history_limit({"limit": None}) is None
    assert history_limit({"limit": 0}) == 0 and history_limit({"limit": 3}) == 3
    assert history_limit({"limit": -1}) is None and history_limit({"limit": "2"}) is None
    assert history_limit({"limit": True}) is None
    with Inbox(tmp_path / "i.db") as inbox:
        for n in range(1, 4):
            inbox.save(make_message(n))
        contents = [m["content"] for m in answer_history(inbox, {"limit": 2})["messages"]]
        assert contents == ["message 2", "message 3"]  # the newest, oldest first
        assert answer_history(inbox, {"limit": 0}) == {"messages": []}
        assert len(answer_history(inbox, {})["messages"]) == 3


def test_a_handshake_monitor_turns_a_mismatch_into_a_sentence(ctx, tmp_path):
    keys = generate_keypair(tmp_path / "keys", "hub")
    server = tune(ctx.socket(zmq.ROUTER))
    make_server(server, keys)
    port = bind(server, "127.0.0.1", 0)
    monitor = HandshakeMonitor(server, secure=True, side="server", where="test")
    plain = tune(ctx.socket(zmq.DEALER))
    try:
        connect(plain, tcp("127.0.0.1", port))
        problems: list[str] = []
        for _ in range(50):  # bounded: the first failed handshake is reported
            if problems or not monitor.socket.poll(5000):
                break
            problems += monitor.problems()
        assert problems and "without --secure" in problems[0]
    finally:
        monitor.close()
        plain.close()
        server.close()


def test_the_beacon_edge_decodes_in_one_place_and_drops_garbage():
    discovery = Discovery(NODE_A, 1.0, 0.0)
    assert discovery.hear(b"garbage", "10.0.0.2", 0.5) == []
    beacon = Beacon(BeaconKind.ANNOUNCE, NODE_B, "repeater", 5190, 40000, "hub")
    [joined] = discovery.hear(beacon.encode(), "10.0.0.2", 0.5)
    assert isinstance(joined, PeerJoined) and joined.peer.address == "10.0.0.2"
