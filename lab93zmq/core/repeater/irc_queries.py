"""The IRC face's questions answered from the server's state, pure: TOPIC, NAMES, LIST,
WHO, WHOIS and CHATHISTORY (a part of ``IRCService``, irc_service.py).

Nothing here changes anything: each answer is read from the server core's
membership, sessions and room directory, or from the store (CHATHISTORY,
irc_history.py), and put on the service's list of events for the gateway.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass, field

from ..irc import boundary as b
from ..irc.names import fold
from ..message import ACTION, Message
from .irc_history import Conversation, HistoryStore, answer
from .server import ServerCore, away_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IRCIdentity:
    """An IRC connection's place in ``ServerMembership``, beside the ROUTER's byte identities."""

    conn: Hashable


@dataclass
class IRCUser:
    conn: Hashable
    name: str
    realname: str
    rooms: set[str] = field(default_factory=set)
    away: str | None = None  # its AWAY text (None: here)

    @property
    def identity(self) -> IRCIdentity:
        return IRCIdentity(self.conn)


def chat_message(message: Message, notice: bool = False) -> b.ChatMessage:
    """A stored message as the IRC face shows it."""
    return b.ChatMessage(
        id=message.id,
        sender=message.author,
        room=message.room if message.recipient is None else None,
        recipient=message.recipient,
        content=message.content,
        sent_at=message.sent_at,
        subject=message.subject,
        action=message.kind == ACTION,
        notice=notice,
    )


class Queries:
    """The read-only requests of ``IRCService``, which holds these attributes."""

    core: ServerCore
    store: HistoryStore
    users: dict[Hashable, IRCUser]
    _by_name: dict[str, Hashable]
    _events: list[object]

    def resolve(self, typed: str) -> str | None:
        raise NotImplementedError  # IRCService's

    def _on_gettopic(self, user: IRCUser, request: b.GetTopic, at, entropy) -> list:
        self._events.append(b.TopicInfo(user.conn, request, self._topic(request.room)))
        return []

    def _topic(self, room: str) -> b.RoomTopic | None:
        current = self.core.directory.topics.current(room)
        if current is None:
            return None
        return b.RoomTopic(current.content, current.author, current.sent_at)

    def _on_names(self, user: IRCUser, request: b.Names, at, entropy) -> list:
        members = tuple(self.core.members.users(request.room))
        self._events.append(b.NamesResult(user.conn, request, members))
        return []

    def _on_listrooms(self, user: IRCUser, request: b.ListRooms, at, entropy) -> list:
        wanted = set(request.rooms)
        listing = self.core.directory.listing(self.core.members.occupied())
        rooms = tuple(
            b.RoomSummary(entry["name"], entry["users"], entry["topic"])
            for entry in listing
            if not wanted or entry["name"] in wanted
        )
        self._events.append(b.ListResult(user.conn, request, rooms))
        return []

    def _on_who(self, user: IRCUser, request: b.WhoRequest, at, entropy) -> list:
        if request.room is not None:
            names = self.core.members.users(request.room)
        else:
            found = self._online(request.name or "")
            names = [] if found is None else [found]
        users = tuple(self._info(name, with_rooms=False) for name in names)
        self._events.append(b.WhoResult(user.conn, request, users))
        return []

    def _on_whois(self, user: IRCUser, request: b.Whois, at, entropy) -> list:
        found = self._online(request.name)
        users = () if found is None else (self._info(found, with_rooms=True),)
        self._events.append(b.WhoResult(user.conn, request, users))
        return []

    def _online(self, typed: str) -> str | None:
        """The user connected now (through IRC or lab93) a typed name names."""
        key = fold(typed)
        if key in self._by_name:
            return self.users[self._by_name[key]].name
        return next((s.user for s in self.core.sessions.values() if fold(s.user) == key), None)

    def _info(self, name: str, with_rooms: bool) -> b.UserInfo:
        conn = self._by_name.get(fold(name))
        if conn is not None:
            user = self.users[conn]
            return b.UserInfo(name, True, user.realname, tuple(sorted(user.rooms)), user.away)
        rooms: set[str] = set()
        if with_rooms:
            for session in self.core.sessions.values():
                if session.user == name:
                    rooms |= self.core.members.rooms_of(session.identity)
        away = away_of([name], self.core.sessions.values(), None).get(name)  # its /away
        return b.UserInfo(name, False, "a lab93 client", tuple(sorted(rooms)), away)

    def _on_setaway(self, user: IRCUser, request: b.SetAway, at, entropy) -> list:
        user.away = request.text  # lab93 clients' /who shows it (ServerCore's USERS)
        return []

    def _on_history(self, user: IRCUser, request: b.HistoryRequest, at, entropy) -> list:
        if request.room is not None:
            conversation = Conversation(room=request.room)
        else:
            peer = self.resolve(request.peer or "") or (request.peer or "")
            conversation = Conversation(pair=(user.name, peer))
        server_id = self.core.server_id
        try:
            found = answer(self.store, server_id, conversation, request.selector, request.limit)
        except Exception as exc:  # the store failed: a sentence to the client, never a crash
            log.warning("CHATHISTORY for %s failed: %s", user.name, exc)
            self._events.append(b.RequestFailed(user.conn, request, "the history is unreadable"))
            return []
        messages = tuple(chat_message(message) for message in found)
        self._events.append(b.HistoryResult(user.conn, request, messages))
        return []

    def _on_historytargets(self, user: IRCUser, request: b.HistoryTargets, at, entropy) -> list:
        low, high = sorted((request.start, request.end))
        try:
            found = self.store.irc_targets(
                self.core.server_id, sorted(user.rooms), user.name, low, high
            )
        except Exception as exc:
            log.warning("CHATHISTORY TARGETS for %s failed: %s", user.name, exc)
            self._events.append(b.RequestFailed(user.conn, request, "the history is unreadable"))
            return []
        targets = sorted(found, key=lambda target: target[2])[: request.limit]
        result = tuple(b.HistoryTarget(room, peer, latest) for room, peer, latest in targets)
        self._events.append(b.TargetsResult(user.conn, request, result))
        return []
