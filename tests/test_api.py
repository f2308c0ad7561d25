"""The blocking Python API on real sockets (loopback): a server and repeater clients
in this process, sending, receiving, flushing and asking, from several threads."""

from __future__ import annotations

import sys
import threading

import pytest

import lab93zmq

pytestmark = pytest.mark.timeout(60)


def client(server, tmp_path, user, **options):
    return lab93zmq.Node.repeater(
        address="127.0.0.1", port=server.router_port, user=user, interfaces=["lo"],
        beacon_port=server.config.beacon_port, db=tmp_path / f"{user}.db", **options,
    )


def test_a_server_reports_the_ports_it_really_bound(server):
    assert server.router_port > 0 and server.pub_port > 0
    assert server.router_port != server.pub_port
    assert len(server.node_id) == 32


def test_send_returns_the_stored_message_and_the_other_side_receives_it(server, tmp_path):
    with client(server, tmp_path, "sensor7") as sensor, client(server, tmp_path, "alice") as alice:
        sent = sensor.send("disk full", subject="host3")
        assert isinstance(sent, lab93zmq.Message)
        assert (sent.sender, sent.to, sent.room, sent.subject, sent.content) == (
            "sensor7", None, "general", "host3", "disk full")
        assert sent.origin == sensor.node_id and sent.sent_at.tzinfo is not None
        assert sensor.flush(timeout=10) == []
        got = alice.receive(timeout=10)
        assert got == sent
        assert got.to_json() == sent.to_json() and got.to_json()["room"] == "general"
        direct = alice.send("psst", to="sensor7")
        assert direct.to == "sensor7" and direct.room is None
        assert alice.flush(timeout=10) == []
        assert sensor.receive(timeout=10) == direct
        assert [m.content for m in alice.history(limit=5)] == ["disk full", "psst"]
        assert alice.who() == ["alice", "sensor7"]
        assert [p.mode for p in alice.peers()] == ["repeater"]


def test_a_message_sent_is_in_the_outbox_before_send_returns(server, tmp_path):
    """send() returns once the message is stored: a node closed at once (the server
    gone meanwhile) still has it, and the next run sends it."""
    from lab93zmq.io.store import Inbox

    node = client(server, tmp_path, "alice")
    server.close()
    sent = node.send("kept while the server is away")
    node.close()
    with Inbox(tmp_path / "alice.db") as inbox:
        assert [m.id for m in inbox.outbox()] == [sent.id]


def test_flush_returns_what_was_not_accepted_in_time(tmp_path, beacon_port):
    with lab93zmq.Server(address="127.0.0.1", port=0, interfaces=["lo"],
                         beacon_port=beacon_port, db=tmp_path / "s.db") as server:
        port = server.router_port
    # No server any more: nothing can be accepted.
    with lab93zmq.Node.repeater(address="127.0.0.1", port=port, user="alice",
                                interfaces=["lo"], beacon_port=beacon_port,
                                db=tmp_path / "alice.db") as alice:
        sent = alice.send("into the void")
        assert alice.flush(timeout=0.5) == [sent]


def test_iteration_yields_until_the_node_is_closed(server, tmp_path):
    with client(server, tmp_path, "alice") as alice, client(server, tmp_path, "bob") as bob:
        seen = []
        all_five = threading.Event()

        def read():
            for message in bob:
                seen.append(message.content)
                if len(seen) == 5:
                    all_five.set()

        reader = threading.Thread(target=read)
        reader.start()
        for n in range(5):
            alice.send(f"line {n}")
        assert alice.flush(timeout=10) == []
        assert all_five.wait(10)
        bob.close()
        reader.join(10)
        assert not reader.is_alive()
        assert seen == [f"line {n}" for n in range(5)]


def test_send_receive_and_ask_from_many_threads_at_once(server, tmp_path):
    with client(server, tmp_path, "alice") as alice, client(server, tmp_path, "bob") as bob:
        sent: list[lab93zmq.Message] = []
        errors: list[BaseException] = []

        def work(worker):
            try:
                for n in range(25):
                    sent.append(alice.send(f"{worker}:{n}"))
                    if n % 10 == 0:
                        alice.who()
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        workers = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        assert not errors
        assert len({m.id for m in sent}) == 100
        assert alice.flush(timeout=20) == []
        received = set()
        while len(received) < 100:
            message = bob.receive(timeout=10)
            assert message is not None, f"{len(received)} of 100"
            received.add(message.id)
        assert received == {m.id for m in sent}
        # Each author's messages keep their order (one origin, numbered as sent).
        assert sorted(m.origin_seq for m in sent) == list(range(1, 101))


def test_misuse_gets_a_clear_exception_never_a_hang(server, tmp_path):
    alice = client(server, tmp_path, "alice")
    with pytest.raises(lab93zmq.MessageError, match="content"):
        alice.send("")
    with pytest.raises(lab93zmq.RoomError, match="not a room name"):
        alice.send("hi", room="Not A Room!")
    with pytest.raises(lab93zmq.UsageError, match="has no room"):
        alice.send("hi", to="bob", room="ops")
    for bad in ("soon", -1, True):
        with pytest.raises(lab93zmq.UsageError, match="timeout takes a number"):
            alice.receive(timeout=bad)
    with pytest.raises(lab93zmq.UsageError, match="limit"):
        alice.history(limit=-3)
    alice.close()
    alice.close()  # closing twice is harmless
    with pytest.raises(lab93zmq.ClosedError):
        alice.send("too late")
    assert alice.receive(timeout=0) is None
    assert list(alice) == []


def test_bad_options_raise_the_command_lines_sentence(tmp_path):
    with pytest.raises(lab93zmq.UsageError, match=r"-p/--port takes a whole number"):
        lab93zmq.Node.repeater(port="x", interfaces=["lo"], db=tmp_path / "a.db")
    with pytest.raises(lab93zmq.UsageError, match=r"--room '#no way'"):
        lab93zmq.Node.broadcast(rooms=["#no way"], interfaces=["lo"], db=tmp_path / "a.db")
    with pytest.raises(lab93zmq.UsageError, match="no network interface"):
        lab93zmq.scan(interfaces=["nosuch0"])


def test_one_node_per_inbox_as_on_the_command_line(server, tmp_path):
    with client(server, tmp_path, "alice"):
        with pytest.raises(lab93zmq.StoreError, match="in use by another lab93-node"):
            client(server, tmp_path, "alice")


def test_a_server_that_cannot_start_says_why(tmp_path, beacon_port, server):
    with pytest.raises(lab93zmq.ConfigError, match=str(server.router_port)):  # API.rst's class
        lab93zmq.Server(address="127.0.0.1", port=server.router_port, interfaces=["lo"],
                        beacon_port=beacon_port, db=tmp_path / "other.db")


def test_a_damaged_inbox_raises_a_store_error_as_api_rst_says(server, tmp_path):
    (tmp_path / "alice.db").write_bytes(b"this is no SQLite database\n" * 200)
    with pytest.raises(lab93zmq.StoreError):
        client(server, tmp_path, "alice")


def test_a_server_takes_user_as_the_command_lines_u_and_its_beacons_say_it(tmp_path, beacon_port):
    with lab93zmq.Server(user="hub", address="127.0.0.1", port=0, interfaces=["lo"],
                         beacon_port=beacon_port, db=tmp_path / "hub.db") as hub:
        assert hub.config.user == "hub"
        [seen] = lab93zmq.scan(interfaces=["lo"], beacon_port=beacon_port, timeout=1.0)
        assert (seen.user, seen.mode, seen.node) == ("hub", "repeater", hub.node_id)
    with pytest.raises(lab93zmq.UsageError, match="--user 'no way'"):
        lab93zmq.Server(user="no way", interfaces=["lo"], db=tmp_path / "x.db")


def test_every_option_a_server_takes_on_the_command_line_is_a_keyword_of_server():
    import inspect

    from lab93zmq import aio
    from lab93zmq.api.options import node_config
    not_a_servers = {"mode", "rooms", "listen", "server_key"}  # API.rst: a client's, a node's
    wanted = set(inspect.signature(node_config).parameters) - not_a_servers
    for face in (lab93zmq.Server, aio.Server):
        assert set(inspect.signature(face).parameters) == wanted, face


def test_scan_lists_the_server(server):
    found = lab93zmq.scan(interfaces=["lo"], beacon_port=server.config.beacon_port,
                          timeout=1.0)
    assert [(s.node, s.mode, s.router) for s in found] == [
        (server.node_id, "repeater", server.router_port)]
    assert found[0].to_json()["mode"] == "repeater"


def test_importing_the_package_loads_no_zeromq_until_a_node_is_made():
    import subprocess

    code = (
        "import sys, lab93zmq\n"
        "assert 'zmq' not in sys.modules\n"
        "lab93zmq.Message, lab93zmq.Lab93Error\n"
        "assert 'zmq' not in sys.modules\n"
        "lab93zmq.Node\n"
        "assert 'zmq' in sys.modules\n"
        "assert 'asyncio' not in sys.modules, 'the blocking API needs no asyncio'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_all_public_names_resolve():
    assert set(lab93zmq.__all__) - {"__version__"} == set(lab93zmq._EXPORTS)
    for name in lab93zmq.__all__:
        assert getattr(lab93zmq, name) is not None


def test_rooms_join_part_topic_and_who_through_the_api(server, tmp_path):
    with client(server, tmp_path, "alice", rooms=["ops", "general"]) as alice, \
            client(server, tmp_path, "bob") as bob:
        assert alice.rooms == ["ops", "general"] and alice.room == "ops"
        assert bob.room == "general"
        alice.send("deploy at 10")  # to ops, alice's current room
        alice.send("lunch?", room="general")
        assert alice.flush(timeout=10) == []
        assert bob.receive(timeout=10).content == "lunch?"  # bob is not in ops
        joined = bob.join("#Ops")
        assert isinstance(joined, lab93zmq.Joined) and joined.room == "ops"
        assert bob.rooms == ["ops", "general"] and bob.room == "ops"
        caught_up = bob.receive(timeout=10)
        assert (caught_up.content, caught_up.room) == ("deploy at 10", "ops")
        assert sorted(alice.who("ops")) == ["alice", "bob"]
        alice.set_topic("release day")
        topic = None
        while topic is None:
            event = bob.next_event(timeout=10)
            assert event is not None, "no topic event"
            if isinstance(event, lab93zmq.Topic):
                topic = event
        assert (topic.room, topic.text, topic.by) == ("ops", "release day", "alice")
        assert bob.topic("ops") == topic
        rooms = {info.name: info for info in bob.room_list()}
        assert rooms["ops"].members == 2 and rooms["ops"].topic == "release day"
        assert rooms["ops"].joined
        assert [m.content for m in bob.history(room="ops")] == ["deploy at 10"]
        parted = bob.part()
        assert isinstance(parted, lab93zmq.Parted) and parted.room == "ops"
        assert bob.rooms == ["general"] and bob.room == "general"
        alice.send("after bob left")
        assert alice.flush(timeout=10) == []
        assert bob.receive(timeout=1.0) is None  # nothing of ops any more
        assert alice.who("ops") == ["alice"]


def test_part_of_a_room_the_node_is_not_in_raises_room_error(server, tmp_path):
    with client(server, tmp_path, "alice", rooms=["ops"]) as alice:
        with pytest.raises(lab93zmq.RoomError, match=r"not in #nowhere \(it is in #ops\)"):
            alice.part("nowhere")
        assert alice.rooms == ["ops"]
        assert alice.part() == lab93zmq.Parted("ops")
        with pytest.raises(lab93zmq.RoomError, match="in no room: there is no room to part"):
            alice.part()
        with pytest.raises(lab93zmq.RoomError, match="not in #ops: there is no room to part"):
            alice.part("#ops")
        with pytest.raises(lab93zmq.RoomError, match="not a room name"):
            alice.part("no way")


def broadcast(tmp_path, beacon_port, user, **options):
    return lab93zmq.Node.broadcast(user=user, interfaces=["lo"], beacon_port=beacon_port,
                                   db=tmp_path / f"{user}.db", port=0, **options)


def test_broadcast_nodes_through_the_api(tmp_path, beacon_port):
    with broadcast(tmp_path, beacon_port, "alice") as alice, \
            broadcast(tmp_path, beacon_port, "bob") as bob:
        # Wait until they see each other (a Status naming the peer), then talk.
        for node, other in ((alice, "bob"), (bob, "alice")):
            while True:
                event = node.next_event(timeout=15)
                assert event is not None, "the peers never met"
                if isinstance(event, lab93zmq.Status) and other in event.detail:
                    break
        sent = alice.send("hello over the LAN")
        assert sent.room == "general" and sent.origin == alice.node_id
        assert alice.flush(timeout=15) == []  # held by bob: accepted
        assert bob.receive(timeout=15) == sent
        direct = bob.send("psst", to="alice")
        assert bob.flush(timeout=15) == []
        assert alice.receive(timeout=15) == direct
        assert "bob" in alice.who()
        assert [p.user for p in alice.peers()] == ["bob"]


def test_a_broadcast_node_alone_has_nobody_to_accept(tmp_path, beacon_port):
    with broadcast(tmp_path, beacon_port, "alice") as alice:
        sent = alice.send("anyone?")
        assert alice.flush(timeout=1.5) == [sent]
