"""The outside world a front end reads and writes: streams, TTY flags, clocks.

Injected (httpie's ``Environment``), so tests drive every front end with
StringIO and a fixed clock.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any


@dataclass
class Environment:
    """Everything a front end reads from the outside world."""

    stdin: IO[str] = field(default_factory=lambda: sys.stdin)
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    stdin_isatty: bool | None = None
    stdout_isatty: bool | None = None
    monotonic: Callable[[], float] = time.monotonic
    utc_now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    entropy: Callable[[int], bytes] = os.urandom
    # NO_COLOR, TERM, XDG_STATE_HOME: read through here, so tests set them.
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    # prompt_toolkit Input/Output for the interactive prompt; None: the terminal.
    prompt_input: Any = None
    prompt_output: Any = None

    def __post_init__(self) -> None:
        if self.stdin_isatty is None:
            self.stdin_isatty = _isatty(self.stdin)
        if self.stdout_isatty is None:
            self.stdout_isatty = _isatty(self.stdout)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
