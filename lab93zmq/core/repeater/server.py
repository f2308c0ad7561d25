"""The repeater server's logic, pure: admission, sessions, dispatch, heartbeats.

``ServerCore`` is a facade: it admits each frame list from the ROUTER (a
flooding session is cut off, costly commands are rate-limited), keeps the
sessions, and hands each command to its handler by one table. The work is
done by two machines: ``GroupCommit`` (commit.py: numbering and storing posts,
then telling) and ``Replay`` (replay.py: answering FETCH).

Nothing here touches a socket, a thread or a clock: the shell
(``io/repeater_server.py``) feeds frames and ``now`` in and carries out
``ReplyTo`` and ``PublishRoom``; other outputs are events for its front end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..authoring import DIRECT, Draft, Numbering
from ..errors import MessageError, ProtocolError
from ..flood import FloodGate
from ..inbox import ServerInbox
from ..limits import RateLimiter
from ..message import Message, check_name, check_node_id
from ..notices import SayOnce
from ..wire import Command, decode
from .commands import (
    BATCH_LIMIT,
    HEARTBEAT,
    ErrorCode,
    RepeaterVerb,
    error,
    message_id,
    refusal_code,
)
from .commit import GroupCommit, Post
from .outputs import PublishRoom, ReplyTo, ServerOutput
from .replay import TAIL, Heads, Replay
from .window import Outgoing, author

log = logging.getLogger(__name__)

SESSION_TIMEOUT = 5.0  # a server forgets a silent session after this long
# A session may send this many bad commands in a burst, then BAD_RATE a second;
# past that it is cut off: its session dropped, its frames ignored (no ERROR
# replies either: answering garbage would amplify it) for CUT_OFF seconds.
BAD_BURST = 50
BAD_RATE = 5.0
CUT_OFF = 30.0
# Commands that make the server read its inbox (FETCH), rebuild a session (HELLO)
# or list users (WHO): per session at most COSTLY_RATE a second in bursts of
# COSTLY_BURST. Beyond that they are dropped unanswered; an honest client asks
# again after its timeout, and a catch-up of 10,000 messages takes 20 FETCHes.
COSTLY = frozenset({RepeaterVerb.HELLO, RepeaterVerb.FETCH, RepeaterVerb.WHO})
COSTLY_RATE = 100.0
COSTLY_BURST = 500


@dataclass
class Session:
    """One connected client: a DEALER as the ROUTER sees it."""

    identity: bytes
    user: str
    node: str
    last_seen: float


@dataclass(frozen=True)
class Request:
    """One admitted command, as every handler takes it."""

    identity: bytes
    session: Session | None  # None only for HELLO
    command: Command
    now: float
    key_user: str | None  # the name of the connection's key (secure mode), else None


Handler = Callable[[Request], list[ServerOutput]]


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
        self.commit = GroupCommit(inbox, batch_limit)
        self.replay = Replay(inbox, tail=tail, batch_limit=batch_limit)
        self._next_beat = now
        self._flood = FloodGate(BAD_BURST, BAD_RATE, CUT_OFF)
        self._costly = RateLimiter(COSTLY_RATE, COSTLY_BURST)
        self._said = SayOnce()
        self.numbering = Numbering(
            lambda scope: inbox.next_origin_seq(self.server_id, scope == DIRECT)
        )
        self.stats = dict.fromkeys(
            ("stored", "duplicates", "errors", "cut_off", "ignored", "throttled"), 0
        )
        self._handlers: dict[RepeaterVerb, Handler] = {
            RepeaterVerb.HELLO: self._on_hello,
            RepeaterVerb.FETCH: self._on_fetch,
            RepeaterVerb.POST: self._on_post,
            RepeaterVerb.WHO: self._on_who,
            RepeaterVerb.PING: self._on_ping,
            RepeaterVerb.BYE: self._on_bye,
        }

    # -- queries -------------------------------------------------------------

    @property
    def head(self) -> int:
        return self.commit.head

    @property
    def room_head(self) -> int:
        return self.commit.room_head

    def dm_head(self, user: str) -> int:
        return self.commit.dm_head(user)

    def users(self) -> list[str]:
        """Who is connected now (each user once, sorted)."""
        return sorted({s.user for s in self.sessions.values()})

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
        return self._flood.cut(now)  # type: ignore[return-value]

    # -- input -----------------------------------------------------------------

    def receive(
        self, identity: bytes, frames: Sequence[bytes], now: float, user: str | None = None
    ) -> list[ServerOutput]:
        """One frame list from the ROUTER (identity already split off); ``user`` is the
        name ZAP gave the connection's key (secure mode), else None."""
        if self._flood.is_cut(identity, now):
            self.stats["ignored"] += 1
            return []
        try:
            command = decode(frames)
        except ProtocolError as exc:
            log.info("dropped a bad command from %s: %s", identity.hex(), exc)
            return self._bad_input(identity, now, error(refusal_code(frames), str(exc)))
        verb = RepeaterVerb.of(command)
        handler = self._handlers.get(verb)  # type: ignore[arg-type]
        if verb is None or handler is None:
            log.info("unknown command %s from %s", command.name, identity.hex())
            reply = error(ErrorCode.UNKNOWN, f"unknown command {command.name}")
            return self._bad_input(identity, now, reply)
        if verb in COSTLY:
            if not self._costly.allow(identity, now):
                self.stats["throttled"] += 1
                if self._said.due(("throttled", identity, verb), now):
                    log.warning(
                        "session %s sends %s too fast; dropping", identity.hex(), verb.value
                    )
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
        except ProtocolError as exc:
            log.info("bad %s from %s: %s", verb.value, identity.hex(), exc)
            reply = error(ErrorCode.BAD_REQUEST, f"{verb.value}: {exc}")
            return self._bad_input(identity, now, reply)

    def _bad_input(self, identity: bytes, now: float, reply: Command) -> list[ServerOutput]:
        """Answer a bad command with ERROR - unless the session floods: then cut it off."""
        self.stats["errors"] += 1
        if not self._flood.strike(identity, now):
            return [ReplyTo(identity, reply)]
        self.stats["cut_off"] += 1
        session = self.sessions.pop(identity, None)
        who = f"{session.user} (node {session.node})" if session else f"session {identity.hex()}"
        log.warning(
            "cut off %s for %g s: more than %d bad commands in a burst", who, CUT_OFF, BAD_BURST
        )
        return []

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

    def _on_hello(self, request: Request) -> list[ServerOutput]:
        header, identity, key_user = request.command.header, request.identity, request.key_user
        user = check_name(header.get("user"), "user")
        node = check_node_id(header.get("node"), "node")
        if self.names_from_keys and user != key_user:
            log.warning("refused a HELLO as %r from the key of %r", user, key_user)
            reason = (
                f"your key is authorized here as {key_user!r}, not {user!r}; run with -u {key_user}"
                if key_user
                else "this repeater admits only authorized keys"
            )
            return [ReplyTo(identity, error(ErrorCode.FORBIDDEN, reason))]
        # A node that says HELLO again from a new socket has reconnected: its
        # old session is gone, whatever the heartbeats say.
        for old in [s for s in self.sessions.values() if s.node == node and s.identity != identity]:
            del self.sessions[old.identity]
        self.sessions[identity] = Session(identity, user, node, request.now)
        log.info("%s (node %s) connected", user, node)
        welcome = {
            "server": self.server_id,
            "pub_port": self.pub_port,
            "heartbeat": self.heartbeat,
            "timeout": self.session_timeout,
            "head": self.head,
            "room_head": self.room_head,
            "dm_head": self.dm_head(user),
        }
        return [ReplyTo(identity, RepeaterVerb.WELCOME.command(welcome))]

    def _on_fetch(self, request: Request) -> list[ServerOutput]:
        user = request.session.user
        heads = Heads(self.head, self.room_head, self.dm_head(user))
        return [ReplyTo(request.identity, self.replay.answer(request.command.header, user, heads))]

    def _on_post(self, request: Request) -> list[ServerOutput]:
        session = request.session
        rejected = []
        for payload in request.command.payloads:
            try:
                message = Message.decode(payload)
            except MessageError as exc:
                self.stats["errors"] += 1
                rejected.append([message_id(payload), str(exc)])
                continue
            if message.author != session.user:
                # Posting as someone else: refused. In secure mode the session's
                # user is its key's name, so no one can post as anyone else.
                self.stats["errors"] += 1
                rejected.append([message.id, f"from {message.author!r} is not you"])
                continue
            # Validated: from here on its received bytes stand for it.
            self.commit.add(Post(request.identity, message, payload))
        if rejected:
            log.info("rejected %d message(s) from %s", len(rejected), session.user)
            return [ReplyTo(request.identity, RepeaterVerb.REJECT.command({"items": rejected}))]
        return []

    def _on_who(self, request: Request) -> list[ServerOutput]:
        return [ReplyTo(request.identity, RepeaterVerb.USERS.command({"users": self.users()}))]

    def _on_ping(self, request: Request) -> list[ServerOutput]:
        return []

    def _on_bye(self, request: Request) -> list[ServerOutput]:
        session = request.session
        del self.sessions[request.identity]
        log.info("%s (node %s) left", session.user, session.node)
        return []

    # -- group commit ---------------------------------------------------------------

    def flush(self, now: float) -> list[ServerOutput]:
        """Store every waiting post in one transaction, then ACK, publish and route."""
        by_user: dict[str, list[bytes]] = {}
        if self.commit.pending:
            for session in self.sessions.values():
                by_user.setdefault(session.user, []).append(session.identity)
        flushed = self.commit.flush(by_user)
        self.stats["stored"] += flushed.stored
        self.stats["duplicates"] += flushed.duplicates
        self.stats["errors"] += flushed.refused
        return flushed.outputs

    # -- time ----------------------------------------------------------------------

    def tick(self, now: float) -> list[ServerOutput]:
        """Forget silent sessions and ended cut-offs; send heartbeats when due."""
        self._flood.expire(now)
        self._costly.forget_idle(now)
        for session in [
            s for s in self.sessions.values() if now >= s.last_seen + self.session_timeout
        ]:
            del self.sessions[session.identity]
            log.info("%s (node %s) went silent; session dropped", session.user, session.node)
        if now < self._next_beat:
            return []
        self._next_beat = now + self.heartbeat
        tick = {"server": self.server_id, "head": self.head, "room_head": self.room_head}
        out: list[ServerOutput] = [PublishRoom(RepeaterVerb.TICK.command(tick))]
        for session in self.sessions.values():
            ping = {"head": self.head, "dm_head": self.dm_head(session.user)}
            out.append(ReplyTo(session.identity, RepeaterVerb.PING.command(ping)))
        return out

    def close(self) -> list[ServerOutput]:
        """A clean stop: tell every session, so clients reconnect at once."""
        bye = RepeaterVerb.BYE.command()
        out: list[ServerOutput] = [ReplyTo(s.identity, bye) for s in self.sessions.values()]
        self.sessions.clear()
        return out
