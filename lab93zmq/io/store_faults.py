"""What went wrong with an inbox file, in one true sentence, and whether it is still there.

SQLite names a fault by a code; the sentence a user needs depends on more
than the code. A full disk (``SQLITE_FULL``), a read-only one
(``SQLITE_READONLY``) or a failing one (``SQLITE_IOERR``) may come back by
itself: ``StoreUnavailable``, and the node goes on serving what it can. A
file that reads as damaged (``SQLITE_CORRUPT``) is damaged only if the disk
still answers: a file system shut down under SQLite makes it read garbage and
say "malformed" - so the file is read once more, plainly, before blaming it.
Real damage, or a file deleted or replaced under the running node, is
``StoreLost``: the node stops, and the sentence says how to recover.

``FileWatch`` holds a descriptor of the file the node opened and compares its
identity (device, inode, links) with what the path names now: a deleted or
replaced inbox takes every later write into a file no one will read again.
"""

from __future__ import annotations

import errno
import os
import shlex
import sqlite3
from pathlib import Path

import peewee as pw

from ..core.errors import StoreError, StoreLost, StoreUnavailable

# SQLite's primary result codes (the low byte of an extended one) that name a fault of
# the disk or the file, not of a row.
SQLITE_FULL, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT = 13, 8, 10, 11
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_CANTOPEN, SQLITE_NOTADB = 5, 6, 14, 26


def damaged(path: Path, detail: str) -> StoreLost:
    """The sentence for a damaged inbox: which file, and how to get back what it holds."""
    where = shlex.quote(str(path))
    saved = shlex.quote(f"{path}.recovered")
    return StoreLost(
        f"the inbox {path} is damaged (SQLite: {detail}); recover what it holds with"
        f" 'sqlite3 {where} .recover | sqlite3 {saved}' and run with --db {saved}"
        " (or move that file in its place)"
    )


def is_damage(error: BaseException) -> bool:
    """SQLITE_CORRUPT; SQLITE_NOTADB ("file is not a database") is not damage that
    .recover mends: that file was never an inbox."""
    code = _code(error)
    return code == SQLITE_CORRUPT if code is not None else "malformed" in str(error)


def _code(error: BaseException) -> int | None:
    # peewee wraps sqlite3's exception; the original carries the code (Python 3.11+).
    for candidate in (error, getattr(error, "orig", None), error.__cause__, error.__context__):
        code = getattr(candidate, "sqlite_errorcode", None)
        if isinstance(code, int):
            return code & 0xFF
    return None


class FileWatch:
    """The inbox file as the node opened it; ``check`` says when the path no longer names it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        st = os.fstat(self._fd)
        self._identity = (st.st_dev, st.st_ino)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def check(self) -> None:
        """Raise StoreLost when the file was deleted or replaced; a path that cannot be
        looked at now (a disk that fails) is not a verdict: the writes will say."""
        if self._fd is None:
            return
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            raise self.lost("was deleted") from None
        except OSError:
            return
        if (now.st_dev, now.st_ino) != self._identity:
            raise self.lost("was replaced by another file")
        try:
            if os.fstat(self._fd).st_nlink == 0:
                raise self.lost("was deleted")
        except OSError:
            return

    def readable(self) -> OSError | None:
        """Read the file's first page plainly: None when the disk answers, else its error."""
        if self._fd is None:
            return None
        try:
            os.pread(self._fd, 4096, 0)
        except OSError as error:
            return error
        return None

    def lost(self, what: str) -> StoreLost:
        return StoreLost(
            f"the inbox {self.path} {what} while this node ran; it stops, so that nothing"
            " more is acknowledged into a file no one will read (what it stored since is"
            " lost with that file; restart it on the inbox to use)"
        )


def sqlite_fault(path: Path, error: BaseException, watch: FileWatch | None) -> StoreError:
    """The StoreError for a SQLite error that is not a row's fault (see the module
    docstring); a plain StoreError when it is none of the known faults."""
    code = _code(error)
    text = str(error)
    if code == SQLITE_FULL or "disk is full" in text:
        return StoreUnavailable(f"the disk of the inbox {path} is full ({text})")
    if code == SQLITE_READONLY or "readonly" in text:
        return StoreUnavailable(f"the inbox {path} cannot be written: the disk is read-only")
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return StoreUnavailable(f"the inbox {path} is locked by another program ({text})")
    if code in (SQLITE_IOERR, SQLITE_CANTOPEN) or "I/O error" in text:
        return StoreUnavailable(_io_sentence(path, watch, text))
    if is_damage(error):
        failing = watch.readable() if watch is not None else None
        if failing is not None:
            return StoreUnavailable(_io_sentence(path, watch, os.strerror(failing.errno or 0)))
        return damaged(path, text)
    if code == SQLITE_NOTADB:
        return StoreLost(f"the inbox {path} is not a database any more ({text})")
    return StoreError(f"the inbox {path} failed: {text}")


def _io_sentence(path: Path, watch: FileWatch | None, detail: str) -> str:
    failing = watch.readable() if watch is not None else None
    if failing is not None and failing.errno == errno.EROFS:
        return f"the inbox {path} cannot be written: the disk is read-only"
    return (
        f"the disk under the inbox {path} fails (SQLite: {detail}); its file system may have"
        " been shut down or turned read-only"
    )


DATABASE_ERRORS = (pw.DatabaseError, pw.InterfaceError, sqlite3.DatabaseError)
INTEGRITY_ERRORS = (pw.IntegrityError, sqlite3.IntegrityError)
