"""The IRC face on a cluster: two servers on one PostgreSQL database, an IRC face on each.

An IRC user on one server and one on the other are in one room, with a lab93
client: every line reaches everyone exactly once (what the other server
stored comes through this one's follow), and the two servers author their
IRC users' posts as themselves (each its instance id), so their numbers never
clash. Skipped with one line where no PostgreSQL server can be run.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from ircclients import IRCClients
from pg_server import missing
from repeater_nodes import FAST, Node, connected

from lab93zmq.io.actor import PipeKind
from lab93zmq.io.config import IRCSettings, NodeConfig
from lab93zmq.io.repeater_client import ClientActor
from lab93zmq.io.repeater_server import ServerActor

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(missing() is not None, reason=missing() or ""),
]


@pytest.fixture
def clients():
    made = IRCClients()
    yield made
    made.close()


def test_irc_users_on_two_servers_of_one_service_are_one_room(nodes, postgres, tmp_path,
                                                               clients):
    url = postgres.new_database()
    servers = []
    for name in ("one", "two"):
        config = NodeConfig(user=name, db_path=tmp_path / f"{name}.unused", db_url=url,
                            address="127.0.0.1", port=0, beacon=False, irc=IRCSettings(0))
        servers.append(Node(ServerActor(config, **FAST)))
        nodes.append(servers[-1])
    one, two = servers
    alice = connected(Node(ClientActor(NodeConfig(
        user="alice", db_path=tmp_path / "alice.db", address="127.0.0.1",
        port=one.actor.router_port, beacon=False, rooms=("ops",)))))
    nodes.append(alice)
    carol = clients.connect(one.actor.irc_port, "carol")
    dave = clients.connect(two.actor.irc_port, "dave")
    carol.join("#ops")
    dave.join("#ops")
    for n in range(20):  # both servers number IRC posts at the same time
        carol.send("#ops", f"c{n}")
        dave.send("#ops", f"d{n}")
    every = {("carol", f"c{n}") for n in range(20)} | {("dave", f"d{n}") for n in range(20)}
    for user in (carol, dave):
        clients.wait(lambda user=user: set(user.messages("#ops")) >= every,
                     f"{user.nick}'s 40 lines")
    deadline = time.monotonic() + 15
    while len(alice.incoming()) < 40:
        assert time.monotonic() < deadline, alice.incoming()
        event = alice.handle.poll(0.05)
        if event is not None:
            alice.events.append(event)
        clients.pump(0)
    assert Counter(alice.incoming()) == Counter(text for _, text in every)
    got = [m for body in alice.of(PipeKind.INCOMING) for m in body["messages"]]
    origins = {m["from"]: m["origin"] for m in got}
    assert origins["carol"] != origins["dave"]  # each server authors as its own instance
    for user in (carol, dave):
        counts = Counter(user.messages("#ops"))
        assert set(counts) == every and set(counts.values()) == {1}, counts
