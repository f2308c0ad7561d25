"""peewee for a process that opens SQLite files only.

peewee imports every database driver it can find when it is itself imported,
used or not. With psycopg installed (the ``[postgresql]`` extra, and the
``[test]`` extra for the PostgreSQL tests) that costs a ``--send`` about 60 ms
of its start-up and 3.5 MiB of memory: psycopg imports asyncio. Only a
repeater server given a ``postgresql://`` URL needs it.

A process that knows it opens no PostgreSQL store (the command line, for every
mode but such a server: ``frontend/cli.py``) calls ``import_peewee()`` before
anything imports peewee. The other databases' drivers are hidden from that one
import, so this process's peewee knows SQLite only; the drivers themselves
stay importable by anyone else. A process that did not say so (a program on
the Python API, which may start a server on PostgreSQL at any time) gets
peewee as it is.
"""

from __future__ import annotations

import sys

# What peewee 3 and 4 try to import beside sqlite3 (pysqlite3 is left alone: when
# it is there, peewee prefers it to sqlite3, and this must not change which
# SQLite an inbox is written with).
OTHER_DRIVERS = ("psycopg2cffi", "psycopg2", "psycopg", "pymysql", "MySQLdb")


def import_peewee() -> None:
    """Import peewee with the drivers of other databases hidden (see the module
    docstring); nothing when peewee is already imported."""
    if "peewee" in sys.modules:
        return
    hidden = [name for name in OTHER_DRIVERS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # "import name" fails at once
    try:
        import peewee  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


def opens_postgresql(mode: str, db: object) -> bool:
    """Whether a command-line run of ``mode`` with ``--db db`` may open PostgreSQL."""
    return mode == "server" and isinstance(db, str) and db.startswith(
        ("postgresql://", "postgres://")
    )
