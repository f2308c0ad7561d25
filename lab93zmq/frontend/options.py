"""What the command line's options mean beyond the API's: exit statuses, the
signals and closed pipes that end a run, and the checks only a command line has.

Shared by ``cli`` (which parses and checks) and ``run`` (which starts a mode),
so neither imports the other. Option values are checked by ``api.options``,
the same checks a program embedding a node meets.
"""

from __future__ import annotations

from datetime import datetime, timezone
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
    )
