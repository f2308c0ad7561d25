"""Broadcast actors run in-process for the live tests: loopback only, waits on events.

A plain module (not a test module): test_broadcast_live.py and
test_broadcast_secure_live.py import it by name. Every node binds 127.0.0.1
and beacons only to 127.255.255.255 (``-i lo``) on a beacon port chosen per
cluster.
"""

from __future__ import annotations

import zmq
from live import LiveActor, wait_for
from procs import free_udp_port

from lab93zmq.core.broadcast.actions import SendBeacon, SendToPeer
from lab93zmq.core.message import Message
from lab93zmq.io.actor import PipeKind
from lab93zmq.io.broadcast_actor import BroadcastActor
from lab93zmq.io.config import NodeConfig

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

    def __init__(self, tmp_path) -> None:
        self.tmp_path = tmp_path
        self.beacon_port = free_udp_port()
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
