"""Item: ``--send`` end to end on loopback, and a listening client's idle RSS (issue 14).

*--send*: wall time from starting ``lab93-node -r -c ... --send TEXT`` to its
exit with status 0 (start-up, connect, the message acknowledged, exit), with
the same inbox every time (a user's; the first run, which creates it, is a
warm-up and only kept in the details), our server on loopback. Beside it, in
the same rounds, the order rotating:

* ``pipe_client.py once``: start Python, import pyzmq, one POST to the bare
  broker, its ACK, exit - the smallest DEALER round trip a ``--send`` could be;
* ``python -c 'import zmq'``: the start-up no pyzmq program can avoid;
* ``python -c pass`` (details only): the interpreter alone.

*idle RSS*: our ``--listen`` client (connected, past its catch-up, the
``--send`` messages printed) beside pipe_client.py's listener (a DEALER and a
SUB), the largest resident set over a window (psutil, every 0.1 s). idle.py
covers the broadcast node and the server (in network namespaces, as root).
"""

from __future__ import annotations

import os
import selectors
import site
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

import clients
import spy
from clients import BARE, OURS
from common import PYTHON, BenchError, Figure, Procs, Sampler, Settings, child_env, log

MIB = 1024 * 1024
RUN_LIMIT = 30.0


def timed(argv: list[str], workdir: Path, name: str) -> float:
    """Seconds from start to exit; BenchError unless it exits 0 in time.

    The exit is seen on a pidfd, at once: ``Popen.wait(timeout)`` polls with
    sleeps that double up to 50 ms, which would round every figure up to its
    schedule (31.5 ms, 63.5 ms, 113.5 ms, 163.5 ms ...).
    """
    with open(workdir / f"{name}.stderr", "ab") as stderr:
        t0 = time.monotonic()
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            env=child_env(), cwd=str(workdir),
        )  # fmt: skip
        pidfd = os.pidfd_open(popen.pid)
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(pidfd, selectors.EVENT_READ)
                exited = bool(selector.select(RUN_LIMIT))
            elapsed = time.monotonic() - t0
        finally:
            os.close(pidfd)
            if popen.poll() is None:
                popen.kill()
            status = popen.wait(5)
    if not exited:
        raise BenchError(f"{name} still running after {RUN_LIMIT:g} s")
    if status != 0:
        tail = (workdir / f"{name}.stderr").read_text(errors="replace").splitlines()[-3:]
        raise BenchError(f"{name} exited {status}: {' | '.join(tail)}")
    return elapsed


def installed_python(workdir: Path) -> str:
    """A Python laid out as ``pip install .`` leaves one (README's install command):
    a venv whose site-packages names the bench venv's packages in a plain ``.pth``
    (site adds each line to the path as it is; the checkout comes first through
    ``child_env``'s PYTHONPATH). The bench's own venv is an editable install, whose
    finder every start of it imports (pathlib, urllib.parse, importlib.util: 3 to
    8 ms), which no installed ``lab93-node`` does."""
    where = workdir / "installed-venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(where)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    packages = where / "lib" / version / "site-packages"
    (packages / "bench-packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return str(where / "bin" / "python")


def idle_rss(pids: dict[str, int], window: float) -> dict[str, float]:
    samplers = {name: Sampler(pid) for name, pid in pids.items()}
    for sampler in samplers.values():
        sampler.__enter__()
    time.sleep(window)  # the window itself is what is measured
    for sampler in samplers.values():
        sampler.__exit__()
    return {name: sampler.peak_rss / MIB for name, sampler in samplers.items()}


def profile_send(procs: Procs, argv: list[str], workdir: Path, out: Path) -> None:
    """One ``--send`` under ``-X importtime`` (out/send-importtime.txt, the slowest imports)
    and one under py-spy, sleeping threads too: wall time (out/send.txt.top.txt)."""
    timed([argv[0], "-X", "importtime", *argv[1:]], workdir, "send-importtime")
    rows = []
    for line in (workdir / "send-importtime.stderr").read_text().splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), int(parts[0]), parts[2].rstrip()))
    top_level = sum(total for total, _, name in rows if not name.startswith("  "))
    text = [f"{top_level / 1000:.1f} ms of imports in all; the slowest by cumulative time:",
            "cumulative ms  self ms  module"]  # fmt: skip
    text += [
        f"{t / 1000:13.1f}  {own / 1000:7.1f}  {name}" for t, own, name in sorted(rows)[::-1][:40]
    ]
    (out / "send-importtime.txt").write_text("\n".join(text) + "\n")
    recording = spy.record(procs, out / "send.txt", argv=argv, rate=1000, idle=True)
    recording.start()
    assert recording.popen is not None
    recording.popen.wait(RUN_LIMIT)
    recording.stop()


def run(settings: Settings, workdir: Path) -> list[Figure]:
    runs = settings.pick(5, 15)
    window = settings.pick(1.0, 5.0)
    times: dict[str, list[float]] = {
        name: [] for name in ("send", "once", "import", "pass", "send-editable", "pass-editable")
    }
    with Procs(workdir) as procs:
        with (
            clients.repeater(procs, OURS, workdir, "send-ours") as ours,
            clients.repeater(procs, BARE, workdir, "send-bare") as bare,
        ):
            listeners = {
                OURS: clients.Listener(procs.start("listen-ours", ours.listener_argv(), talk=True)),
                BARE: clients.Listener(procs.start("listen-bare", bare.listener_argv(), talk=True)),
            }
            installed = installed_python(workdir)

            def as_installed(argv: list[str]) -> list[str]:
                return [installed, *argv[1:]]

            kinds = {
                "send": lambda n: as_installed(ours.send_argv("sender", f"hello {n}")),
                "once": lambda n: as_installed(bare.send_argv("sender", f"hello {n}")),
                "import": lambda n: [installed, "-c", "import zmq"],
                "pass": lambda n: [installed, "-c", "pass"],
                "send-editable": lambda n: ours.send_argv("sender", f"hello {n}"),
                "pass-editable": lambda n: [PYTHON, "-c", "pass"],
            }
            first_use = timed(kinds["send"](-1), workdir, "send")  # creates the inbox
            for name in ("once", "import", "pass", "send-editable", "pass-editable"):
                timed(kinds[name](-1), workdir, name)
            order = list(kinds)
            for number in range(runs):
                shift = number % len(order)
                for name in order[shift:] + order[:shift]:
                    times[name].append(timed(kinds[name](number), workdir, name))
            for kind, listener in listeners.items():
                # Proof it is connected and past its catch-up: it printed the sends (the
                # floor's may have missed the warm-up's while its SUB was joining; ours
                # prints both kinds of --send).
                if not clients.wait_for_lines(listener, runs, 10.0):
                    raise BenchError(
                        f"the {kind} listener printed {listener.lines} of {runs} sends; "
                        f"{listener.child.stderr_tail()}"
                    )
            rss = idle_rss({kind: lis.child.pid for kind, lis in listeners.items()}, window)
            if settings.profile:
                profile_send(procs, ours.send_argv("sender", "profiled"), workdir, settings.profile)
    ms = {name: [t * 1000 for t in values] for name, values in times.items()}
    med = {name: sorted(v)[len(v) // 2] for name, v in ms.items()}
    log(
        f"send: --send {med['send']:.0f} ms (first use {first_use * 1000:.0f} ms), "
        f"DEALER round trip {med['once']:.0f} ms, import zmq {med['import']:.0f} ms, "
        f"python {med['pass']:.0f} ms; from the editable checkout: --send "
        f"{med['send-editable']:.0f} ms, python {med['pass-editable']:.0f} ms; "
        f"idle RSS ours {rss[OURS]:.1f} MiB, "
        f"floor {rss[BARE]:.1f} MiB"
    )
    details: list[dict[str, Any]] = [{"ms": ms, "first_use_ms": first_use * 1000, "rss": rss}]
    item = "send (loopback)"
    return [
        Figure(item, "--send end to end", "ms", "lower", ms["send"], ms["once"],
               "pipe_client once: POST->ACK", "<= 100 ms", details=details,
               note=f"start to exit 0, median of {runs}, the same inbox each time; every "
                    "program of this row and the next on a Python laid out as 'pip "
                    "install .' leaves it (the bench's venv is an editable install)"),
        Figure(item, "--send end to end", "ms", "lower", ms["send"], ms["import"],
               "python -c 'import zmq'", "<= 100 ms"),
        Figure(item, "--send from the editable checkout", "ms", "lower", ms["send-editable"],
               ms["send"], "--send as installed",
               note="python -m lab93zmq from the bench's own venv (pip install -e): its "
                    "start imports the editable install's finder"),
        Figure(item, "--listen client idle RSS", "MiB", "lower", [rss[OURS]], [rss[BARE]],
               "pipe_client listen", "<= 30 MiB",
               note=f"largest RSS over {window:g} s, connected and caught up"),
    ]  # fmt: skip
