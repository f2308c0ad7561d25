"""What the broadcast facade does with each command a peer sends (but MSG). Pure.

A mixin of ``session.BroadcastSession``, which owns every machine used here;
each handler takes the sender's node id, the checked command and ``now``, and
returns what to send and show, and what was wrong with the command.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .. import wire
from ..events import Notice, Topic
from ..message import Message
from .actions import Output, PublishFrames, SendToPeer, Verb, published_frames
from .actions import command_frames as frames_of
from .catchup import CatchUp
from .direct import DirectMessages, ack_ids
from .faults import Fault
from .headers import (
    announced_away,
    announced_rooms,
    beat_rooms,
    floors_of,
    room_messages,
    room_of,
    sync_request,
    vector_of,
)
from .links import Link, Links
from .membership import Membership
from .posting import Posting
from .topics import Topics
from .trust import KeyTrust
from .watch import PeerWatch, WatchChange

# A command's handler: what to send and show, and what was wrong with it.
Handled = tuple[list[Output], list[Fault]]
Handler = Callable[[Any, str, wire.Command, float], Handled]


class Handlers:
    """The command handlers of ``BroadcastSession`` (see the module docstring), which
    provides what is declared here."""

    node_id: str
    stats: Counter[str]
    trust: KeyTrust
    watch: PeerWatch
    links: Links
    membership: Membership
    topics: Topics
    catchup: CatchUp
    direct: DirectMessages
    posting: Posting
    _greetings: dict[str, str]
    _greet_when_proven: dict[str, Notice]

    def _route(self, changes: list[WatchChange], now: float) -> list[Output]:
        raise NotImplementedError  # the facade's

    def _refresh_status(self) -> list[Output]:
        raise NotImplementedError  # the facade's

    def _on_beat(self, sender: str, command: wire.Command,
                 now: float) -> Handled:
        rooms = beat_rooms(command.header)
        link = self.links.linked(sender)
        if link is None:
            return [], []
        outputs = self._announced(link, rooms, None, now)
        for room, digest in rooms.items():
            sync = self.catchup.get(room)
            if sync is not None:
                outputs += sync.on_digest(sender, digest, now)
        return outputs, []

    def _on_have(self, sender: str, command: wire.Command,
                 now: float) -> Handled:
        room, vector = room_of(command.header), vector_of(command.header)
        sync = self.catchup.get(room)
        if sync is None or self.links.linked(sender) is None:
            return [], []  # a late HAVE of a room we left
        return sync.on_have(sender, vector, now), []

    def _on_rooms(self, sender: str, command: wire.Command,
                  now: float) -> Handled:
        rooms, away = announced_rooms(command.header), announced_away(command.header)
        link = self.links.linked(sender)
        if link is None:
            self.links.remember_rooms(sender, rooms, away)  # taken as soon as it joins
            return [], []
        return self._announced(link, rooms, rooms, now, away), []

    def _on_sync(self, sender: str, command: wire.Command,
                 now: float) -> Handled:
        request = sync_request(command.header)
        if self.links.linked(sender) is None:
            self.links.remember_sync(sender, request)  # answered as soon as it joins
            return [], []
        return self.catchup.answer(sender, request, now), []

    def _on_batch(self, sender: str, command: wire.Command,
                  now: float) -> Handled:
        header = command.header
        room, vector, floors = room_of(header), vector_of(header), floors_of(header)
        messages, faults = room_messages(sender, command.payloads, room, "a message in a BATCH")
        sync = self.catchup.get(room)
        if sync is None:
            return [], faults  # a room we left meanwhile: nothing of it is stored
        if self.links.linked(sender) is None or not sync.expects(sender):
            # Only an answer to a SYNC of ours to a linked peer is taken (and checked:
            # nobody makes us verify what we did not ask for); its vector still counts.
            self.stats["unsolicited"] += bool(messages)
            if self.links.linked(sender) is None:
                return [], faults
            return sync.on_batch(sender, vector, floors, [], now).outputs, faults
        messages, spoofed = self.trust.filter(messages, sender)
        taken = sync.on_batch(sender, vector, floors, messages, now)
        self.posting.saw_own(messages)
        self.stats["conflicts"] += len(taken.conflicts)
        return taken.outputs + self._topics(taken.topics), faults + spoofed

    def _on_dm(self, sender: str, command: wire.Command,
               now: float) -> Handled:
        linked = self.links.linked(sender) is not None
        got = self.direct.take(sender, command.payloads, self.trust.direct, linked)
        self.stats["conflicts"] += len(got.conflicts)
        if got.owed:
            self.links.owe_acks(sender, got.owed)
        return got.outputs, got.faults

    def _on_ack(self, sender: str, command: wire.Command,
                now: float) -> Handled:
        ids = ack_ids(command.header)
        link = self.links.linked(sender)
        if link is None:
            return [], []  # we cannot tell whose node it is; the next offer is acked again
        return self.direct.acknowledged(link.user, ids), []

    def _on_bye(self, sender: str, command: wire.Command,
                now: float) -> Handled:
        """The peer is leaving (a clean exit). In secure mode this arrived over its
        authenticated link, bound to its key, so unlike a LEAVING it cannot be forged."""
        departed = self.watch.bye(sender)
        if not departed:
            return [], []
        return self._route(departed, now) + self._refresh_status(), []

    # -- membership and topics ---------------------------------------------------------

    def _announced(self, link: Link, rooms: Iterable[str],
                   topics: Mapping[str, str | None] | None, now: float,
                   away: str | None = None) -> list[Output]:
        """A linked peer's ROOMS (``topics`` and ``away`` given) or BEAT named its rooms:
        greet a person the first time, tell who came to or left our rooms, and meet it
        in the rooms it came to."""
        change = self.membership.heard(link.node_id, link.user, rooms, topics, away)
        outputs: list[Output] = []
        verb = self._greetings.pop(link.node_id, None)
        if change.appeared and link.peer is not None:
            greeting = Notice(f"{link.user} {verb or 'joined'} from {link.peer.address}")
            if self.links.secure and not self.links.is_proven(link.node_id):
                self._greet_when_proven[link.node_id] = greeting  # not before our handshake
            else:
                outputs.append(greeting)
        outputs += self.membership.member_events(link.user, change.came, change.left)
        for room in change.came:
            sync = self.catchup.get(room)
            if sync is not None:
                outputs += sync.meet(link.node_id, now)
        if change.left:
            self.catchup.forget(link.node_id, change.left)
        if change.came or change.left or change.appeared:
            outputs += self._refresh_status()
        return outputs

    def _rooms_header(self) -> dict[str, object]:
        rooms = [{"name": room, "topic": self.topics.text(room)}
                 for room in self.membership.announced()]
        header: dict[str, object] = {"node": self.node_id, "rooms": rooms}
        if self.membership.away is not None and self.membership.listen:
            header["away"] = self.membership.away  # absent: here (what old peers send)
        return header

    def _rooms_to(self, node_id: str) -> SendToPeer:
        """Our ROOMS for a peer just linked (over its ROUTER: it cannot be lost to a SUB
        still connecting)."""
        return SendToPeer(node_id, frames_of(Verb.ROOMS, self._rooms_header()))

    def _announce_rooms(self) -> list[Output]:
        """Our rooms or a topic changed: ROOMS to everyone, and a BEAT soon."""
        self.catchup.beat_soon()
        return [PublishFrames(published_frames(Verb.ROOMS, self._rooms_header()))]

    def _topics(self, messages: Iterable[Message]) -> list[Output]:
        """New topic messages stored: TOPIC for each that wins, and our ROOMS if any did
        (so /rooms elsewhere shows it)."""
        won: list[Output] = []
        for message in messages:
            topic: Topic | None = self.topics.offer(message)
            if topic is not None:
                won.append(topic)
        if won and self.membership.listen:
            won += self._announce_rooms()
        return won
