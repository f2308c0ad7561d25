"""Small helpers every I/O shell uses on its ZeroMQ sockets: bind, connect, tune, drain.

* ``tune``: every socket facing the network gets ``LINGER=0`` (closing never
  waits on a peer), ``MAXMSGSIZE`` (a peer sending a frame bigger than any
  valid one is cut off by ZeroMQ before a byte of it is buffered), and, where
  asked, high-water marks and ``SNDTIMEO``.
* ``drain``: what waits on a socket, bounded, so no socket starves the
  others in a poll loop (the poller is level-triggered and calls again).
* ``poll_timeout``: a poll loop sleeps until its core's next deadline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import zmq

from ..core.endpoints import port_of, tcp
from ..core.errors import ConfigError
from ..core.wire import MAX_FRAME_BYTES

DRAIN = 1000  # messages read from one socket per loop turn
DRAIN_FRAMES = 100_000  # and at most about this many frames (a POST carries up to 100)


def bind(sock: zmq.Socket, address: str | None, port: int | None, what: str = "listen") -> int:
    """Bind ``tcp://address:port`` (port 0 or None: an ephemeral one); the real port.

    A refusal is a ConfigError saying what could not ``what`` where, with
    ZeroMQ's error as its ``__cause__`` (its errno tells a busy port apart).
    """
    address = address or "0.0.0.0"
    if ":" in address:
        sock.ipv6 = True
    where = tcp(address, port or "*")
    try:
        sock.bind(where)
    except zmq.ZMQError as error:
        shown = where.removeprefix("tcp://")
        raise ConfigError(f"cannot {what} on {shown}: {error.strerror}") from error
    return port_of(sock.getsockopt_string(zmq.LAST_ENDPOINT))


def connect(sock: zmq.Socket, endpoint: str) -> None:
    """Connect to ``endpoint``, turning IPv6 on for a bracketed address."""
    if endpoint.startswith("tcp://["):
        sock.ipv6 = True
    sock.connect(endpoint)


def tune(
    sock: zmq.Socket,
    *,
    hwm: int | None = None,
    sndhwm: int | None = None,
    rcvhwm: int | None = None,
    sndtimeo: int | None = None,
) -> zmq.Socket:
    """A socket facing the network: LINGER 0 and MAXMSGSIZE always; ``hwm`` sets both
    high-water marks, ``sndhwm``/``rcvhwm`` one each; ``sndtimeo`` in ms. Before
    bind or connect, so the options hold for every connection."""
    sock.linger = 0
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
    if hwm is not None:
        sock.sndhwm = sock.rcvhwm = hwm
    if sndhwm is not None:
        sock.sndhwm = sndhwm
    if rcvhwm is not None:
        sock.rcvhwm = rcvhwm
    if sndtimeo is not None:
        sock.sndtimeo = sndtimeo
    return sock


class Drained:
    """One multipart message read by ``drain``: its frames as bytes, and the first
    frame's metadata."""

    __slots__ = ("frames", "_first")

    def __init__(self, frames: list[bytes], first: zmq.Frame) -> None:
        self.frames = frames
        self._first = first

    @property
    def user_id(self) -> str | None:
        """The ``User-Id`` ZAP gave the sender's key (secure mode), else None."""
        try:
            return self._first.get("User-Id") or None
        except zmq.ZMQError:  # no such property: not an authenticated connection
            return None


def _receive(sock: zmq.Socket) -> Drained:
    """``recv_multipart(NOBLOCK)`` a third cheaper: each frame says whether more follow,
    so no RCVMORE query per frame (a POST has a frame per message). zmq.Again if none."""
    first = frame = sock.recv(zmq.NOBLOCK, copy=False)
    frames = [frame.bytes]
    while frame.more:  # the rest of a multipart message is there already
        frame = sock.recv(zmq.NOBLOCK, copy=False)
        frames.append(frame.bytes)
    return Drained(frames, first)


def drain(sock: zmq.Socket, limit: int = DRAIN, frames: int = DRAIN_FRAMES) -> Iterator[Drained]:
    """What waits on ``sock`` now, never blocking: at most ``limit`` messages or about
    ``frames`` frames. The caller may stop early; what it leaves waits for the next turn."""
    taken = 0
    for _ in range(limit):
        try:
            received = _receive(sock)
        except zmq.Again:
            return
        yield received
        taken += len(received.frames)
        if taken >= frames:
            return


_MORE = int(zmq.SNDMORE | zmq.NOBLOCK)  # plain ints: an enum flag per frame costs more
_LAST = int(zmq.NOBLOCK)


def send_frames(sock: zmq.Socket, frames: list[bytes]) -> None:
    """``send_multipart(frames, NOBLOCK)``: zmq.Again (nothing sent) when the peer is full.

    Only the first frame can fail: ZeroMQ takes the rest of a multipart message with it.
    """
    send = sock.send
    for frame in frames[:-1]:
        send(frame, _MORE)
    send(frames[-1], _LAST)


def poll_timeout(deadlines: Iterable[float | None], now: float) -> int | None:
    """The poll timeout in ms until the earliest deadline (rounded up, so a loop never
    wakes just before it); None (wait for input) with no deadline at all."""
    due = min((d for d in deadlines if d is not None), default=None)
    if due is None:
        return None
    return max(0, math.ceil((due - now) * 1000))
