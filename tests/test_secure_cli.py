"""README's "Secure mode" walk-through, typed as a user would: real lab93-node
processes, each person with their own XDG_CONFIG_HOME, on 127.0.0.1 and lo."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from procs import NodeProcess, reserved_tcp_port

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def port():
    """The hub's port, held for the whole test: clients are told it before it starts."""
    with reserved_tcp_port() as held:
        yield held


@pytest.fixture
def lab(tmp_path, port, beacon_port):
    started: list[NodeProcess] = []
    beacon = beacon_port

    class Lab:
        def __init__(self):
            self.port, self.beacon, self.dir = port, beacon, tmp_path

        def config(self, person: str):
            return tmp_path / person / "config"

        def run(self, person: str, *args: str, stdin: bool = False) -> NodeProcess:
            env = {"XDG_CONFIG_HOME": str(self.config(person))}
            node = NodeProcess(
                [*args, "--db", str(tmp_path / f"{person}.db")], stdin=stdin, env=env
            )
            started.append(node)
            return node

        def keygen(self, person: str) -> str:
            node = self.run(person, "--keygen", "-u", person, "--json")
            assert node.finish() == 0, node.err
            return json.loads(node.out[0])["key"]

        def server(self, *extra: str) -> NodeProcess:
            node = self.run(
                "hub",
                "-r",
                "-s",
                "--secure",
                "-a",
                "127.0.0.1",
                "-p",
                str(port),
                "-i",
                "lo",
                "--beacon-port",
                str(beacon),
                *extra,
            )
            node.wait_err("secure repeater at tcp://127.0.0.1:")
            return node

        def client(self, person: str, *extra: str, stdin: bool = False) -> NodeProcess:
            return self.run(
                person,
                "-r",
                "-c",
                "--secure",
                "-i",
                "lo",
                "--beacon-port",
                str(beacon),
                *extra,
                stdin=stdin,
            )

    yield Lab()
    for node in started:
        node.kill()


def test_from_keygen_to_an_encrypted_room(lab):
    server_key = lab.keygen("hub")
    lab.keygen("alice")
    lab.keygen("bob")
    lab.keygen("mallory")
    # The operator authorizes alice and bob: their id.key, saved under their names.
    authorized = lab.config("hub") / "lab93" / "authorized_keys"
    authorized.mkdir()
    for person in ("alice", "bob"):
        shutil.copy(lab.config(person) / "lab93" / "id.key", authorized / f"{person}.key")

    server = lab.server()
    assert any(server_key in line and "2 authorized" in line for line in server.err)

    # --scan shows the server is secure, and its key.
    scan = lab.run("alice", "--scan", "-i", "lo", "--beacon-port", str(lab.beacon))
    assert scan.finish() == 0
    assert any("repeater" in line and f"secure, key {server_key}" in line for line in scan.out)

    # bob listens, having learned the server's key from its beacon (first use).
    listener = lab.client("bob", "--listen", "--json")
    listener.wait_err("trusting the key")
    listener.wait_err("connected to repeater")
    known = (lab.config("bob") / "lab93" / "known_servers").read_text()
    assert known == f"127.0.0.1:{lab.port} {server_key}\n"

    # alice is told the key; her name comes from her key file (no -u needed).
    sender = lab.client(
        "alice", "-a", "127.0.0.1", "-p", str(lab.port), "--server-key", server_key, stdin=True
    )
    sender.write("meet at noon")
    sender.close_stdin()
    assert sender.finish() == 0, sender.err
    listener.wait_for(lambda p: len(p.out) >= 1, "the message")
    line = json.loads(listener.out[0])
    assert (line["from"], line["content"]) == ("alice", "meet at noon")

    # mallory has a key pair, but no one authorized it: exit 1, the line is kept.
    intruder = lab.client(
        "mallory", "-a", "127.0.0.1", "-p", str(lab.port), "--server-key", server_key,
        "--send", "let me in",
    )  # fmt: skip
    assert intruder.finish() == 1
    said = "\n".join(intruder.err)
    assert "does not know our key" in said and "authorized_keys/mallory.key" in said
    history = lab.run("mallory", "--history", "--json")
    assert history.finish() == 0
    assert [json.loads(x)["content"] for x in history.out] == ["let me in"]

    # Posing as bob with alice's key: refused, with the name to use.
    pretender = lab.client(
        "alice", "-a", "127.0.0.1", "-p", str(lab.port), "--server-key", server_key,
        "-u", "bob", "--send", "it's me, bob",
    )  # fmt: skip
    assert pretender.finish() == 1
    assert any("authorized here as 'alice', not 'bob'" in x for x in pretender.err)

    listener.signal()
    server.signal()
    assert [json.loads(x)["content"] for x in listener.out] == ["meet at noon"]


def test_a_refused_client_that_found_the_server_by_beacon_says_why_at_once(lab):
    lab.keygen("hub")
    lab.keygen("mallory")
    lab.server()  # authorizes no one
    started = time.monotonic()
    intruder = lab.client("mallory", "--send", "let me in", "--timeout", "30")  # no -a
    assert intruder.finish() == 1
    assert time.monotonic() - started < 20  # told at once, not after --timeout
    # One sentence, the one a client told where the server is (-a) gives; no stray lines.
    [said] = intruder.err
    assert said.startswith(f"lab93-node: the repeater at tcp://127.0.0.1:{lab.port}: the other"
                           " side does not know our key"), said
    assert "authorized_keys/mallory.key" in said
    history = lab.run("mallory", "--history", "--json")
    assert history.finish() == 0
    assert [json.loads(x)["content"] for x in history.out] == ["let me in"]  # kept


def test_a_plain_client_is_told_the_server_is_secure(lab):
    lab.keygen("hub")
    server = lab.server()
    plain = lab.run(
        "alice", "-r", "-c", "-a", "127.0.0.1", "-p", str(lab.port), "--send", "hi"
    )
    assert plain.finish() == 1
    assert any("run lab93-node with --secure too" in x for x in plain.err)
    server.wait_err("without --secure tried to connect")


def test_secure_without_a_key_pair_says_how_to_make_one(lab):
    node = lab.run("alice", "-b", "--secure", "-i", "lo")
    assert node.finish() == 1
    assert node.err == [
        f"lab93-node: no key pair in {lab.config('alice') / 'lab93'};"
        " make one with: lab93-node --keygen"
    ]


def test_a_secure_broadcast_node_speaks_as_its_keys_name_only(lab):
    # Its peers drop a message under any other name (as spoofed, until they cut it
    # off), so -u that differs is refused before anything starts.
    lab.keygen("alice")
    node = lab.run("alice", "-b", "--secure", "-u", "mallory", "-i", "lo",
                   "--beacon-port", str(lab.beacon), "--send", "x", "--timeout", "3")
    assert node.finish() == 2
    assert node.err == [
        "lab93-node: -u mallory: a secure broadcast node speaks as the name its key was made"
        " for, 'alice'; leave out -u, or run with -u alice"
    ]
    assert not (lab.dir / "alice.db").exists()


def test_two_secure_broadcast_nodes_chat_and_an_untrusted_one_is_named(lab):
    for person in ("alice", "bob", "carol"):
        lab.keygen(person)
    # alice and bob trust each other; nobody trusts carol.
    for me, friend in (("alice", "bob"), ("bob", "alice")):
        authorized = lab.config(me) / "lab93" / "authorized_keys"
        authorized.mkdir()
        shutil.copy(lab.config(friend) / "lab93" / "id.key", authorized / f"{friend}.key")
    common = ["-b", "--secure", "-i", "lo", "-a", "127.0.0.1", "-p", "0",
              "--beacon-port", str(lab.beacon)]  # fmt: skip
    listener = lab.run("bob", *common, "--listen", "--json")
    listener.wait_err("secure (key ")
    intruder = lab.run("carol", *common, "--listen")
    intruder.wait_err("secure (key ")
    sender = lab.run("alice", *common, "--send", "for bob's eyes", "--timeout", "15")
    assert sender.finish() == 0, sender.err
    listener.wait_for(lambda p: len(p.out) >= 1, "the message")
    line = json.loads(listener.out[0])
    assert (line["from"], line["content"]) == ("alice", "for bob's eyes")
    listener.wait_err("carol's node at 127.0.0.1 has a key not in")
    intruder.wait_err("alice's node at 127.0.0.1 has a key not in")  # she trusts no one
    assert intruder.out == []
    # Each sentence once: a notice, not a notice and a log line saying the same.
    said = [line for line in listener.err if "carol's node" in line]
    assert len(said) == 1, said
    for node in (listener, intruder):
        node.signal()
