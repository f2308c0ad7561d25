"""The blocking Python API: a node or a server inside any program.

A ``Node`` (broadcast node or repeater client) or ``Server`` runs its actor
thread, which owns every socket and the inbox, and one *pump* thread, which
owns the actor's pipe. Callers in any thread never touch a ZeroMQ socket:
they queue a request and wake the pump through a plain OS pipe (a
``zmq.Poller`` polls it beside the actor's pipe), and wait on a Future or a
``queue.Queue`` that the pump fills. So ``send``, ``receive`` and iteration
may be called from any thread, and nothing polls with sleeps.

docs/API.rst documents every public name; ``lab93zmq.aio`` is the asyncio face.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import zmq

from ..core.authoring import Draft
from ..core.errors import ClosedError, Lab93Error, UsageError
from ..core.events import Event, Joined, Parted, RoomInfo, Users
from ..core.message import Message
from ..core.rooms import room_name
from ..core.sighting import Sighting
from ..io.actor import Actor, ActorHandle, PipeKind, PipeMessage
from ..io.config import DEFAULT_BEACON_PORT, DEFAULT_PORT, NodeConfig
from ..io.inbox_lock import InboxLock
from .facets import NodeFacets
from .options import make_actor, node_config
from .pipe import (
    EVENTS,
    EVERYTHING,
    MESSAGES,
    Arrivals,
    Arrived,
    Ended,
    Failed,
    Happened,
    Item,
    PipeClient,
    Settled,
    away_request,
    settle,
)

T = TypeVar("T")
START_TIMEOUT = 10.0  # seconds a node may take to be ready (bind, open the inbox)
ANSWER_TIMEOUT = 10.0  # seconds an answer from the actor may take
CLOSE_TIMEOUT = 5.0
_DRAIN = 1000  # pipe messages the pump takes per turn

_open: weakref.WeakSet[_Running] = weakref.WeakSet()


@atexit.register
def _close_forgotten() -> None:
    """A program that forgot to close a node still leaves cleanly (leaving beacon, BYE)."""
    for running in list(_open):
        running.close()


def seconds(value: object, what: str = "timeout") -> float | None:
    """A timeout as the API takes it: None (wait as long as it takes) or seconds >= 0."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    raise UsageError(f"{what} takes a number of seconds from 0 up (or None), not {value!r}")


class _Running:
    """What a node and a server share: the actor, the pump, the queues."""

    def __init__(self, actor: Actor, config: NodeConfig, start_timeout: float) -> None:
        self.config = config
        self._lock_file = InboxLock(config.db_path, shared=config.db_url is not None)
        self._lock_file.acquire()  # one node per inbox, as on the command line
        self._handle = ActorHandle(actor)
        try:
            self._handle.start(timeout=start_timeout)
        except BaseException:
            self._lock_file.release()
            raise
        self.actor = actor
        self.node_id: str = self._handle.node_id or ""
        #: The actor's own line about where it listens ("listening on ...").
        self.ready_detail: str = self._handle.ready_detail
        self._client = PipeClient(bursts=actor.takes_bursts, handover=actor.handover)
        self._guard = threading.Condition()  # held while the pump changes what waiters read
        self._requests: deque[Callable[[], list[PipeMessage]]] = deque()
        self._arrivals = Arrivals()  # read under _guard
        self._error: Lab93Error | None = None
        self._closing = False
        self._stopped = False  # the actor said STOPPED: its thread is ending
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._pump_thread = threading.Thread(target=self._pump, name="lab93-pump", daemon=True)
        self._pump_thread.start()
        _open.add(self)

    # -- the caller's side ---------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the node was closed or its actor ended."""
        return self._closing or self._client.ended

    def _submit(self, build: Callable[[], list[PipeMessage]]) -> None:
        if self.closed:
            raise self._error or ClosedError()
        self._requests.append(build)
        try:
            os.write(self._wake_write, b"\0")
        except OSError:  # the pump closed its end: the node has ended
            raise self._error or ClosedError() from None

    def _wait(self, future: Future[T], timeout: float | None, what: str) -> T:
        try:
            return future.result(timeout)
        except FutureTimeout:
            raise Lab93Error(f"no answer to {what} within {timeout:g} s") from None

    def _ask(self, kind: PipeKind, timeout: object, **body: Any) -> Any:
        future: Future[Any] = Future()
        self._submit(lambda: [self._client.ask(kind, future, **body)])
        return self._wait(future, seconds(timeout), kind.value.upper())

    def receive(self, timeout: float | None = None) -> Message | None:
        """The next message (oldest first), or None after ``timeout`` seconds (None:
        wait as long as it takes) or once the node is closed."""
        return self._next(MESSAGES, timeout)  # type: ignore[return-value]

    def next_event(self, timeout: float | None = None) -> Event | None:
        """The next typed event (status, notice, accepted, refused, …), or None."""
        return self._next(EVENTS, timeout)  # type: ignore[return-value]

    def poll(self, timeout: float | None = None) -> Message | Event | None:
        """The next message *or* event, in the one order they arrived, or None."""
        return self._next(EVERYTHING, timeout)

    def poll_many(self, timeout: float | None = None, limit: int = 1000) -> list[Message | Event]:
        """What ``poll`` returns, and after it everything else ready now (at most
        ``limit`` in all), in the one order: [] when ``poll`` would return None. One
        wait and one lock for a burst, not one each."""
        first = self._next(EVERYTHING, timeout)
        if first is None:
            return []
        items: list[Message | Event] = [first]
        with self._guard:
            arrivals = self._arrivals
            while len(items) < limit and arrivals.ready(EVERYTHING):
                items.append(arrivals.take(EVERYTHING))
        return items

    def _next(self, view: str, timeout: object) -> Message | Event | None:
        wait = seconds(timeout)
        with self._guard:
            self._guard.wait_for(
                lambda: self._arrivals.ready(view) or self._client.ended or self._error, wait
            )
            return self._arrivals.after_waiting(view, self._error)

    def __iter__(self) -> Iterator[Message]:
        """Every message as it arrives, until the node is closed."""
        while (message := self.receive()) is not None:
            yield message

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Leave cleanly (BYE, leaving beacon, inbox closed); idempotent."""
        if not self._closing and not self._client.ended:
            self._closing = True
            self._requests.append(lambda: [PipeMessage(PipeKind.STOP, {})])
            try:
                os.write(self._wake_write, b"\0")
            except OSError:
                pass
        self._closing = True
        self._pump_thread.join(timeout + 1.0)
        _open.discard(self)

    def __enter__(self: T) -> T:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    # -- the pump's side --------------------------------------------------------------

    def _pump(self) -> None:
        pipe = self._handle.pipe
        poller = zmq.Poller()
        poller.register(pipe, zmq.POLLIN)
        poller.register(self._wake_read, zmq.POLLIN)
        try:
            while not self._client.ended:
                ready = dict(poller.poll())
                if self._wake_read in ready:
                    self._send_requests(pipe)
                if pipe in ready:
                    self._take(pipe)
        except Exception as error:  # a bug here must not leave callers waiting forever
            self._end(Lab93Error(f"internal error in the API's pump: {error!r}"))
        finally:
            os.close(self._wake_read)
            os.close(self._wake_write)
            # Joins the actor and closes the pipe; after STOPPED there is nothing to ask.
            self._handle.stop(timeout=CLOSE_TIMEOUT, stopped=self._stopped)
            self._lock_file.release()

    def _send_requests(self, pipe: zmq.Socket[bytes]) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass
        while self._requests:
            build = self._requests.popleft()
            with self._guard:
                messages = build()
            for message in messages:
                pipe.send_multipart(message.frames())

    def _take(self, pipe: zmq.Socket[bytes]) -> None:
        for _ in range(_DRAIN):
            try:
                frames = pipe.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            with self._guard:
                items = self._client.take(self._handle.parse(frames))
                for item in items:
                    self._dispatch(item)
                self._guard.notify_all()
            if self._client.ended:
                return

    def _dispatch(self, item: Item) -> None:
        if isinstance(item, (Arrived, Happened)):
            self._arrivals.add(item)
        elif isinstance(item, Settled):
            settle(item.token, item)
        elif isinstance(item, Failed):
            self._error = item.error
            self._handle.join(0.5)  # an actor that ended sent FATAL as its last act
            if not self._handle.alive:
                self._end(item.error)
        elif isinstance(item, Ended):
            self._stopped = True
            self._end(self._error)

    def _end(self, error: Lab93Error | None) -> None:
        with self._guard:  # re-entrant: _take may hold it already
            self._error = error
            self._client.ended = True
            for token in self._client.waiting():
                future: Future[Any] = token  # type: ignore[assignment]
                if not future.done():
                    future.set_exception(error or ClosedError())
            self._guard.notify_all()


class Node(NodeFacets, _Running):
    """A broadcast node or a repeater client: ``Node.broadcast(...)``, ``Node.repeater(...)``.

    The factories start the node and return once it is ready, or raise the
    sentence the command line would print (a ``Lab93Error`` subclass).
    """

    @classmethod
    def broadcast(
        cls,
        *,
        user: str | None = None,
        interfaces: str | Iterable[str] | None = None,
        beacon_port: int = DEFAULT_BEACON_PORT,
        db: str | Path | None = None,
        rooms: str | Iterable[str] | None = None,
        address: str | None = None,
        port: int = DEFAULT_PORT,
        secure: bool = False,
        authorized_keys: str | Path | None = None,
        timeout: float = 10.0,
        listen: bool = True,
    ) -> Node:
        """Start a broadcast node (``lab93-node -b``): serverless, peers found by beacon."""
        config = node_config(
            "broadcast", user=user, address=address, port=port, interfaces=interfaces,
            beacon_port=beacon_port, db=db, rooms=rooms, secure=secure,
            authorized_keys=authorized_keys, timeout=timeout, listen=listen,
        )
        return cls(make_actor("broadcast", config), config)

    @classmethod
    def repeater(
        cls,
        *,
        address: str | None = None,
        port: int = DEFAULT_PORT,
        user: str | None = None,
        interfaces: str | Iterable[str] | None = None,
        beacon_port: int = DEFAULT_BEACON_PORT,
        db: str | Path | None = None,
        rooms: str | Iterable[str] | None = None,
        secure: bool = False,
        server_key: str | None = None,
        timeout: float = 10.0,
        listen: bool = True,
    ) -> Node:
        """Start a repeater client (``lab93-node -r -c``); ``address`` None: find a server."""
        config = node_config(
            "client", user=user, address=address, port=port, interfaces=interfaces,
            beacon_port=beacon_port, db=db, rooms=rooms, secure=secure, server_key=server_key,
            timeout=timeout, listen=listen,
        )
        return cls(make_actor("client", config), config)

    def __init__(self, actor: Actor, config: NodeConfig) -> None:
        super().__init__(actor, config, max(config.timeout, START_TIMEOUT))
        self._init_facets(config)

    def send(
        self, text: str, *, subject: str | None = None, to: str | None = None,
        room: str | None = None, id: str | None = None, action: bool = False,
        timeout: float | None = ANSWER_TIMEOUT,
    ) -> Message:
        """Send ``text`` to the current room (or ``room``), or ``to`` one user.

        Returns the stored message once the node has written it to its inbox (its
        outbox): from then on it is not lost, whatever happens to this process. It
        is *delivered* later; ``flush`` waits for that.

        ``id`` (32 lowercase hex digits, e.g. from ``lab93zmq.message_id()``) makes a
        send repeatable: every node keeps one message per id, so sending again with
        the id of a message sent before (after a crash, say) delivers it once.
        """
        draft = self.draft(text, subject=subject, to=to, room=room, id=id, action=action)
        return self.send_many([draft], timeout=timeout)[0]

    def send_many(self, drafts: Iterable[Draft], timeout: float | None = ANSWER_TIMEOUT
                  ) -> list[Message]:
        """``send`` for several drafts (from ``draft``) at once: one turn of the actor
        stores them together, which is how a pipeline keeps up."""
        wait = seconds(timeout)
        burst = list(drafts)
        if not burst:
            return []
        future: Future[list[Message | Lab93Error]] = Future()  # one for the lot
        self._submit(lambda: self._client.post_burst(burst, future))
        sent: list[Message] = []
        for result in self._wait(future, wait, "sending a message"):
            if isinstance(result, Lab93Error):
                raise result
            sent.append(result)
        return sent

    def post(self, drafts: Iterable[Draft]) -> list[Future[Message]]:
        """``send_many`` without waiting: a Future per draft, done once it is stored
        (its Message) or refused (RefusedError)."""
        pairs: list[tuple[Draft, Future[Message]]] = [(draft, Future()) for draft in drafts]
        if pairs:
            self._submit(lambda: self._client.post(pairs))
        return [future for _, future in pairs]

    def flush(self, timeout: float | None = ANSWER_TIMEOUT) -> list[Message]:
        """Wait until every message sent by this object is accepted (the command line's
        rule at the end of piped input), at most ``timeout``; return those that are not.
        Once the node cannot go on (a server refused its key) it stops waiting and raises
        why, as ``receive`` does: what waits stays in the outbox."""
        wait = seconds(timeout)
        with self._guard:
            self._guard.wait_for(
                lambda: not self._client.unaccepted or self.closed or self._error is not None,
                wait,
            )
            waiting = list(self._client.unaccepted.values())
            if waiting and self._error is not None:
                raise self._error
            return waiting


    # -- rooms ---------------------------------------------------------------------

    def join(self, room: str, timeout: float | None = ANSWER_TIMEOUT) -> Joined:
        """Join ``room`` (``"#ops"`` or ``"ops"``) and make it the current room; a first
        join brings its last 100 messages, later ones what this inbox lacks. Joining a
        room one is in just makes it current."""
        name = room_name(room)
        future: Future[Any] = Future()
        self._submit(lambda: [self._client.move(PipeKind.JOIN, name, future)])
        joined: Joined = self._wait(future, seconds(timeout), f"JOIN #{name}")
        self._now_in(name)
        return joined

    def part(self, room: str | None = None, timeout: float | None = ANSWER_TIMEOUT) -> Parted:
        """Leave ``room`` (default: the current one): nothing of it is received or
        stored from now on. The next room in ``rooms`` becomes current."""
        name = self._room_to_part(room)
        future: Future[Any] = Future()
        self._submit(lambda: [self._client.move(PipeKind.PART, name, future)])
        parted: Parted = self._wait(future, seconds(timeout), f"PART #{name}")
        self._left(name)
        return parted

    def set_topic(self, text: str, room: str | None = None) -> None:
        """Set the topic of ``room`` (default: the current one); the new topic comes
        back as a ``Topic`` event, as anyone's does."""
        name = self._room_or_current(room)
        self._submit(lambda: [PipeMessage(PipeKind.TOPIC, {"room": name, "text": text})])

    def room_list(self, timeout: float | None = ANSWER_TIMEOUT) -> list[RoomInfo]:
        """Every room heard on the network: name, members, topic, whether we are in it."""
        return list(self._ask(PipeKind.ROOMS, timeout))

    # -- asking ---------------------------------------------------------------------

    def peers(self, timeout: float | None = ANSWER_TIMEOUT) -> list[Sighting]:
        """Every live node and repeater this node hears (what /scan shows)."""
        return list(self._ask(PipeKind.SCAN, timeout))

    def who(self, room: str | None = None, timeout: float | None = ANSWER_TIMEOUT) -> list[str]:
        """Who is in ``room`` (this node's user too), or online at all (None; /who)."""
        return list(self.who_away(room, timeout))

    def who_away(self, room: str | None = None,
                 timeout: float | None = ANSWER_TIMEOUT) -> dict[str, str | None]:
        """What ``who`` lists, each with its away text (None: here), in the same order."""
        name = room_name(room) if room is not None else None
        users: Users = self._ask(PipeKind.WHO, timeout, room=name)
        return dict.fromkeys(users.users, None) | users.away_texts

    def set_away(self, text: str | None) -> None:
        """Be away with ``text`` (None or blank: back; /away): ``who_away`` shows it to
        everyone, and whoever sends this user a direct message is told it."""
        request = away_request(text)
        self._submit(lambda: [request])

    def history(self, limit: int | None = 20, room: str | None = None,
                timeout: float | None = ANSWER_TIMEOUT) -> list[Message]:
        """The newest ``limit`` messages of the inbox (of ``room``: that room's only),
        oldest first (None: all of them)."""
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 0):
            raise UsageError(f"limit takes a whole number from 0 up (or None), not {limit!r}")
        name = room_name(room) if room is not None else None
        return list(self._ask(PipeKind.HISTORY, timeout, limit=limit, room=name))

    def outbox(self, timeout: float | None = ANSWER_TIMEOUT) -> list[Message]:
        """What the inbox still waits to deliver, oldest first (its outbox: every post
        the repeater has not acknowledged; in broadcast mode, the direct messages no
        node of their addressee has taken)."""
        return list(self._ask(PipeKind.OUTBOX, timeout))


class Server(_Running):
    """A repeater server (``lab93-node -r -s``) in this process.

    ``router_port`` and ``pub_port`` are the ports really bound (``port=0``: any
    free one); ``irc_port`` the IRC face's (``irc_port=...``, docs/IRC.rst), or
    None. Messages it stores arrive through ``receive`` and iteration.
    """

    def __init__(
        self,
        *,
        user: str | None = None,
        address: str | None = None,
        port: int = DEFAULT_PORT,
        interfaces: str | Iterable[str] | None = None,
        beacon_port: int = DEFAULT_BEACON_PORT,
        db: str | Path | None = None,
        secure: bool = False,
        authorized_keys: str | Path | None = None,
        timeout: float = 10.0,
        irc_port: int | None = None,
        irc_address: str | None = None,
        irc_tls_cert: str | Path | None = None,
        irc_tls_key: str | Path | None = None,
        irc_password: str | None = None,
        irc_password_file: str | Path | None = None,
    ) -> None:
        self._open(node_config(
            "server", user=user, address=address, port=port, interfaces=interfaces,
            beacon_port=beacon_port, db=db, secure=secure, authorized_keys=authorized_keys,
            timeout=timeout, irc_port=irc_port, irc_address=irc_address,
            irc_tls_cert=irc_tls_cert, irc_tls_key=irc_tls_key, irc_password=irc_password,
            irc_password_file=irc_password_file,
        ))

    @classmethod
    def with_config(cls, config: NodeConfig) -> Server:
        """A server from settings already checked (the command line's)."""
        server = cls.__new__(cls)
        server._open(config)
        return server

    def _open(self, config: NodeConfig) -> None:
        from ..io.repeater_server import ServerActor

        actor = ServerActor(config)
        _Running.__init__(self, actor, config, max(config.timeout, START_TIMEOUT))
        self.router_port: int = actor.router_port or 0
        self.pub_port: int = actor.pub_port or 0
        #: The IRC face's port (``irc_port=0``: the one it got); None without one.
        self.irc_port: int | None = actor.irc_port


def scan(
    *,
    interfaces: str | Iterable[str] | None = None,
    beacon_port: int = DEFAULT_BEACON_PORT,
    timeout: float = 2.0,
) -> list[Sighting]:
    """Probe once and list every live node and repeater heard within ``timeout``."""
    from ..io.interfaces import resolve
    from ..io.scan import scan as probe

    config = node_config("scan", interfaces=interfaces, beacon_port=beacon_port,
                         timeout=timeout)
    return probe(resolve(config.interfaces), config.beacon_port, config.timeout)

