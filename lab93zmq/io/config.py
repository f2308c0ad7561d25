"""What the command line hands to an actor: one plain, immutable settings object."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.rooms import DEFAULT_ROOM

if TYPE_CHECKING:
    from .security import KeyPair

DEFAULT_PORT = 5190
DEFAULT_BEACON_PORT = 5190
DEFAULT_ADDRESS = "0.0.0.0"
DEFAULT_BEACON_INTERVAL = 1.0
EXPIRY_INTERVALS = 5


@dataclass(frozen=True)
class SecureConfig:
    """``--secure``: our key pair, whom we admit, and how a client pins its server.

    ``server_key`` is the raw key given with ``--server-key`` (None: learn it
    from the server's beacon and pin it in ``known_servers``).
    """

    keys: KeyPair
    authorized_keys: Path
    known_servers: Path
    server_key: bytes | None = None


@dataclass(frozen=True)
class IRCSettings:
    """``--irc-port``: a repeater server's IRC face (docs/IRC.rst).

    ``address`` None: the server's own address. ``tls_cert`` and ``tls_key``
    (both or neither): speak IRC over TLS. ``password``: what every IRC client
    must send with PASS (read from ``--irc-password-file``).
    """

    port: int
    address: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    password: str | None = None


@dataclass(frozen=True)
class NodeConfig:
    """Settings shared by every mode.

    ``address`` is the bind address for a server or broadcast node, and the
    server's address for a repeater client (None: find one by its beacon).
    ``interfaces`` None means "every suitable interface" (see interfaces.py).
    """

    user: str
    db_path: Path
    address: str | None = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT
    interfaces: tuple[str, ...] | None = None
    beacon_port: int = DEFAULT_BEACON_PORT
    beacon_interval: float = DEFAULT_BEACON_INTERVAL
    timeout: float = 10.0
    # Off only in tests that drive a server without any UDP at all.
    beacon: bool = True
    secure: SecureConfig | None = None  # None: plain ZeroMQ, as on a trusted LAN
    # The rooms a node is in from the start; the first is the current one.
    rooms: tuple[str, ...] = (DEFAULT_ROOM,)
    # False: a send-only run (piped stdin or --send without --listen): it subscribes
    # to no room feed, stores none of it, keeps its resume point, and is not
    # announced to others as a member.
    listen: bool = True
    # A repeater server's PostgreSQL store (``--db postgresql://...``); None: the SQLite
    # inbox at ``db_path``.
    db_url: str | None = None
    # A repeater client's servers, in the order to try them (``-a h1,h2:5191``, ``-a``
    # repeated): (host, port) pairs; empty: ``address`` and ``port`` alone.
    servers: tuple[tuple[str, int], ...] = ()
    irc: IRCSettings | None = None  # a repeater server's IRC face; None: none
