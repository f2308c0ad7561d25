"""The pieces of a service of several servers and of a failing store, without a network."""

from __future__ import annotations

import pytest
from factories import make_message

from lab93zmq.api.options import node_config
from lab93zmq.core.errors import StoreUnavailable, UsageError
from lab93zmq.core.presence import Beacon, BeaconError, BeaconKind
from lab93zmq.core.repeater.chooser import GivenServer, ServerChooser, UseServer
from lab93zmq.core.repeater.commit import GroupCommit, Post
from lab93zmq.io.store import Inbox

SERVICE = "5" * 32


def test_a_repeaters_beacon_carries_its_service_id_with_or_without_a_key():
    for key in (b"", b"k" * 32):
        beacon = Beacon(BeaconKind.ANNOUNCE, "1" * 32, "repeater", 5190, 40000, "srv", key, SERVICE)
        assert Beacon.decode(beacon.encode()) == beacon
    with pytest.raises(BeaconError):
        Beacon(BeaconKind.ANNOUNCE, "1" * 32, "broadcast", 5190, 40000, "node", b"", SERVICE)


def test_a_client_given_several_servers_moves_to_the_next_and_round():
    given = GivenServer("h1", 5190, frozenset(), (("h2", 5191),))
    chooser = ServerChooser("alice", given, None)
    assert chooser.start() == [UseServer("tcp://h1:5190", None)]
    assert chooser.can_move
    assert [c for c in chooser.server_lost(None) if isinstance(c, UseServer)] == [
        UseServer("tcp://h2:5191", None)
    ]
    assert UseServer("tcp://h1:5190", None) in chooser.server_lost(None)
    alone = ServerChooser("alice", GivenServer("h1", 5190, frozenset()), None)
    alone.start()
    assert not alone.can_move and alone.server_lost(None) == []


def test_dash_a_names_several_servers_only_for_a_client(tmp_path):
    config = node_config("client", address=["h1,h2:5191", "[::1]:7"], db=tmp_path / "a.db")
    assert config.servers == (("h1", 5190), ("h2", 5191), ("::1", 7))
    assert (config.address, config.port) == ("h1", 5190)
    with pytest.raises(UsageError, match="only for a client"):
        node_config("server", address=["h1", "h2"], db=tmp_path / "a.db")
    with pytest.raises(UsageError, match="repeater server's store"):
        node_config("client", db="postgresql://u@h:5432/d")


class FailingInbox(Inbox):
    """An inbox whose disk is full for as long as ``full`` says."""

    full = False

    def lock_order(self, server_id):
        if self.full:
            raise StoreUnavailable("the disk of the inbox is full")
        return super().lock_order(server_id)


def test_a_full_store_refuses_a_batch_for_now_and_nothing_is_acknowledged(tmp_path):
    inbox = FailingInbox(tmp_path / "server.db")
    commit = GroupCommit(inbox)
    inbox.full = True
    commit.add(Post(b"s1", make_message(1), None))
    flushed = commit.flush({})
    assert flushed.fault is not None and flushed.stored == 0 and commit.head == 0
    (reply,) = flushed.outputs
    header = reply.command.header
    assert reply.command.name == "ERROR" and header["code"] == "unavailable"
    assert header["ids"] == [make_message(1).id] and header["retry"] > 0
    inbox.full = False
    commit.add(Post(b"s1", make_message(1), None))
    flushed = commit.flush({})
    assert flushed.fault is None and flushed.stored == 1 and commit.head == 1
    inbox.close()
