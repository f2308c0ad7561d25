"""What the command line's options mean: checked values, defaults, a NodeConfig.

Shared by ``cli`` (which parses and checks) and ``run`` (which starts a mode),
so neither imports the other.
"""

from __future__ import annotations

import getpass
from datetime import datetime, timezone
from enum import IntEnum
from pathlib import Path
from typing import Any

from ..core.errors import Lab93Error, MessageError, UsageError
from ..core.message import Message, check_name
from ..io import interfaces
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


def check_message_options(args: dict[str, Any]) -> None:
    """``--send`` and ``--subject`` as a message would take them, before anything starts:
    a message that could never be sent is a wrong command line, not a failed run."""
    subject, text = args["--subject"], args["--send"]
    if subject is not None and not subject.strip():
        raise UsageError("--subject is empty; leave it out to send without a subject")
    if text is not None and not text.strip():
        what = "empty" if not text else "only white space"
        raise UsageError(f"--send needs a message to send; its text is {what}")
    try:
        # The same checks as every message's, on a stand-in for the rest of its fields.
        Message(
            id="0" * 32,
            author="check",
            recipient=None,
            subject=subject,
            content=text or "check",
            sent_at=datetime(2000, 1, 1, tzinfo=timezone.utc),
            origin="0" * 32,
            origin_seq=1,
        )
    except MessageError as error:
        flag, field = ("--send", "text") if error.field == "content" else ("--subject", "subject")
        raise UsageError(f"{flag}: the {field} {error.problem}") from None


def interface_names(raw: list[str]) -> tuple[str, ...] | None:
    """``-i lo -i eth0`` and ``-i lo,eth0`` alike; None when not given.

    Each name must be an interface of this host: a typo (or an unset
    ``-i "$IFACE"``) is a wrong command line, whichever mode ends up using it.
    """
    names = tuple(name.strip() for value in raw for name in value.split(",") if name.strip())
    if raw and not names:
        raise UsageError(
            f"-i/--interface {raw[0]!r} names no interface; name one, e.g. -i lo"
            " (an empty -i \"$VARIABLE\" is often an unset one)"
        )
    for name in names:
        if not interfaces.exists(name):
            raise UsageError(
                f"-i/--interface {name!r}: there is no network interface by that name here"
                f" (there are: {', '.join(interfaces.names())})"
            )
    return names or None


def bind_address(mode: str, args: dict[str, Any], names: tuple[str, ...] | None) -> str | None:
    """What a server or broadcast node binds: ``-a``, else loopback when every chosen
    interface is a loopback one (so ``-i lo`` keeps everything on this machine), else
    every address. A client's ``-a`` is its server's address (None: find one)."""
    address = args["--address"]
    if address is not None or mode == "client":
        return address
    if names and all(interfaces.is_loopback(name) for name in names):
        return interfaces.LOOPBACK_ADDRESS
    return DEFAULT_ADDRESS


def port_option(mode: str, args: dict[str, Any]) -> int:
    port = number_option(args, "--port", 0, 65_535)
    if port == 0 and mode == "client":
        raise UsageError(
            "-p/--port 0 (any free port) is for a server or broadcast node; a client"
            " needs the port its server listens on"
        )
    return port


def build_config(mode: str, args: dict[str, Any]) -> NodeConfig:
    names = interface_names(args["--interface"])
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
        address=bind_address(mode, args, names),
        port=port_option(mode, args),
        interfaces=names,
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
