"""The server's heart, pure: number posts, store them in one transaction, then tell.

Posts wait in ``GroupCommit`` until ``flush``; then one lookup says which are
stored already (a re-send is acknowledged with its first number), the new
ones get the next numbers of the server's one sequence, and a single
transaction stores them. Only then are they acknowledged, published (room
messages, on the PUB) and delivered (direct messages, to the sessions of their
addressee and of their author): nothing is told that was not committed.

The servers of one service (one PostgreSQL database) share that sequence:
each commit first takes the service's order lock (``inbox.lock_order``), so
numbers are given in commit order and every server sees the same prefix; what
the others committed since this server last looked is announced first
(``follow``, also when the store tells of a commit: ``inbox.tell_order``), in
number order, so every client of every server hears one order.

A store that fails (``StoreFault``: a full or read-only disk, a database out
of reach) refuses the whole batch with ERROR ``unavailable``: the posts stay
in their clients' outboxes and are sent again; nothing moved.

Every numbered message also carries ``prev``, the number before it in its
*chain*: its room, or one user's direct messages. Chains are kept by name
(``room_chain(room)``, ``direct_chain(user)``); a room's messages are
published under the room's topic, so only its subscribers get them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from ..batching import chunks
from ..errors import StoreError, StoreFault, StoreLost
from ..events import Accepted, Rejected
from ..inbox import ServerInbox
from ..message import Message
from .commands import BATCH_LIMIT, ErrorCode, RepeaterVerb, error
from .outputs import PublishRoom, ReplyTo, ServerOutput

log = logging.getLogger(__name__)

ACK_LIMIT = 500  # ids in one ACK header (keeps it far below wire.MAX_HEADER_BYTES)
FOLLOW_LIMIT = 2000  # messages of other servers one follow (or one commit) reads at most
RETRY = 1.0  # seconds a client waits before it sends posts refused as ``unavailable`` again
ROOM_PREFIX, DIRECT_PREFIX = "#", "dm:"  # a chain name starts with one of these


def room_chain(room: str) -> str:
    """The name of ``room``'s chain."""
    return ROOM_PREFIX + room


def direct_chain(user: str) -> str:
    """The name of the chain of direct messages to or from ``user``."""
    return DIRECT_PREFIX + user


class Post(NamedTuple):
    """A validated post waiting for the next flush.

    ``identity`` None: the server's own front end. ``payload``: the bytes it
    came in, which stand for it from now on (None: encode it when sent).
    (A named tuple, not a dataclass: one is made per message, and a frozen
    dataclass's ``__init__`` costs four times as much.)"""

    identity: bytes | None
    message: Message
    payload: bytes | None


class Numbered(NamedTuple):
    """A message this commit stored, its number, and ``prev`` in each chain it is in."""

    seq: int
    post: Post
    prevs: dict[str, int]
    followed: bool = False  # another server of the service stored it; this one tells it

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
    fault: StoreFault | None = None  # the store failed: every post was refused for now

    def add(self, announced: tuple[list[ServerOutput], list[Numbered]], posts: list[Post]) -> None:
        outputs, fresh = announced
        own = sum(1 for numbered in fresh if not numbered.followed)
        self.outputs += outputs
        self.stored += own
        self.duplicates += len(posts) - own
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
            self._heads[chain] = self._stored_head(chain, below=self.head + 1)
        return self._heads[chain]

    def _stored_head(self, chain: str, below: int) -> int:
        """``chain``'s newest number below ``below``, as stored (so a number another
        server gave after the ones this server has announced is not counted yet)."""
        if chain.startswith(ROOM_PREFIX):
            return self.inbox.room_head(self.server_id, chain.removeprefix(ROOM_PREFIX), below)
        return self.inbox.direct_head(self.server_id, chain.removeprefix(DIRECT_PREFIX), below)

    @property
    def pending(self) -> int:
        """Posts received and not stored yet."""
        return len(self._pending)

    def add(self, post: Post) -> None:
        self._pending.append(post)

    def add_many(self, posts: Sequence[Post]) -> None:
        self._pending.extend(posts)

    def flush(self, sessions: Mapping[str, Sequence[bytes]]) -> Flushed:
        """Store every waiting post, then ACK, publish and deliver (to ``sessions``:
        user -> the identities of that user's sessions).

        When the inbox refuses the batch (a message clashes with a stored one,
        e.g. the same origin and origin number under another id), the posts
        are stored one by one and only the refused ones are rejected. When the
        store fails, every post is refused for now (``unavailable``).
        """
        flushed = Flushed()
        if not self._pending:
            return flushed
        pending, self._pending = self._pending, []
        try:
            try:
                flushed.add(self._announce(*self._commit(pending), sessions), pending)
            except StoreFault:
                raise
            except StoreError as exc:
                if len(pending) > 1:
                    log.warning("the inbox refused a batch (%s); storing one by one", exc)
                for index, post in enumerate(pending):  # in order: each one's answer where it stood
                    try:
                        flushed.add(self._announce(*self._commit([post]), sessions), [post])
                    except StoreFault:
                        pending = pending[index:]
                        raise
                    except StoreError as exc:
                        flushed.outputs += self._refused(post, exc)
                        flushed.refused += 1
        except StoreLost:
            raise  # the inbox is gone or damaged: the server stops, acknowledging nothing
        except StoreFault as fault:
            flushed.fault = fault
            flushed.outputs += self.unavailable(pending, str(fault))
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

    @staticmethod
    def unavailable(posts: Sequence[Post], reason: str) -> list[ServerOutput]:
        """Refuse ``posts`` for now: ERROR ``unavailable`` to each session naming its posts
        (they stay in its outbox), Rejected for the server's own front end's."""
        out: list[ServerOutput] = []
        by_session: dict[bytes, list[str]] = {}
        for post in posts:
            if post.identity is None:
                out.append(Rejected(post.message.id, f"not stored: {reason}"))
            else:
                by_session.setdefault(post.identity, []).append(post.message.id)
        text = f"the repeater cannot store posts now: {reason}"
        for identity, ids in by_session.items():
            for chunk in chunks(ids, ACK_LIMIT):
                command = error(ErrorCode.UNAVAILABLE, text, ids=list(chunk), retry=RETRY)
                out.append(ReplyTo(identity, command))
        return out

    def refuse_pending(self, reason: str) -> list[ServerOutput]:
        """Refuse every waiting post for now, without asking the store (it just failed)."""
        pending, self._pending = self._pending, []
        return self.unavailable(pending, reason)

    def follow(self, sessions: Mapping[str, Sequence[bytes]]) -> Flushed:
        """Announce what the other servers of the service stored since this one last
        looked (nothing for a server that is the only one on its order)."""
        flushed = Flushed()
        rows = self.inbox.numbered_after(self.server_id, self.head, FOLLOW_LIMIT)
        if rows:
            heads: dict[str, int] = {}
            followed = self._link(rows, heads)
            self.head = rows[-1][0]
            self._heads.update(heads)
            flushed.add(self._announce({}, followed, sessions), [])
        return flushed

    def _link(self, rows: Sequence[tuple[int, Message]], heads: dict[str, int]) -> list[Numbered]:
        """Rows another server numbered, each with ``prev`` in its chains; ``heads`` gets
        the chains' new heads (kept only once the caller commits to them)."""
        linked = []
        for seq, message in rows:
            prevs = {}
            for chain in chains_of(message):
                if chain in heads:
                    prevs[chain] = heads[chain]
                elif chain in self._heads:
                    prevs[chain] = self._heads[chain]
                else:
                    prevs[chain] = self._stored_head(chain, below=seq)
                heads[chain] = seq
            linked.append(Numbered(seq, Post(None, message, None), prevs, followed=True))
        return linked

    def _commit(
        self, pending: list[Post]
    ) -> tuple[dict[bytes | None, list[list]], list[Numbered]]:
        """Number and store ``pending`` in one transaction; raises StoreError, then
        nothing moved. What other servers of the service committed before this one
        got the order lock comes first in what is announced, in order."""
        acks: dict[bytes | None, list[list]] = {}
        fresh: list[Numbered] = []
        # The heads move only once the transaction is committed.
        heads: dict[str, int] = {}

        def link(chain: str, seq: int) -> int:
            prev = heads[chain] if chain in heads else self.chain_head(chain)
            heads[chain] = seq
            return prev

        with self.inbox.transaction():
            stored = self.inbox.lock_order(self.server_id)
            head = self.head
            while stored is not None and head < stored:  # others' commits, not yet announced
                rows = self.inbox.numbered_after(self.server_id, head, FOLLOW_LIMIT)
                if not rows:
                    break
                fresh += self._link(rows, heads)
                head = rows[-1][0]
            # One lookup: which ids are stored, and which of those this order numbered.
            held = self.inbox.held(self.server_id, [p.message.id for p in pending])
            known = {mid: seq for mid, seq in held.items() if seq is not None}
            numbered: list[Numbered] = []
            for post in pending:  # the hot loop: a room message's one chain inline
                message = post.message
                mid = message.id
                seq = known.get(mid)
                if seq is None:
                    seq = head = head + 1
                    known[mid] = seq
                    if message.recipient is None:
                        chain = ROOM_PREFIX + message.room
                        prev = heads.get(chain)
                        heads[chain] = seq
                        prevs = {chain: self.chain_head(chain) if prev is None else prev}
                    else:
                        prevs = {c: link(c, seq) for c in chains_of(message)}
                    numbered.append(Numbered(seq, post, prevs))
                entries = acks.get(post.identity)
                if entries is None:
                    entries = acks[post.identity] = []
                entries.append([mid, seq])
            # A refused batch leaves this transaction, which undoes it: no savepoint.
            saved = self.inbox.save_unknown(
                [(n.post.message, self.server_id, n.seq) for n in numbered], held, savepoint=False
            )
            for entry, new in zip(numbered, saved, strict=True):
                if not new:  # held already, but not numbered by this server
                    self.inbox.set_server_seq(entry.post.message.id, self.server_id, entry.seq)
            if numbered:
                self.inbox.tell_order(self.server_id, head)
        self.head = head
        self._heads.update(heads)
        return acks, fresh + numbered

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
