"""What each core needs of its inbox, as typing Protocols. Pure.

The cores never import the store (peewee, sqlite3): they are handed an object
with these methods. ``io.store.Inbox`` has all of them; tests may hand in
anything else that does.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from .message import Message

# (message, server id, server number): how a message is stored.
Row = tuple[Message, "str | None", "int | None"]


@dataclass(frozen=True)
class RoomState:
    """Whether a broadcast node is in a room, and where its interest in it begins.

    ``floors`` maps an origin to its floor (below it the node never wants that
    origin's messages of the room); None while its first join met nobody yet.
    """

    joined: bool
    parted: bool
    floors: dict[str, int] | None


class Transactional(Protocol):
    node_id: str

    def transaction(self) -> AbstractContextManager[Any]:
        """Everything done inside commits together, or not at all."""
        ...

    def save_many(self, batch: Sequence[Row]) -> list[bool]: ...

    def acknowledge(self, message_ids: Iterable[str]) -> int: ...

    def next_origin_seq(self, origin: str, direct: bool, room: str = ...) -> int:
        """Where our own numbering goes on (``authoring.Numbering``): in ``room``, or
        for direct messages."""
        ...

    def current_topic(self, room: str) -> Message | None:
        """The topic message of ``room`` that wins (greatest (sent_at, id)), if any."""
        ...


class BroadcastInbox(Transactional, Protocol):
    """The inbox of a broadcast node."""

    def save(self, message: Message) -> bool: ...

    def save_within(self, batch: Sequence[Row]) -> list[bool]:
        """``save_many`` inside the caller's transaction, which undoes it all on
        StoreError (no savepoint of its own)."""
        ...

    def origin_marks(self, room: str, floors: Mapping[str, int] | None = None) -> dict[str, int]:
        ...

    def origin_after(self, origin: str, after_seq: int, limit: int, room: str) -> list[Message]:
        ...

    def newest(self, room: str, count: int) -> list[Message]: ...

    def room_states(self) -> dict[str, RoomState]: ...

    def save_room_state(self, room: str, state: RoomState) -> None: ...

    def next_origin_seq(self, origin: str, direct: bool, room: str = ...) -> int: ...

    def queue(self, message: Message) -> None: ...

    def outbox(self) -> list[Message]: ...

    def withdraw_misnamed(self, origin: str, user: str) -> list[Message]:
        """Secure mode: delete and return our own messages written under another name
        than ``user`` that nothing of ours follows (``io.signature_store``)."""
        ...


class ServerInbox(Transactional, Protocol):
    """The store of a repeater server."""

    def max_server_seq(self, server_id: str) -> int: ...

    def room_head(self, server_id: str, room: str, below: int | None = None) -> int: ...

    def direct_head(self, server_id: str, user: str, below: int | None = None) -> int: ...

    def lock_order(self, server_id: str) -> int | None:
        """In a commit: wait for the other servers of the service, and the order's head
        as stored now (None: no other server writes this order)."""
        ...

    def tell_order(self, server_id: str, head: int) -> None:
        """In a commit: tell the other servers the order reached ``head`` once it commits."""
        ...

    def numbered_after(self, server_id: str, after: int, limit: int) -> list[tuple[int, Message]]:
        """What is numbered above ``after``, in order: what other servers stored."""
        ...

    def room_tail_start(self, server_id: str, room: str, count: int) -> int: ...

    def room_heads(self, server_id: str) -> dict[str, tuple[int, int]]: ...

    def numbered_topic(self, server_id: str, room: str) -> tuple[int, Message] | None: ...

    def visible_since(
        self,
        server_id: str,
        rooms: Mapping[str, int],
        direct_after: int,
        user: str,
        limit: int,
    ) -> tuple[list[tuple[int, Message]], bool]: ...

    def held(self, server_id: str, ids: Iterable[str]) -> dict[str, int | None]: ...

    def save_unknown(
        self, batch: Sequence[Row], known: Container[str], *, savepoint: bool = True
    ) -> list[bool]: ...


class ClientInbox(Transactional, Protocol):
    """The inbox of a repeater client."""

    def get_meta(self, key: str, default: str | None = None) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def queue_many(self, messages: Sequence[Message]) -> None: ...

    def outbox(self) -> list[Message]: ...

    def set_server_seq(self, message_id: str, server_id: str, server_seq: int) -> None: ...

    def set_server_seqs(self, server_id: str, numbers: Iterable[tuple[str, int]]) -> None: ...
