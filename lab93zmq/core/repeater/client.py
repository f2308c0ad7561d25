"""A repeater client's logic, pure: the phases of its connection, and the facade.

``ClientCore`` connects (``IDLE`` -> ``HELLO`` -> ``READY``), hands each server
command to its handler by one table, and combines what its machines return:
``Chains`` (chain.py: messages back in server order), ``FetchSchedule``
(fetch.py: when to ask for what is missing), ``PostWindow`` (window.py: the
outbox and the posts in flight), ``ClientLedger`` (ledger.py: what one turn
writes to the inbox), ``Liveness`` (liveness.py: heartbeats) and, when it
chooses its own server, ``ServerChooser`` (chooser.py).

Nothing here touches a socket, a thread or a clock: the shell
(``io/repeater_client.py``) feeds frames, beacons and ``now`` in and carries
out the ``outputs.py`` commands; the other outputs are front-end events.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence

from ..authoring import DIRECT as DIRECT_SCOPE
from ..authoring import Draft, Numbering
from ..endpoints import host_of
from ..errors import ProtocolError, SecurityError
from ..events import Event, Notice, Posted, Rejected, Status, Users
from ..inbox import ClientInbox
from ..message import Message, check_node_id
from ..presence import Peer, PresenceEvent
from ..wire import Command, decode, header_int
from .catchup import CatchUp
from .chain import DIRECT, ROOM
from .chooser import Choice, RefuseServer, ServerChooser, UseServer
from .commands import BATCH_LIMIT, HEARTBEAT, ErrorCode, RepeaterVerb, numbered
from .ledger import ClientLedger
from .liveness import DEAD_AFTER, Liveness
from .outputs import (
    ClientOutput,
    ConnectServer,
    DisconnectServer,
    GiveUp,
    SendToServer,
    SubscribeFeed,
)
from .window import WINDOW, Outgoing, PostWindow, author, outgoing

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
        {V.WELCOME, V.BATCH, V.DELIVER, V.ACK, V.REJECT, V.USERS, V.PING, V.BYE, V.ERROR}
    ),
}

Handler = Callable[[Command, float], list[ClientOutput]]


class ClientCore:
    """A repeater client's logic: connect, replay, merge live, post, heartbeat.

    ``submit`` queues authored messages in the outbox; ``flush`` stores what
    arrived in one transaction and sends what is waiting. Call ``tick`` by
    ``next_deadline``. Given a ``chooser``, ``start`` and ``heard`` (beacons)
    pick the server; without one, ``use_server`` does.
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
        self.catchup = CatchUp(retry=heartbeat, limit=fetch_limit)
        self.posts = PostWindow(inbox, window)
        # Our own numbers: this client is the only author of its origin.
        self.numbering = Numbering(
            lambda scope: inbox.next_origin_seq(self.node_id, scope == DIRECT_SCOPE)
        )
        self.ledger = ClientLedger(inbox, user)
        self.liveness = Liveness(heartbeat, dead_after)
        self._who_pending = 0
        self._handlers: dict[RepeaterVerb, Handler] = {
            V.WELCOME: self._on_welcome,
            V.BATCH: self._on_batch,
            V.DELIVER: self._on_deliver,
            V.ACK: self._on_ack,
            V.REJECT: self._on_reject,
            V.USERS: self._on_users,
            V.PING: self._on_ping,
            V.BYE: self._on_bye,
            V.ERROR: self._on_error,
        }
        self._feed_handlers: dict[RepeaterVerb, Handler] = {
            V.ROOM: self._on_room,
            V.TICK: self._on_tick,
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
        hello = {"user": self.user, "node": self.node_id, "software": self.software}
        out: list[ClientOutput] = [
            ConnectServer(self.endpoint, self.server_key),
            SendToServer(V.HELLO.command(hello)),
        ]
        if self.connected_status is None:
            # So a front end that gives up before any answer can say where it was trying.
            out += self._status(False, f"connecting to the repeater at {self.endpoint}")
        return out

    def _drop_connection(self) -> list[ClientOutput]:
        """Forget the session: in-flight posts go back to the queue, WHO gets an empty answer."""
        self.catchup.fetches.reset()
        self.posts.stop()
        out: list[ClientOutput] = [Users((), connected=False) for _ in range(self._who_pending)]
        self._who_pending = 0
        return out

    def _reconnect(self, now: float, why: str) -> list[ClientOutput]:
        log.info("%s", why)
        return self._drop_connection() + self._status(False, why) + self._hello(now)

    def _status(self, connected: bool, detail: str) -> list[ClientOutput]:
        if (self.connected_status, self._status_detail) == (connected, detail):
            return []
        self.connected_status = connected
        self._status_detail = detail
        return [Status(connected, detail)]

    # -- choosing the server ------------------------------------------------------

    def start(self, now: float) -> list[ClientOutput]:
        """The first outputs: where the chooser goes (nothing without a chooser)."""
        return self._choose(self.chooser.start(), now) if self.chooser else []

    def heard(
        self, events: Sequence[PresenceEvent], live: Sequence[Peer], now: float
    ) -> list[ClientOutput]:
        """What the beacons said (``live``: the live table now)."""
        return self._choose(self.chooser.heard(events, live, now), now) if self.chooser else []

    def handshake_failed(self, problem: str, now: float) -> list[ClientOutput]:
        """The DEALER's handshake failed; SecurityError when retrying cannot help."""
        if self.chooser is None:
            raise SecurityError(f"the repeater at {self.dealer_endpoint}: {problem}")
        return self._choose(self.chooser.handshake_failed(problem, self.dealer_endpoint), now)

    def give_up(self, error: str, now: float) -> list[ClientOutput]:
        """A refusal retrying cannot mend (a key not admitted, another name, a changed
        server key): tell the front end, and stop talking to any server - but go on
        taking posts into the outbox until stopped, so a line sent meanwhile is kept."""
        if self.chooser is not None:
            self.chooser.give_up()
        self.dealer_endpoint = None
        return [GiveUp(error), DisconnectServer(), *self.use_server(None, now)]

    def _choose(self, choices: list[Choice], now: float) -> list[ClientOutput]:
        out: list[ClientOutput] = []
        for choice in choices:
            if isinstance(choice, UseServer):
                out += self.use_server(choice.endpoint, now, choice.server_key)
            elif isinstance(choice, RefuseServer):
                self.dealer_endpoint = None
                out.append(DisconnectServer())
            else:
                out.append(choice)
        return out

    # -- input from the server -----------------------------------------------------

    def receive(self, frames: Sequence[bytes], now: float) -> list[ClientOutput]:
        """One frame list from the DEALER."""
        try:
            command = decode(frames)
        except ProtocolError as exc:
            log.warning("dropped a bad command from the repeater: %s", exc)
            return []
        verb = RepeaterVerb.of(command)
        if verb not in CLIENT_ACCEPTS[self.phase]:
            log.debug("ignored %s in phase %s", command.name, self.phase.value)
            return []
        self.liveness.last_heard = now
        try:
            return self._handlers[verb](command, now)
        except ProtocolError as exc:
            log.warning("bad %s from the repeater: %s", command.name, exc)
            return []

    def receive_pub(self, frames: Sequence[bytes], now: float) -> list[ClientOutput]:
        """One frame list from the SUB."""
        if self.phase is not Phase.READY:
            return []
        try:
            command = decode(frames)
            if command.header.get("server") != self.server_id:
                return []  # an earlier server's PUB, still draining
            self.liveness.last_tick = now
            handler = self._feed_handlers.get(RepeaterVerb.of(command))  # type: ignore[arg-type]
            return handler(command, now) if handler else []
        except ProtocolError as exc:
            log.warning("bad message on the repeater's PUB: %s", exc)
        return []

    def _on_room(self, command: Command, now: float) -> list[ClientOutput]:
        self.catchup.live(ROOM, numbered(command))
        return self._maybe_fetch(now)

    def _on_tick(self, command: Command, now: float) -> list[ClientOutput]:
        self.catchup.head(ROOM, header_int(command.header, "room_head"))
        return self._maybe_fetch(now)

    def _on_welcome(self, command: Command, now: float) -> list[ClientOutput]:
        header = command.header
        server = check_node_id(header.get("server"), "server")
        pub_port = header_int(header, "pub_port", 1, 65_535)
        out: list[ClientOutput] = []
        if self.phase is Phase.READY:  # a second WELCOME: start over cleanly
            out += self._drop_connection()
        chains = self.catchup.chains
        if server != self.server_id:
            self.server_id = server
            self.catchup.new_server(self.ledger.marks(server))
            chains = self.catchup.chains
            self.ledger.saved_tips = chains.tips()
        # A server behind our marks lost messages (an older copy of its inbox):
        # follow its numbers from where it is, or we would skip its next ones.
        if chains.follow({ROOM: header.get("room_head"), DIRECT: header.get("dm_head")}):
            out.append(Notice("the repeater has lost messages this inbox holds"))
        self.liveness.agree(header, now)
        pub = f"tcp://{host_of(self.endpoint)}:{pub_port}"
        if pub != self.pub_endpoint:
            self.pub_endpoint = pub
            out.append(SubscribeFeed(pub, self.server_key))
        self.phase = Phase.READY
        out += self._status(True, f"connected to repeater at {self.endpoint}")
        out.append(self.catchup.fetch(now))
        self.posts.restart()  # send the whole outbox again
        return out

    def _on_batch(self, command: Command, now: float) -> list[ClientOutput]:
        if self.catchup.replayed(command.header, numbered(command), now):
            return [self.catchup.fetch(now)]
        return self._maybe_fetch(now)

    def _on_deliver(self, command: Command, now: float) -> list[ClientOutput]:
        self.catchup.live(DIRECT, numbered(command))
        return self._maybe_fetch(now)

    def _on_ack(self, command: Command, now: float) -> list[ClientOutput]:
        self.posts.on_ack(command.header)
        return []

    def _on_reject(self, command: Command, now: float) -> list[ClientOutput]:
        self.posts.on_reject(command.header)
        return []

    def _on_users(self, command: Command, now: float) -> list[ClientOutput]:
        users = command.header.get("users")
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise ProtocolError("USERS needs a list of names")
        if self._who_pending == 0:
            return []
        self._who_pending -= 1
        return [Users(tuple(users))]

    def _on_ping(self, command: Command, now: float) -> list[ClientOutput]:
        if self.phase is not Phase.READY:
            return []
        self.catchup.head(DIRECT, header_int(command.header, "dm_head"))
        return self._maybe_fetch(now)

    def _on_bye(self, command: Command, now: float) -> list[ClientOutput]:
        return self._reconnect(now, f"the repeater at {self.endpoint} closed; reconnecting")

    def _on_error(self, command: Command, now: float) -> list[ClientOutput]:
        code, reason = command.header.get("code"), command.header.get("reason")
        if code == ErrorCode.FORBIDDEN.value:
            # Trying again cannot help: the user must change -u or the key.
            raise SecurityError(f"the repeater at {self.endpoint} refused us: {reason}")
        if code == ErrorCode.HELLO_FIRST.value:
            # The server restarted (or forgot us): a new session, as after a drop.
            why = f"the repeater at {self.endpoint} lost our session; reconnecting"
            return self._reconnect(now, why)
        log.warning("the repeater says %s: %s", code, reason)
        return [Notice(f"the repeater says: {reason}")]

    def _maybe_fetch(self, now: float) -> list[ClientOutput]:
        return self.catchup.due(now) if self.phase is Phase.READY else []

    # -- posting ---------------------------------------------------------------------

    def post(self, drafts: Sequence[Draft]) -> list[Event]:
        """Author the front end's drafts as our messages and keep them in the outbox
        (one transaction for the burst); an invalid or too big one is rejected."""
        return self._submit([author(d, self.user, self.node_id, self.numbering) for d in drafts])

    def submit(self, message: Message) -> list[Event]:
        """Keep a message authored elsewhere in the outbox and send it when connected."""
        return self.submit_many([message])

    def submit_many(self, messages: Sequence[Message]) -> list[Event]:
        """``submit`` for a burst, stored in one transaction; too big ones are rejected."""
        return self._submit([outgoing(message) for message in messages])

    def _submit(self, posts: list[Outgoing | Rejected]) -> list[Event]:
        """Keep the good ones in the outbox (committed before this returns): Posted."""
        kept = [post for post in posts if isinstance(post, Outgoing)]
        self.posts.submit(kept)
        events: list[Event] = [post for post in posts if isinstance(post, Rejected)]
        if kept:
            events.append(Posted(tuple(post.message for post in kept)))
        return events

    def who(self, now: float) -> list[ClientOutput]:
        if self.phase is not Phase.READY:
            return [Users((), connected=False)]
        self._who_pending += 1
        return [SendToServer(V.WHO.command())]

    def send_failed(self, sent: SendToServer, now: float) -> None:
        """The shell could not send ``sent`` (the DEALER is full): take it back."""
        verb = RepeaterVerb.of(sent.command)
        if verb is V.POST:
            self.posts.unsent(sent.ids)
        elif verb is V.FETCH:
            self.catchup.fetches.unsent(now)
        elif verb is V.WHO:
            self._who_pending = max(0, self._who_pending - 1)

    # -- writing what arrived, sending what waits -------------------------------------

    def flush(self, now: float) -> list[ClientOutput]:
        """Store arrivals, acknowledgements and marks in one transaction; send posts."""
        out: list[ClientOutput] = []
        tips = self.catchup.chains.tips()
        if self.catchup.arrived or self.ledger.due(tips, self.posts):
            arrived = self.catchup.take_arrived()
            out += self.ledger.commit(self.server_id, tips, self.posts, arrived)
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
        if now >= live.last_tick + live.dead:
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
