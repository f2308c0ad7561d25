"""Repeater actors on 127.0.0.1 for the live tests, driven through their pipes.

A plain module (not a test module, not conftest): test_repeater_live.py and
test_repeater_secure.py import it by name. Short heartbeats, and every wait
is on an event with a deadline - never a sleep.
"""

from __future__ import annotations

import time
from pathlib import Path

from live import WAIT, LiveActor

from lab93zmq.io.actor import PipeKind, PipeMessage
from lab93zmq.io.config import NodeConfig
from lab93zmq.io.repeater_client import ClientActor
from lab93zmq.io.repeater_server import ServerActor

FAST = {"heartbeat": 0.2}
CLIENT_FAST = {"heartbeat": 0.2, "dead_after": 0.8}


class Node(LiveActor):
    """An actor, started at once, plus everything it has said so far."""

    def __init__(self, actor) -> None:
        super().__init__(actor)
        self.taken: set[int] = set()
        self.start()

    def wait(self, predicate, timeout: float = WAIT, what: str = "an event") -> None:
        """Read events until ``predicate(self)`` holds; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.actor.name}: no {what} within {timeout} s")
            event = self.handle.poll(min(left, 0.1))
            if event is not None:
                self.events.append(event)

    def wait_kind(self, kind: PipeKind, timeout: float = WAIT, **match) -> PipeMessage:
        """The oldest matching event not yet returned by ``wait_kind`` (a queue)."""

        def first(node):
            for index, e in enumerate(node.events):
                if index in node.taken or e.kind is not kind:
                    continue
                if all(e.body.get(k) == v for k, v in match.items()):
                    return index
            return None

        self.wait(lambda node: first(node) is not None, timeout, kind.value)
        index = first(self)
        self.taken.add(index)
        return self.events[index]

    def incoming(self) -> list[str]:
        return [m["content"] for b in self.of(PipeKind.INCOMING) for m in b["messages"]]

    def statuses(self) -> list[bool]:
        return [b["connected"] for b in self.of(PipeKind.STATUS)]

    def stop(self, **body) -> None:
        """A clean stop; ``abrupt=True`` closes everything without a goodbye (a crash)."""
        if self.running and body:
            self.handle.request(PipeKind.STOP, **body)
        super().stop()


def start_server(nodes, tmp_path: Path, port: int = 0, db: str = "server.db", **options) -> Node:
    config = NodeConfig(
        user="server", db_path=tmp_path / db, address="127.0.0.1", port=port, beacon=False
    )
    node = Node(ServerActor(config, **{**FAST, **options}))
    nodes.append(node)
    return node


def start_client(
    nodes,
    tmp_path: Path,
    user: str,
    port: int,
    db: str | None = None,
    rooms: tuple[str, ...] = ("general",),
    listen: bool = True,
    **opts,
) -> Node:
    config = NodeConfig(
        user=user,
        db_path=tmp_path / f"{db or user}.db",
        address="127.0.0.1",
        port=port,
        beacon=False,
        rooms=rooms,
        listen=listen,
    )
    node = Node(ClientActor(config, **{**CLIENT_FAST, **opts}))
    nodes.append(node)
    return node


def connected(node: Node) -> Node:
    node.wait_kind(PipeKind.STATUS, connected=True)
    return node


def all_accepted(node: Node, ids) -> None:
    node.wait(lambda n: set(ids) <= n.accepted(), what="ACCEPTED for every post")


def got(node: Node, count: int) -> None:
    node.wait(lambda n: len(n.incoming()) >= count, what=f"{count} INCOMING")
