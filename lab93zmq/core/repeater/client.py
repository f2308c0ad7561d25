"""A repeater client's logic, pure: the phases of its connection, and the facade.

``ClientCore`` connects (``IDLE`` -> ``HELLO`` -> ``READY``), hands each server
command to its handler by one table, and combines what its machines return:
``Chains`` (chain.py: messages back in server order, per room),
``FetchSchedule`` (fetch.py: when to ask for what is missing), ``RoomSet``
(roomset.py: its rooms, joining and parting, WHO and ROOMS), ``PostWindow``
(window.py: the outbox and the posts in flight), ``ClientLedger`` (ledger.py:
what one turn writes to the inbox), ``Liveness`` (liveness.py: heartbeats)
and, when it chooses its own server, ``ServerChooser`` (chooser.py).

A send-only client (``listen`` False: ``--send``, or piped lines without
``--listen``) is in no room: it subscribes to no room feed, fetches nothing,
stores nothing the server sends and moves no tips, so the next run of its
inbox that listens still gets all it missed; the server does not count it
in any room. It only posts, and hears the answers.

Nothing here touches a socket, a thread or a clock: the shell
(``io/repeater_client.py``) feeds frames, beacons and ``now`` in and carries
out the ``outputs.py`` commands; the other outputs are front-end events.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable, Sequence

from ..endpoints import host_of
from ..errors import ProtocolError, SecurityError, StoreUnavailable
from ..events import Event, Notice, Status
from ..inbox import ClientInbox
from ..message import check_node_id
from ..notices import SayOnce
from ..rooms import DEFAULT_ROOM
from ..wire import PROTOCOL_VERSION, Command, decode, decode_published, header_int
from .catchup import ClientCatchUp
from .chooser import Choosing, ServerChooser
from .commands import (
    BATCH_LIMIT,
    HEARTBEAT,
    LEGACY_VERSION,
    ErrorCode,
    RepeaterVerb,
    numbered,
    other_version,
)
from .ledger import ClientLedger
from .liveness import DEAD_AFTER, Liveness
from .outputs import (
    ClientOutput,
    ConnectServer,
    SendToServer,
    SubscribeFeed,
)
from .posting import ClientPosting
from .roomset import RoomSet
from .trouble import Troubles
from .window import WINDOW, PostWindow, numbering

log = logging.getLogger(__name__)


class Phase(enum.Enum):
    IDLE = "idle"  # no server known (discovery pending)
    HELLO = "hello"  # HELLO sent, waiting for WELCOME
    READY = "ready"  # welcomed: fetching, posting, live


V = RepeaterVerb
# Which server commands each phase takes; anything else is stale and dropped.
CLIENT_ACCEPTS: dict[Phase, frozenset[RepeaterVerb]] = {
    Phase.IDLE: frozenset(),
    Phase.HELLO: frozenset({V.WELCOME, V.ERROR, V.BYE, V.PING}),
    Phase.READY: frozenset(
        {
            V.WELCOME,
            V.BATCH,
            V.DELIVER,
            V.ACK,
            V.REJECT,
            V.USERS,
            V.ROOMLIST,
            V.PING,
            V.BYE,
            V.ERROR,
        }
    ),
}

# A send-only client takes nothing that would store messages or move its tips.
SEND_ONLY_ACCEPTS = {phase: verbs - {V.BATCH, V.DELIVER} for phase, verbs in CLIENT_ACCEPTS.items()}


def old_server(endpoint: str | None, version: int) -> str:
    """What a client is told of a server of an older protocol version."""
    old = " (lab93-node 0.1)" if version == LEGACY_VERSION else ""
    return (
        f"the repeater at {endpoint} speaks lab93 protocol {version}{old}; this lab93-node"
        f" speaks protocol {PROTOCOL_VERSION} (rooms): upgrade the repeater"
    )

Handler = Callable[[Command, float], list[ClientOutput]]
FeedHandler = Callable[[str, Command, float], list[ClientOutput]]


class ClientCore(Choosing, ClientPosting, Troubles):
    """A repeater client's logic: connect, replay, merge live, post, heartbeat.

    ``submit`` queues authored messages in the outbox; ``flush`` stores what
    arrived in one transaction and sends what is waiting. Call ``tick`` by
    ``next_deadline``. Given a ``chooser``, ``start`` and ``heard`` (beacons)
    pick the server; without one, ``use_server`` does. ``rooms``: the rooms it
    is in from the start; ``listen`` False: a send-only client (see above).
    """

    def __init__(
        self,
        inbox: ClientInbox,
        user: str,
        now: float,
        *,
        chooser: ServerChooser | None = None,
        heartbeat: float = HEARTBEAT,
        dead_after: float = DEAD_AFTER,
        window: int = WINDOW,
        fetch_limit: int = BATCH_LIMIT,
        software: str = "",
        rooms: Iterable[str] = (DEFAULT_ROOM,),
        listen: bool = True,
    ) -> None:
        self.inbox = inbox
        self.user = user
        self.software = software  # told to the server in HELLO (the package version)
        self.node_id = inbox.node_id
        self.chooser = chooser
        self.phase = Phase.IDLE
        self.endpoint: str | None = None  # the server we use now
        self.dealer_endpoint: str | None = None  # where the shell's DEALER is connected
        self.server_key: bytes | None = None
        self.pub_endpoint: str | None = None
        self.server_id: str | None = None
        self.connected_status: bool | None = None  # last STATUS told to the front end
        self._status_detail = ""
        self.listen = listen
        self._accepts = CLIENT_ACCEPTS if listen else SEND_ONLY_ACCEPTS
        self.catchup = ClientCatchUp(retry=heartbeat, limit=fetch_limit)
        self.posts = PostWindow(inbox, window)
        # Our own numbers: this client is the only author of its origin.
        self.numbering = numbering(inbox, self.node_id)
        self.ledger = ClientLedger(inbox, user)
        self.rooms = RoomSet(list(rooms), self.catchup, self.ledger.topics, listen=listen)
        # Until a server welcomes us, our chains are those of the last one that did.
        self._chains_of = self.ledger.last_server() if listen else None
        marks = self.ledger.marks(self._chains_of) if self._chains_of else None
        self.catchup.new_server(marks, self.rooms.names)
        self.ledger.saved = marks
        self.liveness = Liveness(heartbeat, dead_after)
        self.liveness.feed = bool(self.rooms.names)
        self._said = SayOnce()
        self._refused_by: str | None = None  # an older server refused our HELLO
        self._handlers: dict[RepeaterVerb, Handler] = {
            V.WELCOME: self._on_welcome,
            V.BATCH: self._on_batch,
            V.DELIVER: self._on_deliver,
            V.ACK: self._on_ack,
            V.REJECT: self._on_reject,
            V.USERS: self._on_users,
            V.ROOMLIST: self._on_roomlist,
            V.PING: self._on_ping,
            V.BYE: self._on_bye,
            V.ERROR: self._on_error,
        }
        self._feed_handlers: dict[RepeaterVerb, FeedHandler] = {
            V.ROOM: self._on_room,
            V.TICK: self._on_tick,
            V.MEMBER: self._on_member,
        }

    # -- connection ------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.phase is Phase.READY

    def use_server(
        self, endpoint: str | None, now: float, server_key: bytes | None = None
    ) -> list[ClientOutput]:
        """Talk to the repeater at ``endpoint`` (``tcp://HOST:PORT``; in secure mode a
        CURVE server with the raw key ``server_key``); None: no server known."""
        if endpoint == self.endpoint and self.phase is not Phase.IDLE:
            return []
        self.endpoint = endpoint
        self.server_key = server_key
        if endpoint is None:
            out = self._drop_connection()
            self.phase = Phase.IDLE
            return out + self._status(False, "no repeater known; listening for one on the LAN")
        return self._drop_connection() + self._hello(now)

    def _hello(self, now: float) -> list[ClientOutput]:
        self.phase = Phase.HELLO
        self.liveness.hello(now)
        self.dealer_endpoint = self.endpoint
        hello = {
            "user": self.user,
            "node": self.node_id,
            "software": self.software,
            "rooms": list(self.rooms.names),
            "listen": self.listen,
        }
        if self.rooms.away is not None:
            hello["away"] = self.rooms.away
        out: list[ClientOutput] = [
            ConnectServer(self.endpoint, self.server_key),
            SendToServer(V.HELLO.command(hello)),
        ]
        if self.connected_status is None:
            # So a front end that gives up before any answer can say where it was trying.
            out += self._status(False, f"connecting to the repeater at {self.endpoint}")
        return out

    def _drop_connection(self) -> list[ClientOutput]:
        """Forget the session: posts in flight go back to the queue, questions answered."""
        self.catchup.fetches.reset()
        self.posts.stop()
        return list(self.rooms.dropped())

    def _reconnect(self, now: float, why: str, move: bool = True) -> list[ClientOutput]:
        """Start over with a new connection: to another server of the service when there
        is one (``move``), else to the same one."""
        if self._refused_by is not None and self._refused_by == self.endpoint:
            why = self._status_detail  # still the older server: say that, not "no answer"
        log.info("%s", why)
        out = self._drop_connection() + self._status(False, why)
        moved = self.failover(now) if move else None
        return out + (moved if moved is not None else self._hello(now))

    def _status(self, connected: bool, detail: str) -> list[ClientOutput]:
        if (self.connected_status, self._status_detail) == (connected, detail):
            return []
        self.connected_status = connected
        self._status_detail = detail
        return [Status(connected, detail)]

    # -- input from the server -----------------------------------------------------

    def receive(self, frames: Sequence[bytes], now: float) -> list[ClientOutput]:
        """One frame list from the DEALER."""
        try:
            command = decode(frames)
        except ProtocolError as exc:
            version = other_version(frames)
            if version is not None and version < PROTOCOL_VERSION and self.phase is Phase.HELLO:
                return self._older_server(version, now)
            log.warning("dropped a bad command from the repeater: %s", exc)
            return []
        verb = RepeaterVerb.of(command)
        if verb not in self._accepts[self.phase]:
            log.debug("ignored %s in phase %s", command.name, self.phase.value)
            return []
        self.liveness.last_heard = now
        try:
            return self._handlers[verb](command, now)
        except ProtocolError as exc:
            log.warning("bad %s from the repeater: %s", command.name, exc)
            return []

    def _older_server(self, version: int, now: float) -> list[ClientOutput]:
        """The server answered in an older protocol (its ERROR ``version``): one sentence,
        status disconnected; HELLO goes on being tried, in case it is upgraded."""
        sentence = old_server(self.endpoint, version)
        self._refused_by = self.endpoint
        out: list[ClientOutput] = []
        if self._said.due(("older", self.endpoint), now):
            log.warning("%s", sentence)
            out.append(Notice(sentence))
        return out + self._status(False, sentence)

    def receive_pub(self, frames: Sequence[bytes], now: float) -> list[ClientOutput]:
        """One frame list from the SUB: a room's traffic, on its topic."""
        if self.phase is not Phase.READY or not self.listen:
            return []
        try:
            room, command = decode_published(frames)
            if command.header.get("server") != self.server_id:
                return []  # an earlier server's PUB, still draining
            if room is None or command.header.get("room") != room:
                raise ProtocolError(f"{command.name} does not name the room of its topic")
            self.liveness.last_tick = now
            handler = self._feed_handlers.get(RepeaterVerb.of(command))  # type: ignore[arg-type]
            return handler(room, command, now) if handler else []
        except ProtocolError as exc:
            log.warning("bad message on the repeater's PUB: %s", exc)
        return []

    def _on_room(self, room: str, command: Command, now: float) -> list[ClientOutput]:
        self.catchup.live_room(room, numbered(command))
        return self._maybe_fetch(now)

    def _on_tick(self, room: str, command: Command, now: float) -> list[ClientOutput]:
        chain = self.catchup.chains.rooms.get(room)
        self.catchup.head(chain, header_int(command.header, "head"))
        return self._maybe_fetch(now)

    def _on_member(self, room: str, command: Command, now: float) -> list[ClientOutput]:
        return list(self.rooms.member(room, command.header, self.user))

    def _on_welcome(self, command: Command, now: float) -> list[ClientOutput]:
        header = command.header
        server = check_node_id(header.get("server"), "server")
        pub_port = header_int(header, "pub_port", 1, 65_535)
        out: list[ClientOutput] = []
        if self.phase is Phase.READY:  # a second WELCOME: start over cleanly
            out += self._drop_connection()
        self._refused_by = None
        self.phase = Phase.READY
        self.liveness.agree(header, now)
        out += self._status(True, f"connected to repeater at {self.endpoint}")
        self.posts.restart()  # send the whole outbox again
        if not self.listen:  # a send-only run: no feed, no replay; its ACKs name the server
            self.server_id = server
            return out
        if server != self.server_id:
            self.server_id = server
            if server != self._chains_of:  # our chains were another server's
                marks = self.ledger.marks(server)
                self.catchup.new_server(marks, self.rooms.names)
                self.ledger.saved = marks
            self._chains_of = server
            self.ledger.welcomed_by(server)
        # A server behind our marks lost messages (an older copy of its inbox):
        # follow its numbers from where it is, or we would skip its next ones.
        if self.catchup.chains.follow(header.get("heads"), header.get("dm_head")):
            out.append(Notice("the repeater has lost messages this inbox holds"))
        pub = f"tcp://{host_of(self.endpoint)}:{pub_port}"
        if pub != self.pub_endpoint:
            self.pub_endpoint = pub
            out.append(SubscribeFeed(pub, self.server_key))
        out.append(self.rooms.follow())
        out.append(self.catchup.fetch(now))
        return out

    def _on_batch(self, command: Command, now: float) -> list[ClientOutput]:
        if self.catchup.replayed(command.header, numbered(command, outside=True), now):
            return [self.catchup.fetch(now)]
        return self._maybe_fetch(now)

    def _on_deliver(self, command: Command, now: float) -> list[ClientOutput]:
        self.catchup.live_direct(numbered(command))
        return self._maybe_fetch(now)

    def _on_ack(self, command: Command, now: float) -> list[ClientOutput]:
        self.posts.on_ack(command.header)
        return list(self.server_stores())

    def _on_reject(self, command: Command, now: float) -> list[ClientOutput]:
        self.posts.on_reject(command.header)
        return []

    def _on_users(self, command: Command, now: float) -> list[ClientOutput]:
        return list(self.rooms.on_users(command.header))

    def _on_roomlist(self, command: Command, now: float) -> list[ClientOutput]:
        return list(self.rooms.on_roomlist(command.header))

    def _on_ping(self, command: Command, now: float) -> list[ClientOutput]:
        if self.phase is not Phase.READY or not self.listen:
            return []
        self.catchup.head(self.catchup.chains.direct, header_int(command.header, "dm_head"))
        return self._maybe_fetch(now)

    def _on_bye(self, command: Command, now: float) -> list[ClientOutput]:
        return self._reconnect(now, f"the repeater at {self.endpoint} closed; reconnecting")

    def _on_error(self, command: Command, now: float) -> list[ClientOutput]:
        code, reason = command.header.get("code"), command.header.get("reason")
        if code == ErrorCode.FORBIDDEN.value:
            # Trying again cannot help: the user must change -u or the key.
            raise SecurityError(f"the repeater at {self.endpoint} refused us: {reason}")
        if code == ErrorCode.UNAVAILABLE.value:
            return list(self.server_unavailable(command.header, now))
        if code == ErrorCode.HELLO_FIRST.value:
            # The server restarted (or forgot us): a new session, as after a drop.
            why = f"the repeater at {self.endpoint} lost our session; reconnecting"
            return self._reconnect(now, why, move=False)
        log.warning("the repeater says %s: %s", code, reason)
        return [Notice(f"the repeater says: {reason}")]

    def _maybe_fetch(self, now: float) -> list[ClientOutput]:
        return self.catchup.due(now) if self.phase is Phase.READY and self.listen else []

    # -- rooms -----------------------------------------------------------------------

    def join(self, room: str, now: float) -> list[ClientOutput]:
        """Be in ``room`` (subscribe, tell the server, catch up); JOINED at once."""
        out = self.rooms.join(room, self.connected)
        self.liveness.watch_feed(self.listen and bool(self.rooms.names), now)
        return out + self._maybe_fetch(now)

    def part(self, room: str, now: float) -> list[ClientOutput]:
        """Leave ``room``: nothing of it is received or stored from now on; PARTED."""
        out = self.rooms.part(room, self.connected)
        self.liveness.watch_feed(self.listen and bool(self.rooms.names), now)
        return out

    def ask_rooms(self, now: float) -> list[ClientOutput]:
        """ROOMS: every room the server keeps (answered with a RoomList)."""
        return self.rooms.ask_rooms(self.connected)

    # -- posting: posting.py (set_topic, post, submit, submit_many) ------------------

    def who(self, now: float, room: str | None = None) -> list[ClientOutput]:
        """WHO: who is connected (``room`` None), or who is in ``room``."""
        return self.rooms.who(room, self.connected)

    def set_away(self, text: str | None, now: float) -> list[ClientOutput]:
        """/away: be away with ``text`` (None: back), on this server and the next."""
        return self.rooms.set_away(text, self.connected)

    def send_failed(self, sent: SendToServer, now: float) -> list[Event]:
        """The shell could not send ``sent`` (the DEALER is full): take it back (a
        question is answered at once, with what we know)."""
        verb = RepeaterVerb.of(sent.command)
        if verb is V.POST:
            self.posts.unsent(sent.ids)
        elif verb is V.FETCH:
            self.catchup.fetches.unsent(now)
        elif verb in (V.WHO, V.ROOMS):
            return self.rooms.unsent(verb)
        return []

    # -- writing what arrived, sending what waits -------------------------------------

    def flush(self, now: float) -> list[ClientOutput]:
        """Store arrivals, acknowledgements and marks in one transaction; send posts."""
        out: list[ClientOutput] = []
        marks = self.catchup.chains.marks() if self.listen else None
        due = self.catchup.arrived or self.ledger.due(marks, self.posts)
        if due and self.inbox_writable(now):
            arrived = self.catchup.take_arrived()
            # Not welcomed yet, a PART still counts: under the server our chains are of.
            server = self.server_id or self._chains_of
            try:
                out += self.ledger.commit(server, marks, self.posts, arrived)
            except StoreUnavailable as exc:  # trouble.py: back to what the inbox holds
                return out + self.inbox_failed(exc, now)
            out += self.inbox_works()
        if not self.catchup.arrived:  # what the server's answers brought is stored
            out = self.rooms.answered(*self.catchup.take_answered(), out)
        if self.phase is Phase.READY:
            out += self.posts.posts(now)
        return out

    # -- time ---------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        if self.phase is Phase.IDLE:
            return None
        if self.phase is Phase.HELLO:
            return self.liveness.hello_until
        dead = self.liveness.dead
        deadlines = self.liveness.deadlines()
        fetches = self.catchup.fetches
        for deadline in (fetches.next_deadline(dead), self.posts.next_deadline(2 * dead)):
            if deadline is not None:
                deadlines.append(deadline)
        if self.inbox_fault is not None:
            deadlines.append(self.inbox_retry)
        return min(deadlines)

    def tick(self, now: float) -> list[ClientOutput]:
        live = self.liveness
        if self.phase is Phase.HELLO and now >= live.hello_until:
            return self._reconnect(now, f"no answer from the repeater at {self.endpoint}")
        if self.phase is not Phase.READY:
            return []
        if now >= live.last_heard + live.dead:
            why = (
                f"no answer from the repeater at {self.endpoint} for {live.dead:g} s; reconnecting"
            )
            return self._reconnect(now, why)
        if live.feed_silent(now):
            why = f"the repeater's room feed at {self.pub_endpoint} went silent; reconnecting"
            return self._reconnect(now, why)
        out: list[ClientOutput] = []
        if live.ping_due(now):
            out.append(SendToServer(V.PING.command()))
        self.catchup.fetches.expire(now, live.dead)  # the answer was lost: ask again
        self.posts.expire(now, 2 * live.dead)  # acknowledgements lost: send again
        out += self._maybe_fetch(now)
        return out

    def stop(self) -> list[ClientOutput]:
        """A clean leave: say BYE so the server drops the session now."""
        if self.phase is Phase.READY:
            return [SendToServer(V.BYE.command())]
        return []
