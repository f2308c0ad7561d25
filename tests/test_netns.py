"""Three broadcast nodes on real subnet broadcast, in network namespaces this test creates.

A "switch" namespace holds a bridge; three host namespaces each get one end of
a veth pair (the other end on the bridge) and an address in 198.18.93.0/24,
as in DESIGN.md "Network rules for tests". Every name carries a random tag, so
runs never collide, and everything is removed in a ``finally``. Needs root (or
CAP_NET_ADMIN and CAP_SYS_ADMIN); skipped with the reason otherwise.

The scenario: three hosts chat; host 3 is cut off at the switch
(``ip -n SW link set vN down``) long enough for everyone to expire it; both
sides keep talking; the link comes back; every node must end up holding
every message exactly once. The rooms scenario does the same with traffic in
two rooms (host 2 is in one of them only): every node ends up holding exactly
the messages of its rooms, each once (its nodes are tests/pipe_node.py, which
posts to any room over the actor's pipe).
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import NodeProcess

from lab93zmq.io.store import Inbox

pytestmark = pytest.mark.timeout(90)

HOSTS = (1, 2, 3)
WAIT = 15.0


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


class Testbed:
    """The namespaces and links of one test run, torn down by ``remove``."""

    __test__ = False  # not a test class, despite the name

    def __init__(self) -> None:
        tag = "l93t" + secrets.token_hex(3)  # e.g. l93t1a2b3c: 10 characters
        self.switch = f"{tag}sw"
        self.hosts = {h: f"{tag}h{h}" for h in HOSTS}
        self.ports = {h: f"{tag}v{h}" for h in HOSTS}  # switch side, <= 15 characters
        self.nics = {h: f"{tag}e{h}" for h in HOSTS}  # host side
        self.created: list[str] = []

    def create(self, bare: frozenset[int] = frozenset()) -> None:
        """Make the switch and the hosts; the hosts in ``bare`` get no address (yet)."""
        self._netns(self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        for h in HOSTS:
            host, port, nic = self.hosts[h], self.ports[h], self.nics[h]
            self._netns(host)
            ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", nic,
               "netns", host)
            ip("-n", self.switch, "link", "set", port, "master", "br0")
            ip("-n", self.switch, "link", "set", port, "up")
            # "brd +": iproute2 sets no broadcast address by itself, and a node
            # beacons only on interfaces that have one.
            if h not in bare:
                self.address(h)
            ip("-n", host, "link", "set", nic, "up")
            ip("-n", host, "link", "set", "lo", "up")

    def address(self, h: int) -> None:
        ip("-n", self.hosts[h], "addr", "add", f"198.18.93.{h}/24", "brd", "+",
           "dev", self.nics[h])

    def _netns(self, name: str) -> None:
        ip("netns", "add", name)
        self.created.append(name)

    def link(self, h: int, state: str) -> None:
        ip("-n", self.switch, "link", "set", self.ports[h], state)

    def remove(self) -> None:
        for name in reversed(self.created):
            ip("netns", "del", name, check=False)
        self.created.clear()


def namespaces_or_skip() -> None:
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (the ip command) is not installed")
    probe = f"l93t{secrets.token_hex(3)}pr"
    result = ip("netns", "add", probe, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot create network namespaces here: {result.stderr.strip()}")
    ip("netns", "del", probe, check=False)


def start_node(testbed: Testbed, h: int, db: Path, *extra: str) -> NodeProcess:
    """``lab93-node -b -i eN -a 198.18.93.N`` inside host namespace N.

    ``-v`` shows the status lines a script otherwise keeps to itself.
    """
    args = [
        "-b", "-i", testbed.nics[h], "-a", f"198.18.93.{h}", "--db", str(db),
        "-u", f"user{h}", "--json", "--timeout", "20", "-v", *extra,
    ]
    return NodeProcess(args, stdin="--listen" not in extra,
                       prefix=["ip", "netns", "exec", testbed.hosts[h]])


def contents(node: NodeProcess) -> list[str]:
    return [json.loads(line)["content"] for line in node.out if line.startswith("{")]


def test_three_hosts_chat_partition_heal_and_converge(tmp_path):
    """On each host, a reader (--listen) holds the room and a script pipes lines into
    it (piped input only sends: it neither fetches nor shows the room)."""
    namespaces_or_skip()
    testbed = Testbed()
    readers: dict[int, NodeProcess] = {}
    writers: dict[int, NodeProcess] = {}
    sent: dict[int, list[str]] = {h: [] for h in HOSTS}

    def say(h: int, *lines: str) -> None:
        for line in lines:
            writers[h].write(line)
        sent[h].extend(lines)

    def wait_holds_all_sent(h: int) -> None:
        others = {line for g in HOSTS if g != h for line in sent[g]}
        readers[h].wait_for(lambda p: others <= set(contents(p)), f"host {h} to hold {others}")

    try:
        testbed.create()
        for h in HOSTS:
            readers[h] = start_node(testbed, h, tmp_path / f"h{h}.db", "--listen")
        for node in readers.values():
            node.wait_err("2 peers: user")
        for h in HOSTS:
            writers[h] = start_node(testbed, h, tmp_path / f"w{h}.db")

        for h in HOSTS:
            say(h, f"h{h} hello", f"h{h} how is everyone")
        for h in HOSTS:
            wait_holds_all_sent(h)

        testbed.link(3, "down")
        cut = time.monotonic()
        for h in (1, 2):
            # Silence (5 intervals) usually; "connection lost" when a send to host 3
            # failed first (no ARP answer: host unreachable). Either way: noticed.
            readers[h].wait_err("user3 is gone (")
        expired = time.monotonic() - cut
        say(1, "h1 during the partition", "h1 still cut off?")
        say(2, "h2 during the partition")
        say(3, "h3 alone 1", "h3 alone 2", "h3 alone 3")
        readers[2].wait_for(lambda p: "h1 still cut off?" in contents(p), "h1's partition lines")

        testbed.link(3, "up")
        healed = time.monotonic()
        for h in HOSTS:
            wait_holds_all_sent(h)
        converged = time.monotonic() - healed
        print(f"partition noticed in {expired:.1f} s; converged {converged:.2f} s after healing")

        for writer in writers.values():
            writer.close_stdin()  # end of input: each waits until all its lines are accepted
        for writer in writers.values():
            assert writer.finish(30) == 0, writer.err[-5:]
            assert writer.out == [], "a script that pipes lines in shows nothing of the room"
        for h, reader in readers.items():
            shown = contents(reader)
            assert len(shown) == len(set(shown)), f"host {h} showed a message twice"

        everything = sorted(line for lines in sent.values() for line in lines)
        ids = None
        for h in HOSTS:
            reader = readers[h]
            reader.signal()
            history = subprocess.run(
                [sys.executable, "-m", "lab93zmq", "--history", "--json",
                 "--db", str(tmp_path / f"h{h}.db")],
                capture_output=True, text=True, timeout=WAIT,
            )
            assert history.returncode == 0, history.stderr
            messages = [json.loads(line) for line in history.stdout.splitlines()]
            assert sorted(m["content"] for m in messages) == everything
            held = sorted(m["id"] for m in messages)
            assert len(held) == len(set(held)), f"host {h} holds a message twice"
            assert ids is None or held == ids
            ids = held
    finally:
        for node in [*readers.values(), *writers.values()]:
            node.kill()
        testbed.remove()
    listed = ip("netns", "list").stdout
    assert not any(name in listed for name in [testbed.switch, *testbed.hosts.values()])


def test_an_address_added_while_a_node_runs_is_beaconed_on_within_a_few_intervals(tmp_path):
    """Host 2's interface has no address when its node starts (it beacons on lo only);
    once the address is added, the node beacons there and host 1 links to it."""
    namespaces_or_skip()
    testbed = Testbed()
    nodes: list[NodeProcess] = []
    try:
        testbed.create(bare=frozenset({2}))
        one = start_node(testbed, 1, tmp_path / "h1.db", "--listen")
        nodes.append(one)
        two = NodeProcess(
            ["-b", "-i", f"lo,{testbed.nics[2]}", "--db", str(tmp_path / "h2.db"), "-u", "user2",
             "--json", "--listen", "-v"],
            stdin=False, prefix=["ip", "netns", "exec", testbed.hosts[2]])
        nodes.append(two)
        two.wait_err(f"{testbed.nics[2]!r} has no IPv4 address")  # it started all the same
        two.wait_err("no broadcast peers heard yet on lo")
        testbed.address(2)
        added = time.monotonic()
        one.wait_err("1 peer: user2")
        two.wait_err("1 peer: user1")
        linked = time.monotonic() - added
        print(f"linked {linked:.2f} s after the address was added")
        assert linked < 5.0  # the interfaces are read every interval (1 s): a few of them
        writer = start_node(testbed, 1, tmp_path / "w1.db")
        nodes.append(writer)
        writer.write("over the new address")
        two.wait_for(lambda p: "over the new address" in contents(p), "the line on host 2")
        writer.close_stdin()
        assert writer.finish(30) == 0, writer.err[-5:]
    finally:
        for node in nodes:
            node.kill()
        testbed.remove()


def test_the_testbed_names_fit_linux_limits():
    testbed = Testbed()
    for name in [*testbed.ports.values(), *testbed.nics.values()]:
        assert len(name) <= 15
    assert len({testbed.switch, *testbed.hosts.values()}) == 4
    assert testbed.switch.startswith("l93t")


# -- rooms ---------------------------------------------------------------------------


PIPE_NODE = str(Path(__file__).parent / "pipe_node.py")
ROOMS = {1: ("ops", "dev"), 2: ("ops",), 3: ("ops", "dev")}  # host 2 is never in #dev


def start_pipe_node(testbed: Testbed, h: int, db: Path) -> NodeProcess:
    """tests/pipe_node.py in host namespace N: a broadcast node in ROOMS[h], posts on stdin."""
    settings = {
        "user": f"user{h}", "db": str(db), "interface": testbed.nics[h],
        "address": f"198.18.93.{h}", "beacon_port": 5190, "rooms": list(ROOMS[h]),
    }
    return NodeProcess([json.dumps(settings)], stdin=True, program=[PIPE_NODE],
                       prefix=["ip", "netns", "exec", testbed.hosts[h]])


def events(node: NodeProcess, kind: str) -> list[dict]:
    return [e["body"] for e in map(json.loads, node.out) if e["kind"] == kind]


def arrived(node: NodeProcess) -> list[tuple[str, str]]:
    return [(m["room"], m["content"]) for body in events(node, "incoming")
            for m in body["messages"]]


def test_three_hosts_in_two_rooms_partition_heal_and_hold_exactly_their_rooms(tmp_path):
    namespaces_or_skip()
    testbed = Testbed()
    nodes: dict[int, NodeProcess] = {}
    sent: list[tuple[int, str, str]] = []  # (host, room, text)

    def say(h: int, room: str, text: str) -> None:
        nodes[h].write(json.dumps({"post": text, "room": room}))
        sent.append((h, room, text))

    def expected(h: int) -> list[tuple[str, str]]:
        return sorted((room, text) for g, room, text in sent if room in ROOMS[h] and g != h)

    def wait_holds_its_rooms(h: int) -> None:
        try:
            nodes[h].wait_for(lambda p: set(expected(h)) <= set(arrived(p)),
                              f"host {h} to hold its rooms' messages", timeout=30)
        except AssertionError:
            missing = set(expected(h)) - set(arrived(nodes[h]))
            raise AssertionError(f"host {h} lacks {sorted(missing)}") from None

    try:
        testbed.create()
        for h in HOSTS:
            nodes[h] = start_pipe_node(testbed, h, tmp_path / f"h{h}.db")
        for node in nodes.values():
            node.wait_for(lambda p: any(s["detail"].startswith("2 peers")
                                        for s in events(p, "status")), "2 peers")
        for h in HOSTS:
            for room in ROOMS[h]:
                say(h, room, f"h{h} hello {room}")
        for h in HOSTS:
            wait_holds_its_rooms(h)

        testbed.link(3, "down")
        nodes[3].wait_for(lambda p: any("left" in s["detail"] for s in events(p, "status")),
                          "host 3 alone")
        for h in (1, 2):
            nodes[h].wait_for(lambda p: any("user3 is gone (" in n["text"]
                                            for n in events(p, "notice")), "user3 gone")
        for n in range(3):
            say(1, "ops", f"h1 ops during the partition {n}")
            say(1, "dev", f"h1 dev during the partition {n}")
            say(2, "ops", f"h2 ops during the partition {n}")
            say(3, "ops", f"h3 ops alone {n}")
            say(3, "dev", f"h3 dev alone {n}")
        nodes[2].wait_for(lambda p: ("ops", "h1 ops during the partition 2") in arrived(p),
                          "h1's partition lines at h2")
        testbed.link(3, "up")
        healed = time.monotonic()
        for h in HOSTS:
            wait_holds_its_rooms(h)
        print(f"converged {time.monotonic() - healed:.2f} s after healing")
        for h, node in nodes.items():
            shown = arrived(node)
            assert len(shown) == len(set(shown)), f"host {h} showed a message twice"
            assert all(room in ROOMS[h] for room, _ in shown), f"host {h} got a foreign room"
    finally:
        for node in nodes.values():
            node.close_stdin()  # end of input: the node stops cleanly
        for node in nodes.values():
            try:
                node.finish(15)
            except subprocess.TimeoutExpired:
                node.kill()
        testbed.remove()

    for h in HOSTS:
        with Inbox(tmp_path / f"h{h}.db") as inbox:
            held = [(m.room, m.content) for m in inbox.history()]
        mine = sorted((room, text) for g, room, text in sent if room in ROOMS[h])
        assert sorted(held) == mine, f"host {h} holds exactly its rooms' messages"
        assert len(held) == len(set(held)), f"host {h} holds a message twice"
