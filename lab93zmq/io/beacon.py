"""The UDP edge of discovery: beacon datagrams in and out, nothing else.

No thread of its own: the owning actor registers ``filenos()`` in its one
``zmq.Poller`` (which polls plain sockets by file descriptor), calls
``receive(fd)`` when one is readable and ``send(packet)`` when its
``BeaconSchedule`` says so. Decoding and every decision live in
``presence.py``.

Per target interface there are two sockets:

* a listener bound to the interface's *broadcast* address and the beacon
  port, so it hears only broadcasts on that interface (with ``-i lo`` only
  127.255.255.255) - not unicast, not other subnets. ``SO_REUSEADDR`` and
  ``SO_REUSEPORT`` let several nodes on one host share the port; Linux hands
  every broadcast datagram to each of them.
* a sender with ``SO_BROADCAST`` bound to the interface's own address on an
  ephemeral port, so peers see that address as the source (``recvfrom``),
  which is the address they connect to.

A flood cannot cost the owner more than a trickle: each source socket
(``ip, port``) may deliver ``FLOOD_RATE`` datagrams a second in bursts of
``FLOOD_BURST`` (``limits.RateLimiter``); the rest are read and dropped here,
counted in ``rate_limited`` and logged once per cut-off period, before any
decoding. Nodes sharing one host (loopback) each send from their own port, so
each has its own allowance.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Sequence

from ..core.errors import ConfigError
from ..core.limits import RateLimiter
from ..core.presence import MAX_BEACON_SIZE
from .interfaces import BeaconTarget

log = logging.getLogger(__name__)

# One byte more than the largest valid beacon: a longer datagram is truncated
# to this size and then fails to decode, as it should.
RECV_SIZE = MAX_BEACON_SIZE + 1
# Datagrams taken per receive() call, so a flood cannot starve the actor's
# other sockets; the poller is level-triggered and calls again.
MAX_DRAIN = 64
# Datagrams read per receive() call, dropped ones included: a flood is
# drained a few times faster than it is delivered, and the call stays bounded.
MAX_READ = 4 * MAX_DRAIN
# An honest node sends one periodic beacon and at most ten answers per
# interval: 11 a second at the default interval, 55 at the 0.2 s the live
# tests use. 200 a second in bursts of 400 leaves a wide margin for that (and
# for --scan probes) while a single flooding socket is cut to a trickle.
FLOOD_RATE = 200.0
FLOOD_BURST = 400.0
# Sources tracked at once; past that the least recently heard is forgotten.
FLOOD_SOURCES = 4096


class BeaconSocketError(ConfigError):
    """The UDP beacon port could not be opened."""


class BeaconSocket:
    """Listening and sending UDP sockets for each beacon target, polled by the owner."""

    def __init__(
        self,
        targets: Sequence[BeaconTarget],
        port: int,
        *,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < port <= 0xFFFF:
            raise ValueError(f"beacon port {port} is not a port number")
        self.port = port
        self.targets = list(targets)
        self._listeners: dict[int, tuple[socket.socket, BeaconTarget]] = {}
        self._senders: list[tuple[socket.socket, BeaconTarget]] = []
        self._send_failing: set[str] = set()
        if limiter is None:
            limiter = RateLimiter(FLOOD_RATE, FLOOD_BURST, FLOOD_SOURCES)
        self.limiter = limiter  # (an empty RateLimiter is falsy: it has a length)
        self._clock = clock
        self.rate_limited = 0  # datagrams dropped because their source sent too many
        try:
            for target in self.targets:
                self._add(target)
        except BaseException:
            self.close()
            raise

    def _add(self, target: BeaconTarget) -> int:
        """Open the listener and the sender of one target; the listener's descriptor."""
        listener = self._open(target, "listen for", (target.broadcast, self.port))
        try:
            sender = self._open(target, "send", (target.address, 0), broadcast=True)
        except BaseException:
            listener.close()
            raise
        self._listeners[listener.fileno()] = (listener, target)
        self._senders.append((sender, target))
        return listener.fileno()

    def update(self, targets: Sequence[BeaconTarget]) -> tuple[list[int], list[int]]:
        """Beacon on ``targets`` from now on (the interfaces as they are now): open what is
        new, close what is gone. Returns the listening descriptors (added, removed) for the
        owner's poller. A target that cannot be opened is logged and left out (it is
        tried again at the next update)."""
        wanted = {target: None for target in targets}
        removed = [fd for fd, (_, target) in self._listeners.items() if target not in wanted]
        for fd in removed:
            sock, target = self._listeners.pop(fd)
            sock.close()
            log.info("no longer beaconing on %s (%s)", target.name, target.address)
        for sock, target in [pair for pair in self._senders if pair[1] not in wanted]:
            sock.close()
            self._senders.remove((sock, target))
        added: list[int] = []
        held = {target for _, target in self._listeners.values()}
        for target in wanted:
            if target in held:
                continue
            try:
                added.append(self._add(target))
            except BeaconSocketError as error:
                log.warning("%s", error)
                continue
            log.info("beaconing on %s (%s) from now on", target.name, target.address)
        self.targets = [target for _, target in self._listeners.values()]
        return added, removed

    def _open(
        self, target: BeaconTarget, verb: str, where: tuple[str, int], broadcast: bool = False
    ) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if broadcast:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            else:
                # Only the listener shares its port; a shared *ephemeral*
                # sender port could be handed to two sockets at once.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if hasattr(socket, "SO_REUSEPORT"):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.setblocking(False)
            sock.bind(where)
        except OSError as exc:
            sock.close()
            raise BeaconSocketError(
                f"Cannot {verb} beacons on {target.name} ({where[0]}:{where[1]}): "
                f"{exc.strerror or exc}."
            ) from exc
        return sock

    def filenos(self) -> list[int]:
        """The listening descriptors, to register with the poller for reading."""
        return list(self._listeners)

    def send(self, packet: bytes) -> int:
        """Broadcast one datagram on every target; return how many sends succeeded.

        A failed send is logged (once per outage, then at debug level) and
        never raised: a node with a flaky interface keeps serving the others.
        """
        sent = 0
        for sock, target in self._senders:
            try:
                sock.sendto(packet, (target.broadcast, self.port))
            except OSError as exc:
                level = logging.DEBUG if target.name in self._send_failing else logging.WARNING
                log.log(
                    level, "beacon send on %s to %s failed: %s", target.name, target.broadcast, exc
                )
                self._send_failing.add(target.name)
            else:
                sent += 1
                if target.name in self._send_failing:
                    self._send_failing.discard(target.name)
                    log.info("beacon send on %s works again", target.name)
        return sent

    def receive(self, fileno: int, now: float | None = None) -> list[tuple[bytes, str]]:
        """Read waiting datagrams (up to MAX_DRAIN kept) as ``(data, source ip)``; never blocks.

        Datagrams from a source over its rate are dropped here (see the module
        docstring). ``now`` is monotonic seconds; by default the socket's clock.
        """
        if fileno not in self._listeners:
            return []  # closed by ``update`` since the poll
        sock, target = self._listeners[fileno]
        if now is None:
            now = self._clock()
        received: list[tuple[bytes, str]] = []
        for _ in range(MAX_READ):
            if len(received) >= MAX_DRAIN:
                break
            try:
                data, source = sock.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. a queued ICMP error; the socket stays usable
                log.debug("beacon receive on %s: %s", target.name, exc)
                break
            address, port = source[0], source[1]
            verdict = self.limiter.check((address, port), now)
            if not verdict.allowed:
                self.rate_limited += 1
                if verdict.streak == 1:
                    log.warning(
                        "beacon flood from %s:%d on %s: dropping what it sends beyond %g a second",
                        address, port, target.name, self.limiter.rate,
                    )
                continue
            if verdict.streak:
                log.info(
                    "beacons from %s:%d within the rate again; %d were dropped",
                    address, port, verdict.streak,
                )
            received.append((data, address))
        return received

    def close(self) -> None:
        """Close every socket; safe to call twice."""
        for sock, _target in list(self._listeners.values()) + self._senders:
            sock.close()
        self._listeners.clear()
        self._senders.clear()

    def __enter__(self) -> BeaconSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
