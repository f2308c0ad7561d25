"""Real client processes for the pipelines and send items: a repeater, a listener, pipelines.

Unlike harness.py (raw load generators that measure the server), these run
what a user runs: ``lab93-node -r -c`` processes fed by real pipes, read by a
``--listen --json`` client, each measured by its own CPU time. The floor
beside them is the same shape with bench/pipe_client.py (minimal pyzmq
clients) around bench/bare_broker.py.

Ports are never "found free, then released": our server binds ``-p 0`` and
its port is read from its ready line; the bare broker's port and the beacon
port are held by a socket of ours (bound, never listening or reading) for as
long as the run needs them, so the kernel hands them to nobody else.
"""

from __future__ import annotations

import os
import re
import selectors
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    PYTHON,
    BenchError,
    Child,
    Procs,
    child_env,
    our_node_argv,
    script_argv,
)

OURS = "ours"
BARE = "bare"
READY = re.compile(rb"repeater at tcp://[0-9.]+:(\d+)")

# The producer of a pipeline, as a user would write it: ``python -c ... | lab93-node``.
# It flushes its first line at once and reports when (CLOCK_MONOTONIC is one clock
# for every process on the machine), then writes the rest in one go.
PRODUCER = (
    "import sys, time\n"
    "label, count = sys.argv[1], int(sys.argv[2])\n"
    "sys.stdout.write(label + ' 0\\n'); sys.stdout.flush(); first = time.monotonic()\n"
    "sys.stdout.write(''.join(f'{label} {i}\\n' for i in range(1, count))); sys.stdout.flush()\n"
    "sys.stderr.write(f'first={first!r}\\n')\n"
)


@contextmanager
def held_port(kind: int) -> Iterator[int]:
    """A loopback port of ``kind`` (TCP or UDP) held by a bound socket while the block runs.

    The TCP holder sets SO_REUSEADDR and never listens, so a server that binds
    the same port with SO_REUSEADDR (libzmq does) gets it; a UDP holder on
    127.0.0.1 leaves our beacon listener (on 127.255.255.255) free to bind.
    """
    holder = socket.socket(socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]
    finally:
        holder.close()


def wait_ready_port(child: Child, timeout: float = 30.0) -> int:
    """Our server's ROUTER port, from the ready line it writes to stderr."""
    path = Path(child.popen.stderr_path)  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = READY.search(path.read_bytes())
        if found:
            return int(found.group(1))
        if not child.alive():
            break
        time.sleep(0.02)  # a file has no event to wait on; bounded by the deadline
    raise BenchError(f"our server gave no ready line in {timeout:g} s; {child.stderr_tail()}")


@dataclass
class Repeater:
    """One server (ours or bare) and how to run clients of it."""

    kind: str
    port: int
    beacon_port: int
    workdir: Path
    tag: str
    server: Child

    def client_argv(self, user: str, *extra: str) -> list[str]:
        """``lab93-node -r -c`` for ours, pipe_client.py for the floor (``extra``: its mode)."""
        if self.kind == BARE:
            return script_argv("pipe_client.py", *extra)
        return our_node_argv(
            "-r", "-c", "-a", "127.0.0.1", "-p", str(self.port), "-i", "lo",
            "--beacon-port", str(self.beacon_port), "-u", user,
            "--db", str(self.workdir / f"{self.tag}-{user}.db"), *extra,
        )  # fmt: skip

    def sender_argv(self, user: str) -> list[str]:
        """A pipeline's consumer: reads lines on stdin, exits when all are acknowledged."""
        if self.kind == BARE:
            return self.client_argv(user, "send", str(self.port), user)
        return self.client_argv(user)

    def listener_argv(self) -> list[str]:
        if self.kind == BARE:
            return self.client_argv("listener", "listen", str(self.port))
        return self.client_argv("listener", "--listen", "--json")

    def send_argv(self, user: str, text: str) -> list[str]:
        """One message, acknowledged, exit: ``--send`` or pipe_client's ``once``."""
        if self.kind == BARE:
            return self.client_argv(user, "once", str(self.port), user, text)
        return self.client_argv(user, "--send", text)


@contextmanager
def repeater(procs: Procs, kind: str, workdir: Path, tag: str) -> Iterator[Repeater]:
    """Our server (``-r -s -p 0``, a fresh inbox) or the bare broker, on loopback."""
    with held_port(socket.SOCK_DGRAM) as beacon_port:
        if kind == BARE:
            with held_port(socket.SOCK_STREAM) as port:
                child = procs.start(f"bare-{tag}", script_argv("bare_broker.py", str(port)))
                yield Repeater(kind, port, beacon_port, workdir, tag, child)
                procs.stop(child, timeout=10)
            return
        argv = our_node_argv(
            "-r", "-s", "-a", "127.0.0.1", "-p", "0", "-i", "lo", "-u", "benchserver",
            "--beacon-port", str(beacon_port), "--db", str(workdir / f"{tag}-server.db"),
        )  # fmt: skip
        child = procs.start(f"server-{tag}", argv)
        port = wait_ready_port(child)
        yield Repeater(kind, port, beacon_port, workdir, tag, child)
        procs.stop(child, timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (psutil; also readable while a zombie)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


@dataclass
class Pipeline:
    """``python -c PRODUCER LABEL COUNT | CONSUMER``: two processes and a real pipe."""

    label: str
    count: int
    producer: subprocess.Popen
    consumer: subprocess.Popen
    pidfd: int = -1
    cpu: float | None = None  # the consumer's user + system CPU seconds, read at its exit
    status: int | None = None
    first_sent: float | None = None  # CLOCK_MONOTONIC of the producer's first line
    ended: float | None = None  # when we saw the consumer exit
    errors: list[str] = field(default_factory=list)

    def finish(self) -> None:
        """The consumer has exited: read its CPU time before reaping it, then its status."""
        os.waitid(os.P_PID, self.consumer.pid, os.WEXITED | os.WNOWAIT)
        self.ended = time.monotonic()
        self.cpu = cpu_seconds(self.consumer.pid)
        self.status = self.consumer.wait(5)
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1

    def reap_producer(self, timeout: float = 10.0) -> None:
        try:
            producer_status = self.producer.wait(timeout)
        except subprocess.TimeoutExpired:
            self.producer.kill()
            producer_status = self.producer.wait(5)
        if producer_status != 0:
            self.errors.append(f"producer exited {producer_status}")
        text = Path(self.producer.stderr_path).read_text(errors="replace")  # type: ignore
        found = re.search(r"first=([0-9.e+-]+)", text)
        self.first_sent = float(found.group(1)) if found else None
        if self.status is None:
            self.errors.append("still running at the deadline")
        elif self.status != 0:
            tail = Path(self.consumer.stderr_path).read_text(errors="replace")  # type: ignore
            self.errors.append(f"exited {self.status}: {' | '.join(tail.splitlines()[-3:])}")


def start_pipeline(
    procs: Procs, workdir: Path, tag: str, label: str, count: int, consumer_argv: list[str]
) -> Pipeline:
    """Start one pipeline writing lines ``LABEL 0`` ... ``LABEL count-1``; both processes
    are registered with ``procs`` (killed at its end), their stderr in ``workdir/TAG-*``."""
    env = child_env()
    with (
        open(workdir / f"{tag}-producer.stderr", "wb") as producer_err,
        open(workdir / f"{tag}-consumer.stderr", "wb") as consumer_err,
    ):
        producer = subprocess.Popen(
            [PYTHON, "-c", PRODUCER, label, str(count)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=producer_err,
            env=env, cwd=str(workdir),
        )  # fmt: skip
        procs.children.append(producer)
        consumer = subprocess.Popen(
            consumer_argv, stdin=producer.stdout, stdout=subprocess.DEVNULL, stderr=consumer_err,
            env=env, cwd=str(workdir),
        )  # fmt: skip
        procs.children.append(consumer)
    assert producer.stdout is not None
    producer.stdout.close()  # the consumer holds the only read end: it sees the end of input
    producer.stderr_path = producer_err.name  # type: ignore[attr-defined]
    consumer.stderr_path = consumer_err.name  # type: ignore[attr-defined]
    pipeline = Pipeline(label, count, producer, consumer)
    pipeline.pidfd = os.pidfd_open(consumer.pid)
    return pipeline


class Listener:
    """Reads a listener's stdout as it comes, keeping each chunk with the time it arrived."""

    def __init__(self, child: Child) -> None:
        assert child.popen.stdout is not None
        self.child = child
        self.fd = child.popen.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.chunks: list[tuple[float, bytes]] = []
        self.lines = 0  # newlines seen so far
        self.closed = False

    def read(self) -> int:
        """Whatever is there now; the number of new lines."""
        new = 0
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return new
            if not chunk:
                self.closed = True
                return new
            self.chunks.append((time.monotonic(), chunk))
            count = chunk.count(b"\n")
            new += count
            self.lines += count

    def timed_lines(self, since_line: int = 0) -> Iterator[tuple[float, bytes]]:
        """(arrival time, line) for every complete line after the first ``since_line``."""
        rest = b""
        number = 0
        for arrived, chunk in self.chunks:
            *lines, rest = (rest + chunk).split(b"\n")
            for line in lines:
                number += 1
                if number > since_line:
                    yield arrived, line


def wait_for_lines(listener: Listener, count: int, timeout: float) -> bool:
    """Read until the listener has printed ``count`` lines in all; False on timeout or EOF."""
    selector = selectors.DefaultSelector()
    selector.register(listener.fd, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while listener.lines < count and not listener.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if selector.select(min(left, 0.5)):
                listener.read()
        return listener.lines >= count
    finally:
        selector.close()
