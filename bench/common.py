"""What every benchmark item shares: ports, child processes, namespaces, figures, the table.

Rules kept here so the items cannot forget them (DESIGN.md, "Network rules"):

* every address is on loopback (``127.0.0.1``), or inside a network namespace
  this run creates with a unique name and deletes in a ``finally``;
* every child process is started through ``Procs`` and killed by its own pid
  in a ``finally``; every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable
LOOPBACK = "127.0.0.1"


class BenchError(RuntimeError):
    """A benchmark could not run (not a slow result: a broken set-up)."""


# -- settings -------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How hard to measure: ``--quick`` shortens every phase and the number of rounds."""

    quick: bool = False
    rounds: int = 3
    profile: Path | None = None  # where py-spy profiles of our server go (None: no profiling)

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full


# -- figures and the table -------------------------------------------------------------


@dataclass
class Figure:
    """One row of the table: one metric, measured for ours and (maybe) a baseline.

    ``better`` is "lower" or "higher"; ``target`` is the issue's aim for ours as
    text (e.g. "<= 1 ms"); ``note`` says anything a reader must know (a capped
    wait, a baseline that cannot run).
    """

    item: str
    metric: str
    unit: str
    better: str
    ours: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    baseline_name: str = ""
    target: str = ""
    note: str = ""
    details: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "metric": self.metric,
            "unit": self.unit,
            "better": self.better,
            "ours": self.ours,
            "baseline": self.baseline,
            "baseline_name": self.baseline_name,
            "target": self.target,
            "note": self.note,
            "ours_median": median(self.ours),
            "baseline_median": median(self.baseline),
            "details": self.details,
        }


def median(values: Sequence[float]) -> float | None:
    clean = [v for v in values if v is not None and v == v]
    return statistics.median(clean) if clean else None


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (0..100), nearest-rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def fmt(value: float | None) -> str:
    """A figure in 3 significant digits, thousands as k/M."""
    if value is None or value != value:
        return "-"
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.3g}k"
    if magnitude >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def cell(values: Sequence[float]) -> str:
    """``median [min-max]`` (just the value when all are equal)."""
    clean = [v for v in values if v is not None and v == v]
    if not clean:
        return "-"
    low, mid, high = min(clean), statistics.median(clean), max(clean)
    if low == high:
        return fmt(mid)
    return f"{fmt(mid)} [{fmt(low)}-{fmt(high)}]"


def ratio(figure: Figure) -> str:
    ours, base = median(figure.ours), median(figure.baseline)
    if ours is None or base is None:
        return "-"
    if base == 0:
        return "-" if ours == 0 else "inf"
    return f"{ours / base:.2f}"


_SCALE = {"": 1.0, "k": 1e3, "M": 1e6}
# One clause of a target: "<= 15", ">= 25k", ">= 0.8x bare", "<= 1.5x one room", "0".
_CLAUSE = re.compile(r"^(?:(<=|>=)\s*)?([0-9.]+)(k|M|x)?\b")


def target_met(figure: Figure) -> str:
    """Whether the median of ours meets ``figure.target``: "yes", "no", or "" when the
    target is not a bound this can read or there is nothing to compare.

    A target is clauses joined by " and ": a bound on ours (``<= 15``, ``>= 25k``),
    or on ours/baseline (``>= 0.8x bare``); a bare number is ``<=`` it for a lower-is-
    better figure and ``>=`` for higher. Units after the number are the figure's own.
    """
    ours = median(figure.ours)
    if not figure.target or ours is None:
        return ""
    verdicts = []
    for clause in figure.target.split(" and "):
        found = _CLAUSE.match(clause.strip())
        if not found:
            return ""
        op, number, suffix = found.groups()
        op = op or ("<=" if figure.better == "lower" else ">=")
        value = ours
        bound = float(number)
        if suffix == "x":
            base = median(figure.baseline)
            if not base:
                return ""
            value = ours / base
        else:
            bound *= _SCALE[suffix or ""]
        verdicts.append(value <= bound if op == "<=" else value >= bound)
    return "yes" if all(verdicts) else "no"


def table(figures: Sequence[Figure]) -> str:
    """The table of medians with min-max, the ratio ours/baseline and whether each
    target is met, as text."""
    head = ["item", "metric", "unit", "ours", "baseline", "ours/base", "target", "met"]
    rows = [head]
    notes: list[str] = []
    for figure in figures:
        base = cell(figure.baseline)
        if figure.baseline_name and figure.baseline:
            base = f"{base} ({figure.baseline_name})"
        elif figure.baseline_name:
            base = f"- ({figure.baseline_name})"
        metric = figure.metric
        if figure.note:
            notes.append(figure.note)
            metric = f"{metric} [{len(notes)}]"
        aim = f"{figure.target} ({'lower' if figure.better == 'lower' else 'higher'} is better)"
        target = aim if figure.target else figure.better + " is better"
        rows.append(
            [figure.item, metric, figure.unit, cell(figure.ours), base, ratio(figure), target,
             target_met(figure)]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for index, row in enumerate(rows):
        cells = (text.ljust(width) for text, width in zip(row, widths, strict=True))
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    for number, note in enumerate(notes, 1):
        lines.append(f"[{number}] {note}")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg": os.getloadavg(),
    }


# -- ports and files ---------------------------------------------------------------------


def held_tcp_port() -> socket.socket:
    """A TCP socket on 127.0.0.1 bound to 0 (read the port back), never listened on:
    while it is open nobody else is handed that port, and a server that sets
    SO_REUSEADDR (ZeroMQ, socket.create_server) may bind it."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind((LOOPBACK, 0))
    return holder


def held_beacon_port() -> socket.socket:
    """A UDP socket on 127.255.255.255 bound to 0 with SO_REUSEADDR and SO_REUSEPORT,
    as every beacon listener binds: the nodes share its port, nobody else gets it.
    It never reads (a small buffer: what it is sent is dropped)."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    holder.bind(("127.255.255.255", 0))
    return holder


# In a fresh lo-only namespace of its own nothing else runs, so a port is agreed
# in advance there; each one this run hands out is distinct, for the clusters that
# share a namespace.
_NAMESPACE_PORTS = iter(range(47_000, 48_000))


def namespace_port() -> int:
    """A beacon port for agents inside a namespace of this run's own (lo_only_netns)."""
    return next(_NAMESPACE_PORTS)


def compile_bytecode() -> None:
    """Compile the package's modules to bytecode first, as installing it does (pip
    compiles a wheel's modules; Python writes the cache on a first run). Under
    PYTHONDONTWRITEBYTECODE, or before any run of a fresh checkout, every child
    would compile each module from source again: ~50 ms of each start, which no
    installed lab93-node pays."""
    import compileall

    compileall.compile_dir(str(REPO / "lab93zmq"), quiet=1)


def child_env() -> dict[str, str]:
    """The environment for children: this checkout first on the path, no stray XDG dirs."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), str(BENCH), env.get("PYTHONPATH", "")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


# -- network namespaces ---------------------------------------------------------------


def netns_available() -> str | None:
    """None when this process may create network namespaces, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    try:
        subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as error:
        return f"ip netns does not work here: {error}"
    return None


@contextmanager
def lo_only_netns(multicast: bool = False) -> Iterator[str]:
    """A fresh network namespace with nothing but ``lo`` (up); deleted on the way out.

    ``multicast`` also turns on multicast on that ``lo`` and routes 224.0.0.0/4
    to it: pyre, finding no other interface, falls back to beaconing to the
    multicast group 225.25.25.25, which needs a route. Both stay inside the
    namespace.
    """
    why = netns_available()
    if why:
        raise BenchError(why)
    name = f"l93b-{os.getpid()}-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        _ip(["-n", name, "link", "set", "lo", "up"])
        if multicast:
            _ip(["-n", name, "link", "set", "lo", "multicast", "on"])
            _ip(["-n", name, "route", "add", "224.0.0.0/4", "dev", "lo"])
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], timeout=10, capture_output=True)


def _ip(args: list[str]) -> None:
    subprocess.run(["ip", *args], check=True, timeout=10, capture_output=True)


def in_netns(ns: str | None, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv] if ns else argv


# -- child processes ----------------------------------------------------------------------


class Child:
    """One child process that talks JSON lines: we write commands, it writes events."""

    def __init__(self, name: str, popen: subprocess.Popen) -> None:
        self.name = name
        self.popen = popen
        self.pid = popen.pid
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        if popen.stdout is not None:
            os.set_blocking(popen.stdout.fileno(), False)
            self._selector.register(popen.stdout, selectors.EVENT_READ)

    def send(self, **command: Any) -> None:
        assert self.popen.stdin is not None
        try:
            self.popen.stdin.write((json.dumps(command) + "\n").encode())
            self.popen.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise BenchError(f"{self.name} is gone ({error}); {self.stderr_tail()}") from None

    def _lines(self, timeout: float) -> Iterator[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue  # stray print from a library: not ours
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if not self._selector.select(min(left, 0.5)):
                if self.popen.poll() is not None:
                    return
                continue
            assert self.popen.stdout is not None
            chunk = os.read(self.popen.stdout.fileno(), 1 << 16)
            if not chunk:
                return
            self._buffer += chunk

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """Read until an event named ``event``; BenchError on "error", exit or timeout."""
        for line in self._lines(timeout):
            kind = line.get("event")
            if kind == event:
                return line
            if kind == "error":
                raise BenchError(f"{self.name}: {line.get('error')}")
        state = "exited" if self.popen.poll() is not None else f"no {event!r} in {timeout:g} s"
        raise BenchError(f"{self.name} {state}; {self.stderr_tail()}")

    def stderr_tail(self) -> str:
        path = getattr(self.popen, "stderr_path", None)
        if not path:
            return "no stderr kept"
        try:
            text = Path(path).read_text(errors="replace")
        except OSError:
            return "no stderr kept"
        tail = " | ".join(text.strip().splitlines()[-6:])
        return f"stderr: {tail}" if tail else "stderr empty"

    def alive(self) -> bool:
        return self.popen.poll() is None


class Procs:
    """Starts children and kills every one of them (by pid) when the block ends."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[subprocess.Popen] = []
        self._holders: list[socket.socket] = []

    def tcp_port(self) -> int:
        """A TCP port on loopback held until the block ends (``held_tcp_port``)."""
        return self._hold(held_tcp_port())

    def beacon_port(self) -> int:
        """A beacon port on loopback held until the block ends (``held_beacon_port``)."""
        return self._hold(held_beacon_port())

    def _hold(self, holder: socket.socket) -> int:
        self._holders.append(holder)
        return holder.getsockname()[1]

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill_all()

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        ns: str | None = None,
        talk: bool = False,
        env: dict[str, str] | None = None,
    ) -> Child:
        """Start ``argv`` (inside ``ns`` when given); ``talk`` wires stdin/stdout for JSON;
        ``env`` adds to the children's environment."""
        safe = "".join(c if c.isalnum() else "_" for c in name)
        stderr_path = self.workdir / f"{safe}-{len(self.children)}.stderr"
        with open(stderr_path, "wb") as stderr:
            popen = subprocess.Popen(
                in_netns(ns, argv),
                stdin=subprocess.PIPE if talk else subprocess.DEVNULL,
                stdout=subprocess.PIPE if talk else subprocess.DEVNULL,
                stderr=stderr,
                env={**child_env(), **(env or {})},
                cwd=str(self.workdir),
            )
        popen.stderr_path = str(stderr_path)  # type: ignore[attr-defined]
        self.children.append(popen)
        return Child(name, popen)

    def stop(self, child: Child, timeout: float = 5.0, sig: int = signal.SIGTERM) -> int | None:
        """Signal one child and wait for it; SIGKILL when it does not go in time."""
        popen = child.popen
        if popen.poll() is None:
            try:
                popen.send_signal(sig)
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(5)
        return popen.returncode

    def kill_all(self) -> None:
        for popen in self.children:
            if popen.poll() is None:
                try:
                    popen.kill()
                except ProcessLookupError:
                    pass
        for popen in self.children:
            try:
                popen.wait(5)
            except subprocess.TimeoutExpired:
                pass
            for stream in (popen.stdin, popen.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
        self.children.clear()
        for holder in self._holders:
            holder.close()
        self._holders.clear()


@contextmanager
def py_spy(pid: int, out: Path | None, seconds: float) -> Iterator[None]:
    """Sample ``pid`` (every thread) with py-spy for ``seconds`` while the block runs.

    Writes ``out`` (py-spy's "raw" collapsed stacks, for flamegraph.pl or
    speedscope) and ``out`` + ``.top.txt``, a summary by function. Does nothing
    when ``out`` is None.
    """
    if out is None:
        yield
        return
    sibling = Path(PYTHON).with_name("py-spy")
    binary = str(sibling) if sibling.exists() else shutil.which("py-spy")
    if binary is None:
        raise BenchError("--profile needs py-spy: pip install -e '.[bench]'")
    argv = [
        binary, "record", "--pid", str(pid), "--format", "raw",
        "--duration", str(max(1, int(seconds))), "--rate", "250", "--nolineno",
        "--output", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        try:
            proc.wait(seconds + 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if out.exists():
        Path(f"{out}.top.txt").write_text(summarize_collapsed(out.read_text()))


def summarize_collapsed(text: str, top: int = 40) -> str:
    """Self and total sample shares by function from collapsed stacks (py-spy "raw")."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        leaf = frames[-1]
        own[leaf] = own.get(leaf, 0) + n
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + n
    if not samples:
        return "no samples\n"
    lines = [f"{samples} samples", "", "self %  function"]
    for name, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * n / samples:6.1f}  {name}")
    lines += ["", "total %  function (with what it calls)"]
    for name, n in sorted(total.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * n / samples:6.1f}  {name}")
    return "\n".join(lines) + "\n"


def our_node_argv(*args: str) -> list[str]:
    """``python -m lab93zmq ARGS`` from this checkout."""
    return [PYTHON, "-m", "lab93zmq", *args]


def script_argv(script: str, *args: str) -> list[str]:
    """``python bench/SCRIPT ARGS``."""
    return [PYTHON, str(BENCH / script), *args]


def interleave(
    rounds: int, ours: Callable[[int], Any], baseline: Callable[[int], Any]
) -> tuple[list[Any], list[Any]]:
    """Run ours and its baseline once per round each (called with the round number);
    their results, in round order.

    The order flips every round (A B, B A, A B ...) so neither side always runs
    on a machine warmed or loaded by the other.
    """
    results: tuple[list[Any], list[Any]] = ([], [])
    for number in range(rounds):
        order = [0, 1] if number % 2 == 0 else [1, 0]
        for side in order:
            results[side].append((ours, baseline)[side](number))
    return results


def log(text: str) -> None:
    """Progress for the person waiting, on stderr (stdout keeps the table)."""
    print(f"  {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def emit(**event: Any) -> None:
    """A child's side of the JSON-line talk: one event on stdout."""
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class CommandReader:
    """A child's side: JSON commands from stdin, read from the raw fd (no hidden buffer)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(sys.stdin.fileno(), selectors.EVENT_READ)
        self.closed = False

    def fileno(self) -> int:
        return sys.stdin.fileno()

    def pending(self) -> bool:
        """Whether a whole command is buffered already (its fd no longer polls ready)."""
        return b"\n" in self._buffer

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next command; None at end of input or after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            if self.closed:
                return None
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._selector.select(left):
                return None
            chunk = os.read(sys.stdin.fileno(), 1 << 16)
            if not chunk:
                self.closed = True
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line) if line.strip() else self.next(timeout)


class Sampler:
    """Samples one process's RSS and CPU time in a thread (psutil), every ``step`` s."""

    def __init__(self, pid: int, step: float = 0.1) -> None:
        import threading

        import psutil

        self.process = psutil.Process(pid)
        self.step = step
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self) -> list[Any]:
        try:
            return [self.process, *self.process.children(recursive=True)]
        except Exception:
            return [self.process]

    def rss(self) -> int:
        total = 0
        for proc in self._tree():
            try:
                total += proc.memory_info().rss
            except Exception:
                pass
        return total

    def cpu_seconds(self) -> float:
        """CPU time of the process and its children so far.

        From /proc/PID/task/*/schedstat (nanoseconds) where it can be read, since
        psutil's user+system times move in 10 ms ticks: 0.1 % of a 10 s window.
        """
        total = 0.0
        for proc in self._tree():
            total += _schedstat_seconds(proc)
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.step):
            rss = self.rss()
            self.peak_rss = max(self.peak_rss, rss)

    def __enter__(self) -> Sampler:
        self.peak_rss = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)


def _schedstat_seconds(proc: Any) -> float:
    """Nanosecond CPU time of every thread of ``proc``; psutil's ticks as a fallback."""
    tasks = Path(f"/proc/{proc.pid}/task")
    try:
        total = 0
        for task in tasks.iterdir():
            total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        try:
            times = proc.cpu_times()
            return times.user + times.system
        except Exception:
            return 0.0
