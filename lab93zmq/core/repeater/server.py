"""The repeater server's logic, pure: sessions, rooms, dispatch, heartbeats.

``ServerCore`` is a facade: ``Admission`` (admission.py) decides which frames
from the ROUTER are read at all (flood cut-off, costly commands, clients of
another protocol version); the core keeps the sessions and who is in which
room (``ServerMembership``, membership.py) and hands each command to its handler by
one table. The work is done by ``GroupCommit`` (commit.py: numbering and
storing posts, then telling), ``Replay`` (replay.py: answering FETCH) and
``RoomDirectory`` (directory.py: every room, its topic, for ROOMS).

The server keeps every room. A session is in the rooms its HELLO named and
those it joined since; a send-only session (``"listen": false``) is in none
and gets no direct messages either: it only posts. Room traffic - ROOM, TICK
and MEMBER - goes out on the PUB under each room's topic, so a client never
receives a room it is not in.

Nothing here touches a socket, a thread or a clock: the shell
(``io/repeater_server.py``) feeds frames and ``now`` in and carries out
``ReplyTo`` and ``PublishRoom``; other outputs are events for its front end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..authoring import Draft
from ..away import AwayTextError, away_text, combined
from ..errors import MessageError, ProtocolError, StoreUnavailable
from ..events import Notice, RoomInfo, RoomList, Topic
from ..inbox import ServerInbox
from ..message import Message, check_name, check_node_id
from ..wire import Command, decode
from .admission import BAD_BURST, CUT_OFF, Admission
from .commands import (
    BATCH_LIMIT,
    HEARTBEAT,
    MAX_ROOMS,
    ErrorCode,
    RepeaterVerb,
    error,
    message_id,
    room_field,
    rooms_field,
)
from .commit import Flushed, GroupCommit, Numbered, Post
from .directory import RoomDirectory
from .health import StoreHealth
from .membership import MemberChange, ServerMembership
from .outputs import PublishRoom, ReplyTo, ServerOutput
from .replay import TAIL, Replay
from .window import Outgoing, author, author_topic, numbering

log = logging.getLogger(__name__)

SESSION_TIMEOUT = 5.0  # a server forgets a silent session after this long


@dataclass
class Session:
    """One connected client: a DEALER as the ROUTER sees it."""

    identity: bytes
    user: str
    node: str
    last_seen: float
    listen: bool = True  # False: a send-only run (in no room, gets no direct messages)
    away: str | None = None  # its away text (HELLO's ``away``, then AWAY), None: here


@dataclass(frozen=True)
class Request:
    """One admitted command, as every handler takes it."""

    identity: bytes
    session: Session | None  # None only for HELLO
    command: Command
    now: float
    key_user: str | None  # the name of the connection's key (secure mode), else None


Handler = Callable[[Request], list[ServerOutput]]


class IRCHooks(Protocol):
    """What the core tells the IRC face's service (irc_service.py), when the server has one."""

    def names(self) -> Iterable[str]:
        """The IRC users connected now."""
        ...

    def holds(self, name: str) -> bool:
        """Is ``name`` an IRC user's now?"""
        ...

    def away(self, name: str) -> str | None:
        """The away text of the IRC user ``name`` (None: here)."""
        ...

    def members_changed(self, changes: Sequence[MemberChange]) -> None: ...

    def committed(
        self, fresh: Sequence[Numbered], outputs: list[ServerOutput]
    ) -> list[ServerOutput]: ...


def away_field(header: dict, name: str = "away") -> str | None:
    """A HELLO's ``away`` or an AWAY's ``text``: the session's away text (None: here)."""
    try:
        return away_text(header.get(name))
    except AwayTextError as exc:
        raise ProtocolError(f"header field {name!r}: {exc}") from None


def away_of(users: Iterable[str], sessions: Iterable[Session],
            irc: IRCHooks | None) -> dict[str, str]:
    """The away texts of those of ``users`` who are away: a lab93 user when each of its
    listening sessions is (``combined``), an IRC user by its AWAY."""
    texts: dict[str, list[str | None]] = {}
    for session in sessions:
        if session.listen:
            texts.setdefault(session.user, []).append(session.away)
    found = {user: combined(texts.get(user, ())) for user in users}
    if irc is not None:
        found.update((user, irc.away(user)) for user in users if irc.holds(user))
    return {user: text for user, text in found.items() if text is not None}


def net(changes: list[MemberChange]) -> list[MemberChange]:
    """Changes with each left-then-joined (or joined-then-left) pair of one user in one
    room cancelled: a reconnecting client is no news."""
    kept: dict[tuple[str, str], MemberChange] = {}
    for change in changes:
        key = (change.room, change.user)
        if key in kept and kept[key].joined != change.joined:
            del kept[key]
        else:
            kept[key] = change
    return list(kept.values())


class ServerCore:
    """The repeater server's logic. One per server; it owns the numbering.

    ``receive`` takes every frame list the ROUTER delivers; posts wait for
    ``flush``, which stores them in one transaction, then acknowledges,
    publishes and routes them (group commit). ``tick`` sends heartbeats and
    forgets silent sessions; call it by ``next_deadline``.

    With ``names_from_keys`` (secure mode) a session's user is the name of the
    key its connection authenticated with (``receive``'s ``user``): a HELLO
    naming anyone else is refused. In every mode a POSTed message must be
    from its session's user.
    """

    def __init__(
        self,
        inbox: ServerInbox,
        pub_port: int,
        now: float,
        *,
        heartbeat: float = HEARTBEAT,
        session_timeout: float = SESSION_TIMEOUT,
        tail: int = TAIL,
        batch_limit: int = BATCH_LIMIT,
        names_from_keys: bool = False,
        user: str = "server",
    ) -> None:
        self.inbox = inbox
        self.server_id = inbox.node_id
        self.user = user  # who the server's own front end posts as
        self.pub_port = pub_port
        self.heartbeat = heartbeat
        self.session_timeout = session_timeout
        self.names_from_keys = names_from_keys
        self.sessions: dict[bytes, Session] = {}
        self.members = ServerMembership()
        self.commit = GroupCommit(inbox, batch_limit)
        self.directory = RoomDirectory(inbox)
        self.replay = Replay(inbox, self.commit, self.directory, tail=tail, batch_limit=batch_limit)
        self._next_beat = now
        self.health = StoreHealth(now)  # whether the store works, and since when not
        self.numbering = numbering(inbox, self.server_id)
        self.stats = dict.fromkeys(
            ("stored", "duplicates", "errors", "cut_off", "ignored", "throttled"), 0
        )
        self.admission = Admission(self.stats)
        self.irc: IRCHooks | None = None  # the IRC face's service, which sets itself here
        self._handlers: dict[RepeaterVerb, Handler] = {
            RepeaterVerb.HELLO: self._on_hello,
            RepeaterVerb.JOIN: self._on_join,
            RepeaterVerb.PART: self._on_part,
            RepeaterVerb.FETCH: self._on_fetch,
            RepeaterVerb.POST: self._on_post,
            RepeaterVerb.ROOMS: self._on_rooms,
            RepeaterVerb.WHO: self._on_who,
            RepeaterVerb.AWAY: self._on_away,
            RepeaterVerb.PING: lambda request: [],  # a heartbeat: life, nothing to answer
            RepeaterVerb.BYE: self._on_bye,
        }

    # -- queries -------------------------------------------------------------

    @property
    def head(self) -> int:
        return self.commit.head

    def room_head(self, room: str) -> int:
        return self.commit.room_head(room)

    def dm_head(self, user: str) -> int:
        return self.commit.dm_head(user)

    def users(self, room: str | None = None) -> list[str]:
        """Who is connected now (``room`` None), or who is in ``room``; each once, sorted."""
        if room is not None:
            return self.members.users(room)
        names = {s.user for s in self.sessions.values()}
        if self.irc is not None:
            names.update(self.irc.names())
        return sorted(names)

    def room_list(self) -> RoomList:
        """Every room the server keeps or someone is in (its own front end's ROOMS)."""
        rooms = self.directory.listing(self.members.occupied())
        return RoomList(tuple(RoomInfo(r["name"], r["users"], r["topic"], False) for r in rooms))

    def topic(self, room: str) -> Topic | None:
        message = self.directory.topics.current(room)
        return None if message is None else Topic.of(message)

    @property
    def pending(self) -> int:
        """Posts received and not stored yet."""
        return self.commit.pending

    def next_deadline(self) -> float:
        deadline = self._next_beat
        if self.sessions:
            oldest = min(s.last_seen for s in self.sessions.values())
            deadline = min(deadline, oldest + self.session_timeout)
        return deadline

    def cut_off(self, now: float) -> list[bytes]:
        """The sessions whose frames are being ignored now (tests, stats)."""
        return self.admission.cut(now)

    # -- input -----------------------------------------------------------------

    def receive(
        self, identity: bytes, frames: Sequence[bytes], now: float, user: str | None = None
    ) -> list[ServerOutput]:
        """One frame list from the ROUTER (identity already split off); ``user`` is the
        name ZAP gave the connection's key (secure mode), else None."""
        if self.admission.ignored(identity, now):
            return []
        try:
            command = decode(frames)
        except ProtocolError as exc:
            log.info("dropped a bad command from %s: %s", identity.hex(), exc)
            out, cut = self.admission.undecodable(identity, frames, str(exc), now)
            return out + (self._cut(identity) if cut else [])
        verb = RepeaterVerb.of(command)
        handler = self._handlers.get(verb)  # type: ignore[arg-type]
        if verb is None or handler is None:
            log.info("unknown command %s from %s", command.name, identity.hex())
            reply = error(ErrorCode.UNKNOWN, f"unknown command {command.name}")
            return self._bad_input(identity, now, reply)
        if self.admission.throttled(identity, verb, now):
            return []
        session = self.sessions.get(identity)
        if session is None and verb is not RepeaterVerb.HELLO:
            if verb is RepeaterVerb.BYE:
                return []
            return [ReplyTo(identity, error(ErrorCode.HELLO_FIRST, "no session; say HELLO first"))]
        if session is not None:
            session.last_seen = now
        try:
            return handler(Request(identity, session, command, now, user))
        except StoreUnavailable as exc:  # a read the store cannot answer now (PostgreSQL away)
            log.info("%s from %s unanswered: %s", verb.value, identity.hex(), exc)
            reply = error(ErrorCode.UNAVAILABLE, f"the repeater cannot read its store now: {exc}")
            return [ReplyTo(identity, reply), *self.health.failed(str(exc), now)]
        except ProtocolError as exc:
            log.info("bad %s from %s: %s", verb.value, identity.hex(), exc)
            reply = error(ErrorCode.BAD_REQUEST, f"{verb.value}: {exc}")
            return self._bad_input(identity, now, reply)

    def _bad_input(self, identity: bytes, now: float, reply: Command) -> list[ServerOutput]:
        """Answer a bad command with ERROR - unless the session floods: then cut it off."""
        out, cut = self.admission.bad(identity, now, reply)
        return out + (self._cut(identity) if cut else [])

    def _cut(self, identity: bytes) -> list[ServerOutput]:
        session = self.sessions.get(identity)
        who = f"{session.user} (node {session.node})" if session else f"session {identity.hex()}"
        log.warning(
            "cut off %s for %g s: more than %d bad commands in a burst", who, CUT_OFF, BAD_BURST
        )
        return self._drop(identity)

    def _drop(self, identity: bytes) -> list[ServerOutput]:
        """Forget a session; MEMBER for each room its user is no longer in."""
        self.sessions.pop(identity, None)
        return self.announce(self.members.leave(identity))

    def announce(self, changes: list[MemberChange]) -> list[ServerOutput]:
        """MEMBER on each room's feed for these membership changes (netted)."""
        out: list[ServerOutput] = []
        changes = net(changes)
        if self.irc is not None:
            self.irc.members_changed(changes)
        for change in changes:
            header = {
                "server": self.server_id,
                "room": change.room,
                "user": change.user,
                "joined": change.joined,
            }
            out.append(PublishRoom(RepeaterVerb.MEMBER.command(header), change.room))
        return out

    # -- the server's own front end -------------------------------------------------

    def post(self, drafts: Sequence[Draft]) -> list[ServerOutput]:
        """The server's own front end posts: authored as ours, stored with the next
        flush; an invalid or too big one is rejected."""
        out: list[ServerOutput] = []
        for draft in drafts:
            post = author(draft, self.user, self.server_id, self.numbering)
            if isinstance(post, Outgoing):
                self.commit.add(Post(None, post.message, post.payload))
            else:
                out.append(post)
        return out

    def post_local(self, message: Message) -> None:
        """A message authored elsewhere, as if the server's front end posted it."""
        self.commit.add(Post(None, message, None))

    def set_topic(
        self, room: str, text: str, now: datetime, entropy: bytes
    ) -> list[ServerOutput]:
        """The server's own front end sets ``room``'s topic (stored with the next flush);
        the new topic is told at once, as a client's own is."""
        current = self.directory.topics.current(room)
        post = author_topic(
            room, text, now, entropy, current, self.user, self.server_id, self.numbering
        )
        if isinstance(post, Outgoing):
            self.commit.add(Post(None, post.message, post.payload))
            return [Topic.of(post.message)]
        return [Notice(f"cannot set the topic of #{room}: {post.reason}")]

    # -- commands --------------------------------------------------------------------

    def _on_hello(self, request: Request) -> list[ServerOutput]:
        header, identity, key_user = request.command.header, request.identity, request.key_user
        user = check_name(header.get("user"), "user")
        node = check_node_id(header.get("node"), "node")
        listen = header.get("listen", True)
        if type(listen) is not bool:
            raise ProtocolError("header field 'listen' must be true or false")
        rooms = rooms_field(header) if listen and "rooms" in header else []
        if self.names_from_keys and user != key_user:
            log.warning("refused a HELLO as %r from the key of %r", user, key_user)
            reason = (
                f"your key is authorized here as {key_user!r}, not {user!r}; run with -u {key_user}"
                if key_user
                else "this repeater admits only authorized keys"
            )
            return [ReplyTo(identity, error(ErrorCode.FORBIDDEN, reason))]
        if self.irc is not None and self.irc.holds(user):
            reason = f"the name {user!r} is in use here by an IRC user; run with another -u"
            return [ReplyTo(identity, error(ErrorCode.FORBIDDEN, reason))]
        # A node that says HELLO again from a new socket has reconnected: its
        # old session is gone, whatever the heartbeats say.
        changes: list[MemberChange] = []
        for old in [s for s in self.sessions.values() if s.node == node and s.identity != identity]:
            del self.sessions[old.identity]
            changes += self.members.leave(old.identity)
        away = away_field(header) if listen else None
        self.sessions[identity] = Session(identity, user, node, request.now, listen, away)
        changes += self.members.enter(identity, user, rooms)
        log.info("%s (node %s) connected%s", user, node, "" if listen else ", send-only")
        welcome = {
            "server": self.server_id,
            "pub_port": self.pub_port,
            "heartbeat": self.heartbeat,
            "timeout": self.session_timeout,
            "head": self.head,
            "heads": {room: self.room_head(room) for room in rooms},
            "dm_head": self.dm_head(user),
        }
        reply = ReplyTo(identity, RepeaterVerb.WELCOME.command(welcome))
        return [reply, *self.announce(changes)]

    def _on_join(self, request: Request) -> list[ServerOutput]:
        room = room_field(request.command.header)
        if not request.session.listen:
            raise ProtocolError("a send-only session is in no room")
        joined = self.members.rooms_of(request.identity)
        if room not in joined and len(joined) >= MAX_ROOMS:
            raise ProtocolError(f"a session is in at most {MAX_ROOMS} rooms")
        return self.announce(self.members.join(request.identity, room))

    def _on_part(self, request: Request) -> list[ServerOutput]:
        room = room_field(request.command.header)
        return self.announce(self.members.part(request.identity, room))

    def _on_fetch(self, request: Request) -> list[ServerOutput]:
        batch = self.replay.answer(request.command.header, request.session.user)
        return [ReplyTo(request.identity, batch)]

    def _on_post(self, request: Request) -> list[ServerOutput]:
        identity, user, decode = request.identity, request.session.user, Message.decode
        rejected, posts = [], []
        for payload in request.command.payloads:  # the hot loop: one pass per message
            try:
                message = decode(payload)
            except MessageError as exc:
                self.stats["errors"] += 1
                rejected.append([message_id(payload), str(exc)])
                continue
            if message.author != user:
                # Posting as someone else: refused. In secure mode the session's
                # user is its key's name, so no one can post as anyone else.
                self.stats["errors"] += 1
                rejected.append([message.id, f"from {message.author!r} is not you"])
                continue
            # Validated: from here on its received bytes stand for it.
            posts.append(Post(identity, message, payload))
        self.commit.add_many(posts)
        if rejected:
            log.info("rejected %d message(s) from %s", len(rejected), user)
            return [ReplyTo(identity, RepeaterVerb.REJECT.command({"items": rejected}))]
        return []

    def _on_rooms(self, request: Request) -> list[ServerOutput]:
        pages = self.directory.pages(self.members.occupied())
        return [ReplyTo(request.identity, page) for page in pages]

    def _on_who(self, request: Request) -> list[ServerOutput]:
        header = request.command.header
        room = None if header.get("room") is None else room_field(header)
        names = self.users(room)
        away = away_of(names, self.sessions.values(), self.irc)
        users = {"room": room, "users": names, "away": away}
        return [ReplyTo(request.identity, RepeaterVerb.USERS.command(users))]

    def _on_away(self, request: Request) -> list[ServerOutput]:
        if request.session.listen:  # a send-only session is nobody to others
            request.session.away = away_field(request.command.header, "text")
        return []

    def _on_bye(self, request: Request) -> list[ServerOutput]:
        session = request.session
        log.info("%s (node %s) left", session.user, session.node)
        return self._drop(request.identity)

    # -- group commit ---------------------------------------------------------------

    def flush(self, now: float) -> list[ServerOutput]:
        """Store every waiting post in one transaction, then ACK, publish and route.
        While the store fails, posts are refused (``unavailable``) without asking it,
        and it is tried again every ``RETRY`` seconds."""
        if self.commit.pending and self.health.refusing(now):
            refused = self.commit.refuse_pending(self.health.fault or "")
            return refused if self.irc is None else self.irc.committed([], refused)
        flushed = self.commit.flush(self._listeners() if self.commit.pending else {})
        out = self._flushed(flushed)
        if flushed.fault is not None:
            out += self.health.failed(str(flushed.fault), now)
        elif flushed.stored or flushed.duplicates:
            out += self.health.worked()
        return out

    def follow(self, now: float) -> list[ServerOutput]:
        """Tell this server's clients what the other servers of its service stored (the
        shell calls this when the store says the order moved, and every heartbeat)."""
        try:
            flushed = self.commit.follow(self._listeners())
        except StoreUnavailable as exc:
            return self.health.failed(str(exc), now)
        return self._flushed(flushed)

    def _listeners(self) -> dict[str, list[bytes]]:
        by_user: dict[str, list[bytes]] = {}
        for session in self.sessions.values():
            if session.listen:
                by_user.setdefault(session.user, []).append(session.identity)
        return by_user

    def _flushed(self, flushed: Flushed) -> list[ServerOutput]:
        self.stats["stored"] += flushed.stored
        self.stats["duplicates"] += flushed.duplicates
        self.stats["errors"] += flushed.refused
        if flushed.fresh:
            self.directory.stored(flushed.fresh)
        if self.irc is not None:
            return self.irc.committed(flushed.fresh, flushed.outputs)
        return flushed.outputs

    # -- time ----------------------------------------------------------------------

    def tick(self, now: float) -> list[ServerOutput]:
        """Forget silent sessions and ended cut-offs; send heartbeats when due: a PING to
        each session, a TICK on the topic of each room someone is in."""
        self.admission.expire(now)
        out: list[ServerOutput] = []
        for session in [
            s for s in self.sessions.values() if now >= s.last_seen + self.session_timeout
        ]:
            log.info("%s (node %s) went silent; session dropped", session.user, session.node)
            out += self._drop(session.identity)
        if now < self._next_beat:
            return out
        self._next_beat = now + self.heartbeat
        try:
            return out + self._beats()
        except StoreUnavailable as exc:  # a head not cached, and the store away: beat later
            return out + self.health.failed(str(exc), now)

    def _beats(self) -> list[ServerOutput]:
        out: list[ServerOutput] = []
        for room in sorted(self.members.occupied()):
            tick = {"server": self.server_id, "room": room, "head": self.room_head(room)}
            out.append(PublishRoom(RepeaterVerb.TICK.command(tick), room))
        for session in self.sessions.values():
            ping = {"head": self.head, "dm_head": self.dm_head(session.user)}
            out.append(ReplyTo(session.identity, RepeaterVerb.PING.command(ping)))
        return out

    def close(self) -> list[ServerOutput]:
        """A clean stop: tell every session, so clients reconnect at once."""
        bye = RepeaterVerb.BYE.command()
        out: list[ServerOutput] = [ReplyTo(s.identity, bye) for s in self.sessions.values()]
        for identity in list(self.sessions):
            self.members.leave(identity)
        self.sessions.clear()
        return out
