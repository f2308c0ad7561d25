"""The chat service behind the IRC face, pure: IRC users are users of the rooms.

``IRCService`` answers what core/irc's Gateway asks (boundary.py) from the
repeater server's own state, so an IRC user is a user like any lab93 client:

* It is in the server's ``ServerMembership`` (under an ``IRCIdentity``, which no
  ROUTER identity can equal): /who lists it, ROOMS counts it, and lab93
  clients see it come and go as MEMBER on the room's feed.
* Its messages are authored by the server (origin = the server's id, numbered
  by the server's own ``Numbering``, per room and for direct messages; in a
  cluster, this server's instance id) from its nick, and go through the group
  commit like every other post: stored, numbered in the room's chain,
  published, replayed. Only once that commit
  is done is it echoed (``Stored``): echo-message means stored.
* What lab93 users do reaches IRC through three hooks the server core calls
  (``ServerCore.irc``): ``members_changed`` (JOIN, PART, QUIT, and which names
  are taken), ``committed`` (every new message: ``Delivered``; a new winning
  topic: ``TopicChanged``), and ``holds`` (a lab93 HELLO may not take an IRC
  user's name).

Events for the gateway are gathered in order and handed over by
``take_events``; ``handle`` returns what the server's shell carries out
(MEMBER on the PUB). Times and randomness come in as arguments.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import datetime

from ..authoring import DIRECT, ROOM
from ..errors import MessageError
from ..events import Accepted, Rejected
from ..irc import boundary as b
from ..irc.names import fold
from ..message import ACTION, Message, make_id
from .commands import MAX_ROOMS
from .commit import Numbered, Post
from .irc_history import HistoryStore
from .irc_queries import IRCUser, Queries, chat_message
from .membership import MemberChange
from .outputs import ServerOutput
from .server import ServerCore, away_of
from .window import Outgoing, author_topic, numbering, outgoing

log = logging.getLogger(__name__)

KNOWN_NAMES = 10_000  # names remembered (most recent) for direct messages to people away
QUIT_REASON = "left the chat"


class IRCService(Queries):
    """The IRC users of one repeater server, and the answers to their requests.

    ``core`` is the server's ``ServerCore`` (the service sets ``core.irc`` to
    itself); ``store`` answers CHATHISTORY; ``reserved`` tells names no IRC
    user may take although no one uses them now (in secure mode: the names of
    the authorized keys).
    """

    def __init__(
        self,
        core: ServerCore,
        store: HistoryStore,
        reserved: Callable[[], Iterable[str]] = tuple,
        origin: str | None = None,
    ) -> None:
        self.core = core
        self.store = store
        self.reserved = reserved
        # Whose numbers IRC posts carry: the server's own (shared with its front end's
        # posts), or in a cluster this server's instance id, so two servers of one
        # service never give the same origin number.
        self.origin = origin or core.server_id
        self.numbering = (
            core.numbering if self.origin == core.server_id else numbering(core.inbox, self.origin)
        )
        self.users: dict[Hashable, IRCUser] = {}
        self._by_name: dict[str, Hashable] = {}  # folded name -> conn
        self._lab93: set[str] = set()  # lab93 users connected, as last told
        self._known: OrderedDict[str, str] = OrderedDict()  # folded -> name, seen lately
        self._posts: dict[str, tuple[Hashable, b.Request]] = {}  # message id -> who asked
        self._events: list[object] = []
        core.irc = self
        self._events.append(b.NamesTaken(self._always_taken()))

    # -- for the shell ------------------------------------------------------------------

    def take_events(self) -> list[object]:
        """What the gateway is to be told (``Gateway.deliver``), in order."""
        events, self._events = self._events, []
        return events

    def handle(self, request: b.Request, at: datetime, entropy: bytes) -> list[ServerOutput]:
        """One request of the gateway; ``at`` is the wall clock now, ``entropy`` 10 random
        bytes (a post's id). Answers go to ``take_events``; returns what the server's
        shell must send (MEMBER when an IRC user joins or leaves a room)."""
        user = self.users.get(request.conn)
        if isinstance(request, b.Register):
            self._register(request)
            return []
        if user is None:  # a request from a connection the service never registered
            if not isinstance(request, (b.QuitRequest, b.SetAway, b.PartRoom)):
                self._events.append(b.RequestFailed(request.conn, request, "not registered"))
            return []
        handler = HANDLERS.get(type(request))
        if handler is None:
            return []
        return handler(self, user, request, at, entropy) or []

    # -- the server core's hooks ---------------------------------------------------------

    def names(self) -> list[str]:
        """The IRC users' names (the server's /who of the whole network lists them)."""
        return [user.name for user in self.users.values()]

    def holds(self, name: str) -> bool:
        """Is ``name`` an IRC user's now (a lab93 HELLO as that name is refused)?"""
        return fold(name) in self._by_name

    def away(self, name: str) -> str | None:
        """The away text of the IRC user ``name`` (None: here, or no IRC user)."""
        conn = self._by_name.get(fold(name))
        return self.users[conn].away if conn is not None else None

    def is_irc(self, name: str) -> bool:
        return fold(name) in self._by_name

    def members_changed(self, changes: Sequence[MemberChange]) -> None:
        """Membership changed (MEMBER is published for each change): lab93 users' joins
        and parts to IRC, a user whose last session ended as QUIT, and the names
        taken and freed. IRC users' own changes were told by ``handle``."""
        present = {session.user for session in self.core.sessions.values()}
        arrived, gone = present - self._lab93, self._lab93 - present
        self._lab93 = present
        if arrived:
            for name in sorted(arrived):
                self._remember(name)
            self._events.append(b.NamesTaken(tuple(sorted(arrived))))
        for change in changes:
            if self.is_irc(change.user) or change.user in gone:
                continue
            if change.joined:
                self._events.append(b.UserJoined(change.room, change.user))
            else:
                self._events.append(b.UserParted(change.room, change.user))
        for name in sorted(gone):
            self._events.append(b.UserQuit(name, QUIT_REASON))
        freed = tuple(sorted(name for name in gone if fold(name) not in self._always_folded()))
        if freed:
            self._events.append(b.NamesTaken(freed, taken=False))

    def committed(
        self, fresh: Sequence[Numbered], outputs: list[ServerOutput]
    ) -> list[ServerOutput]:
        """A group commit stored ``fresh``: echo the IRC users' posts (``Stored``), deliver
        every new message to the IRC users it concerns, tell a new topic. Returns the
        commit's outputs less the answers meant for IRC posts (they were ``None``'s, the
        server's own front end's, to the commit)."""
        asked_for: dict[str, tuple[Hashable, b.Request]] = {}
        if self._posts:
            outputs = self._settle(outputs)
            for numbered in fresh:
                asked = self._posts.pop(numbered.post.message.id, None)
                if asked is not None:
                    asked_for[numbered.post.message.id] = asked
        if not self.users:
            return outputs
        rooms = set().union(*(user.rooms for user in self.users.values()))
        for numbered in fresh:
            message = numbered.post.message
            asked = asked_for.get(message.id)
            room = message.room if message.recipient is None else None
            if message.is_topic:
                current = self.core.directory.topics.current(message.room)
                if current is not None and current.id == message.id and room in rooms:
                    topic = b.RoomTopic(message.content, message.author, message.sent_at)
                    self._events.append(b.TopicChanged(message.room, topic))
                continue
            if asked is not None:
                conn, request = asked
                notice = bool(getattr(request, "notice", False))
                chat = chat_message(message, notice)
                self._events.append(b.Stored(conn, request, chat))  # type: ignore[arg-type]
                self._events.append(b.Delivered(chat))
            elif (room in rooms) if room is not None else self._reaches_irc(message):
                self._events.append(b.Delivered(chat_message(message)))
        return outputs

    def _reaches_irc(self, message: Message) -> bool:
        return self.is_irc(message.recipient or "")

    def _settle(self, outputs: list[ServerOutput]) -> list[ServerOutput]:
        """Take the commit's answers to IRC posts out of ``outputs``: a refusal becomes
        the gateway's RequestFailed."""
        kept: list[ServerOutput] = []
        for output in outputs:
            if isinstance(output, Accepted):
                ids = tuple(mid for mid in output.ids if mid not in self._posts)
                if ids:
                    kept.append(Accepted(ids))
            elif isinstance(output, Rejected) and output.id in self._posts:
                conn, request = self._posts.pop(output.id)
                self._events.append(b.RequestFailed(conn, request, output.reason))
            else:
                kept.append(output)
        return kept

    # -- names ----------------------------------------------------------------------------

    def _always_taken(self) -> tuple[str, ...]:
        return tuple(sorted({self.core.user, *self.reserved()}))

    def _always_folded(self) -> set[str]:
        return {fold(name) for name in self._always_taken()}

    def _remember(self, name: str) -> None:
        key = fold(name)
        self._known[key] = name
        self._known.move_to_end(key)
        while len(self._known) > KNOWN_NAMES:
            self._known.popitem(last=False)

    def _taken(self, key: str) -> bool:
        if key in self._by_name or key in self._always_folded():
            return True
        return any(fold(session.user) == key for session in self.core.sessions.values())

    def resolve(self, typed: str) -> str | None:
        """The user a typed name names (any case): an IRC user, a lab93 user connected
        now, the server's own name, or one seen since the server started."""
        key = fold(typed)
        if key in self._by_name:
            return self.users[self._by_name[key]].name
        for session in self.core.sessions.values():
            if fold(session.user) == key:
                return session.user
        for name in self._always_taken():
            if fold(name) == key:
                return name
        return self._known.get(key)

    # -- requests --------------------------------------------------------------------------

    def _register(self, request: b.Register) -> None:
        conn, key = request.conn, fold(request.name)
        if conn in self.users:
            return
        if self._taken(key):
            refused = b.RegisterRefused(conn, "Nickname is already in use", in_use=True)
            self._events.append(refused)
            return
        user = IRCUser(conn, request.name, request.realname)
        self.users[conn] = user
        self._by_name[key] = conn
        self._remember(request.name)
        self.core.members.enter(user.identity, user.name, [])  # type: ignore[arg-type]
        log.info("%s connected through IRC", user.name)
        self._events.append(b.Registered(conn))

    def _on_joinroom(self, user: IRCUser, request: b.JoinRoom, at, entropy) -> list:
        room = request.room
        if room not in user.rooms and len(user.rooms) >= MAX_ROOMS:
            self._events.append(
                b.RequestFailed(user.conn, request, f"a user is in at most {MAX_ROOMS} rooms")
            )
            return []
        changes = self.core.members.join(user.identity, room)  # type: ignore[arg-type]
        user.rooms.add(room)
        topic = self._topic(room)
        members = tuple(self.core.members.users(room))
        self._events.append(b.JoinResult(user.conn, room, topic, members))
        self._events.append(b.UserJoined(room, user.name))
        return self.core.announce(changes)

    def _on_partroom(self, user: IRCUser, request: b.PartRoom, at, entropy) -> list:
        if request.room not in user.rooms:
            return []
        user.rooms.discard(request.room)
        changes = self.core.members.part(user.identity, request.room)  # type: ignore[arg-type]
        self._events.append(b.UserParted(request.room, user.name, request.reason))
        return self.core.announce(changes)

    def _on_quit(self, user: IRCUser, request: b.QuitRequest, at, entropy) -> list:
        del self.users[user.conn]
        self._by_name.pop(fold(user.name), None)
        changes = self.core.members.leave(user.identity)  # type: ignore[arg-type]
        log.info("%s left IRC (%s)", user.name, request.reason)
        self._events.append(b.UserQuit(user.name, request.reason))
        return self.core.announce(changes)

    def _on_postroom(self, user: IRCUser, request: b.PostRoom, at, entropy) -> list:
        if request.room not in user.rooms:
            self._events.append(b.RequestFailed(user.conn, request, "join the room first"))
            return []
        self._post(user, request, None, request.room, (ROOM, request.room), at, entropy)
        return []

    def _on_postdirect(self, user: IRCUser, request: b.PostDirect, at, entropy) -> list:
        recipient = self.resolve(request.to)
        if recipient is None:
            self._events.append(
                b.RequestFailed(user.conn, request, "No such nick", no_such_target=True)
            )
            return []
        if fold(recipient) not in self._by_name:  # an IRC user's AWAY the gateway knows
            away = away_of([recipient], self.core.sessions.values(), None).get(recipient)
            if away is not None:
                self._events.append(b.RecipientAway(user.conn, request, recipient, away))
        self._post(user, request, recipient, None, DIRECT, at, entropy)
        return []

    def _post(
        self,
        user: IRCUser,
        request: b.PostRoom | b.PostDirect,
        recipient: str | None,
        room: str | None,
        scope: Hashable,
        at: datetime,
        entropy: bytes,
    ) -> None:
        numbers = self.numbering
        try:
            message = Message(
                id=make_id(at, entropy),
                author=user.name,
                recipient=recipient,
                subject=None,
                content=request.text,
                sent_at=at,
                origin=self.origin,
                origin_seq=numbers.peek(scope),
                room=room,
                kind=ACTION if request.action else None,
            )
        except MessageError as exc:
            self._events.append(b.RequestFailed(user.conn, request, f"not a valid message: {exc}"))
            return
        post = outgoing(message)
        if not isinstance(post, Outgoing):
            self._events.append(b.RequestFailed(user.conn, request, post.reason))
            return
        numbers.take(scope)
        self._posts[message.id] = (user.conn, request)
        self.core.commit.add(Post(None, message, post.payload))

    def _on_settopic(self, user: IRCUser, request: b.SetTopic, at, entropy) -> list:
        room = request.room
        if room not in user.rooms:
            self._events.append(b.RequestFailed(user.conn, request, "join the room first"))
            return []
        if not request.text.strip():
            reason = "a lab93 topic cannot be cleared; set another one"
            self._events.append(b.RequestFailed(user.conn, request, reason))
            return []
        current = self.core.directory.topics.current(room)
        core = self.core
        post = author_topic(
            room, request.text, at, entropy, current, user.name, self.origin, self.numbering
        )
        if not isinstance(post, Outgoing):
            self._events.append(b.RequestFailed(user.conn, request, post.reason))
            return []
        self._posts[post.message.id] = (user.conn, request)
        core.commit.add(Post(None, post.message, post.payload))
        return []


# Each request's handler, by its type (a Register is taken before a user exists).
HANDLERS: dict[type, Callable[..., list]] = {
    b.JoinRoom: IRCService._on_joinroom,
    b.PartRoom: IRCService._on_partroom,
    b.QuitRequest: IRCService._on_quit,
    b.PostRoom: IRCService._on_postroom,
    b.PostDirect: IRCService._on_postdirect,
    b.SetTopic: IRCService._on_settopic,
    b.GetTopic: Queries._on_gettopic,
    b.Names: Queries._on_names,
    b.ListRooms: Queries._on_listrooms,
    b.WhoRequest: Queries._on_who,
    b.Whois: Queries._on_whois,
    b.HistoryRequest: Queries._on_history,
    b.HistoryTargets: Queries._on_historytargets,
    b.SetAway: Queries._on_setaway,
}
