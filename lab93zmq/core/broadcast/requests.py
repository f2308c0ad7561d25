"""What the front end asks of a broadcast node: posts, joins and parts, topics, who and
which rooms; and which of our posts are accepted. Pure.

A mixin of ``session.BroadcastSession`` (over ``handlers.Handlers``, whose
declarations it shares), which owns every machine used here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from .. import wire
from ..authoring import Draft
from ..events import Joined, Parted, Posted, Rejected, RoomList, Users
from .actions import Output, Subscribe, Unsubscribe
from .handlers import Handlers
from .posting import Authored, DirectPost, RoomPosts


class Requests(Handlers):
    """The front end's requests of ``BroadcastSession`` (see the module docstring)."""

    def post(self, draft: Draft, now: float) -> list[Output]:
        """Author one message (room or direct), store it and send it (see ``post_many``)."""
        return self.post_many([draft], now)

    def post_many(self, drafts: Sequence[Draft], now: float) -> list[Output]:
        """Author a burst of posts, store them and send them, in posting order: the
        room posts of a run in one transaction, published together (``Posting``). A room
        post that names no room goes to the current one; one to a room we are not in is
        refused - but a send-only run, which is in no room as the others know, posts to
        any room it is told to."""
        outputs: list[Output] = []
        ready: list[Draft] = []
        for draft in drafts:
            if draft.to is None:
                room = draft.room or self.membership.current
                if room is not None and not self.membership.listen:
                    self._posts_to(room)
                if room is None or not self.membership.is_ours(room):
                    where = f"#{room}" if room else "any room"
                    outputs.append(Rejected(draft.id, f"not in {where}; join it first"))
                    continue
                if draft.room is None:
                    draft = draft.in_room(room)
            ready.append(draft)
        for authored in self.posting.author(ready):
            outputs += self._send_authored(authored, now)
        return outputs + self._check_accepted(now)

    def _posts_to(self, room: str) -> None:
        """A send-only run posts to ``room`` from now on: its catch-up (its peeks, its
        answers) follows the room too; nothing is subscribed or announced."""
        if self.membership.adopt(room):
            self.catchup.add(room, self.membership.state(room))

    def _send_authored(self, authored: Authored, now: float) -> list[Output]:
        """What to send for what was just authored and stored: Posted first, so the
        front end hears a post is durable before it hears it is accepted."""
        if isinstance(authored, RoomPosts):
            messages = authored.messages
            for message in messages:
                self.catchup.rooms[message.room].published(message.origin_seq)
            if not self.membership.listen:  # peek at the peers in its rooms soon
                for room in {message.room for message in messages}:
                    self.catchup.rooms[room].want_peeks(self._members(room), now)
            return [Posted(messages), *self.posting.publish(messages)]
        if isinstance(authored, DirectPost):
            message = authored.message
            sent = self.direct.post(message, self.links.of_user(message.recipient), now)
            return [Posted((message,)), *sent]
        return [authored]  # Rejected

    def join(self, room: str, now: float) -> list[Output]:
        """Be in ``room`` (and make it current): subscribe, announce it, meet its members
        (a first join or a rejoin is given the room's tail); JOINED with its topic."""
        state = self.membership.state(room)
        new, first = self.membership.join(room)
        outputs: list[Output] = []
        if new:
            sync = self.catchup.add(room, state)
            if self.membership.listen:
                outputs.append(Subscribe((wire.room_topic(room),)))
                outputs += self._announce_rooms()
            for peer in self._members(room):
                outputs += sync.meet(peer, now)
        return outputs + [Joined(room, self.topics.event(room), first)]

    def part(self, room: str, now: float) -> list[Output]:
        """Leave ``room``: unsubscribe, and store nothing of it from now on."""
        if self.membership.part(room):
            self.catchup.drop(room)
            if self.membership.listen:
                return [Unsubscribe((wire.room_topic(room),)), *self._announce_rooms(),
                        Parted(room)]
        return [Parted(room)]

    def set_topic(self, room: str, text: str, message_id: str, sent_at: datetime,
                  now: float) -> list[Output]:
        """Author a topic message of ``room`` (dated after the topic it replaces) and send
        it like a post; TOPIC when it wins (it does, unless a later one arrived first)."""
        if not self.membership.is_ours(room):
            return [Rejected(message_id, f"not in #{room}; join it first")]
        authored = self.posting.topic(room, text, message_id, self.topics.date(room, sent_at))
        outputs = self._send_authored(authored, now)
        if isinstance(authored, RoomPosts):
            outputs += self._topics(authored.messages)
        return outputs + self._check_accepted(now)

    def who(self, room: str | None = None) -> Users:
        """Who is on the network (``room`` None) or in ``room``: the live persons and
        ourselves (in a room: when we listen in it), sorted, each once; with the away
        texts of those who are away."""
        among = self._users()
        users = self.membership.users(room, among)
        return Users(users, True, room, self.membership.away_of(users, among))

    def set_away(self, text: str | None) -> list[Output]:
        """Be away with ``text`` (None: back): our ROOMS tells every peer (a send-only run
        announces nothing, so it changes nothing the others see)."""
        if text == self.membership.away:
            return []
        self.membership.away = text
        return self._announce_rooms() if self.membership.listen else []

    def rooms(self) -> RoomList:
        """Every room heard on the network, with how many are in it and its topic."""
        topics = {room: self.topics.text(room) for room in self.membership.ours}
        return self.membership.room_list(self._users(), topics)

    def _users(self) -> dict[str, str]:
        """Node id -> user of the peers that count."""
        return {link.node_id: link.user for link in self.links.counted()}

    def _members(self, room: str) -> list[str]:
        """The peers that count and announced ``room``."""
        return self.membership.members(room, self._users())

    # -- accepted ------------------------------------------------------------------

    def _check_accepted(self, now: float) -> list[Output]:
        """Room posts every peer in their room holds (``Posting.accepted``)."""
        if not self.posting.waiting:
            return []
        counted = self._users()
        return self.posting.accepted(now, lambda room: self._held_by_all(room, counted))

    def _held_by_all(self, room: str, counted: dict[str, str]) -> int:
        """Our highest number in ``room`` every live peer in it reported holding (none
        left: the highest any peer reported this run)."""
        sync = self.catchup.get(room)
        if sync is None:
            return 0
        members = self.membership.members(room, counted)
        if not members:
            return sync.confirmed
        return min(sync.reported_mark(peer, self.node_id) for peer in members)
