"""The IRC face live: a real server (``lab93zmq.Server(irc_port=0)``), real IRC clients
(the ``irc`` package) and lab93 clients (``lab93zmq.Node.repeater``), all on loopback."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections import Counter

import pytest
from ircclients import IRCClients

import lab93zmq
from lab93zmq.core.events import Member, Status, Topic

pytestmark = pytest.mark.timeout(90)

WAIT = 15.0


@pytest.fixture
def server(tmp_path, beacon_port):
    with lab93zmq.Server(address="127.0.0.1", port=0, interfaces=["lo"],
                         beacon_port=beacon_port, db=tmp_path / "server.db",
                         irc_port=0) as running:
        yield running


@pytest.fixture
def clients():
    made = IRCClients()
    yield made
    made.close()


def lab93(server, tmp_path, user, rooms):
    return lab93zmq.Node.repeater(
        address="127.0.0.1", port=server.router_port, user=user, interfaces=["lo"],
        beacon_port=server.config.beacon_port, db=tmp_path / f"{user}.db", rooms=rooms)


def connected(node, clients) -> None:
    """Wait until the node's session is up (a direct message to a user never seen is 401)."""
    events(node, Status, lambda found: any(s.connected for s in found), clients)


def received(node, count, clients=None, timeout=WAIT):
    """``count`` messages from a lab93 node (pumping the IRC clients meanwhile)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"{node.config.user} got only {got}"
        message = node.receive(timeout=0.05)
        if message is not None:
            got.append(message)
        if clients is not None:
            clients.pump(0.01)
    return got


def events(node, kind, until, clients, timeout=WAIT):
    found = []
    deadline = time.monotonic() + timeout
    while not until(found):
        assert time.monotonic() < deadline, f"{node.config.user}: only {found}"
        event = node.next_event(timeout=0.05)
        if isinstance(event, kind):
            found.append(event)
        clients.pump(0.01)
    return found


def test_two_irc_users_and_two_lab93_clients_in_two_rooms(server, tmp_path, clients):
    assert server.irc_port and server.irc_port not in (server.router_port, server.pub_port)
    with lab93(server, tmp_path, "alice", ["ops", "dev"]) as alice, \
            lab93(server, tmp_path, "bob", ["dev"]) as bob:
        connected(alice, clients)
        connected(bob, clients)
        carol = clients.connect(server.irc_port, "carol")
        dave = clients.connect(server.irc_port, "dave")
        carol.join("#ops")
        carol.join("#dev")
        dave.join("#dev")
        names = [s.text.split() for s in carol.matching("namreply") if "#dev" in s.arguments]
        assert sorted(names[-1]) == ["alice", "bob", "carol"]
        assert sorted(alice.who("dev")) == ["alice", "bob", "carol", "dave"]

        # Everyone says one thing in each of their rooms.
        alice.send("alice in ops", room="ops")
        alice.send("alice in dev", room="dev")
        bob.send("bob in dev", room="dev")
        carol.send("#ops", "carol in ops")
        carol.send("#dev", "carol in dev")
        dave.send("#dev", "dave in dev")
        in_dev = {"alice in dev", "bob in dev", "carol in dev", "dave in dev"}
        clients.wait(lambda: {t for _, t in carol.messages("#dev")} >= in_dev, "carol's #dev")
        clients.wait(lambda: {t for _, t in dave.messages("#dev")} >= in_dev, "dave's #dev")
        clients.wait(lambda: len(carol.messages("#ops")) >= 2, "carol's #ops")
        got_alice = received(alice, 4, clients)  # what the three others said in its rooms
        got_bob = received(bob, 3, clients)
        # A last marker in each room: anything twice would have come before it.
        carol.send("#ops", "end ops")
        carol.send("#dev", "end dev")
        got_alice += received(alice, 2, clients)
        got_bob += received(bob, 1, clients)
        clients.wait(lambda: ("carol", "end dev") in dave.messages("#dev"), "dave's end")
        clients.wait(lambda: ("carol", "end dev") in carol.messages("#dev"), "carol's echo")
        for node, seen in ((alice, got_alice), (bob, got_bob)):
            counts = Counter((m.sender, m.room, m.content) for m in seen)
            assert all(n == 1 for n in counts.values()), counts
            assert node.config.user not in {m.sender for m in seen}  # own posts are not news
        assert {(m.room, m.content) for m in got_alice} == {
            ("dev", "bob in dev"), ("ops", "carol in ops"), ("dev", "carol in dev"),
            ("dev", "dave in dev"), ("ops", "end ops"), ("dev", "end dev")}
        assert {(m.room, m.content) for m in got_bob} == {
            ("dev", "alice in dev"), ("dev", "carol in dev"), ("dev", "dave in dev"),
            ("dev", "end dev")}
        for user in (carol, dave):
            counts = Counter(user.messages())
            assert all(n == 1 for n in counts.values()), counts  # echoes included, once
        assert Counter(carol.messages("#ops")) == Counter(
            {("alice", "alice in ops"): 1, ("carol", "carol in ops"): 1, ("carol", "end ops"): 1})
        # IRC posts are stored, numbered and authored like any other.
        [stored] = [m for m in got_alice if m.content == "carol in ops"]
        assert stored.sender == "carol" and stored.origin == server.node_id
        echo = next(s for s in carol.seen if s.type == "pubmsg" and s.text == "carol in ops")
        assert echo.tags["msgid"] == stored.id and echo.tags["time"].startswith(
            stored.sent_at.strftime("%Y-%m-%dT%H:%M:%S"))


def test_direct_messages_topics_and_coming_and_going(server, tmp_path, clients):
    with lab93(server, tmp_path, "alice", ["ops"]) as alice:
        carol = clients.connect(server.irc_port, "carol")
        dave = clients.connect(server.irc_port, "dave")
        carol.join("#ops")
        connected(alice, clients)
        # Direct messages both ways, and between two IRC users.
        carol.send("alice", "psst alice")
        [direct] = received(alice, 1, clients)
        assert (direct.sender, direct.to, direct.content) == ("carol", "alice", "psst alice")
        alice.send("hi carol", to="carol")
        clients.wait(lambda: ("alice", "hi carol") in carol.messages("carol"), "alice's dm")
        dave.send("carol", "from dave")
        clients.wait(lambda: ("dave", "from dave") in carol.messages("carol"), "dave's dm")
        # Topics both ways.
        carol.raw("TOPIC #ops :standup at 10")
        topics = events(alice, Topic, lambda found: any(t.by == "carol" for t in found), clients)
        assert topics[-1].text == "standup at 10"
        alice.set_topic("standup at 11", room="ops")
        clients.wait(lambda: carol.has("topic", text="standup at 11"), "alice's topic")
        # A lab93 user coming and going; an IRC user parting.
        with lab93(server, tmp_path, "bob", ["ops"]) as bob:
            carol.wait_for("join", nick="bob")
            connected(bob, clients)
            bob.part("ops")
            carol.wait_for("part", nick="bob")
            bob.join("ops")
            clients.wait(lambda: len(carol.matching("join", nick="bob")) == 2, "bob back")
        carol.wait_for("quit", nick="bob")
        dave.join("#ops")
        dave.connection.part("#ops")
        left = events(alice, Member, lambda found: any(
            m.user == "dave" and not m.joined for m in found), clients)
        assert left[-1].room == "ops"


def test_chathistory_after_a_reconnect(server, tmp_path, clients):
    with lab93(server, tmp_path, "alice", ["ops"]) as alice:
        carol = clients.connect(server.irc_port, "carol")
        carol.join("#ops")
        alice.send("before", room="ops")
        clients.wait(lambda: ("alice", "before") in carol.messages("#ops"), "before")
        last = carol.matching("pubmsg", text="before")[0].tags["msgid"]
        carol.disconnect()
        for n in range(3):
            alice.send(f"missed {n}", room="ops")
        assert alice.flush(timeout=WAIT) == []
        again = clients.connect(server.irc_port, "carol")
        again.join("#ops")
        again.raw(f"CHATHISTORY AFTER #ops msgid={last} 50")
        clients.wait(lambda: again.has("batch", target="-b1"), "the end of the history batch")
        assert again.has("batch", target="+b1", arguments=("chathistory", "#ops"))
        assert again.messages("#ops") == [("alice", f"missed {n}") for n in range(3)]


def test_garbage_and_floods_on_the_irc_port_leave_everyone_else_served(
        server, tmp_path, clients):
    with lab93(server, tmp_path, "alice", ["ops"]) as alice:
        carol = clients.connect(server.irc_port, "carol")
        carol.join("#ops")
        bad = []
        for payload in (
            bytes(range(256)) * 8 + b"\r\n",  # binary
            b"NICK \xff\xfe\r\nUSER a 0 * :\xc3\x28\r\n",  # not UTF-8
            b"PRIVMSG #ops :" + b"x" * 20_000 + b"\r\n",  # far too long
            b"NICK flood\r\nUSER f 0 * :f\r\n" + b"PING :x\r\n" * 5000,  # a flood
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 500,  # TLS to plain
        ):
            sock = socket.create_connection(("127.0.0.1", server.irc_port), timeout=WAIT)
            sock.sendall(payload)
            bad.append(sock)
        flooder = bad[3]
        answer = b""
        deadline = time.monotonic() + WAIT
        while b"Excess flood" not in answer and time.monotonic() < deadline:
            chunk = flooder.recv(65536)
            if not chunk:
                break
            answer += chunk
        assert b"ERROR :Closing Link: flood (Excess flood)" in answer
        # Half-open connections that say nothing, and one that never registers.
        idle = [socket.create_connection(("127.0.0.1", server.irc_port)) for _ in range(20)]
        # Everyone else is served as before.
        alice.send("still here", room="ops")
        clients.wait(lambda: ("alice", "still here") in carol.messages("#ops"), "alice")
        carol.send("#ops", "me too")
        assert [m.content for m in received(alice, 1, clients)] == ["me too"]
        for sock in bad + idle:
            sock.close()


def test_a_client_that_does_not_read_is_closed_and_the_others_get_everything(
        server, tmp_path, clients):
    with lab93(server, tmp_path, "alice", ["ops"]) as alice:
        carol = clients.connect(server.irc_port, "carol", caps="")
        carol.join("#ops")
        sleeper = socket.socket()
        sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sleeper.connect(("127.0.0.1", server.irc_port))
        sleeper.sendall(b"NICK sleeper\r\nUSER s 0 * :s\r\nJOIN #ops\r\n")
        clients.wait(lambda: carol.has("join", nick="sleeper"), "the sleeper in #ops")
        text = "y" * 60_000

        def carol_has(number: int) -> bool:
            return any(t.startswith(f"{number} ") for _, t in carol.messages("#ops"))

        for n in range(80):  # ~5 MB of IRC lines for each reader
            if n >= 4:  # carol reads as it comes: at most a few messages behind
                clients.wait(lambda n=n: carol_has(n - 4), f"carol's message {n - 4}")
            alice.send(f"{n} {text}", room="ops")
        assert alice.flush(timeout=30) == []
        clients.wait(lambda: carol.has("quit", nick="sleeper"), "the sleeper closed", 30)
        clients.wait(lambda: carol_has(79), "carol's last message", 30)
        assert carol.connection.is_connected()
        starts = {t.split()[0] for _, t in carol.messages("#ops") if t[:1].isdigit()}
        assert starts >= {str(n) for n in range(80)}
        sleeper.close()


@pytest.fixture
def certificate(tmp_path):
    cert, key = tmp_path / "irc.crt", tmp_path / "irc.key"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"openssl cannot make a test certificate here: {error}")
    return cert, key


def test_tls_and_a_password(tmp_path, beacon_port, certificate):
    cert, key = certificate
    password = tmp_path / "irc-password"
    password.write_text("s3cret words\n")
    with lab93zmq.Server(address="127.0.0.1", port=0, interfaces=["lo"],
                         beacon_port=beacon_port, db=tmp_path / "server.db", irc_port=0,
                         irc_tls_cert=cert, irc_tls_key=key,
                         irc_password_file=password) as server:
        assert "IRC at ircs://127.0.0.1:" in server.ready_detail
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False

        def talk(lines: bytes, until: bytes) -> bytes:
            raw = socket.create_connection(("127.0.0.1", server.irc_port), timeout=WAIT)
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(lines)
                got = b""
                while until not in got:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                return got

        refused = talk(b"PASS wrong\r\nNICK carol\r\nUSER c 0 * :c\r\n", b"ERROR")
        assert b" 464 " in refused and b"001" not in refused
        welcome = talk(b"PASS :s3cret words\r\nNICK carol\r\nUSER c 0 * :c\r\n", b" 376 ")
        assert b" 001 carol " in welcome
        # Plain text on the TLS port is no handshake: closed, and the server goes on.
        plain = socket.create_connection(("127.0.0.1", server.irc_port), timeout=WAIT)
        plain.sendall(b"NICK carol\r\nUSER c 0 * :c\r\n")
        try:
            answer = plain.recv(65536)
        except ConnectionResetError:
            answer = b""
        assert b"001" not in answer  # closed (or a TLS alert), never welcomed
        plain.close()
        assert b" 001 dave " in talk(b"PASS :s3cret words\r\nNICK dave\r\nUSER d 0 * :d\r\n",
                                     b" 376 ")


def test_a_secure_server_with_tls_and_a_password_keeps_key_names_from_irc(
        tmp_path, beacon_port, certificate):
    """--secure: an IRC user proves the password at most, so it may not take the name of
    an authorized key, connected or not."""
    from lab93zmq.io.paths import config_dir
    from lab93zmq.io.security import generate_keypair

    cert, key = certificate
    generate_keypair(config_dir(), "hub")
    authorized = tmp_path / "authorized_keys"
    authorized.mkdir()
    alice = generate_keypair(tmp_path / "alice", "alice")
    (authorized / "alice.key").write_bytes(alice.path.read_bytes())
    with lab93zmq.Server(address="127.0.0.1", port=0, interfaces=["lo"],
                         beacon_port=beacon_port, db=tmp_path / "server.db", secure=True,
                         authorized_keys=authorized, irc_port=0, irc_tls_cert=cert,
                         irc_tls_key=key, irc_password="pw") as server:
        assert "IRC at ircs://" in server.ready_detail
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        raw = socket.create_connection(("127.0.0.1", server.irc_port), timeout=WAIT)
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"PASS pw\r\nNICK alice\r\nUSER a 0 * :a\r\n")
            got = b""
            while b" 433 " not in got:
                chunk = tls.recv(65536)
                assert chunk, got
                got += chunk
            assert b"001" not in got
            tls.sendall(b"NICK hub\r\n")  # the server's own name is taken too
            while got.count(b" 433 ") < 2:
                got += tls.recv(65536)
            tls.sendall(b"NICK carol\r\n")
            while b" 001 carol " not in got:
                chunk = tls.recv(65536)
                assert chunk, got
                got += chunk


def test_a_burst_bigger_than_one_turn_is_carried_over_never_dropped(
        server, tmp_path, clients, monkeypatch):
    """The IRC face acts on at most MAX_STEPS outputs a turn; the rest waits for the
    next turn (here 20, so a burst of 60 lines to two readers takes many turns)."""
    from lab93zmq.io import irc_face

    monkeypatch.setattr(irc_face, "MAX_STEPS", 20)
    with lab93(server, tmp_path, "alice", ["ops"]) as alice:
        carol = clients.connect(server.irc_port, "carol")
        dave = clients.connect(server.irc_port, "dave")
        carol.join("#ops")
        dave.join("#ops")
        for n in range(60):
            carol.send("#ops", f"burst {n}")
        expected = [("carol", f"burst {n}") for n in range(60)]
        clients.wait(lambda: dave.messages("#ops") == expected, "dave's 60 lines")
        clients.wait(lambda: carol.messages("#ops") == expected, "carol's 60 echoes")
        assert [m.content for m in received(alice, 60, clients)] == [
            f"burst {n}" for n in range(60)]
