"""The signatures of a broadcast inbox's messages (secure mode): the ``signature`` table.

A secure broadcast node relays every message it holds (catch-up answers,
tails, direct re-offers) with its author's Ed25519 signature, so it keeps each
one beside the message: ``signature (message_id PRIMARY KEY, sig BLOB)``. A
mixin of ``store.Inbox``; a plain inbox's table stays empty, and then reads
never look at it. An inbox of an older lab93-node gets the table when it is
first opened; older versions ignore it. ``withdraw_misnamed`` takes out what
an earlier run wrote under another name than the key's (see there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.message import Message
from .server_order import placeholders
from .store_schema import chunks

CREATE = ("CREATE TABLE IF NOT EXISTS signature"
          " (message_id VARCHAR(32) NOT NULL PRIMARY KEY, sig BLOB NOT NULL)")
INSERT = "INSERT OR IGNORE INTO signature (message_id, sig) VALUES (?, ?)"
# Our own messages written under another name than ``user``: a room's above the last
# it has under ``user`` (nothing of ours follows them there), and direct ones not
# acknowledged yet.
MISNAMED = (
    "SELECT m.id FROM message m WHERE m.origin = ? AND m.author <> ? AND ("
    " (m.recipient IS NULL AND m.origin_seq > COALESCE((SELECT MAX(n.origin_seq)"
    "  FROM message n WHERE n.origin = m.origin AND n.recipient IS NULL"
    "  AND n.room = m.room AND n.author = ?), 0))"
    " OR (m.recipient IS NOT NULL AND m.id IN (SELECT message_id FROM outbox)))"
    " ORDER BY m.arrival"
)


class SignatureStore:
    """Saving and attaching signatures (``store.Inbox`` provides ``_run``/``_executemany``)."""

    _signed_any = False  # some message here has a signature: reads attach them

    def _run(self, sql: str, params: Sequence = ()) -> Any:
        raise NotImplementedError

    def _executemany(self, sql: str, rows: Sequence[tuple]) -> None:
        raise NotImplementedError

    def withdraw_misnamed(self, origin: str, user: str) -> list[Message]:
        """Secure broadcast: take out what this node (``origin``) wrote under another name
        than ``user``, its key's, in an earlier run, and return it (to be reported).

        No secure peer stores such a message (its name is not its key's), so offered
        again at every meeting it only got this node cut off as a spoofer, and held up
        every later post of its room. Only a room's messages above our last one there
        under ``user`` go (so our numbering there has no hole), and direct ones not yet
        acknowledged; older ones stay as they are.
        """
        # ``transaction`` and ``get`` are store.Inbox's (this mixin comes first in its
        # bases, so it declares neither).
        with self.transaction():  # type: ignore[attr-defined]
            ids = [row[0] for row in self._run(MISNAMED, (origin, user, user))]
            found = [m for m in map(self.get, ids) if m is not None]  # type: ignore[attr-defined]
            for chunk in chunks(ids):
                marks = placeholders(len(chunk))
                for table, column in (("outbox", "message_id"), ("signature", "message_id"),
                                      ("message", "id")):
                    self._run(f"DELETE FROM {table} WHERE {column} IN ({marks})", chunk)
        return found

    def _make_signature_table(self) -> None:
        self._run(CREATE)
        self._signed_any = self._run("SELECT 1 FROM signature LIMIT 1").fetchone() is not None

    def _save_signatures(self, messages: Sequence[Message]) -> None:
        rows = [(m.id, m.signature) for m in messages if m.signature is not None]
        if rows:
            self._executemany(INSERT, rows)
            self._signed_any = True

    def _signed(self, messages: list[Message]) -> list[Message]:
        """``messages`` with the signatures this inbox holds for them."""
        if not self._signed_any or not messages:
            return messages
        found: dict[str, bytes] = {}
        for chunk in chunks([m.id for m in messages]):
            marks = placeholders(len(chunk))
            sql = f"SELECT message_id, sig FROM signature WHERE message_id IN ({marks})"
            found.update((mid, bytes(sig)) for mid, sig in self._run(sql, chunk))
        if not found:
            return messages
        return [m if m.id not in found else Message.trusted(
            m.id, m.author, m.recipient, m.subject, m.content, m.sent_at, m.origin,
            m.origin_seq, m.room, m.kind, found[m.id]) for m in messages]
