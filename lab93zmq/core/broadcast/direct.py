"""Direct messages in broadcast mode: the outbox, offers and re-offers, ACKs. Pure.

A direct message goes only to the nodes of its addressee's user, over our
DEALER to each one's ROUTER (DM). It stays in our outbox (the inbox's, so it
survives a restart) until one of them acknowledges it (ACK); it is offered
when a node of that user joins and again ``resend_after`` seconds after each
unanswered offer. A node stores a DM to its user and acknowledges it,
whether or not it had it already; a DM to another user is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..batching import chunks
from ..errors import ProtocolError
from ..events import Accepted, Incoming, Notice
from ..inbox import BroadcastInbox
from ..message import Message
from ..saving import save_batch
from .actions import BATCH_MESSAGES, Output, SendToPeer, Verb
from .actions import command_frames as frames_of
from .faults import Fault, decode_each, log_conflicts
from .links import Link

MAX_ACK_IDS = 10_000


def ack_ids(header: dict[str, Any]) -> list[Any]:
    """The ``ids`` of an ACK header; ProtocolError when it is not a bounded list."""
    ids = header.get("ids")
    if not isinstance(ids, list) or len(ids) > MAX_ACK_IDS:
        raise ProtocolError(f"header field 'ids' must be a list of at most {MAX_ACK_IDS} ids")
    return ids


@dataclass
class DirectTaken:
    """What a DM gave: events and sends, faults, refused saves, and ACKs we owe."""

    outputs: list[Output] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    conflicts: list[tuple[Message, str]] = field(default_factory=list)
    owed: set[str] = field(default_factory=set)  # ids to acknowledge once sender is linked


class DirectMessages:
    """Our unacknowledged direct messages, when each was last offered, and which of the
    ones posted this run the front end still waits to hear are accepted."""

    def __init__(self, node_id: str, user: str, store: BroadcastInbox, interval: float) -> None:
        self.node_id = node_id
        self.user = user
        self.store = store
        self.resend_after = max(2 * interval, 0.5)
        # Direct messages this node authored and nobody acknowledged, oldest first.
        self._outbox: dict[str, Message] = {
            m.id: m for m in store.outbox() if m.is_direct and m.origin == node_id
        }
        self._offered: dict[str, float] = {}  # message id -> last offered
        self._pending: set[str] = set()  # posted this run, not yet accepted

    def post(self, message: Message, links: Sequence[Link], now: float) -> list[Output]:
        """One of ours, stored in the outbox: offer it to ``links`` (its addressee's
        live nodes). A note to self is delivered at once; our other nodes get a copy."""
        outputs: list[Output] = []
        if message.recipient == self.user:
            self.store.acknowledge([message.id])
            outputs.append(Accepted((message.id,)))
            for link in links:
                outputs.append(self._dm(link.node_id, [message]))
            return outputs
        self._pending.add(message.id)
        self._outbox[message.id] = message
        if not links:
            outputs.append(
                Notice(f"{message.recipient} is not online; the message waits in the outbox")
            )
        for link in links:
            outputs.append(self._dm(link.node_id, [message]))
            self._offered[message.id] = now
        return outputs

    def receive(
        self, sender: str, payloads: Sequence[bytes], check: Callable[[Message, str], Fault | None]
    ) -> tuple[list[Message], list[Fault]]:
        """The direct messages of a DM that are ours to store, and a fault for the rest.

        ``check(message, sender)`` is trust's verdict on each (a Fault or None).
        """
        mine: list[Message] = []
        decoded, faults = decode_each(sender, payloads, "a direct message")
        for message in decoded:
            fault = check(message, sender)
            if fault is not None:
                faults.append(fault)
            elif message.recipient != self.user:
                faults.append(Fault("misaddressed", f"dropped a direct message to "
                                    f"{message.recipient!r} from {sender[:8]}", strike=False))
            else:
                mine.append(message)
        return mine, faults

    def take(self, sender: str, payloads: Sequence[bytes],
             check: Callable[[Message, str], Fault | None], linked: bool) -> DirectTaken:
        """A DM: store the messages that are ours, INCOMING for the new ones, and an ACK
        for all of them - now when ``sender`` is linked, else owed (``DirectTaken.owed``)."""
        mine, faults = self.receive(sender, payloads, check)
        got = DirectTaken(faults=faults)
        if not mine:
            return got
        saved = save_batch(self.store, [(m, None, None) for m in mine])
        fresh, got.conflicts = saved.fresh, log_conflicts(saved.conflicts)
        got.outputs = [Incoming(m) for m, new in zip(mine, fresh, strict=True) if new]
        ids = {m.id for m in mine}
        if linked:
            got.outputs.append(self.ack(sender, ids))
        else:
            got.owed = ids
        return got

    def ack(self, node_id: str, ids: Iterable[str]) -> SendToPeer:
        header = {"node": self.node_id, "ids": sorted(ids)}
        return SendToPeer(node_id, frames_of(Verb.ACK, header))

    def acknowledged(self, user: str, ids: Sequence[object]) -> list[Output]:
        """A node of ``user`` stored these: done with the ones that were for ``user``."""
        done = [
            i for i in ids
            if isinstance(i, str) and i in self._outbox and self._outbox[i].recipient == user
        ]
        if not done:
            return []
        self.store.acknowledge(done)
        for message_id in done:
            del self._outbox[message_id]
            self._offered.pop(message_id, None)
        accepted = tuple(i for i in done if i in self._pending)
        self._pending.difference_update(accepted)
        return [Accepted(accepted)] if accepted else []

    def offer(self, link: Link, now: float) -> list[Output]:
        """Every unacknowledged direct message to this peer's user, in bounded batches."""
        waiting = [m for m in self._outbox.values() if m.recipient == link.user]
        outputs: list[Output] = []
        for chunk in chunks(waiting, BATCH_MESSAGES):
            outputs.append(self._dm(link.node_id, chunk))
            for message in chunk:
                self._offered[message.id] = now
        return outputs

    def offer_due(self, links: Sequence[Link], now: float) -> list[Output]:
        """Offer again what is still unacknowledged ``resend_after`` after the last try."""
        if not self._outbox:
            return []
        due = {
            m.recipient for i, m in self._outbox.items()
            if self._offered.get(i, 0.0) + self.resend_after <= now
        }
        outputs: list[Output] = []
        for link in links:
            if link.user in due:
                outputs += self.offer(link, now)
        return outputs

    def next_deadline(self, live_users: Iterable[str]) -> float | None:
        """When a re-offer to one of ``live_users`` is due; None when none waits."""
        if not self._outbox:
            return None
        users = set(live_users)
        offered = [
            self._offered.get(i, 0.0) for i, m in self._outbox.items() if m.recipient in users
        ]
        return min(offered) + self.resend_after if offered else None

    def _dm(self, node_id: str, messages: Sequence[Message]) -> SendToPeer:
        payloads = [m.encode() for m in messages]
        return SendToPeer(node_id, frames_of(Verb.DM, {"node": self.node_id}, payloads))
