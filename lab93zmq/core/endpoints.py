"""How the house writes network endpoints, pure: ``tcp://HOST:PORT`` and ``HOST:PORT``.

The I/O shells bind and connect with these strings; the repeater's server
chooser compares them and names servers with them (known_servers lines,
notices), so they are built in one place.
"""

from __future__ import annotations


def tcp(address: str, port: int | str) -> str:
    """``tcp://ADDRESS:PORT``, an IPv6 address in brackets."""
    host = f"[{address}]" if ":" in address else address
    return f"tcp://{host}:{port}"


def where(address: str, port: int | str) -> str:
    """``host:port`` (IPv6 in brackets): how known_servers and notices name a server."""
    return tcp(address, port).removeprefix("tcp://")


def host_of(endpoint: str) -> str:
    """``tcp://HOST:PORT`` -> ``HOST``."""
    rest = endpoint.split("://", 1)[-1]
    return rest.rpartition(":")[0] or rest


def port_of(endpoint: str) -> int:
    """The port of ``tcp://HOST:PORT``."""
    return int(endpoint.rpartition(":")[2])
