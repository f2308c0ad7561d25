"""Our actors driven in-process through their pipes, as the tests of several files do."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime, timezone

import zmq

from lab93zmq.core.authoring import Draft
from lab93zmq.core.message import make_id
from lab93zmq.io.actor import ActorHandle, PipeKind, PipeMessage

WAIT = 15.0  # an upper bound; every wait ends as soon as its condition holds


class LiveActor:
    """One actor (a broadcast node, a repeater server or client) and every event it
    sent to its front end."""

    def __init__(self, actor, ctx: zmq.Context | None = None) -> None:
        self.actor = actor
        self.handle = ActorHandle(actor, ctx)
        self.events: list[PipeMessage] = []
        self.running = False

    def start(self) -> LiveActor:
        self.handle.start()
        self.running = True
        return self

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.handle.stop(on_event=self.events.append)

    def pump(self) -> None:
        """Take every event waiting now (never blocks)."""
        while self.running and (event := self.handle.poll(0)) is not None:
            self.events.append(event)

    def post(self, content: str, to: str | None = None, room: str | None = None) -> str:
        sent_at = datetime.now(timezone.utc)
        post = Draft(make_id(sent_at, os.urandom(10)), content, None, to, sent_at, room)
        self.handle.request(PipeKind.POST, **post.body())
        return post.id

    def of(self, kind: PipeKind) -> list[dict]:
        return [e.body for e in self.events if e.kind is kind]

    def accepted(self) -> set[str]:
        return {i for b in self.of(PipeKind.ACCEPTED) for i in b["ids"]}

    def notices(self) -> list[str]:
        return [b["text"] for b in self.of(PipeKind.NOTICE)]


def wait_for(
    actors: list[LiveActor],
    done: Callable[[], bool],
    what: str = "a condition",
    timeout: float = WAIT,
) -> float:
    """Pump every actor's events until ``done()``; return the seconds it took."""
    start = time.monotonic()
    poller = zmq.Poller()
    for live in actors:
        if live.running:
            poller.register(live.handle.pipe, zmq.POLLIN)
    while True:
        for live in actors:
            live.pump()
        if done():
            return time.monotonic() - start
        left = start + timeout - time.monotonic()
        assert left > 0, f"timed out waiting for {what}"
        poller.poll(min(left, 0.05) * 1000)
