"""Small helpers both I/O shells (``node.py``, ``repeater.py``) use on their ZeroMQ sockets."""

from __future__ import annotations

import zmq

from ..core.errors import ConfigError


def tcp(address: str, port: int | str) -> str:
    """``tcp://ADDRESS:PORT``, an IPv6 address in brackets."""
    host = f"[{address}]" if ":" in address else address
    return f"tcp://{host}:{port}"


def port_of(endpoint: str) -> int:
    """The port of ``tcp://HOST:PORT``."""
    return int(endpoint.rpartition(":")[2])


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
