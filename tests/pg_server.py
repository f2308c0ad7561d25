"""A real PostgreSQL server of the tests' own: initdb in a temporary directory, loopback only.

The server binaries are looked for in ``$LAB93_PG_BIN``, then the newest
``/usr/lib/postgresql/*/bin`` (Debian's ``postgresql`` package), then ``PATH``;
``missing()`` says in one line why there is none. initdb refuses to run as
root, so as root the cluster belongs to ``nobody`` (``runuser -u nobody``),
in a directory of ``/tmp`` handed to it. The postmaster listens on 127.0.0.1
at a port the test held until just before it started, and on a unix socket
in the same directory; authentication is ``trust`` (loopback, a throwaway
cluster). ``stop`` and ``start`` again keep the data (a database that goes
away and comes back); ``remove`` deletes everything.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "lab93"


def bin_dir() -> Path | None:
    given = os.environ.get("LAB93_PG_BIN")
    candidates = [Path(given)] if given else []
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    candidates += [Path(p) for p in reversed(found)]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    return None


def missing() -> str | None:
    """Why no PostgreSQL server can be run here (None: one can)."""
    if bin_dir() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl; Debian: apt-get install postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser, and initdb refuses root"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "no psycopg (pip install 'lab93zmq[postgresql]')"
    return None


class PostgresServer:
    """One throwaway cluster (see the module docstring)."""

    def __init__(self) -> None:
        self.bin = bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="lab93-pg-"))
        self.data = self.root / "data"
        # The port, bound to 0 and read back, held (never listened on) until ``remove``:
        # the postmaster sets SO_REUSEADDR and binds it beside the holder, again after
        # a restart, and nobody else is handed it meanwhile.
        self._holder = socket.socket()
        self._holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._holder.bind(("127.0.0.1", 0))
        self.port = self._holder.getsockname()[1]
        self._databases = 0
        if os.geteuid() == 0:
            shutil.chown(self.root, "nobody")
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-N", "-E", "UTF8")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "nobody", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=60)

    def start(self) -> None:
        """Start the postmaster (again, on the same port)."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c max_connections=60"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                  str(self.root / "log"), "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def new_database(self) -> str:
        """A fresh database; its URL."""
        self._databases += 1
        name = f"lab93_{self._databases}"
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"

    def remove(self) -> None:
        self.stop("immediate")
        self._holder.close()
        shutil.rmtree(self.root, ignore_errors=True)
