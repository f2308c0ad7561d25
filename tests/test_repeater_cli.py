"""Repeater mode through the real lab93-node command, as separate processes on 127.0.0.1."""

from __future__ import annotations

import json
import signal

import pytest
from procs import NodeProcess, reserved_tcp_port

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def port():
    """The server's port, held for the whole test: each server in turn binds it."""
    with reserved_tcp_port() as held:
        yield held


@pytest.fixture
def lab(tmp_path, port, beacon_port):
    """Starts lab93-node processes with loopback-only settings and kills them afterwards."""
    started: list[NodeProcess] = []
    beacon = beacon_port

    class Lab:
        def __init__(self):
            self.port, self.beacon, self.dir = port, beacon, tmp_path

        def server(self) -> NodeProcess:
            node = NodeProcess(
                [
                    "-r",
                    "-s",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-i",
                    "lo",
                    "--beacon-port",
                    str(beacon),
                    "--db",
                    str(tmp_path / "server.db"),
                    "-u",
                    "srv",
                ]
            )
            started.append(node)
            node.wait_err("repeater at tcp://127.0.0.1:")
            return node

        def client(self, user: str, *extra: str, stdin: bool = False) -> NodeProcess:
            node = NodeProcess(
                [
                    "-r",
                    "-c",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-u",
                    user,
                    "--db",
                    str(tmp_path / f"{user}.db"),
                    *extra,
                ],
                stdin=stdin,
            )
            started.append(node)
            return node

    yield Lab()
    for node in started:
        node.kill()


def contents(node: NodeProcess) -> list[str]:
    return [json.loads(line)["content"] for line in node.out]


def test_server_killed_mid_pipeline_loses_nothing_and_duplicates_nothing(lab):
    server = lab.server()
    listener = lab.client("lis", "--listen", "--json")
    listener.wait_err("connected to repeater")
    sender = lab.client("alice", "--subject", "app", "--timeout", "30", stdin=True)
    for n in range(100):
        sender.write(f"line {n}")
    listener.wait_for(lambda p: len(p.out) >= 50, "the first lines to arrive")
    server.kill()  # SIGKILL while the pipeline is sending
    for n in range(100, 200):
        sender.write(f"line {n}")
    server = lab.server()  # same inbox file, same port
    for n in range(200, 300):
        sender.write(f"line {n}")
    sender.close_stdin()
    assert sender.finish(60) == 0, sender.err
    expected = [f"line {n}" for n in range(300)]
    listener.wait_for(lambda p: len(p.out) >= 300, "all 300 lines", timeout=60)
    assert sorted(contents(listener)) == sorted(expected)  # each exactly once
    assert len(set(json.loads(line)["id"] for line in listener.out)) == 300
    # A client that comes later is shown the room's last 100 messages, once each.
    late = lab.client("late", "--listen", "--json")
    late.wait_for(lambda p: len(p.out) >= 100, "the room tail")
    assert late.signal(signal.SIGTERM) == 143
    assert contents(late) == expected[-100:]
    assert listener.signal(signal.SIGINT) == 130
    assert len(listener.out) == 300


def test_unreachable_server_exits_1_and_sends_the_kept_messages_next_time(lab):
    sender = lab.client("alice", "--timeout", "1.5", stdin=True)
    sender.write("written while the server was down")
    sender.close_stdin()
    assert sender.finish() == 1
    failure = sender.err[-1]
    assert "1 of 1 message was not delivered within 1.5 s" in failure
    assert f"tcp://127.0.0.1:{lab.port}" in failure
    assert "kept in the inbox" in failure

    lab.server()
    listener = lab.client("bob", "--listen", "--json")
    listener.wait_err("connected to repeater")
    # The next run of the same inbox delivers what was kept, with the new message.
    assert lab.client("alice", "--send", "and this one").finish() == 0
    listener.wait_for(lambda p: len(p.out) >= 2, "both messages")
    assert contents(listener) == ["written while the server was down", "and this one"]


def test_direct_messages_wait_for_their_addressee_and_stay_private(lab):
    lab.server()
    assert lab.client("alice", "--send", "for bob only", "--to", "bob").finish() == 0
    assert lab.client("alice", "--send", "for everyone").finish() == 0
    carol = lab.client("carol", "--listen", "--json")
    bob = lab.client("bob", "--listen", "--json")
    bob.wait_for(lambda p: len(p.out) >= 2, "bob's messages")
    carol.wait_for(lambda p: len(p.out) >= 1, "carol's messages")
    assert sorted(contents(bob)) == ["for bob only", "for everyone"]
    carol.signal()
    assert contents(carol) == ["for everyone"]
    # Not in carol's inbox either.
    history = NodeProcess(["--history", "--json", "--db", str(lab.dir / "carol.db")])
    assert history.finish() == 0
    assert contents(history) == ["for everyone"]


def test_a_piped_run_prints_nothing_stores_no_feed_and_its_next_listening_run_gets_it_all(lab):
    """Issue 14, target 3: a send-only run (piped stdin, no --listen) does not take the
    room feed, prints nothing when all goes well, and leaves its resume point alone."""
    lab.server()
    alice = lab.client("alice", "--listen", "--json")
    alice.wait_err("connected to repeater")
    assert lab.client("carol", "--send", "before bob's pipe").finish() == 0
    bob = lab.client("bob", "--listen", "--json")  # bob's inbox meets the server
    bob.wait_for(lambda p: len(p.out) >= 1, "the room so far")
    assert bob.signal(signal.SIGTERM) == 143
    assert lab.client("carol", "--send", "while bob is away").finish() == 0
    piped = lab.client("bob", stdin=True)
    for n in range(10):
        piped.write(f"bob {n}")
    alice.wait_for(lambda p: len(p.out) >= 12, "bob's first lines")
    assert lab.client("carol", "--send", "during bob's pipe").finish() == 0
    alice.wait_for(lambda p: len(p.out) >= 13, "carol's line")
    for n in range(10, 20):
        piped.write(f"bob {n}")
    piped.close_stdin()
    assert piped.finish() == 0
    assert piped.out == [] and piped.err == []  # nothing but problems, and there were none
    alice.wait_for(lambda p: len(p.out) >= 23, "all of bob's lines")
    assert contents(alice)[2:] == [f"bob {n}" for n in range(10)] + ["during bob's pipe"] + [
        f"bob {n}" for n in range(10, 20)
    ]
    # The next run of bob's inbox that listens starts where his last listening run left
    # off: what carol said meanwhile, and nothing twice.
    back = lab.client("bob", "--listen", "--json")
    back.wait_for(lambda p: len(p.out) >= 2, "what bob missed")
    assert back.signal(signal.SIGTERM) == 143
    assert contents(back) == ["while bob is away", "during bob's pipe"]
