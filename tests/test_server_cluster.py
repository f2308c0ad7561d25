"""Servers on one PostgreSQL database are one chat service - tested on a real PostgreSQL.

A cluster of the tests' own (pg_server.py: initdb in a temporary directory,
loopback only, removed afterwards); skipped with one line where no server can
be run. Two servers, clients on each: one conversation in one order; a server
killed with SIGKILL mid-stream while its client moves to the other; the
database stopped and started under a running server. Every wait is on an
event with a deadline.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter

import pytest
from pg_server import PostgresServer, missing
from procs import NodeProcess, reserved_beacon_port, reserved_tcp_port
from repeater_nodes import CLIENT_FAST, FAST, Node, all_accepted, connected

from lab93zmq.io.actor import PipeKind
from lab93zmq.io.config import NodeConfig
from lab93zmq.io.repeater_client import ClientActor
from lab93zmq.io.repeater_server import ServerActor

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(missing() is not None, reason=missing() or ""),
]


def server_node(nodes, url: str, tmp_path, name: str) -> Node:
    config = NodeConfig(
        user=name, db_path=tmp_path / f"{name}.unused", db_url=url, address="127.0.0.1",
        port=0, beacon=False,
    )
    node = Node(ServerActor(config, **FAST))
    nodes.append(node)
    return node


def client_node(nodes, tmp_path, user: str, ports: list[int], **opts) -> Node:
    config = NodeConfig(
        user=user, db_path=tmp_path / f"{user}.db", address="127.0.0.1", port=ports[0],
        beacon=False, servers=tuple(("127.0.0.1", p) for p in ports) if len(ports) > 1 else (),
    )
    node = Node(ClientActor(config, **{**CLIENT_FAST, **opts}))
    nodes.append(node)
    return node


def in_order(path) -> list[str]:
    """The contents of a client's inbox in the server order."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT content, server_seq FROM message WHERE kind IS NULL")
        return [content for content, _ in sorted(rows, key=lambda row: row[1])]


def test_two_servers_on_one_database_are_one_conversation(nodes, postgres, tmp_path):
    url = postgres.new_database()
    one, two = server_node(nodes, url, tmp_path, "one"), server_node(nodes, url, tmp_path, "two")
    assert one.actor.server_id == two.actor.server_id  # the service id, from the database
    alice = connected(client_node(nodes, tmp_path, "alice", [one.actor.router_port]))
    bob = connected(client_node(nodes, tmp_path, "bob", [two.actor.router_port]))
    sent = {"alice": [], "bob": []}
    for n in range(60):  # interleaved: both servers number posts at the same time
        sent["alice"].append(alice.post(f"a{n}"))
        sent["bob"].append(bob.post(f"b{n}"))
    all_accepted(alice, sent["alice"])
    all_accepted(bob, sent["bob"])
    alice.wait(lambda n: len(n.incoming()) >= 60, what="bob's lines, through server two")
    bob.wait(lambda n: len(n.incoming()) >= 60, what="alice's lines, through server one")
    assert Counter(alice.incoming()) == Counter(f"b{n}" for n in range(60))
    assert Counter(bob.incoming()) == Counter(f"a{n}" for n in range(60))
    for node in (alice, bob):
        node.stop()
    everything = in_order(tmp_path / "alice.db")
    assert len(everything) == 120 and everything == in_order(tmp_path / "bob.db")
    assert [c for c in everything if c[0] == "a"] == [f"a{n}" for n in range(60)]


def server_process(port: int, url: str, beacon_port: int) -> NodeProcess:
    node = NodeProcess(
        ["-r", "-s", "-a", "127.0.0.1", "-p", str(port), "-i", "lo",
         "--beacon-port", str(beacon_port), "--db", url, "-u", "srv"]
    )
    node.wait_err("repeater at tcp://127.0.0.1:")
    return node


def test_a_server_killed_mid_stream_loses_nothing_and_its_client_moves_on(
    nodes, postgres, tmp_path
):
    url = postgres.new_database()
    with (
        reserved_tcp_port() as port_one, reserved_tcp_port() as port_two,
        reserved_beacon_port() as beacon_one, reserved_beacon_port() as beacon_two,
    ):
        procs = [
            server_process(port_one, url, beacon_one), server_process(port_two, url, beacon_two)
        ]
        try:
            # Alice is given both (-a h:p1,h:p2) and uses the first; bob uses the second.
            alice = connected(
                client_node(nodes, tmp_path, "alice", [port_one, port_two], dead_after=3.0)
            )
            bob = connected(client_node(nodes, tmp_path, "bob", [port_two], dead_after=3.0))
            sent = [alice.post(f"a{n}") for n in range(300)]
            sent_bob = [bob.post(f"b{n}") for n in range(100)]
            alice.wait(lambda n: len(n.accepted()) >= 1, what="an ACCEPTED")
            procs[0].kill()  # SIGKILL, mid-stream: no goodbye
            killed = time.monotonic()
            sent += [alice.post(f"after{n}") for n in range(50)]
            alice.wait(
                lambda n: any(
                    b["connected"] and str(port_two) in b["detail"] for b in n.of(PipeKind.STATUS)
                ),
                timeout=3.0,
                what="alice connected to the second server within 3 s",
            )
            assert time.monotonic() - killed < 3.0
            all_accepted(alice, sent)
            all_accepted(bob, sent_bob)
            bob.wait(lambda n: len(n.incoming()) >= 350, what="every line of alice")
            alice.wait(lambda n: len(n.incoming()) >= 100, what="every line of bob")
            for node in (alice, bob):
                node.stop()
            # Every acknowledged message exactly once, in one order, on both sides.
            everything = in_order(tmp_path / "alice.db")
            assert Counter(everything) == Counter(
                [f"a{n}" for n in range(300)] + [f"after{n}" for n in range(50)]
                + [f"b{n}" for n in range(100)]
            )
            assert everything == in_order(tmp_path / "bob.db")
            mine = [c for c in everything if not c.startswith("b")]
            assert mine == [f"a{n}" for n in range(300)] + [f"after{n}" for n in range(50)]
        finally:
            for proc in procs:
                proc.kill()


def test_the_database_stopped_and_started_under_a_running_server(nodes, tmp_path):
    postgres = PostgresServer()  # its own: this test stops it
    try:
        postgres.start()
        url = postgres.new_database()
        server = server_node(nodes, url, tmp_path, "one")
        alice = connected(client_node(nodes, tmp_path, "alice", [server.actor.router_port]))
        bob = connected(client_node(nodes, tmp_path, "bob", [server.actor.router_port]))
        before = [alice.post(f"up{n}") for n in range(20)]
        all_accepted(alice, before)
        postgres.stop()
        during = [alice.post(f"down{n}") for n in range(20)]
        alice.wait(
            lambda n: any("cannot store posts now" in t for t in n.notices()),
            what="alice told why her posts wait",
        )
        server.wait(lambda n: any("store fails" in t for t in n.notices()), what="operator told")
        assert not set(during) & alice.accepted()  # nothing acknowledged that was not stored
        told = [t for t in alice.notices() if "cannot store posts now" in t]
        postgres.start()
        all_accepted(alice, during)  # by itself: no restart
        assert len(told) == 1 and any("stores posts again" in t for t in alice.notices())
        statuses = alice.statuses()
        assert False not in statuses[statuses.index(True):]  # connected all along
        bob.wait(lambda n: len(n.incoming()) >= 40, what="every line of alice")
        assert Counter(bob.incoming()) == Counter(
            [f"up{n}" for n in range(20)] + [f"down{n}" for n in range(20)]
        )
    finally:
        for node in reversed(nodes):
            node.stop()
        nodes.clear()
        postgres.remove()
