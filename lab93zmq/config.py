"""What the command line hands to an actor: one plain, immutable settings object."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 5190
DEFAULT_BEACON_PORT = 5190
DEFAULT_ADDRESS = "0.0.0.0"
DEFAULT_BEACON_INTERVAL = 1.0
EXPIRY_INTERVALS = 5


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
