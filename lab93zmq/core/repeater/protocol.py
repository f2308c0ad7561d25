"""Repeater mode, sans-IO: the server's and the client's protocol logic.

Nothing here touches a socket, a thread or a clock. The I/O shells in
``repeater.py`` feed frames and ``now`` (monotonic seconds) in and write what
comes out: ``Reply``/``Publish`` (server), ``ToServer``/``Connect``/``Subscribe``
(client), and events for the front end. Both sides are handed their inbox
(``core.inbox``'s protocols); the store is part of the protocol's state
(sequence numbers, dedupe, marks).

Commands (frames as in ``wire.py``; the full page is docs/PROTOCOL.rst)::

    client -> server (DEALER -> ROUTER)
      HELLO  {"user", "node", "software"}       -> WELCOME
      FETCH  {"room": int|null, "dm": int, "limit"} -> BATCH
      POST   {} + messages                      -> ACK (stored ones), REJECT (invalid ones)
      WHO    {}                                 -> USERS
      PING   {}                                 heartbeat, no answer
      BYE    {}                                 the session ends now
    server -> client (ROUTER -> DEALER)
      WELCOME {"server", "pub_port", "heartbeat", "timeout", "head", "room_head", "dm_head"}
      BATCH   {"room", "dm", "items": [[seq, prev], ...], "more", "head", "room_head", "dm_head"}
              + messages
      DELIVER {"items": [[seq, prev], ...]} + direct messages, live
      ACK     {"items": [[id, seq], ...]}
      REJECT  {"items": [[id|null, reason], ...]}
      USERS   {"users": [...]}
      PING    {"head", "dm_head"}
      BYE     {}
      ERROR   {"code", "reason"}
    server PUB
      ROOM    {"server", "items": [[seq, prev], ...]} + room messages
      TICK    {"server", "head", "room_head"}

Numbering: the server gives every stored message the next number of one
sequence (``seq``). A client sees two *chains* of it: room messages, and the
direct messages to or from its user. Every delivered message carries ``prev``,
the number of the message before it *in that chain*, so a client knows it
holds a chain without holes when each ``prev`` is the last number it holds
(its *tip*). Heads in TICK (room, on the PUB) and PING (direct, on the
ROUTER) arrive after everything numbered up to them on the same ordered
channel, so a head above a tip is a real gap: the client asks with FETCH.
A client keeps its two tips per (server, user) in its inbox and resumes
from them; a client with none gets the last ``tail`` room messages and every
direct message of its user.
"""

from __future__ import annotations

import enum
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import MessageError, ProtocolError, SecurityError, StoreError
from ..events import Accepted, Event, Incoming, Notice, Rejected, Status, Users
from ..inbox import ClientInbox, ServerInbox
from ..limits import RateLimiter
from ..message import MAX_WIRE_BYTES, Message, check_name, check_node_id
from ..wire import MAGIC, MAX_HEADER_INT, PROTOCOL_VERSION, Command, decode, header_int

log = logging.getLogger(__name__)

HEARTBEAT = 1.0  # seconds between heartbeats, both ways
DEAD_AFTER = 3.0  # a client gives up on a silent server after this long
SESSION_TIMEOUT = 5.0  # a server forgets a silent session after this long
TAIL = 100  # room messages a never-seen client gets
BATCH_LIMIT = 500  # messages in one BATCH, ROOM or DELIVER
BATCH_BYTES = 4 * 1024 * 1024  # and at most this many payload bytes in one BATCH
ACK_LIMIT = 500  # ids in one ACK header (keeps it far below wire.MAX_HEADER_BYTES)
POST_LIMIT = 100  # messages in one POST
POST_BYTES = 1024 * 1024  # and at most this many bytes
WINDOW = 1000  # posts a client has in flight (sent, not acknowledged)
MAX_BUFFER = 20_000  # out-of-order messages a client holds before it drops them and fetches
MAX_SERVER_INTERVAL = 86_400.0  # seconds: the longest heartbeat or timeout a WELCOME may set
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
COSTLY = frozenset({"HELLO", "FETCH", "WHO"})
COSTLY_RATE = 100.0
COSTLY_BURST = 500


class ErrorCode(str, enum.Enum):
    """The ``code`` of an ERROR reply."""

    MALFORMED = "malformed"  # not a lab93 command at all
    VERSION = "version"  # another protocol version
    UNKNOWN = "unknown-command"
    BAD_REQUEST = "bad-request"  # a known command with bad header fields
    HELLO_FIRST = "hello-first"  # no session: say HELLO (again)
    FORBIDDEN = "forbidden"  # secure mode: HELLO names another user than the client's key


# -- what the cores ask their shells to do ---------------------------------------


@dataclass(frozen=True)
class Reply:
    """Server: send ``command`` on the ROUTER to the session ``identity`` (never block)."""

    identity: bytes
    command: Command


@dataclass(frozen=True)
class Publish:
    """Server: send ``command`` on the PUB."""

    command: Command


@dataclass(frozen=True)
class ToServer:
    """Client: send ``command`` on the DEALER (never block; on failure call ``send_failed``).

    ``ids``: the messages a POST carries, so a failed send can take them back."""

    command: Command
    ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Connect:
    """Client: close the DEALER, open a new one connected to ``endpoint``."""

    endpoint: str


@dataclass(frozen=True)
class Subscribe:
    """Client: point the SUB at ``endpoint`` (and away from any earlier one)."""

    endpoint: str


# Events for the front end are events.py's, shared with broadcast mode.

Output = Reply | Publish | ToServer | Connect | Subscribe


def error(code: ErrorCode, reason: str) -> Command:
    return Command("ERROR", {"code": code.value, "reason": reason})


def _payloads(messages: Iterable[tuple[Message, bytes | None]]) -> tuple[bytes, ...]:
    """The wire form of each message: the bytes it came in with, else encoded now."""
    return tuple(m.encode() if p is None else p for m, p in messages)


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _error_code(frames: Sequence[bytes]) -> ErrorCode:
    """Why ``wire.decode`` refused these frames, as an ERROR code."""
    if frames:
        signature = bytes(frames[0])
        if len(signature) == 4 and signature[:3] == MAGIC and signature[3] != PROTOCOL_VERSION:
            return ErrorCode.VERSION
    return ErrorCode.MALFORMED


def _message_id(payload: bytes) -> str | None:
    """Best effort: the id of a payload that failed to decode, so a REJECT can name it."""
    try:
        value = json.loads(payload).get("id")
    except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, str) and len(value) <= 64 else None


def _items(header: dict, count: int, width: int = 2) -> list[list]:
    """The ``items`` list of a header: ``count`` lists of ``width`` entries."""
    items = header.get("items")
    if not isinstance(items, list) or len(items) != count:
        raise ProtocolError(f"header field 'items' must list {count} entries")
    for item in items:
        if not isinstance(item, list) or len(item) != width:
            raise ProtocolError(f"each entry of 'items' must be a list of {width}")
    return items


def _listed(header: dict, width: int = 2) -> list[list]:
    """The ``items`` list of a header whose length is not tied to payloads."""
    items = header.get("items")
    if not isinstance(items, list):
        raise ProtocolError("header field 'items' must be a list")
    return _items(header, len(items), width)


def _seq_pair(item: list) -> tuple[int, int]:
    seq, prev = item
    if type(seq) is not int or type(prev) is not int or not 0 <= prev < seq <= MAX_HEADER_INT:
        # The bound is the inbox's: a bigger number could not be stored.
        raise ProtocolError("an item must be [seq, prev] with 0 <= prev < seq < 2**63")
    return seq, prev


# -- the server ------------------------------------------------------------------


@dataclass
class Session:
    """One connected client: a DEALER as the ROUTER sees it."""

    identity: bytes
    user: str
    node: str
    last_seen: float


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
    ) -> None:
        self.inbox = inbox
        self.server_id = inbox.node_id
        self.pub_port = pub_port
        self.heartbeat = heartbeat
        self.session_timeout = session_timeout
        self.tail = tail
        self.batch_limit = batch_limit
        self.sessions: dict[bytes, Session] = {}
        self.head = inbox.max_server_seq(self.server_id)
        self.room_head, _ = inbox.last_seqs(self.server_id, None)
        self._dm_heads: dict[str, int] = {}
        # Posts to store at the next flush: (session, message, the payload it came in).
        self._pending: list[tuple[bytes | None, Message, bytes | None]] = []
        self._next_beat = now
        self.names_from_keys = names_from_keys
        self._bad = RateLimiter(BAD_RATE, BAD_BURST)
        self._costly = RateLimiter(COSTLY_RATE, COSTLY_BURST)
        self._cut_off: dict[bytes, float] = {}  # identity -> ignored until
        self.stats = {
            "stored": 0,
            "duplicates": 0,
            "errors": 0,
            "cut_off": 0,
            "ignored": 0,
            "throttled": 0,
        }
        self._handlers = {
            "HELLO": self._on_hello,  # called apart: it also takes the key's name
            "FETCH": self._on_fetch,
            "POST": self._on_post,
            "WHO": self._on_who,
            "PING": self._on_ping,
            "BYE": self._on_bye,
        }

    # -- queries -------------------------------------------------------------

    def users(self) -> list[str]:
        """Who is connected now (each user once, sorted)."""
        return sorted({s.user for s in self.sessions.values()})

    def dm_head(self, user: str) -> int:
        """The number of the last direct message to or from ``user``."""
        if user not in self._dm_heads:
            self._dm_heads[user] = self.inbox.last_seqs(self.server_id, user)[1]
        return self._dm_heads[user]

    @property
    def pending(self) -> int:
        """Posts received and not stored yet."""
        return len(self._pending)

    def next_deadline(self) -> float:
        deadline = self._next_beat
        if self.sessions:
            oldest = min(s.last_seen for s in self.sessions.values())
            deadline = min(deadline, oldest + self.session_timeout)
        return deadline

    # -- input -----------------------------------------------------------------

    def receive(
        self, identity: bytes, frames: Sequence[bytes], now: float, user: str | None = None
    ) -> list[Output]:
        """One frame list from the ROUTER (identity already split off); ``user`` is the
        name ZAP gave the connection's key (secure mode), else None."""
        if identity in self._cut_off:
            if now < self._cut_off[identity]:
                self.stats["ignored"] += 1
                return []
            del self._cut_off[identity]
        try:
            cmd = decode(frames)
        except ProtocolError as exc:
            log.info("dropped a bad command from %s: %s", identity.hex(), exc)
            return self._bad_input(identity, now, error(_error_code(frames), str(exc)))
        handler = self._handlers.get(cmd.name)
        if handler is None:
            log.info("unknown command %s from %s", cmd.name, identity.hex())
            reply = error(ErrorCode.UNKNOWN, f"unknown command {cmd.name}")
            return self._bad_input(identity, now, reply)
        if cmd.name in COSTLY:
            verdict = self._costly.check(identity, now)
            if not verdict.allowed:
                self.stats["throttled"] += 1
                if verdict.streak == 1:
                    log.warning("session %s sends %s too fast; dropping", identity.hex(), cmd.name)
                return []
        session = self.sessions.get(identity)
        if session is None and cmd.name != "HELLO":
            if cmd.name == "BYE":
                return []
            return [Reply(identity, error(ErrorCode.HELLO_FIRST, "no session; say HELLO first"))]
        if session is not None:
            session.last_seen = now
        try:
            if cmd.name == "HELLO":
                return self._on_hello(identity, cmd, now, user)
            return handler(identity, session, cmd, now)
        except ProtocolError as exc:
            log.info("bad %s from %s: %s", cmd.name, identity.hex(), exc)
            return self._bad_input(
                identity, now, error(ErrorCode.BAD_REQUEST, f"{cmd.name}: {exc}")
            )

    def _bad_input(self, identity: bytes, now: float, reply: Command) -> list[Output]:
        """Answer a bad command with ERROR - unless the session floods: then cut it off."""
        self.stats["errors"] += 1
        verdict = self._bad.check(identity, now)
        if verdict.allowed:
            return [Reply(identity, reply)]
        self._cut_off[identity] = now + CUT_OFF
        self.stats["cut_off"] += 1
        session = self.sessions.pop(identity, None)
        who = f"{session.user} (node {session.node})" if session else f"session {identity.hex()}"
        log.warning(
            "cut off %s for %g s: more than %d bad commands in a burst", who, CUT_OFF, BAD_BURST
        )
        return []

    def cut_off(self, now: float) -> list[bytes]:
        """The sessions whose frames are being ignored now (tests, stats)."""
        return [identity for identity, until in self._cut_off.items() if now < until]

    def post_local(self, message: Message) -> None:
        """A message from the server's own front end; stored with the next flush."""
        self._pending.append((None, message, None))

    def _on_hello(self, identity: bytes, cmd: Command, now: float, key_user: str | None):
        user = check_name(cmd.header.get("user"), "user")
        node = check_node_id(cmd.header.get("node"), "node")
        if self.names_from_keys and user != key_user:
            log.warning("refused a HELLO as %r from the key of %r", user, key_user)
            reason = (
                f"your key is authorized here as {key_user!r}, not {user!r}; run with -u {key_user}"
                if key_user
                else "this repeater admits only authorized keys"
            )
            return [Reply(identity, error(ErrorCode.FORBIDDEN, reason))]
        # A node that says HELLO again from a new socket has reconnected: its
        # old session is gone, whatever the heartbeats say.
        for old in [s for s in self.sessions.values() if s.node == node and s.identity != identity]:
            del self.sessions[old.identity]
        self.sessions[identity] = Session(identity, user, node, now)
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
        return [Reply(identity, Command("WELCOME", welcome))]

    def _on_fetch(self, identity: bytes, session: Session, cmd: Command, now: float):
        header = cmd.header
        dm_after = header_int(header, "dm")
        limit = header.get("limit", self.batch_limit)
        if type(limit) is not int or limit < 1:
            raise ProtocolError("header field 'limit' must be a whole number >= 1")
        limit = min(limit, self.batch_limit)
        if header.get("room") is None:
            # Never seen: the last `tail` room messages, from the one before them.
            start = self.inbox.room_tail_start(self.server_id, self.tail)
            room_after = self.inbox.last_seqs(self.server_id, None, through=start)[0]
        else:
            room_after = header_int(header, "room")
        found, more = self.inbox.visible_since(
            self.server_id, room_after, dm_after, session.user, limit
        )
        items, payloads, size = [], [], 0
        room_prev, dm_prev = room_after, dm_after
        for seq, message in found:
            payload = message.encode()
            if payloads and size + len(payload) > BATCH_BYTES:
                more = True
                break
            size += len(payload)
            if message.is_direct:
                items.append([seq, dm_prev])
                dm_prev = seq
            else:
                items.append([seq, room_prev])
                room_prev = seq
            payloads.append(payload)
        batch = {
            "room": room_after,
            "dm": dm_after,
            "items": items,
            "more": more,
            "head": self.head,
            "room_head": self.room_head,
            "dm_head": self.dm_head(session.user),
        }
        return [Reply(identity, Command("BATCH", batch, tuple(payloads)))]

    def _on_post(self, identity: bytes, session: Session, cmd: Command, now: float):
        rejected = []
        for payload in cmd.payloads:
            try:
                message = Message.decode(payload)
            except MessageError as exc:
                self.stats["errors"] += 1
                rejected.append([_message_id(payload), str(exc)])
                continue
            if message.author != session.user:
                # Posting as someone else: refused. In secure mode the session's
                # user is its key's name, so no one can post as anyone else.
                self.stats["errors"] += 1
                rejected.append([message.id, f"from {message.author!r} is not you"])
                continue
            # Validated: from here on its received bytes stand for it (see _announce).
            self._pending.append((identity, message, payload))
        if rejected:
            log.info("rejected %d message(s) from %s", len(rejected), session.user)
            return [Reply(identity, Command("REJECT", {"items": rejected}))]
        return []

    def _on_who(self, identity: bytes, session: Session, cmd: Command, now: float):
        return [Reply(identity, Command("USERS", {"users": self.users()}))]

    def _on_ping(self, identity: bytes, session: Session, cmd: Command, now: float):
        return []

    def _on_bye(self, identity: bytes, session: Session, cmd: Command, now: float):
        del self.sessions[identity]
        log.info("%s (node %s) left", session.user, session.node)
        return []

    # -- group commit ---------------------------------------------------------------

    def flush(self, now: float) -> list[Output | Event]:
        """Store every waiting post in one transaction, then ACK, publish and route.

        When the inbox refuses the batch (a message clashes with a stored one,
        e.g. the same origin and origin number under another id), the posts
        are stored one by one and only the refused ones are rejected.
        """
        if not self._pending:
            return []
        pending, self._pending = self._pending, []
        try:
            return self._commit(pending)
        except StoreError as exc:
            if len(pending) > 1:
                log.warning("the inbox refused a batch (%s); storing one by one", exc)
                return [out for item in pending for out in self._commit_alone(item)]
            return self._commit_alone(pending[0])

    def _commit_alone(
        self, item: tuple[bytes | None, Message, bytes | None]
    ) -> list[Output | Event]:
        try:
            return self._commit([item])
        except StoreError as exc:
            identity, message, _ = item
            self.stats["errors"] += 1
            log.warning("refused message %s: %s", message.id, exc)
            reason = f"the repeater cannot store it: {exc}"
            if identity is None:
                return [Rejected(message.id, reason)]
            return [Reply(identity, Command("REJECT", {"items": [[message.id, reason]]}))]

    def _commit(
        self, pending: list[tuple[bytes | None, Message, bytes | None]]
    ) -> list[Output | Event]:
        # One lookup: which ids are stored, and which of those this server numbered.
        held = self.inbox.held(self.server_id, [m.id for _, m, _ in pending])
        known = {mid: seq for mid, seq in held.items() if seq is not None}
        acks: dict[bytes | None, list[list]] = {}
        # seq, message, prev (to the addressee's chain), prev in the author's chain, payload
        fresh: list[tuple[int, Message, int, int | None, bytes | None]] = []
        duplicates = 0
        # The heads move only once the transaction is committed.
        head, room_head = self.head, self.room_head
        dm_heads: dict[str, int] = {}

        def dm_prev(user: str, seq: int) -> int:
            prev = dm_heads.get(user) or self.dm_head(user)
            dm_heads[user] = seq
            return prev

        for identity, message, payload in pending:
            mid = message.id
            seq = known.get(mid)
            if seq is None:
                seq = head = head + 1
                known[mid] = seq
                recipient = message.recipient
                if recipient is None:
                    fresh.append((seq, message, room_head, None, payload))
                    room_head = seq
                else:
                    to_prev = dm_prev(recipient, seq)
                    from_prev = None
                    if message.author != recipient:
                        from_prev = dm_prev(message.author, seq)
                    fresh.append((seq, message, to_prev, from_prev, payload))
            else:
                duplicates += 1
            acks.setdefault(identity, []).append([mid, seq])
        with self.inbox.transaction():
            stored = self.inbox.save_unknown(
                [(m, self.server_id, seq) for seq, m, *_ in fresh], held
            )
            for (seq, message, *_), new in zip(fresh, stored, strict=True):
                if not new:  # held already, but not numbered by this server
                    self.inbox.set_server_seq(message.id, self.server_id, seq)
        self.head, self.room_head = head, room_head
        self._dm_heads.update(dm_heads)
        self.stats["stored"] += len(fresh)
        self.stats["duplicates"] += duplicates
        return self._announce(acks, fresh)

    def _announce(self, acks, fresh) -> list[Output | Event]:
        out: list[Output | Event] = []
        for identity, items in acks.items():
            if identity is None:
                out.append(Accepted(tuple(mid for mid, _ in items)))
                continue
            for chunk in _chunks(items, ACK_LIMIT):
                out.append(Reply(identity, Command("ACK", {"items": list(chunk)})))
        # The payloads go out as they came in: validated, and already the wire form.
        room = [(seq, prev, (m, data)) for seq, m, prev, _, data in fresh if m.recipient is None]
        for chunk in _chunks(room, self.batch_limit):
            header = {"server": self.server_id, "items": [[s, p] for s, p, _ in chunk]}
            out.append(Publish(Command("ROOM", header, _payloads(m for _, _, m in chunk))))
        # Direct messages: to each session of the addressee and of the author,
        # with the previous number in *that* user's chain. Never on the PUB.
        deliveries: dict[bytes, list[tuple[int, int, tuple[Message, bytes | None]]]] = {}
        by_user: dict[str, list[bytes]] = {}
        for session in self.sessions.values():
            by_user.setdefault(session.user, []).append(session.identity)
        for seq, message, to_prev, from_prev, data in fresh:
            if message.recipient is None:
                continue
            for identity in by_user.get(message.recipient, ()):
                deliveries.setdefault(identity, []).append((seq, to_prev, (message, data)))
            if from_prev is not None:
                for identity in by_user.get(message.author, ()):
                    deliveries.setdefault(identity, []).append((seq, from_prev, (message, data)))
        for identity, items in deliveries.items():
            for chunk in _chunks(items, self.batch_limit):
                header = {"items": [[s, p] for s, p, _ in chunk]}
                out.append(
                    Reply(identity, Command("DELIVER", header, _payloads(m for *_, m in chunk)))
                )
        return out

    # -- time ----------------------------------------------------------------------

    def tick(self, now: float) -> list[Output]:
        """Forget silent sessions and ended cut-offs; send heartbeats when due."""
        for identity in [i for i, until in self._cut_off.items() if now >= until]:
            del self._cut_off[identity]
        self._bad.forget_idle(now)
        self._costly.forget_idle(now)
        for session in [
            s for s in self.sessions.values() if now >= s.last_seen + self.session_timeout
        ]:
            del self.sessions[session.identity]
            log.info("%s (node %s) went silent; session dropped", session.user, session.node)
        if now < self._next_beat:
            return []
        self._next_beat = now + self.heartbeat
        out: list[Output] = [
            Publish(
                Command(
                    "TICK",
                    {"server": self.server_id, "head": self.head, "room_head": self.room_head},
                )
            )
        ]
        for session in self.sessions.values():
            ping = {"head": self.head, "dm_head": self.dm_head(session.user)}
            out.append(Reply(session.identity, Command("PING", ping)))
        return out

    def close(self) -> list[Output]:
        """A clean stop: tell every session, so clients reconnect at once."""
        out: list[Output] = [Reply(s.identity, Command("BYE")) for s in self.sessions.values()]
        self.sessions.clear()
        return out


# -- the client ------------------------------------------------------------------


class Phase(enum.Enum):
    IDLE = "idle"  # no server known (discovery pending)
    HELLO = "hello"  # HELLO sent, waiting for WELCOME
    READY = "ready"  # welcomed: fetching, posting, live


# Which server commands each phase takes; anything else is stale and dropped.
CLIENT_ACCEPTS: dict[Phase, frozenset[str]] = {
    Phase.IDLE: frozenset(),
    Phase.HELLO: frozenset({"WELCOME", "ERROR", "BYE", "PING"}),
    Phase.READY: frozenset(
        {"WELCOME", "BATCH", "DELIVER", "ACK", "REJECT", "USERS", "PING", "BYE", "ERROR"}
    ),
}

ROOM, DIRECT = "room", "dm"


def state_key(server_id: str, user: str) -> str:
    """Where a client keeps its marks for one server and user (inbox meta)."""
    return f"repeater:{server_id}:{user}"


def host_of(endpoint: str) -> str:
    """``tcp://HOST:PORT`` -> ``HOST``."""
    rest = endpoint.split("://", 1)[-1]
    return rest.rpartition(":")[0] or rest


@dataclass
class _Chain:
    """One ordered stream a client receives: the room, or its user's direct messages."""

    tip: int | None  # the last number held without a hole before it; None: not started
    waiting: dict[int, tuple[int, Message]] = field(default_factory=dict)  # prev -> (seq, m)


class ClientCore:
    """A repeater client's logic: connect, replay, merge live, post, heartbeat.

    ``submit`` queues an authored message in the outbox; ``flush`` stores what
    arrived in one transaction and sends what is waiting. Call ``tick`` by
    ``next_deadline``.
    """

    def __init__(
        self,
        inbox: ClientInbox,
        user: str,
        now: float,
        *,
        heartbeat: float = HEARTBEAT,
        dead_after: float = DEAD_AFTER,
        window: int = WINDOW,
        fetch_limit: int = BATCH_LIMIT,
        software: str = "",
    ) -> None:
        self.inbox = inbox
        self.user = user
        self.software = software  # told to the server in HELLO (the package version)
        self.node_id = inbox.node_id
        self.heartbeat = heartbeat
        self.dead_after = dead_after
        self.window = window
        self.fetch_limit = fetch_limit
        self._beat = heartbeat  # PING interval and liveness bound, as agreed in WELCOME
        self._dead = dead_after
        self.phase = Phase.IDLE
        self.endpoint: str | None = None
        self.pub_endpoint: str | None = None
        self.server_id: str | None = None
        self.connected_status: bool | None = None  # last STATUS told to the front end
        self._status_detail = ""
        self.chains = {ROOM: _Chain(None), DIRECT: _Chain(0)}
        self._saved_tips: tuple[int | None, int | None] = (None, None)
        self._deadline = now  # phase HELLO: give up; READY: see tick
        self._last_heard = now
        self._last_tick = now
        self._next_ping = now
        self._fetching: float | None = None  # when the outstanding FETCH went out
        self._fetch_again = False
        self._refetch_at: float | None = None
        self._who_pending = 0
        # posts: every unacknowledged one, those to send, and those in flight
        self.outbox: OrderedDict[str, Message] = OrderedDict((m.id, m) for m in inbox.outbox())
        self._unsent: deque[str] = deque()
        self._inflight: dict[str, float] = {}
        # what flush() writes
        self._arrived: list[tuple[int, Message]] = []
        self._acked: list[tuple[str, int]] = []
        self._rejected: list[tuple[str, str]] = []

    # -- connection ------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.phase is Phase.READY

    def use_server(self, endpoint: str | None, now: float) -> list[Output | Event]:
        """Talk to the repeater at ``endpoint`` (``tcp://HOST:PORT``); None: no server known."""
        if endpoint == self.endpoint and self.phase is not Phase.IDLE:
            return []
        self.endpoint = endpoint
        if endpoint is None:
            out = self._drop_connection()
            self.phase = Phase.IDLE
            return out + self._status(False, "no repeater known; listening for one on the LAN")
        return self._drop_connection() + self._hello(now)

    def _hello(self, now: float) -> list[Output | Event]:
        self.phase = Phase.HELLO
        self._deadline = now + self.dead_after
        hello = {"user": self.user, "node": self.node_id, "software": self.software}
        out: list[Output | Event] = [Connect(self.endpoint), ToServer(Command("HELLO", hello))]
        if self.connected_status is None:
            # So a front end that gives up before any answer can say where it was trying.
            out += self._status(False, f"connecting to the repeater at {self.endpoint}")
        return out

    def _drop_connection(self) -> list[Output | Event]:
        """Forget the session: in-flight posts go back to the queue, WHO gets an empty answer."""
        self._fetching = None
        self._fetch_again = False
        self._refetch_at = None
        self._inflight.clear()
        self._unsent.clear()
        out: list[Output | Event] = [Users((), connected=False) for _ in range(self._who_pending)]
        self._who_pending = 0
        return out

    def _reconnect(self, now: float, why: str) -> list[Output | Event]:
        log.info("%s", why)
        return self._drop_connection() + self._status(False, why) + self._hello(now)

    def _status(self, connected: bool, detail: str) -> list[Event]:
        if (self.connected_status, self._status_detail) == (connected, detail):
            return []
        self.connected_status = connected
        self._status_detail = detail
        return [Status(connected, detail)]

    # -- input from the server -----------------------------------------------------

    def receive(self, frames: Sequence[bytes], now: float) -> list[Output | Event]:
        """One frame list from the DEALER."""
        try:
            cmd = decode(frames)
        except ProtocolError as exc:
            log.warning("dropped a bad command from the repeater: %s", exc)
            return []
        if cmd.name not in CLIENT_ACCEPTS[self.phase]:
            log.debug("ignored %s in phase %s", cmd.name, self.phase.value)
            return []
        self._last_heard = now
        handler = getattr(self, f"_on_{cmd.name.lower()}")
        try:
            return handler(cmd, now)
        except ProtocolError as exc:
            log.warning("bad %s from the repeater: %s", cmd.name, exc)
            return []

    def receive_pub(self, frames: Sequence[bytes], now: float) -> list[Output | Event]:
        """One frame list from the SUB."""
        if self.phase is not Phase.READY:
            return []
        try:
            cmd = decode(frames)
            if cmd.header.get("server") != self.server_id:
                return []  # an earlier server's PUB, still draining
            self._last_tick = now
            if cmd.name == "ROOM":
                messages = cmd.messages()
                items = _items(cmd.header, len(messages))
                for item, message in zip(items, messages, strict=True):
                    seq, prev = _seq_pair(item)
                    if message.is_direct:
                        raise ProtocolError("a direct message on the PUB")
                    self._take(ROOM, seq, prev, message, now)
                return self._maybe_fetch(now)
            if cmd.name == "TICK":
                room_head = header_int(cmd.header, "room_head")
                tip = self.chains[ROOM].tip
                if tip is not None and room_head > tip:
                    self._fetch_again = True
                return self._maybe_fetch(now)
        except ProtocolError as exc:
            log.warning("bad message on the repeater's PUB: %s", exc)
        return []

    def _on_welcome(self, cmd: Command, now: float) -> list[Output | Event]:
        server = check_node_id(cmd.header.get("server"), "server")
        pub_port = header_int(cmd.header, "pub_port", 1, 65_535)
        out: list[Output | Event] = []
        if self.phase is Phase.READY:  # a second WELCOME: start over cleanly
            out += self._drop_connection()
        if server != self.server_id:
            self.server_id = server
            self.chains = {ROOM: _Chain(None), DIRECT: _Chain(0)}
            saved = self.inbox.get_meta(state_key(server, self.user))
            if saved is not None:
                try:
                    marks = json.loads(saved)
                    room, dm = marks["room"], marks["dm"]
                    if type(room) is not int or type(dm) is not int or min(room, dm) < 0:
                        raise TypeError
                    self.chains[ROOM].tip, self.chains[DIRECT].tip = room, dm
                except (ValueError, KeyError, TypeError):
                    log.warning("unreadable repeater marks in the inbox; starting afresh")
            self._saved_tips = (self.chains[ROOM].tip, self.chains[DIRECT].tip)
        # A server behind our marks lost messages (an older copy of its inbox):
        # follow its numbers from where it is, or we would skip its next ones.
        behind = False
        for name, key in ((ROOM, "room_head"), (DIRECT, "dm_head")):
            head, chain = cmd.header.get(key), self.chains[name]
            if type(head) is int and chain.tip is not None and head < chain.tip:
                log.warning("the repeater's %s is %d, below ours (%d)", key, head, chain.tip)
                chain.tip = head
                chain.waiting.clear()
                behind = True
        if behind:
            out.append(Notice("the repeater has lost messages this inbox holds"))
        # Heartbeats: ping well within the server's timeout; allow it three beats.
        # A server's word is taken within reason: a day at most (beyond a float, the
        # arithmetic on it would raise).
        beat, timeout = cmd.header.get("heartbeat"), cmd.header.get("timeout")
        self._beat, self._dead = self.heartbeat, self.dead_after
        if isinstance(timeout, (int, float)) and 0 < timeout <= MAX_SERVER_INTERVAL:
            self._beat = min(self._beat, timeout / 3)
        if isinstance(beat, (int, float)) and 0 < beat <= MAX_SERVER_INTERVAL:
            self._dead = max(self._dead, 3 * beat)
        pub = f"tcp://{host_of(self.endpoint)}:{pub_port}"
        if pub != self.pub_endpoint:
            self.pub_endpoint = pub
            out.append(Subscribe(pub))
        self.phase = Phase.READY
        self._last_tick = self._last_heard = now
        self._next_ping = now + self._beat
        out += self._status(True, f"connected to repeater at {self.endpoint}")
        out += self._fetch(now)
        self._unsent = deque(self.outbox)  # send the whole outbox again
        return out

    def _on_batch(self, cmd: Command, now: float) -> list[Output | Event]:
        messages = cmd.messages()
        items = _items(cmd.header, len(messages))
        room = self.chains[ROOM]
        taken = 0
        if room.tip is None:  # a new client: the tail starts here
            room.tip = header_int(cmd.header, "room")
            taken += self._drain(room)
        for item, message in zip(items, messages, strict=True):
            seq, prev = _seq_pair(item)
            taken += self._take(DIRECT if message.is_direct else ROOM, seq, prev, message, now)
        self._fetching = None
        if cmd.header.get("more") is True:
            return self._fetch(now)
        self._fetch_again = self._gap()
        if self._fetch_again:
            # Something is still missing (lost on the PUB, or live traffic
            # past this answer). Ask again, at once if this answer helped.
            if taken == 0:
                self._refetch_at = now + self.heartbeat
        return self._maybe_fetch(now)

    def _on_deliver(self, cmd: Command, now: float) -> list[Output | Event]:
        messages = cmd.messages()
        items = _items(cmd.header, len(messages))
        for item, message in zip(items, messages, strict=True):
            seq, prev = _seq_pair(item)
            if not message.is_direct:
                raise ProtocolError("DELIVER carries direct messages only")
            self._take(DIRECT, seq, prev, message, now)
        return self._maybe_fetch(now)

    def _on_ack(self, cmd: Command, now: float) -> list[Output | Event]:
        for mid, seq in _listed(cmd.header):
            if isinstance(mid, str) and type(seq) is int and 0 < seq <= MAX_HEADER_INT:
                self._acked.append((mid, seq))
                self._inflight.pop(mid, None)
        return []

    def _on_reject(self, cmd: Command, now: float) -> list[Output | Event]:
        for mid, reason in _listed(cmd.header):
            if isinstance(mid, str) and mid in self.outbox:
                self._rejected.append((mid, str(reason)))
                self._inflight.pop(mid, None)
            else:
                log.warning("the repeater rejected a message: %s", reason)
        return []

    def _on_users(self, cmd: Command, now: float) -> list[Output | Event]:
        users = cmd.header.get("users")
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise ProtocolError("USERS needs a list of names")
        if self._who_pending == 0:
            return []
        self._who_pending -= 1
        return [Users(tuple(users))]

    def _on_ping(self, cmd: Command, now: float) -> list[Output | Event]:
        if self.phase is Phase.READY:
            tip = self.chains[DIRECT].tip
            if header_int(cmd.header, "dm_head") > (tip or 0):
                self._fetch_again = True
            return self._maybe_fetch(now)
        return []

    def _on_bye(self, cmd: Command, now: float) -> list[Output | Event]:
        return self._reconnect(now, f"the repeater at {self.endpoint} closed; reconnecting")

    def _on_error(self, cmd: Command, now: float) -> list[Output | Event]:
        code, reason = cmd.header.get("code"), cmd.header.get("reason")
        if code == ErrorCode.FORBIDDEN.value:
            # Trying again cannot help: the user must change -u or the key.
            raise SecurityError(f"the repeater at {self.endpoint} refused us: {reason}")
        if code == ErrorCode.HELLO_FIRST.value:
            # The server restarted (or forgot us): a new session, as after a drop.
            return self._reconnect(
                now, f"the repeater at {self.endpoint} lost our session; reconnecting"
            )
        log.warning("the repeater says %s: %s", code, reason)
        return [Notice(f"the repeater says: {reason}")]

    # -- the two chains ---------------------------------------------------------------

    def _take(self, chain_name: str, seq: int, prev: int, message: Message, now: float) -> int:
        """One numbered message; deliver it (and what waited for it) or keep it for later."""
        chain = self.chains[chain_name]
        if chain.tip is None or prev > chain.tip:
            # Not next in line: keep it until what comes before it is here.
            chain.waiting[prev] = (seq, message)
            if len(chain.waiting) > MAX_BUFFER:
                chain.waiting.clear()  # they will come again with a fetch
            if chain.tip is not None:
                self._fetch_again = True
            return 0
        if seq <= chain.tip:
            return 0  # held already (replay overlapping live)
        if prev < chain.tip:
            log.warning(
                "repeater numbering moved (%s %d after %d, tip %d)",
                chain_name,
                seq,
                prev,
                chain.tip,
            )
        self._arrived.append((seq, message))
        chain.tip = seq
        return 1 + self._drain(chain)

    def _drain(self, chain: _Chain) -> int:
        """Deliver what waited for the tip, in order; forget what the tip passed."""
        taken = 0
        while chain.tip in chain.waiting:
            seq, message = chain.waiting.pop(chain.tip)
            self._arrived.append((seq, message))
            chain.tip = seq
            taken += 1
        if chain.waiting:
            for stale in [p for p, (s, _) in chain.waiting.items() if s <= chain.tip]:
                del chain.waiting[stale]
        return taken

    def _gap(self) -> bool:
        return any(chain.waiting for chain in self.chains.values())

    def _fetch(self, now: float) -> list[Output]:
        self._fetching = now
        self._fetch_again = False
        self._refetch_at = None
        header = {
            "room": self.chains[ROOM].tip,
            "dm": self.chains[DIRECT].tip or 0,
            "limit": self.fetch_limit,
        }
        return [ToServer(Command("FETCH", header))]

    def _maybe_fetch(self, now: float) -> list[Output]:
        if (
            self._fetch_again
            and self.phase is Phase.READY
            and self._fetching is None
            and (self._refetch_at is None or now >= self._refetch_at)
        ):
            return self._fetch(now)
        return []

    # -- posting ---------------------------------------------------------------------

    def submit(self, message: Message) -> list[Event]:
        """Keep an authored message in the outbox and send it when connected."""
        return self.submit_many([message])

    def submit_many(self, messages: Sequence[Message]) -> list[Event]:
        """``submit`` for a burst, stored in one transaction; too big ones are rejected."""
        events: list[Event] = []
        fit = []
        for message in messages:
            if len(message.encode()) > MAX_WIRE_BYTES:
                reason = f"the message is larger than {MAX_WIRE_BYTES} bytes encoded"
                events.append(Rejected(message.id, reason))
            else:
                fit.append(message)
        self.inbox.queue_many(fit)
        for message in fit:
            if message.id not in self.outbox:
                self.outbox[message.id] = message
                self._unsent.append(message.id)
        return events

    def who(self, now: float) -> list[Output | Event]:
        if self.phase is not Phase.READY:
            return [Users((), connected=False)]
        self._who_pending += 1
        return [ToServer(Command("WHO"))]

    def send_failed(self, sent: ToServer, now: float) -> None:
        """The shell could not send ``sent`` (the DEALER is full): take it back."""
        command = sent.command
        if command.name == "POST":
            for mid in reversed(sent.ids):
                if mid in self._inflight:
                    del self._inflight[mid]
                    self._unsent.appendleft(mid)
        elif command.name == "FETCH":
            self._fetching = None
            self._fetch_again = True
            self._refetch_at = now + self.heartbeat
        elif command.name == "WHO":
            self._who_pending = max(0, self._who_pending - 1)

    # -- writing what arrived, sending what waits -------------------------------------

    def flush(self, now: float) -> list[Output | Event]:
        """Store arrivals, acknowledgements and marks in one transaction; send posts."""
        out: list[Output | Event] = []
        tips = (self.chains[ROOM].tip, self.chains[DIRECT].tip)
        if self._arrived or self._acked or self._rejected or tips != self._saved_tips:
            out += self._commit(tips)
        if self.phase is Phase.READY:
            out += self._send_posts(now)
        return out

    def _commit(self, tips: tuple[int | None, int | None]) -> list[Event]:
        arrived = sorted(self._arrived, key=lambda item: item[0])
        acked, rejected = self._acked, self._rejected
        self._arrived, self._acked, self._rejected = [], [], []
        with self.inbox.transaction():
            fresh = self._save(arrived)
            gone = [mid for mid, _ in acked] + [mid for mid, _ in rejected]
            if gone:
                self.inbox.acknowledge(gone)
            if acked:
                self._number(acked)
            if self.server_id and tips[0] is not None and tips != self._saved_tips:
                marks = json.dumps({"room": tips[0], "dm": tips[1]})
                self.inbox.set_meta(state_key(self.server_id, self.user), marks)
        self._saved_tips = tips
        events: list[Event] = [
            Incoming(m) for (_, m), new in zip(arrived, fresh, strict=True) if new
        ]
        accepted = tuple(mid for mid, _ in acked if self.outbox.pop(mid, None) is not None)
        if accepted:
            events.append(Accepted(accepted))
        for mid, reason in rejected:
            if self.outbox.pop(mid, None) is not None:
                events.append(Rejected(mid, f"the repeater refused it: {reason}"))
        return events

    def _number(self, acked: list[tuple[str, int]]) -> None:
        """Record the server's numbers for acknowledged posts."""
        try:
            self.inbox.set_server_seqs(self.server_id, acked)
            return
        except StoreError as exc:
            log.warning("the inbox refused server numbers (%s); one by one", exc)
        for mid, seq in acked:
            try:
                self.inbox.set_server_seqs(self.server_id, [(mid, seq)])
            except StoreError as exc:  # a numbering clash: keep the message, not the number
                log.warning("could not record server number %d: %s", seq, exc)

    def _save(self, arrived: list[tuple[int, Message]]) -> list[bool]:
        batch = [(m, self.server_id, seq) for seq, m in arrived]
        try:
            with self.inbox.transaction():
                return self.inbox.save_many(batch)
        except StoreError as exc:
            log.warning("the inbox refused a batch from the repeater (%s); one by one", exc)
        fresh = []
        for item in batch:
            try:
                with self.inbox.transaction():
                    fresh += self.inbox.save_many([item])
            except StoreError as exc:
                # Its number clashes with one held (the server reuses numbers
                # after losing messages): keep the message without a number.
                log.warning("message %s from the repeater: %s", item[0].id, exc)
                try:
                    with self.inbox.transaction():
                        fresh += self.inbox.save_many([(item[0], None, None)])
                except StoreError as exc:  # it clashes with a held message itself
                    log.warning("dropped message %s from the repeater: %s", item[0].id, exc)
                    fresh.append(False)
        return fresh

    def _send_posts(self, now: float) -> list[Output]:
        out: list[Output] = []
        while self._unsent and len(self._inflight) < self.window:
            payloads: list[bytes] = []
            ids: list[str] = []
            size = 0
            while self._unsent and len(payloads) < POST_LIMIT and len(self._inflight) < self.window:
                mid = self._unsent[0]
                message = self.outbox.get(mid)
                if message is None or mid in self._inflight:
                    self._unsent.popleft()
                    continue
                payload = message.encode()
                if payloads and size + len(payload) > POST_BYTES:
                    break
                self._unsent.popleft()
                self._inflight[mid] = now
                payloads.append(payload)
                ids.append(mid)
                size += len(payload)
            if payloads:
                out.append(ToServer(Command("POST", {}, tuple(payloads)), tuple(ids)))
        return out

    # -- time ---------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        if self.phase is Phase.IDLE:
            return None
        if self.phase is Phase.HELLO:
            return self._deadline
        deadlines = [self._next_ping, self._last_heard + self._dead, self._last_tick + self._dead]
        if self._refetch_at is not None:
            deadlines.append(self._refetch_at)
        if self._fetching is not None:
            deadlines.append(self._fetching + self._dead)
        if self._inflight:
            deadlines.append(min(self._inflight.values()) + 2 * self._dead)
        return min(deadlines)

    def tick(self, now: float) -> list[Output | Event]:
        if self.phase is Phase.HELLO and now >= self._deadline:
            return self._reconnect(now, f"no answer from the repeater at {self.endpoint}")
        if self.phase is not Phase.READY:
            return []
        if now >= self._last_heard + self._dead:
            return self._reconnect(
                now,
                f"no answer from the repeater at {self.endpoint} "
                f"for {self._dead:g} s; reconnecting",
            )
        if now >= self._last_tick + self._dead:
            return self._reconnect(
                now, f"the repeater's room feed at {self.pub_endpoint} went silent; reconnecting"
            )
        out: list[Output | Event] = []
        if now >= self._next_ping:
            self._next_ping = now + self._beat
            out.append(ToServer(Command("PING")))
        if self._fetching is not None and now >= self._fetching + self._dead:
            self._fetching = None  # the answer was lost; ask again
            self._fetch_again = True
        if self._inflight and now >= min(self._inflight.values()) + 2 * self._dead:
            # Acknowledgements lost on the way: send again; the server dedupes by id.
            self._unsent = deque(mid for mid in self.outbox)
            self._inflight.clear()
        out += self._maybe_fetch(now)
        return out

    def stop(self) -> list[Output]:
        """A clean leave: say BYE so the server drops the session now."""
        if self.phase is Phase.READY:
            return [ToServer(Command("BYE"))]
        return []
