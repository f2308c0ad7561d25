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

peewee also imports ``hashlib`` (for the name of a constraint we never
create) and ``calendar`` (for a kind of field we do not use): peewee gets a
stand-in for each, which imports the real module the first time peewee uses
it; anyone else imports the real one as usual. hashlib is OpenSSL's
libcrypto: 3.5 MiB of a plain server's or client's 31. (importlib's
LazyLoader cannot do this: the next ``import`` statement of the name loads it.)
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

# What peewee 3 and 4 try to import beside sqlite3 (pysqlite3 is left alone: when
# it is there, peewee prefers it to sqlite3, and this must not change which
# SQLite an inbox is written with).
OTHER_DRIVERS = ("psycopg2cffi", "psycopg2", "psycopg", "pymysql", "MySQLdb")


# What peewee imports but a SQLite inbox does not use until later, if ever.
LAZY = ("hashlib", "calendar")


def import_peewee() -> None:
    """Import peewee with the drivers of other databases hidden and the modules it
    hardly uses lazy (see the module docstring); nothing when peewee is already
    imported."""
    if "peewee" in sys.modules:
        return
    deferred = {name: _stand_in(name) for name in LAZY if name not in sys.modules}
    sys.modules.update(deferred)
    hidden = [name for name in OTHER_DRIVERS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # "import name" fails at once
    try:
        import peewee  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
        for name, stand_in in deferred.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]


def _stand_in(name: str) -> types.ModuleType:
    """A module named ``name`` whose attributes are the real module's, imported when the
    first one is asked for."""
    stand_in = types.ModuleType(name)

    def real_attribute(attribute: str) -> Any:
        return getattr(importlib.import_module(name), attribute)

    stand_in.__getattr__ = real_attribute  # type: ignore[method-assign]
    return stand_in


def opens_postgresql(mode: str, db: object) -> bool:
    """Whether a command-line run of ``mode`` with ``--db db`` may open PostgreSQL."""
    return mode == "server" and isinstance(db, str) and db.startswith(
        ("postgresql://", "postgres://")
    )
