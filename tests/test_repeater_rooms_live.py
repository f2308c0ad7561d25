"""Rooms in repeater mode over real sockets on 127.0.0.1, through the actors' pipes.

The pipe contract (JOIN, PART, ROOMS, TOPIC, WHO and HISTORY of a room; JOINED,
PARTED, ROOMS_RESULT, TOPIC, MEMBER), send-only runs, a server killed with
SIGKILL between two clients in different rooms (a real ``lab93-node -r -s``
process), and protocol 1 on either side. Every wait is on an event with a
deadline.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
import zmq
from procs import NodeProcess, reserved_tcp_port
from repeater_nodes import all_accepted, connected, start_client, start_server

from lab93zmq.core.repeater.commands import LEGACY_SIGNATURE
from lab93zmq.io.actor import PipeKind
from lab93zmq.io.store import Inbox

pytestmark = pytest.mark.timeout(90)


def contents(node, room: str | None = None) -> list[str]:
    return [
        m["content"]
        for b in node.of(PipeKind.INCOMING)
        for m in b["messages"]
        if room is None or m["room"] == room
    ]


def held(path) -> Counter:
    """(room, content) of every message in an inbox, counted."""
    with Inbox(path) as inbox:
        return Counter((m.room, m.content) for m in inbox.history() if not m.is_topic)


def roundtrip(node) -> None:
    """One WHO answered: everything the server sent before it has been read."""
    node.handle.request(PipeKind.WHO, room=None)
    node.wait_kind(PipeKind.WHO_RESULT)


# -- the pipe contract ---------------------------------------------------------------------


def test_join_part_rooms_topic_who_and_history_through_the_pipe(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    port = server.actor.router_port
    alice = connected(start_client(nodes, tmp_path, "alice", port, rooms=("ops",)))
    bob = connected(start_client(nodes, tmp_path, "bob", port, rooms=("dev",)))
    alice.handle.request(PipeKind.TOPIC, room="ops", text="deploys at five")
    topic = alice.wait_kind(PipeKind.TOPIC).body
    assert (topic["room"], topic["text"], topic["by"]) == ("ops", "deploys at five", "alice")
    all_accepted(alice, [alice.post("ops 1", room="ops"), alice.post("ops 2", room="ops")])
    all_accepted(bob, [bob.post("dev 1", room="dev")])

    bob.handle.request(PipeKind.JOIN, room="ops")
    joined = bob.wait_kind(PipeKind.JOINED).body
    assert (joined["room"], joined["first"]) == ("ops", True)  # after the server's answer:
    assert joined["topic"] == {k: topic[k] for k in ("text", "by", "at")}  # its topic
    told = bob.wait_kind(PipeKind.TOPIC, room="ops").body  # and in its place in the tail
    assert told["text"] == "deploys at five" and told["at"] == topic["at"]
    bob.wait(lambda n: contents(n, "ops") == ["ops 1", "ops 2"], what="the room's tail")
    member = alice.wait_kind(PipeKind.MEMBER).body
    assert member == {"room": "ops", "user": "bob", "joined": True}

    alice.handle.request(PipeKind.WHO, room="ops")
    assert alice.wait_kind(PipeKind.WHO_RESULT).body == {
        "room": "ops", "users": ["alice", "bob"], "connected": True, "away": {}
    }
    bob.handle.request(PipeKind.ROOMS)
    rooms = bob.wait_kind(PipeKind.ROOMS_RESULT).body["rooms"]
    assert rooms == [
        {"name": "dev", "members": 1, "topic": None, "joined": True},
        {"name": "ops", "members": 2, "topic": "deploys at five", "joined": True},
    ]
    bob.handle.request(PipeKind.HISTORY, limit=None, room="ops")
    history = bob.wait_kind(PipeKind.HISTORY_RESULT).body["messages"]
    assert {m["room"] for m in history} == {"ops"}
    assert [m["content"] for m in history if m.get("kind") != "topic"] == ["ops 1", "ops 2"]

    bob.handle.request(PipeKind.PART, room="ops")
    assert bob.wait_kind(PipeKind.PARTED).body == {"room": "ops"}
    assert alice.wait_kind(PipeKind.MEMBER).body == {"room": "ops", "user": "bob", "joined": False}
    all_accepted(alice, [alice.post("ops 3, bob gone", room="ops")])
    all_accepted(bob, [bob.post("dev 2", room="dev")])  # alice's post raced his; now settle
    roundtrip(bob)
    assert contents(bob, "ops") == ["ops 1", "ops 2"]  # nothing of ops since the PART
    bob.handle.request(PipeKind.JOIN, room="dev")  # already in it: JOINED again, not first
    assert bob.wait_kind(PipeKind.JOINED).body == {"room": "dev", "topic": None, "first": False}

    bob.handle.request(PipeKind.JOIN, room="#Not A Room")
    assert "is not a room name" in bob.wait_kind(PipeKind.NOTICE).body["text"]


def test_the_servers_own_front_end_sees_every_room(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    alice = connected(start_client(nodes, tmp_path, "alice", server.actor.router_port,
                                   rooms=("ops",)))
    server.handle.request(PipeKind.TOPIC, room="ops", text="from the operator")
    assert server.wait_kind(PipeKind.TOPIC).body["text"] == "from the operator"
    alice.wait(lambda n: n.of(PipeKind.TOPIC), what="the operator's topic")
    assert alice.of(PipeKind.TOPIC)[0]["by"] == "server"
    mid = server.post("maintenance at six", room="ops")
    server.wait_kind(PipeKind.ACCEPTED, ids=[mid])
    alice.wait(lambda n: contents(n, "ops") == ["maintenance at six"], what="the post")
    server.handle.request(PipeKind.WHO, room="ops")
    assert server.wait_kind(PipeKind.WHO_RESULT).body["users"] == ["alice"]
    server.handle.request(PipeKind.ROOMS)
    [ops] = server.wait_kind(PipeKind.ROOMS_RESULT).body["rooms"]
    assert (ops["name"], ops["members"], ops["topic"]) == ("ops", 1, "from the operator")
    server.handle.request(PipeKind.HISTORY, limit=1, room="ops")
    [last] = server.wait_kind(PipeKind.HISTORY_RESULT).body["messages"]
    assert last["content"] == "maintenance at six"


def test_a_send_only_run_posts_and_is_never_a_member(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    port = server.actor.router_port
    alice = connected(start_client(nodes, tmp_path, "alice", port, rooms=("ops",)))
    all_accepted(alice, [alice.post("before the sender", room="ops")])
    sender = connected(start_client(nodes, tmp_path, "bot", port, rooms=("ops",), listen=False))
    ids = [sender.post(f"alert {n}", room="ops") for n in range(5)]
    all_accepted(sender, ids)
    alice.wait(lambda n: len(contents(n)) == 5, what="the alerts")
    all_accepted(alice, [alice.post("while the sender runs", room="ops")])
    roundtrip(sender)
    alice.handle.request(PipeKind.WHO, room="ops")
    assert alice.wait_kind(PipeKind.WHO_RESULT).body["users"] == ["alice"]
    assert alice.of(PipeKind.MEMBER) == [] and sender.of(PipeKind.INCOMING) == []
    sender.stop()
    assert held(tmp_path / "bot.db") == Counter({("ops", f"alert {n}"): 1 for n in range(5)})
    # The next run of that inbox that listens gets what it missed - the room's tail.
    listener = connected(start_client(nodes, tmp_path, "bot", port, rooms=("ops",)))
    listener.wait(lambda n: len(contents(n)) == 2, what="the room it missed")
    assert contents(listener) == ["before the sender", "while the sender runs"]


# -- a server killed between two clients in different rooms ---------------------------------


def server_process(port: int, tmp_path, beacon_port: int) -> NodeProcess:
    node = NodeProcess(
        ["-r", "-s", "-a", "127.0.0.1", "-p", str(port), "-i", "lo",
         "--beacon-port", str(beacon_port), "--db", str(tmp_path / "server.db"), "-u", "srv"]
    )
    node.wait_err("repeater at tcp://127.0.0.1:")
    return node


def test_a_server_killed_with_sigkill_loses_nothing_in_any_room(nodes, tmp_path, beacon_port):
    procs: list[NodeProcess] = []
    with reserved_tcp_port() as port:
        try:
            procs.append(server_process(port, tmp_path, beacon_port))
            alice = connected(start_client(nodes, tmp_path, "alice", port, rooms=("ops",)))
            bob = connected(start_client(nodes, tmp_path, "bob", port, rooms=("dev",)))
            carol = connected(start_client(nodes, tmp_path, "carol", port,
                                           rooms=("ops", "dev")))
            sent = {
                "alice": [alice.post(f"ops a{n}", room="ops") for n in range(400)],
                "bob": [bob.post(f"dev b{n}", room="dev") for n in range(400)],
                "carol": [
                    carol.post(f"{r} c{n}", room=r) for n in range(50) for r in ("ops", "dev")
                ],
            }
            alice.wait(lambda n: len(n.accepted()) >= 1, what="an ACCEPTED")
            procs[0].kill()  # SIGKILL: no goodbye, the inbox as the last commit left it
            assert procs[0].proc.returncode == -9
            sent["alice"] += [alice.post(f"ops down{n}", room="ops") for n in range(20)]
            sent["bob"] += [bob.post(f"dev down{n}", room="dev") for n in range(20)]
            sent["carol"] += [carol.post(f"{r} cdown{n}", room=r) for n in range(10)
                              for r in ("ops", "dev")]
            procs.append(server_process(port, tmp_path, beacon_port))  # same inbox, same port
            sent["alice"] += [alice.post(f"ops up{n}", room="ops") for n in range(20)]
            for node in (alice, bob, carol):
                all_accepted(node, sent[node.actor.config.user])
            by = {
                ("alice", "ops"): [f"ops a{n}" for n in range(400)]
                + [f"ops {w}{n}" for w in ("down", "up") for n in range(20)],
                ("bob", "dev"): [f"dev b{n}" for n in range(400)]
                + [f"dev down{n}" for n in range(20)],
            }
            for room in ("ops", "dev"):
                by[("carol", room)] = [f"{room} c{n}" for n in range(50)] + [
                    f"{room} cdown{n}" for n in range(10)
                ]
            ops = by[("alice", "ops")] + by[("carol", "ops")]
            dev = by[("bob", "dev")] + by[("carol", "dev")]
            alice.wait(lambda n: len(contents(n)) >= 60, what="carol's ops lines")
            bob.wait(lambda n: len(contents(n)) >= 60, what="carol's dev lines")
            carol.wait(lambda n: len(contents(n)) >= 840, what="alice's and bob's lines")
            for node in (alice, bob, carol):
                roundtrip(node)
            # Each has what others wrote in its rooms, each once, and nothing else.
            assert Counter(contents(alice)) == Counter(by[("carol", "ops")])
            assert Counter(contents(bob)) == Counter(by[("carol", "dev")])
            assert Counter(contents(carol)) == Counter(by[("alice", "ops")] + by[("bob", "dev")])
            # Each author's lines in its order: the server's order is kept per room.
            assert [c for c in contents(carol, "ops") if " a" in c] == [
                c for c in by[("alice", "ops")] if " a" in c
            ]
            for node in (alice, bob, carol):
                node.stop()
            assert held(tmp_path / "alice.db") == Counter(("ops", c) for c in ops)
            assert held(tmp_path / "bob.db") == Counter(("dev", c) for c in dev)
            assert held(tmp_path / "carol.db") == Counter(
                [("ops", c) for c in ops] + [("dev", c) for c in dev]
            )
            with Inbox(tmp_path / "server.db") as inbox:
                assert inbox.count() == len(ops) + len(dev)  # stored once each
        finally:
            for proc in procs:
                proc.kill()


# -- protocol 1 on either side -----------------------------------------------------------------


def test_a_version_1_client_is_told_to_upgrade_in_its_own_framing(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.linger = 0
    raw.connect(f"tcp://127.0.0.1:{server.actor.router_port}")
    try:
        hello = {"user": "old", "node": "9" * 32, "software": "0.1.0"}
        raw.send_multipart([LEGACY_SIGNATURE, b"HELLO", json.dumps(hello).encode()])
        assert raw.poll(5000), "no answer to a protocol 1 HELLO"
        signature, name, header = raw.recv_multipart()
        assert (signature, name) == (b"L93\x01", b"ERROR")  # 0.1.0 decodes this one
        reason = json.loads(header)
        assert reason["code"] == "version"
        assert "protocol 2" in reason["reason"] and "protocol 1" in reason["reason"]
        raw.send_multipart([LEGACY_SIGNATURE, b"HELLO", json.dumps(hello).encode()])
        assert not raw.poll(300)  # said once a minute, not at every retry
        alice = connected(start_client(nodes, tmp_path, "alice", server.actor.router_port))
        all_accepted(alice, [alice.post("still serving")])
    finally:
        raw.close()


def test_a_client_meeting_a_version_1_server_says_so_and_goes_on(nodes, tmp_path):
    ctx = zmq.Context.instance()
    old = ctx.socket(zmq.ROUTER)  # answers every command as 0.1.0 does: ERROR version
    old.linger = 0
    port = old.bind_to_random_port("tcp://127.0.0.1")
    try:
        alice = start_client(nodes, tmp_path, "alice", port)
        assert old.poll(5000)
        identity, *frames = old.recv_multipart()
        assert frames[0] == b"L93\x02" and frames[1] == b"HELLO"
        refusal = {"code": "version", "reason": "peer speaks protocol version 2"}
        old.send_multipart([identity, LEGACY_SIGNATURE, b"ERROR", json.dumps(refusal).encode()])
        sentence = (
            f"the repeater at tcp://127.0.0.1:{port} speaks lab93 protocol 1 (lab93-node 0.1);"
            " this lab93-node speaks protocol 2 (rooms): upgrade the repeater"
        )
        assert alice.wait_kind(PipeKind.NOTICE).body["text"] == sentence
        assert alice.wait_kind(PipeKind.STATUS, detail=sentence).body["connected"] is False
        mid = alice.post("kept for later")  # still takes posts into its outbox
        alice.handle.request(PipeKind.WHO, room=None)
        assert alice.wait_kind(PipeKind.WHO_RESULT).body["connected"] is False
        alice.stop()
        assert PipeKind.FATAL not in [e.kind for e in alice.events]
        with Inbox(tmp_path / "alice.db") as inbox:
            assert [m.id for m in inbox.outbox()] == [mid]
    finally:
        old.close()
