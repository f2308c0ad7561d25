"""What the command line's options mean: checked values, defaults, a NodeConfig.

Shared by ``cli`` (which parses and checks) and ``run`` (which starts a mode),
so neither imports the other.
"""

from __future__ import annotations

import getpass
from enum import IntEnum
from pathlib import Path
from typing import Any

from ..core.errors import Lab93Error, MessageError, UsageError
from ..core.message import check_name
from ..io.config import DEFAULT_ADDRESS, NodeConfig, SecureConfig
from ..io.paths import config_dir, inbox_path

DEFAULT_SCAN_TIMEOUT = 2.0
DEFAULT_DELIVERY_TIMEOUT = 10.0


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    INTERRUPTED = 130
    OUTPUT_CLOSED = 141  # 128 + SIGPIPE, what the shell reports for `git log | head -1`
    TERMINATED = 143


class Interrupted(KeyboardInterrupt):
    """Ctrl-C; ``unsent`` is the line that was being typed, if any, so it can be named."""

    def __init__(self, unsent: str = "") -> None:
        super().__init__()
        self.unsent = unsent


class Terminated(BaseException):
    """SIGTERM: leave cleanly, exactly as for Ctrl-C."""

    def __init__(self, unsent: str = "") -> None:
        super().__init__()
        self.unsent = unsent


class OutputClosed(Lab93Error):
    """Whoever read our standard output has stopped reading (``| head -1``)."""

    exit_status = ExitStatus.OUTPUT_CLOSED


def number_option(
    args: dict[str, Any], key: str, low: float, high: float, kind: type = int
) -> Any:
    """The value of option ``key`` as ``kind`` within [low, high]; UsageError names it."""
    raw = args[key]
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or not low <= value <= high:
        what = "a whole number" if kind is int else "a number"
        raise UsageError(f"{key} takes {what} from {low:g} to {high:g}, not {raw!r}")
    return value


def default_user() -> str:
    """The login name, as DESIGN.md says; a name that is not valid here falls back to 'user'."""
    try:
        name = getpass.getuser()
        return check_name(name, "from")
    except (MessageError, KeyError, OSError):
        return "user"


def interface_names(raw: list[str]) -> tuple[str, ...] | None:
    """``-i lo -i eth0`` and ``-i lo,eth0`` alike; None when not given."""
    names = tuple(name.strip() for value in raw for name in value.split(",") if name.strip())
    return names or None


def build_config(mode: str, args: dict[str, Any]) -> NodeConfig:
    address = args["--address"]
    if address is None and mode != "client":
        address = DEFAULT_ADDRESS
    scan_default = DEFAULT_SCAN_TIMEOUT if mode == "scan" else DEFAULT_DELIVERY_TIMEOUT
    timeout = scan_default
    if args["--timeout"] is not None:
        timeout = number_option(args, "--timeout", 0.001, 86_400, float)
    secure = secure_config(args) if args["--secure"] else None
    # A secure node speaks as the name its key was made for, unless told otherwise.
    key_user = secure.keys.user if secure is not None else None
    return NodeConfig(
        user=args["--user"] or key_user or default_user(),
        db_path=inbox_path(args["--db"]),
        address=address,
        port=number_option(args, "--port", 0, 65_535),
        interfaces=interface_names(args["--interface"]),
        beacon_port=number_option(args, "--beacon-port", 1, 65_535),
        timeout=timeout,
        secure=secure,
    )


def secure_config(args: dict[str, Any]) -> SecureConfig:
    """``--secure``: our key pair (it must exist), whom we admit, how we pin a server."""
    from ..io.security import (
        AUTHORIZED_KEYS_DIRNAME,
        KNOWN_SERVERS_FILENAME,
        SecurityError,
        load_keypair,
        parse_key,
    )

    directory = config_dir()
    server_key = None
    if args["--server-key"] is not None:
        try:
            server_key = parse_key(args["--server-key"], "--server-key")
        except SecurityError as error:
            raise UsageError(f"{error} (quote it: --server-key 'KEY')") from None
    authorized = args["--authorized-keys"]
    return SecureConfig(
        keys=load_keypair(directory),
        authorized_keys=Path(authorized).expanduser()
        if authorized
        else directory / AUTHORIZED_KEYS_DIRNAME,
        known_servers=directory / KNOWN_SERVERS_FILENAME,
        server_key=server_key,
    )
