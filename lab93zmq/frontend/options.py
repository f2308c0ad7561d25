"""What the command line's options mean beyond the API's: exit statuses, the
signals and closed pipes that end a run, and the checks only a command line has.

Shared by ``cli`` (which parses and checks) and ``run`` (which starts a mode),
so neither imports the other. Option values are checked by ``api.options``,
the same checks a program embedding a node meets.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from enum import IntEnum
from typing import Any

from ..api.options import node_config
from ..core.errors import Lab93Error, MessageError, UsageError
from ..core.message import Message
from ..io.config import NodeConfig


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


def build_config(mode: str, args: dict[str, Any]) -> NodeConfig:
    """The command line's options as the API takes them, checked there (one set of checks)."""
    return node_config(
        mode,
        user=args["--user"],
        address=args["--address"],
        port=args["--port"],
        interfaces=args["--interface"],
        beacon_port=args["--beacon-port"],
        db=args["--db"],
        rooms=args.get("--room") or None,
        secure=bool(args["--secure"]),
        authorized_keys=args["--authorized-keys"],
        server_key=args["--server-key"],
        timeout=args["--timeout"],
        irc_port=args.get("--irc-port"),
        irc_address=args.get("--irc-address"),
        irc_tls_cert=args.get("--irc-tls-cert"),
        irc_tls_key=args.get("--irc-tls-key"),
        irc_password_file=args.get("--irc-password-file"),
    )


_AGO = re.compile(r"(?:\d+[smhdw])+\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def since_time(text: str, now: datetime) -> datetime:
    """``--since``: an ISO 8601 date or time (local unless it has an offset), or a time
    ago such as ``2h`` or ``1h30m`` before ``now``; UsageError otherwise."""
    value = text.strip().lower()
    if _AGO.match(value):
        seconds = sum(int(n) * _UNITS[unit] for n, unit in re.findall(r"(\d+)([smhdw])", value))
        try:
            return now - timedelta(seconds=seconds)
        except OverflowError:
            raise UsageError(f"--since {text!r} is longer ago than any message") from None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since takes an ISO 8601 date or time (2026-11-24, 2026-11-24T09:00) or a time"
            f" ago (90s, 15m, 2h, 3d, 1w), not {text!r}"
        ) from None
    return when.astimezone(timezone.utc)  # a time without an offset is local time
