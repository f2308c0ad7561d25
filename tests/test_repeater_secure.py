"""Secure repeater mode over real CURVE sockets on 127.0.0.1 (beacons only on lo).

Each test makes its own key pairs and authorized-keys directory in tmp_path.
"""

from __future__ import annotations

import os
import select
import socket
import threading

import pytest
import zmq
from factories import make_message
from procs import reserved_tcp_port
from repeater_nodes import CLIENT_FAST, FAST, Node, all_accepted, connected, got

from lab93zmq.core.wire import Command, decode
from lab93zmq.io.actor import PipeKind
from lab93zmq.io.config import NodeConfig, SecureConfig
from lab93zmq.io.repeater_client import ClientActor
from lab93zmq.io.repeater_server import ServerActor
from lab93zmq.io.security import KeyPair, generate_keypair, key_text

pytestmark = pytest.mark.timeout(60)


class Keys:
    """A server key pair and people's key pairs; alice and bob are authorized."""

    def __init__(self, root) -> None:
        self.root = root
        self.authorized = root / "authorized_keys"
        self.authorized.mkdir(parents=True)
        self.server = generate_keypair(root / "server", "hub")
        self.people: dict[str, KeyPair] = {}
        for name in ("alice", "bob"):
            self.authorize(name, self.person(name))
        self.person("mallory")  # has a key pair, but no one authorized it

    def person(self, name: str) -> KeyPair:
        self.people[name] = generate_keypair(self.root / name, name)
        return self.people[name]

    def authorize(self, name: str, keys: KeyPair) -> None:
        (self.authorized / f"{name}.key").write_bytes(keys.path.read_bytes())

    def server_config(self, keys: KeyPair | None = None) -> SecureConfig:
        return SecureConfig(
            keys=keys or self.server,
            authorized_keys=self.authorized,
            known_servers=self.root / "server" / "known_servers",
        )

    def client_config(self, name: str, server_key: bytes | None | str = "pin") -> SecureConfig:
        if server_key == "pin":
            server_key = self.server.public_raw
        return SecureConfig(
            keys=self.people[name],
            authorized_keys=self.root / name / "authorized_keys",
            known_servers=self.root / name / "known_servers",
            server_key=server_key,
        )


@pytest.fixture
def keys(tmp_path) -> Keys:
    return Keys(tmp_path / "keys")


def _config(user, db, address, port, secure, beacon_port) -> NodeConfig:
    """Loopback only; beacons (on lo) only when a beacon port is given."""
    return NodeConfig(
        user=user,
        db_path=db,
        address=address,
        port=port,
        beacon=beacon_port is not None,
        interfaces=("lo",),
        beacon_port=beacon_port or 5190,
        beacon_interval=0.5,
        secure=secure,
    )


def start_server(nodes, tmp_path, secure, port=0, db="server.db", beacon_port=None) -> Node:
    config = _config("hub", tmp_path / db, "127.0.0.1", port, secure, beacon_port)
    node = Node(ServerActor(config, **FAST))
    nodes.append(node)
    return node


def start_client(
    nodes, tmp_path, user, port, secure, address="127.0.0.1", beacon_port=None, db=None
) -> Node:
    db_path = tmp_path / (db or f"{user}.db")
    node = Node(
        ClientActor(_config(user, db_path, address, port, secure, beacon_port), **CLIENT_FAST)
    )
    nodes.append(node)
    return node


def fatal(node: Node) -> str:
    return node.wait_kind(PipeKind.FATAL).body["error"]


def notices(node: Node) -> list[str]:
    return [e.body["text"] for e in node.events if e.kind is PipeKind.NOTICE]


# -- the happy path -------------------------------------------------------------------


def test_authorized_clients_chat_and_the_server_names_its_key(nodes, tmp_path, keys):
    server = start_server(nodes, tmp_path, keys.server_config())
    assert keys.server.public.decode() in server.handle.ready_detail
    assert "2 authorized" in server.handle.ready_detail
    port = server.actor.router_port
    alice = connected(start_client(nodes, tmp_path, "alice", port, keys.client_config("alice")))
    bob = connected(start_client(nodes, tmp_path, "bob", port, keys.client_config("bob")))
    ids = [alice.post("hi bob, secretly"), alice.post("and directly", to="bob")]
    all_accepted(alice, ids)
    got(bob, 2)
    assert sorted(bob.incoming()) == ["and directly", "hi bob, secretly"]
    assert sorted(server.actor.core.users()) == ["alice", "bob"]


# -- who may connect ------------------------------------------------------------------


def test_an_unauthorized_client_is_refused_and_both_sides_say_so(nodes, tmp_path, keys):
    server = start_server(nodes, tmp_path, keys.server_config())
    port = server.actor.router_port
    mallory = start_client(nodes, tmp_path, "mallory", port, keys.client_config("mallory"))
    error = fatal(mallory)
    assert "does not know our key" in error
    assert keys.people["mallory"].public.decode() in error  # what to hand the operator
    server.wait(
        lambda n: any("not authorized" in t for t in notices(n)), what="the server's notice"
    )
    assert server.actor.core.users() == []


def test_lines_sent_after_a_refusal_are_kept_for_next_time(nodes, tmp_path, keys):
    """The front end may post before it hears the refusal: the line goes to the outbox."""
    from lab93zmq.io.store import Inbox

    server = start_server(nodes, tmp_path, keys.server_config())
    mallory = start_client(
        nodes, tmp_path, "mallory", server.actor.router_port, keys.client_config("mallory")
    )
    assert "does not know our key" in fatal(mallory)
    mallory.post("sent after the refusal")
    mallory.stop()
    with Inbox(tmp_path / "mallory.db") as inbox:
        assert [m.content for m in inbox.outbox()] == ["sent after the refusal"]


def test_a_key_authorized_or_removed_while_the_server_runs_counts_at_once(nodes, tmp_path, keys):
    server = start_server(nodes, tmp_path, keys.server_config())
    port = server.actor.router_port
    carol_keys = keys.person("carol")
    assert "does not know our key" in fatal(
        start_client(nodes, tmp_path, "carol", port, keys.client_config("carol"))
    )
    keys.authorize("carol", carol_keys)  # no restart
    carol = start_client(nodes, tmp_path, "carol", port, keys.client_config("carol"))
    connected(carol)
    carol.stop()
    (keys.authorized / "carol.key").unlink()  # and taken back, again without a restart
    again = start_client(nodes, tmp_path, "carol", port, keys.client_config("carol"), db="c2.db")
    assert "does not know our key" in fatal(again)


def test_a_client_pinned_to_another_server_key_is_refused(nodes, tmp_path, keys):
    server = start_server(nodes, tmp_path, keys.server_config())
    other = keys.person("impostor")
    config = keys.client_config("alice", server_key=other.public_raw)
    alice = start_client(nodes, tmp_path, "alice", server.actor.router_port, config)
    error = fatal(alice)
    assert "holds another key than the one we expect" in error
    assert other.public.decode() in error
    assert alice.accepted() == set()


# -- who may say what -----------------------------------------------------------------


def test_a_client_cannot_say_hello_as_someone_else(nodes, tmp_path, keys):
    server = start_server(nodes, tmp_path, keys.server_config())
    config = NodeConfig(
        user="bob",  # but the key is alice's
        db_path=tmp_path / "pretender.db",
        address="127.0.0.1",
        port=server.actor.router_port,
        beacon=False,
        secure=keys.client_config("alice"),
    )
    pretender = Node(ClientActor(config, **CLIENT_FAST))
    nodes.append(pretender)
    error = fatal(pretender)
    assert "authorized here as 'alice', not 'bob'" in error and "-u alice" in error
    assert server.actor.core.users() == []


def _curve_dealer(ctx: zmq.Context, keys: KeyPair, server: KeyPair, port: int) -> zmq.Socket:
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.curve_secretkey = keys.secret
    dealer.curve_publickey = keys.public
    dealer.curve_serverkey = server.public
    dealer.connect(f"tcp://127.0.0.1:{port}")
    return dealer


def _reply(dealer: zmq.Socket, name: str) -> Command:
    for _ in range(50):
        assert dealer.poll(5000), f"no {name} from the server"
        cmd = decode(dealer.recv_multipart())
        if cmd.name == name:
            return cmd
    raise AssertionError(f"no {name} among 50 replies")


def test_a_spoofed_sender_name_is_not_accepted(nodes, tmp_path, keys):
    """alice's own key, a correct HELLO, then a POST of a message "from" bob."""
    server = start_server(nodes, tmp_path, keys.server_config())
    bob = connected(
        start_client(nodes, tmp_path, "bob", server.actor.router_port, keys.client_config("bob"))
    )
    ctx = zmq.Context()
    try:
        dealer = _curve_dealer(ctx, keys.people["alice"], keys.server, server.actor.router_port)
        node = os.urandom(16).hex()
        dealer.send_multipart(Command("HELLO", {"user": "alice", "node": node}).frames())
        _reply(dealer, "WELCOME")
        forged = make_message(1, "I owe alice 100 euros", origin=node, author="bob")
        honest = make_message(2, "hello from alice", origin=node, author="alice")
        dealer.send_multipart(Command("POST", {}, (forged.encode(), honest.encode())).frames())
        reject = _reply(dealer, "REJECT")
        assert reject.header["items"] == [[forged.id, "from 'bob' is not you"]]
        ack = _reply(dealer, "ACK")
        assert [item[0] for item in ack.header["items"]] == [honest.id]
    finally:
        ctx.destroy(linger=0)
    got(bob, 1)
    assert bob.incoming() == ["hello from alice"]


# -- plain meets secure ---------------------------------------------------------------


def test_a_plain_client_and_a_secure_server_both_say_so(nodes, tmp_path, keys):
    server = start_server(nodes, tmp_path, keys.server_config())
    plain = start_client(nodes, tmp_path, "alice", server.actor.router_port, None)
    # libzmq reports this either as a mechanism mismatch or as a closed handshake.
    assert "run lab93-node with --secure too" in fatal(plain)
    server.wait(
        lambda n: any("without --secure tried to connect" in t for t in notices(n)),
        what="the server's notice",
    )


def test_a_secure_client_and_a_plain_server_both_say_so(nodes, tmp_path, keys):
    server = start_server(nodes, tmp_path, None)
    port = server.actor.router_port
    alice = start_client(nodes, tmp_path, "alice", port, keys.client_config("alice"))
    error = fatal(alice)
    # libzmq reports this either as a mechanism mismatch or as a closed handshake.
    assert "runs without --secure" in error
    server.wait(
        lambda n: any("with --secure tried to connect" in t for t in notices(n)),
        what="the server's notice",
    )


# -- pinning the server's key ---------------------------------------------------------


@pytest.fixture
def port():
    """A port held for the whole test: two servers in turn bind it, nobody else can."""
    with reserved_tcp_port() as held:
        yield held


def test_a_client_learns_the_key_by_beacon_pins_it_and_refuses_a_changed_one(
    nodes, tmp_path, keys, port, beacon_port
):
    server = start_server(nodes, tmp_path, keys.server_config(), port, beacon_port=beacon_port)
    first = keys.client_config("alice", server_key=None)  # nothing pinned yet
    alice = start_client(nodes, tmp_path, "alice", port, first, beacon_port=beacon_port)
    connected(alice)
    assert any("learning the key" in t for t in notices(alice))
    where = f"127.0.0.1:{port}"
    assert first.known_servers.read_text() == f"{where} {keys.server.public.decode()}\n"
    all_accepted(alice, [alice.post("pinned")])
    alice.stop()
    server.stop()

    # The same address now answers with another key: told where it is, the client
    # uses the pinned key, the handshake fails, and it ends saying what to remove.
    new_keys = generate_keypair(tmp_path / "new-server", "hub")
    start_server(
        nodes, tmp_path, keys.server_config(new_keys), port, db="new.db", beacon_port=beacon_port
    )
    again = start_client(nodes, tmp_path, "alice", port, first, beacon_port=beacon_port)
    error = fatal(again)
    assert "holds another key than the one we expect" in error
    assert keys.server.public.decode() in error
    assert first.known_servers.read_text() == f"{where} {keys.server.public.decode()}\n"

    # Found by its beacon instead, the changed key is refused before any connection.
    finder = start_client(
        nodes, tmp_path, "alice", 0, first, address=None, beacon_port=beacon_port, db="a2.db"
    )
    finder.wait(
        lambda n: any("remove the line for " + where in t for t in notices(n)),
        what="the refusal",
    )
    refusal = next(t for t in notices(finder) if "refused the repeater" in t)
    assert key_text(new_keys.public_raw) in refusal
    assert not any(e.body.get("connected") for e in finder.events if e.kind is PipeKind.STATUS)


# -- on the wire ----------------------------------------------------------------------


class Relay:
    """A TCP relay on 127.0.0.1 that forwards to ``port`` and keeps every byte it saw."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.seen = bytearray()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        pairs: dict[socket.socket, socket.socket] = {}
        try:
            while not self.stop.is_set():
                ready, _, _ = select.select([self.listener, *pairs], [], [], 0.05)
                for sock in ready:
                    if sock is self.listener:
                        inside, _ = self.listener.accept()
                        outside = socket.create_connection(("127.0.0.1", self.target))
                        pairs[inside], pairs[outside] = outside, inside
                        continue
                    if sock not in pairs:
                        continue
                    data = sock.recv(65536)
                    if not data:
                        other = pairs.pop(sock)
                        pairs.pop(other, None)
                        sock.close()
                        other.close()
                        continue
                    self.seen += data
                    pairs[sock].sendall(data)
        finally:
            for sock in [self.listener, *pairs]:
                sock.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "secure"])
def test_what_crosses_the_wire_is_plaintext_only_without_secure(nodes, tmp_path, keys, secure):
    server = start_server(nodes, tmp_path, keys.server_config() if secure else None)
    relay = Relay(server.actor.router_port)
    try:
        config = keys.client_config("alice") if secure else None
        alice = connected(start_client(nodes, tmp_path, "alice", relay.port, config))
        config = keys.client_config("bob") if secure else None
        bob = connected(start_client(nodes, tmp_path, "bob", server.actor.router_port, config))
        text = "the launch code is 0000-" + os.urandom(6).hex()
        all_accepted(alice, [alice.post(text)])  # alice -> relay -> server
        all_accepted(bob, [bob.post(text + "!", to="alice")])  # server -> relay -> alice
        got(alice, 1)
        assert alice.incoming() == [text + "!"]
    finally:
        relay.close()
    seen = bytes(relay.seen)
    assert len(seen) > 200  # the relay really carried the session
    # The control proves the relay would see the text; with --secure it cannot.
    assert (text.encode() in seen) is not secure
    assert (b"alice" in seen) is not secure
