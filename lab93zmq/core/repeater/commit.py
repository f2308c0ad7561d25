"""The server's heart, pure: number posts, store them in one transaction, then tell.

Posts wait in ``GroupCommit`` until ``flush``; then one lookup says which are
stored already (a re-send is acknowledged with its first number), the new
ones get the next numbers of the server's one sequence, and a single
transaction stores them. Only then are they acknowledged, published (room
messages, on the PUB) and delivered (direct messages, to the sessions of their
addressee and of their author): nothing is told that was not committed.

Every numbered message also carries ``prev``, the number before it in its
*chain*: its room, or one user's direct messages. Chains are kept by name
(``room_chain(room)``, ``direct_chain(user)``); a room's messages are
published under the room's topic, so only its subscribers get them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..batching import chunks
from ..errors import StoreError
from ..events import Accepted, Rejected
from ..inbox import ServerInbox
from ..message import Message
from .commands import BATCH_LIMIT, RepeaterVerb
from .outputs import PublishRoom, ReplyTo, ServerOutput

log = logging.getLogger(__name__)

ACK_LIMIT = 500  # ids in one ACK header (keeps it far below wire.MAX_HEADER_BYTES)
ROOM_PREFIX, DIRECT_PREFIX = "#", "dm:"  # a chain name starts with one of these


def room_chain(room: str) -> str:
    """The name of ``room``'s chain."""
    return ROOM_PREFIX + room


def direct_chain(user: str) -> str:
    """The name of the chain of direct messages to or from ``user``."""
    return DIRECT_PREFIX + user


@dataclass(frozen=True)
class Post:
    """A validated post waiting for the next flush.

    ``identity`` None: the server's own front end. ``payload``: the bytes it
    came in, which stand for it from now on (None: encode it when sent)."""

    identity: bytes | None
    message: Message
    payload: bytes | None


@dataclass(frozen=True)
class Numbered:
    """A message this commit stored, its number, and ``prev`` in each chain it is in."""

    seq: int
    post: Post
    prevs: dict[str, int] = field(default_factory=dict)

    @property
    def payload(self) -> bytes:
        return self.post.message.encode() if self.post.payload is None else self.post.payload


@dataclass
class Flushed:
    """What one flush did: what to send, and how many posts were new, resent, refused."""

    outputs: list[ServerOutput] = field(default_factory=list)
    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    fresh: list[Numbered] = field(default_factory=list)  # what was new, numbered

    def add(self, announced: tuple[list[ServerOutput], list[Numbered]], posts: list[Post]) -> None:
        outputs, fresh = announced
        self.outputs += outputs
        self.stored += len(fresh)
        self.duplicates += len(posts) - len(fresh)
        self.fresh += fresh


class GroupCommit:
    """The server's numbering: ``head`` (the last number given) and each chain's head."""

    def __init__(self, inbox: ServerInbox, batch_limit: int = BATCH_LIMIT) -> None:
        self.inbox = inbox
        self.server_id = inbox.node_id
        self.batch_limit = batch_limit
        self.head = inbox.max_server_seq(self.server_id)
        self._heads: dict[str, int] = {}  # each chain's head, read from the inbox when first asked
        self._pending: list[Post] = []

    def room_head(self, room: str) -> int:
        """The number of ``room``'s last message (0: none)."""
        return self.chain_head(room_chain(room))

    def dm_head(self, user: str) -> int:
        """The number of the last direct message to or from ``user``."""
        return self.chain_head(direct_chain(user))

    def chain_head(self, chain: str) -> int:
        if chain not in self._heads:
            if chain.startswith(ROOM_PREFIX):
                head = self.inbox.room_head(self.server_id, chain.removeprefix(ROOM_PREFIX))
            else:
                head = self.inbox.direct_head(self.server_id, chain.removeprefix(DIRECT_PREFIX))
            self._heads[chain] = head
        return self._heads[chain]

    @property
    def pending(self) -> int:
        """Posts received and not stored yet."""
        return len(self._pending)

    def add(self, post: Post) -> None:
        self._pending.append(post)

    def flush(self, sessions: Mapping[str, Sequence[bytes]]) -> Flushed:
        """Store every waiting post, then ACK, publish and deliver (to ``sessions``:
        user -> the identities of that user's sessions).

        When the inbox refuses the batch (a message clashes with a stored one,
        e.g. the same origin and origin number under another id), the posts
        are stored one by one and only the refused ones are rejected.
        """
        flushed = Flushed()
        if not self._pending:
            return flushed
        pending, self._pending = self._pending, []
        try:
            flushed.add(self._announce(*self._commit(pending), sessions), pending)
        except StoreError as exc:
            if len(pending) > 1:
                log.warning("the inbox refused a batch (%s); storing one by one", exc)
            for post in pending:  # in order: each one's answer where it stood
                try:
                    flushed.add(self._announce(*self._commit([post]), sessions), [post])
                except StoreError as exc:
                    flushed.outputs += self._refused(post, exc)
                    flushed.refused += 1
        return flushed

    @staticmethod
    def _refused(post: Post, exc: StoreError) -> list[ServerOutput]:
        message = post.message
        log.warning("refused message %s: %s", message.id, exc)
        reason = f"the repeater cannot store it: {exc}"
        if post.identity is None:
            return [Rejected(message.id, reason)]
        items = [[message.id, reason]]
        return [ReplyTo(post.identity, RepeaterVerb.REJECT.command({"items": items}))]

    def _commit(self, pending: list[Post]) -> tuple[dict[bytes | None, list[list]], list[Numbered]]:
        """Number and store ``pending`` in one transaction; raises StoreError, then
        nothing moved."""
        # One lookup: which ids are stored, and which of those this server numbered.
        held = self.inbox.held(self.server_id, [p.message.id for p in pending])
        known = {mid: seq for mid, seq in held.items() if seq is not None}
        acks: dict[bytes | None, list[list]] = {}
        fresh: list[Numbered] = []
        # The heads move only once the transaction is committed.
        head = self.head
        heads: dict[str, int] = {}

        def link(chain: str, seq: int) -> int:
            prev = heads[chain] if chain in heads else self.chain_head(chain)
            heads[chain] = seq
            return prev

        for post in pending:
            message = post.message
            seq = known.get(message.id)
            if seq is None:
                seq = head = head + 1
                known[message.id] = seq
                fresh.append(Numbered(seq, post, {c: link(c, seq) for c in chains_of(message)}))
            acks.setdefault(post.identity, []).append([message.id, seq])
        with self.inbox.transaction():
            stored = self.inbox.save_unknown(
                [(n.post.message, self.server_id, n.seq) for n in fresh], held
            )
            for numbered, new in zip(fresh, stored, strict=True):
                if not new:  # held already, but not numbered by this server
                    self.inbox.set_server_seq(
                        numbered.post.message.id, self.server_id, numbered.seq
                    )
        self.head = head
        self._heads.update(heads)
        return acks, fresh

    def _announce(
        self,
        acks: dict[bytes | None, list[list]],
        fresh: list[Numbered],
        sessions: Mapping[str, Sequence[bytes]],
    ) -> tuple[list[ServerOutput], list[Numbered]]:
        """The ACKs, ROOMs and DELIVERs for one committed batch, and what was new."""
        out: list[ServerOutput] = []
        for identity, entries in acks.items():
            if identity is None:
                out.append(Accepted(tuple(mid for mid, _ in entries)))
                continue
            for chunk in chunks(entries, ACK_LIMIT):
                out.append(ReplyTo(identity, RepeaterVerb.ACK.command({"items": list(chunk)})))
        # The payloads go out as they came in: validated, and already the wire form;
        # each room's under its own topic, in its order.
        by_room: dict[str, list[Numbered]] = {}
        direct: list[Numbered] = []
        for numbered in fresh:
            room = numbered.post.message.room  # None exactly for a direct message
            if room is None:
                direct.append(numbered)
            else:
                by_room.setdefault(room, []).append(numbered)
        for room, entries in by_room.items():
            chain = room_chain(room)
            for chunk in chunks(entries, self.batch_limit):
                header = {
                    "server": self.server_id,
                    "room": room,
                    "items": [[n.seq, n.prevs[chain]] for n in chunk],
                }
                command = RepeaterVerb.ROOM.command(header, (n.payload for n in chunk))
                out.append(PublishRoom(command, room))
        # Direct messages: to each session of the addressee and of the author,
        # with the previous number in *that* user's chain. Never on the PUB.
        deliveries: dict[bytes, list[tuple[int, int, bytes]]] = {}
        for numbered in direct:
            for chain, prev in numbered.prevs.items():
                for identity in sessions.get(chain.removeprefix(DIRECT_PREFIX), ()):
                    deliveries.setdefault(identity, []).append(
                        (numbered.seq, prev, numbered.payload)
                    )
        for identity, entries in deliveries.items():
            for chunk in chunks(entries, self.batch_limit):
                header = {"items": [[seq, prev] for seq, prev, _ in chunk]}
                command = RepeaterVerb.DELIVER.command(header, (p for *_, p in chunk))
                out.append(ReplyTo(identity, command))
        return out, fresh


def chains_of(message: Message) -> list[str]:
    """The chains a message is in: its room's; or its addressee's, and its author's
    when that is someone else."""
    recipient = message.recipient
    if recipient is None:
        return [room_chain(message.room)]
    if message.author == recipient:
        return [direct_chain(recipient)]
    return [direct_chain(recipient), direct_chain(message.author)]
