"""/away on real sockets (loopback), in each mode, through the Python API: the away text
reaches the others' /who (broadcast: with our ROOMS; repeater: kept by the server), and
a bad one raises the sentence."""

from __future__ import annotations

import time

import pytest

import lab93zmq

pytestmark = pytest.mark.timeout(60)


def who_until(node, wanted, seconds: float = 15.0) -> dict[str, str | None]:
    """Ask ``node``'s /who until its answer is ``wanted`` (each ask is a round trip to its
    actor; bounded by ``seconds``); the last answer."""
    deadline = time.monotonic() + seconds
    answer = node.who_away()
    while answer != wanted and time.monotonic() < deadline:
        answer = node.who_away()
    return answer


def met(node, other: str) -> None:
    """Wait for the Status naming ``other`` (the two nodes see each other)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        event = node.next_event(timeout=max(0.0, deadline - time.monotonic()))
        if isinstance(event, lab93zmq.Status) and other in event.detail:
            return
    raise AssertionError(f"{node.user} never met {other}")


def connected(node) -> None:
    """Wait for the Status that says ``node`` is connected to its repeater."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        event = node.next_event(timeout=max(0.0, deadline - time.monotonic()))
        if isinstance(event, lab93zmq.Status) and event.connected:
            return
    raise AssertionError(f"{node.user} never connected")


def test_broadcast_away_reaches_the_peers_who_and_comes_back(tmp_path, beacon_port):
    def node(user):
        return lab93zmq.Node.broadcast(user=user, interfaces=["lo"], beacon_port=beacon_port,
                                       db=tmp_path / f"{user}.db", port=0)

    with node("alice") as alice, node("zed") as zed:
        met(alice, "zed")
        met(zed, "alice")
        zed.set_away("out to lunch")
        assert who_until(alice, {"alice": None, "zed": "out to lunch"}) == {
            "alice": None, "zed": "out to lunch"}
        assert zed.who_away() == {"alice": None, "zed": "out to lunch"}  # itself too
        assert alice.who() == ["alice", "zed"]  # who() is unchanged: names only
        zed.set_away(None)
        assert who_until(alice, {"alice": None, "zed": None}) == {"alice": None, "zed": None}
        with pytest.raises(lab93zmq.UsageError, match="at most 200 characters"):
            zed.set_away("x" * 201)


def test_repeater_away_is_kept_by_the_server_per_user(tmp_path, beacon_port):
    with lab93zmq.Server(address="127.0.0.1", port=0, interfaces=["lo"],
                         beacon_port=beacon_port, db=tmp_path / "server.db") as server:
        def client(user):
            return lab93zmq.Node.repeater(
                address="127.0.0.1", port=server.router_port, user=user, interfaces=["lo"],
                beacon_port=beacon_port, db=tmp_path / f"{user}.db")

        with client("alice") as alice, client("zed") as zed:
            connected(alice)
            connected(zed)
            assert zed.who_away() == {"alice": None, "zed": None}
            zed.set_away("gone fishing")
            # zed's WHO goes after its AWAY on one connection: once zed's answer shows
            # it, the server holds it, and anyone's later WHO shows it.
            assert zed.who_away() == {"alice": None, "zed": "gone fishing"}
            assert alice.who_away() == {"alice": None, "zed": "gone fishing"}
            zed.set_away("")  # blank: back
            assert zed.who_away() == {"alice": None, "zed": None}
            assert alice.who_away() == {"alice": None, "zed": None}
