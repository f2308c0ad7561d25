"""Broadcast actors run in-process for the live tests: loopback only, waits on events.

A plain module (not a test module): test_broadcast_live.py and
test_broadcast_secure_live.py import it by name. Every node binds 127.0.0.1
and beacons only to 127.255.255.255 (``-i lo``) on a beacon port chosen per
cluster.
"""

from __future__ import annotations

import socket
from dataclasses import replace

import zmq
from live import LiveActor, wait_for

from lab93zmq.core.broadcast.actions import SendBeacon, SendToPeer
from lab93zmq.core.message import Message
from lab93zmq.core.presence import Beacon, BeaconKind
from lab93zmq.io import security
from lab93zmq.io.actor import PipeKind
from lab93zmq.io.broadcast_actor import BroadcastActor
from lab93zmq.io.config import NodeConfig, SecureConfig

INTERVAL = 0.2


class Live(LiveActor):
    """One broadcast actor and every event it sent to its front end."""

    def __init__(self, config: NodeConfig, ctx: zmq.Context | None = None) -> None:
        super().__init__(BroadcastActor(config), ctx)
        self.config = config
        self.user = config.user
        self.node = self.actor

    def incoming(self) -> list[str]:
        return [
            Message.from_wire_dict(m).content
            for b in self.of(PipeKind.INCOMING) for m in b["messages"]
        ]

    def connected_to(self, count: int) -> bool:
        statuses = self.of(PipeKind.STATUS)
        return bool(statuses) and statuses[-1]["connected"] and (
            statuses[-1]["detail"].startswith(f"{count} peer")
        )

    def request(self, kind: PipeKind, answer: PipeKind, **body) -> dict:
        """Ask the actor and wait for its answer: everything it did before is in ``events``."""
        asked = len(self.of(answer))
        self.handle.request(kind, **body)
        wait_for([self], lambda: len(self.of(answer)) > asked)
        return self.of(answer)[-1]

    def heard_since(self, node_id: str, moment: float) -> bool:
        """The actor took a beacon or a command from ``node_id`` after ``moment`` (its
        monotonic clock) and still has it as a live peer."""
        peer = self.node.session.peers.get(node_id)  # read across threads: a snapshot
        return peer is not None and peer.last_seen > moment

    def leave_with_only(self, kind: type) -> None:
        """At its stop, send only the BYEs (``SendToPeer``) or only the LEAVING beacon
        (``SendBeacon``): so a test sees what each does alone."""
        assert kind in (SendBeacon, SendToPeer)
        session = self.node.session
        stop = session.stop
        session.stop = lambda now: [o for o in stop(now) if isinstance(o, kind)]

    def die(self) -> None:
        """Stop as a killed process would: nothing said, sockets closed by the kernel."""
        self.node.session.stop = lambda now: []
        self.stop()


class Cluster:
    """Nodes on one beacon port; stopped at the end."""

    def __init__(self, tmp_path, beacon_port: int) -> None:
        self.tmp_path = tmp_path
        self.beacon_port = beacon_port  # the test's own (conftest's beacon_port)
        self.nodes: list[Live] = []

    def config(self, user: str, db: str | None = None, port: int = 0,
               rooms: tuple[str, ...] = ("general",), listen: bool = True) -> NodeConfig:
        return NodeConfig(
            user=user,
            db_path=self.tmp_path / f"{db or user}.db",
            address="127.0.0.1",
            port=port,
            interfaces=("lo",),
            beacon_port=self.beacon_port,
            beacon_interval=INTERVAL,
            rooms=rooms,
            listen=listen,
        )

    def start(self, user: str, db: str | None = None, port: int = 0,
              rooms: tuple[str, ...] = ("general",), listen: bool = True) -> Live:
        return self.add(Live(self.config(user, db, port, rooms, listen)))

    def add(self, live: Live) -> Live:
        self.nodes.append(live)
        return live.start()

    def close(self) -> None:
        for live in self.nodes:
            live.stop()


# -- secure mode ---------------------------------------------------------------------


class Keys:
    """Key pairs by name, and authorized-keys directories listing some of them."""

    def __init__(self, tmp_path) -> None:
        self.tmp_path = tmp_path
        self.pairs: dict[str, security.KeyPair] = {}

    def __getitem__(self, name: str) -> security.KeyPair:
        if name not in self.pairs:
            self.pairs[name] = security.generate_keypair(self.tmp_path / "keys" / name, name)
        return self.pairs[name]

    def trusts(self, owner: str, *names: str):
        directory = self.tmp_path / f"{owner}-authorized"
        directory.mkdir(exist_ok=True)
        for name in names:
            (directory / f"{name}.key").write_bytes(self[name].path.read_bytes())
        return directory

    def secure(self, owner: str, *trusted: str) -> SecureConfig:
        return SecureConfig(
            keys=self[owner],
            authorized_keys=self.trusts(owner, *trusted),
            known_servers=self.tmp_path / f"{owner}-known_servers",
        )


class Room(Cluster):
    """Secure and plain nodes on one beacon port; stopped at the end."""

    def __init__(self, tmp_path, beacon_port: int) -> None:
        super().__init__(tmp_path, beacon_port)
        self.keys = Keys(tmp_path)

    def start(self, user: str, *trusted: str, plain: bool = False, beacon_port=None) -> Live:
        secure = None if plain else self.keys.secure(user, *trusted)
        config = replace(
            self.config(user), secure=secure, beacon_port=beacon_port or self.beacon_port
        )
        return self.add(Live(config))


def beacon_to(port: int, beacon: Beacon, source: str = "127.0.0.1") -> None:
    """What anyone on the LAN can do: one UDP datagram to the beacon port (from
    ``source``, any address of 127.0.0.0/8)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        udp.bind((source, 0))
        udp.sendto(beacon.encode(), ("127.255.255.255", port))


def announce_of(live: Live, **changes) -> Beacon:
    """``live``'s own ANNOUNCE, with some fields changed."""
    fields = dict(
        kind=BeaconKind.ANNOUNCE, node_id=live.handle.node_id, mode="broadcast",
        router_port=live.node.router_port, pub_port=live.node.pub_port, user=live.user,
        key=live.config.secure.keys.public_raw if live.config.secure else b"",
    )
    fields.update(changes)
    return Beacon(**fields)
