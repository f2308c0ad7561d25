"""A program in a pseudo-terminal of its own, what it draws kept on a pyte screen.

pexpect drives the program; everything it writes is fed to a pyte screen (as
pexpect's ``logfile_read``) and kept as raw ``output`` (escape codes, the bell).
Shared by the prompt's terminal tests and the irssi test.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pexpect
import pyte


class DrawnTerminal:
    """``command args`` in a ``rows`` x ``columns`` pseudo-terminal; waits are bounded
    by ``wait`` seconds."""

    def __init__(self, command: str, args: list[str], env: dict[str, str], rows: int,
                 columns: int, wait: float) -> None:
        self.screen = pyte.Screen(columns, rows)
        self._stream = pyte.Stream(self.screen)
        self.output = ""
        self.wait = wait
        self.child = pexpect.spawn(command, args, env=env, encoding="utf-8",
                                   dimensions=(rows, columns), timeout=wait)
        self.child.logfile_read = self

    # pexpect's logfile_read: everything the terminal shows goes to the screen too.
    def write(self, text: str) -> None:
        self.output += text
        self._stream.feed(text)

    def flush(self) -> None:
        pass

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def wait_screen(self, condition: Callable[[list[str]], bool], what: str) -> None:
        """Read output until the drawn screen satisfies ``condition`` (bounded)."""
        deadline = time.monotonic() + self.wait
        while not condition(self.lines()):
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.lines()}"
            try:
                self.child.read_nonblocking(4096, timeout=0.1)
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                raise AssertionError(f"the program ended while waiting for {what}") from None
