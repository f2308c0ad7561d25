"""Shared fixtures: every test gets its own inbox directory, XDG_DATA_HOME and
XDG_CONFIG_HOME; hypothesis runs a fixed set of examples unless told to explore."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# The suite must pass or fail the same way on every run: by default hypothesis
# draws its examples from a fixed seed and keeps no database. To hunt for new
# failures, run with HYPOTHESIS_PROFILE=explore (random examples, remembered).
settings.register_profile("fixed", derandomize=True, database=None)
settings.register_profile("explore", max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fixed"))


@pytest.fixture(autouse=True)
def isolated_data_home(tmp_path, monkeypatch):
    """No test may touch the real ~/.local/share/lab93 or ~/.config/lab93."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "xdg"


@pytest.fixture
def beacon_port():
    """A beacon port of the test's own on loopback (see procs.reserved_beacon_port)."""
    from procs import reserved_beacon_port

    with reserved_beacon_port() as port:
        yield port


@pytest.fixture
def make_net(tmp_path):
    """Makes in-memory repeater nets (``memnet.Net``) with the server options a test
    chooses; every inbox of each is closed afterwards."""
    from memnet import Net

    made: list[Net] = []

    def make(**server_options) -> Net:
        made.append(Net(tmp_path, **server_options))
        return made[-1]

    yield make
    for net in made:
        net.close()


@pytest.fixture
def net(make_net):
    """An in-memory repeater net with the server's default options."""
    return make_net()


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of the module's own (tests/pg_server.py), removed after it;
    a module that uses it skips itself when ``pg_server.missing()`` says why."""
    from pg_server import PostgresServer

    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def inbox(tmp_path):
    """Our own inbox (node id ``factories.OURS``), for the tests of one machine."""
    from factories import OURS

    from lab93zmq.io.store import Inbox

    box = Inbox(tmp_path / "ours.db", new_node_id=bytes.fromhex(OURS))
    yield box
    box.close()


@pytest.fixture
def lan(tmp_path):
    """Broadcast sessions on an in-memory LAN (``memnet.BroadcastLan``), beacons every
    second."""
    from memnet import BroadcastLan

    network = BroadcastLan(tmp_path, interval=1.0)
    yield network
    network.close()


@pytest.fixture
def cluster(tmp_path, beacon_port):
    """Live broadcast actors on loopback (``broadcast_live.Cluster``), stopped afterwards."""
    from broadcast_live import Cluster

    nodes = Cluster(tmp_path, beacon_port)
    yield nodes
    nodes.close()


@pytest.fixture
def room(tmp_path, beacon_port):
    """Secure and plain live broadcast actors on one beacon port (``broadcast_live.Room``),
    stopped afterwards."""
    from broadcast_live import Room

    nodes = Room(tmp_path, beacon_port)
    yield nodes
    nodes.close()


@pytest.fixture
def server(tmp_path, beacon_port):
    """A repeater server through the Python API (``lab93zmq.Server``) on loopback."""
    import lab93zmq

    with lab93zmq.Server(address="127.0.0.1", port=0, interfaces=["lo"],
                         beacon_port=beacon_port, db=tmp_path / "server.db") as running:
        yield running


@pytest.fixture
def nodes():
    """The actors a test starts (anything with ``stop()``), stopped last first afterwards."""
    started: list = []
    yield started
    for node in reversed(started):
        node.stop()
