"""Handshake reports, for every actor: a socket monitor's events -> sentences.

libzmq tells a socket monitor how each handshake ended; ``HandshakeMonitor``
reads those events from the monitor (an inproc PAIR it owns), feeds them to
``security.HandshakeWatch`` (which decides what is worth reporting), and
returns the sentences, each logged once here. What an actor does with them
(a notice, a refused server, the end) is its core's business.
"""

from __future__ import annotations

import logging

import zmq

from . import security
from .sockets import drain

log = logging.getLogger(__name__)


class HandshakeMonitor:
    """The monitor of one socket, and what its failed handshakes mean.

    ``events``: what the monitor reports (by default only how handshakes end);
    ``side``: "client" (the socket connects) or "server" (it accepts).
    """

    def __init__(
        self,
        sock: zmq.Socket,
        *,
        secure: bool,
        side: str,
        where: str,
        events: int = security.HANDSHAKE_EVENTS,
    ) -> None:
        self.watched = sock
        self.socket = sock.get_monitor_socket(events)
        self.socket.linger = 0
        self.watch = security.HandshakeWatch(we_are_secure=secure, side=side)
        self.where = where

    def events(self) -> list[tuple[int, int]]:
        """Every (event, value) waiting on the monitor, never waiting."""
        found = []
        for received in drain(self.socket):
            event = security.monitor_event(received.frames)
            if event is not None:
                found.append(event)
        return found

    def problem(self, event: int, value: int) -> str | None:
        """The sentence for one event when it is worth reporting (logged), else None."""
        problem = self.watch.feed(event, value)
        if problem is not None:
            # Told by the actor's core as a notice or an error: -v need not say it twice.
            log.debug("%s: %s", self.where, problem)
        return problem

    def problems(self) -> list[str]:
        """Every failure waiting on the monitor, each as its sentence."""
        found = (self.problem(event, value) for event, value in self.events())
        return [problem for problem in found if problem is not None]

    def close(self) -> None:
        try:
            self.watched.disable_monitor()
        except zmq.ZMQError:
            pass  # the socket is closed already
        self.socket.close(linger=0)
