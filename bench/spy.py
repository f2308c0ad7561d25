"""py-spy profiles of client and server processes, with each thread's real CPU time beside.

py-spy samples the Python stack of every thread that is not asleep, 250
times a second; a thread that waits for the GIL can still be counted, and
C code that releases the GIL (SQLite, libzmq) is counted under the Python
function that called it. So a share of samples is not a share of CPU: the
report puts each thread's CPU time (``/proc/PID/task/TID/schedstat``,
nanoseconds) beside its samples, and py-spy names threads by the same TID.

``record(procs, out, pid=...)`` attaches to a running process;
``record(procs, out, argv=...)`` starts ``argv`` under py-spy (for a process
too short-lived to attach to: a pipeline's consumer). ``stop()`` ends the
recording (SIGINT; py-spy then writes ``out``) and writes ``out.top.txt``.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from common import PYTHON, BenchError, Procs

RATE = 250
THREAD = re.compile(r"^thread \((\d+)\)(?::\s*(.*))?$")
WHERE = re.compile(r"\((.*)\)$")
# Innermost frames where a thread sleeps in C with the GIL released; py-spy still
# counts those samples, so they are left out of a thread's CPU estimate.
WAITS = ("Poller.poll (", "select (zmq/", "Socket.poll (", "Event.wait (", "Condition.wait (")


def binary() -> str:
    sibling = Path(PYTHON).with_name("py-spy")
    if sibling.exists():
        return str(sibling)
    found = shutil.which("py-spy")
    if found is None:
        raise BenchError("--profile needs py-spy: pip install -e '.[bench]'")
    return found


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid`` so far (empty once it is gone)."""
    out: dict[int, float] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out[int(task.name)] = int((task / "schedstat").read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            continue
    return out


class Recording:
    """One py-spy recording and the per-thread CPU of its target over the same time."""

    def __init__(
        self, procs: Procs, out: Path, pid: int | None, argv: list[str] | None,
        rate: int = RATE, idle: bool = False,
    ) -> None:  # fmt: skip
        self.out = out
        self.rate = rate
        target = ["--pid", str(pid)] if pid is not None else ["--", *(argv or [])]
        self.argv = [
            binary(), "record", "--format", "raw", "--rate", str(rate), "--nolineno",
            "--threads", *(["--idle"] if idle else []), "--output", str(out), *target,
        ]  # fmt: skip
        self.pid = pid
        self.start_cpu: dict[int, float] = thread_cpu(pid) if pid is not None else {}
        self.last_cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._watch: threading.Thread | None = None
        self.popen: subprocess.Popen | None = None
        self.procs = procs

    def start(self, started: subprocess.Popen | None = None) -> None:
        """Run py-spy; ``started``: it already runs ``self.argv`` (wrapped, e.g. in a pipeline)."""
        if started is None:
            started = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            self.procs.children.append(started)  # killed by pid at the end, should we fail
        self.popen = started
        self._watch = threading.Thread(target=self._sample, daemon=True)
        self._watch.start()

    def _sample(self) -> None:
        """Keep the target's latest per-thread CPU (a wrapped target may exit any time)."""
        import psutil

        pid = self.pid
        while not self._stop.wait(0.05):
            if pid is None and self.popen is not None:
                try:
                    children = psutil.Process(self.popen.pid).children()
                except psutil.Error:
                    return
                pid = children[0].pid if children else None
                continue
            if pid is not None:
                now = thread_cpu(pid)
                if not now:
                    return
                self.last_cpu.update(now)  # threads that ended keep their last reading

    def stop(self, timeout: float = 15.0) -> None:
        """End the recording (the target may go on running) and write the report."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._stop.set()
        if self._watch is not None:
            self._watch.join(2)
        cpu = {tid: t - self.start_cpu.get(tid, 0.0) for tid, t in self.last_cpu.items()}
        if self.out.exists():
            text = report(self.out.read_text(), cpu, rate=self.rate)
            Path(f"{self.out}.top.txt").write_text(text)


def record(
    procs: Procs, out: Path, *, pid: int | None = None, argv: list[str] | None = None,
    rate: int = RATE, idle: bool = False,
) -> Recording:  # fmt: skip
    """A recording of ``pid`` (attached) or of ``argv`` (started under py-spy), ``rate``
    samples a second; ``idle``: sleeping threads too (wall time, not CPU). Not started."""
    return Recording(procs, out, pid, argv, rate, idle)


@dataclass
class Tally:
    """Collapsed stacks counted by thread, by library, by our function, by frame."""

    samples: int = 0
    names: dict[int, str] = field(default_factory=dict)
    threads: Counter[int] = field(default_factory=Counter)
    waiting: Counter[int] = field(default_factory=Counter)  # samples asleep in a wait
    working: dict[int, Counter[str]] = field(default_factory=dict)  # the rest, by our function
    libraries: Counter[str] = field(default_factory=Counter)
    ours: Counter[str] = field(default_factory=Counter)
    leaves: Counter[str] = field(default_factory=Counter)
    totals: Counter[str] = field(default_factory=Counter)

    def add(self, frames: list[str], n: int) -> None:
        self.samples += n
        found = THREAD.match(frames[0])
        tid = int(found.group(1)) if found else -1
        if found:
            self.names[tid] = found.group(2) or self.names.get(tid, "")
            frames = frames[1:]
        self.threads[tid] += n
        if not frames:
            return
        leaf = frames[-1]
        self.leaves[leaf] += n
        self.libraries[library(leaf)] += n
        for frame in set(frames):
            self.totals[frame] += n
        nearest = next((f for f in reversed(frames) if "lab93zmq/" in f), leaf)
        self.ours[nearest] += n
        if leaf.startswith(WAITS):
            self.waiting[tid] += n
            return
        key = nearest if leaf == nearest else f"{nearest} > {library(leaf)}"
        self.working.setdefault(tid, Counter())[key] += n


def tally(collapsed: str) -> Tally:
    counted = Tally()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counted.add(stack.split(";"), int(count))
    return counted


def report(collapsed: str, cpu: dict[int, float], top: int = 25, rate: int = RATE) -> str:
    """Where the samples are: by thread (with its CPU and, for the busy ones, an estimate
    of where that CPU goes), by library, by our function, by innermost frame."""
    t = tally(collapsed)
    if not t.samples:
        return "no samples\n"
    cpu_total = sum(cpu.values())

    def share(n: int) -> str:
        return f"{100 * n / t.samples:6.1f}"

    def name(tid: int) -> str:
        return f"{t.names.get(tid) or '(unnamed)'} [{tid}]"

    lines = [
        f"{t.samples} samples at {rate}/s ({t.samples / rate:.2f} s of thread time)",
        "",
        f"by thread: samples %, CPU s (schedstat; {cpu_total:.2f} s in all)",
    ]
    for tid, n in t.threads.most_common():
        shown = f"{cpu[tid]:6.2f} s" if tid in cpu else "      - "
        lines.append(f"{share(n)}  {shown}  {name(tid)}")
    for tid in sorted(cpu, key=lambda tid: -cpu[tid]):
        working = sum(t.working.get(tid, Counter()).values())
        if not working or cpu[tid] < 0.1 * cpu_total:
            continue
        lines += [
            "",
            f"{name(tid)}: {cpu[tid]:.2f} s CPU over {working} samples not waiting"
            f" ({t.waiting[tid]} in a wait left out): %, est. CPU ms, our function > library",
        ]
        for where, n in t.working[tid].most_common(15):
            lines.append(f"{100 * n / working:6.1f}  {1000 * cpu[tid] * n / working:6.0f}  {where}")
    lines += ["", "by library of the innermost frame"]
    lines += [f"{share(n)}  {where}" for where, n in t.libraries.most_common(12)]
    lines += ["", "by our innermost function (itself and the libraries it calls)"]
    lines += [f"{share(n)}  {where}" for where, n in t.ours.most_common(top)]
    lines += ["", "self (innermost frame)"]
    lines += [f"{share(n)}  {where}" for where, n in t.leaves.most_common(top)]
    lines += ["", "total (with what it calls)"]
    lines += [f"{share(n)}  {where}" for where, n in t.totals.most_common(top)]
    return "\n".join(lines) + "\n"


def library(frame: str) -> str:
    """``lab93zmq/io/store.py``, ``peewee``, ``zmq``, ``json``, ... of one frame."""
    found = WHERE.search(frame)
    where = found.group(1) if found else frame
    if where.startswith("lab93zmq/"):
        return where
    head = where.split("/")[0]
    return head[:-3] if head.endswith(".py") else head
