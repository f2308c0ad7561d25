"""Running lab93-node as real processes in tests: start, read output lines, stop.

Output is read by one thread per stream into a list, so a test waits on a
condition over the lines seen so far (bounded), never on a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

WAIT = 20.0


@contextmanager
def reserved_tcp_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 held for the test and never listened on: connecting to
    it is refused, and a server setting SO_REUSEADDR (ZeroMQ does) may bind it, also
    again after a restart. Bound to 0 and read back: no one else can take it meanwhile."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


@contextmanager
def reserved_beacon_port() -> Iterator[int]:
    """A UDP beacon port on loopback, bound to 0 and read back, held for the test.

    The holder binds 127.255.255.255 with SO_REUSEADDR and SO_REUSEPORT, as every
    beacon listener does, so the nodes under test share the port with it while
    nobody else can be handed it. It never reads: what it receives is dropped
    by the kernel when its buffer is full."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        holder.bind(("127.255.255.255", 0))
        yield holder.getsockname()[1]


class NodeProcess:
    """``python -m lab93zmq ARGS`` with its stdout and stderr collected line by line."""

    def __init__(
        self,
        args: list[str],
        stdin: bool = False,
        prefix: list[str] | None = None,
        env: dict[str, str] | None = None,
        program: list[str] | None = None,
    ):
        """``program`` (default ``-m lab93zmq``): what the interpreter runs, e.g. a script."""
        self.args = args
        self.proc = subprocess.Popen(
            [*(prefix or []), sys.executable, *(program or ["-m", "lab93zmq"]), *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for(self, condition: Callable[[NodeProcess], bool], what: str, timeout: float = WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self):
                return
            if self.proc.poll() is not None and not condition(self):
                # Give the readers a moment to drain what the process wrote last.
                for reader in self._readers:
                    reader.join(1)
                if condition(self):
                    return
                raise AssertionError(
                    f"exited {self.proc.returncode} before {what}: {self.err[-5:]}"
                )
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; stderr: {self.err[-5:]}")

    def wait_err(self, text: str, timeout: float = WAIT) -> None:
        self.wait_for(lambda p: any(text in line for line in p.err), repr(text), timeout)

    def write(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        self.proc.stdin.close()

    def finish(self, timeout: float = WAIT) -> int:
        status = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(2)
        return status

    def signal(self, signum: int = signal.SIGTERM, timeout: float = WAIT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        return self.finish(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
