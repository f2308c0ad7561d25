"""The asyncio face of the API: the same Node, Server and scan, awaitable.

::

    import lab93zmq.aio

    async with lab93zmq.aio.Node.repeater(address="127.0.0.1", interfaces=["lo"]) as node:
        await node.send("hello")
        async for message in node:
            ...

Nothing here blocks the event loop: the actor's pipe is a ``zmq.asyncio``
socket read by one task of the node's own, requests are written to it from
the loop's thread, and callers wait on asyncio futures and queues. No thread
is started per call and nothing polls with sleeps. Cancelling a call is clean:
a cancelled ``receive`` loses no message, a cancelled ``send`` may still be
stored (it was on its way), and ``close`` always ends the actor.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

import zmq
import zmq.asyncio

from .api.facets import NodeFacets
from .api.node import ANSWER_TIMEOUT, CLOSE_TIMEOUT, START_TIMEOUT, seconds
from .api.options import make_actor, node_config
from .api.pipe import (
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
from .core.authoring import Draft
from .core.errors import ClosedError, Lab93Error, UsageError
from .core.events import Event, Joined, Parted, RoomInfo, Users
from .core.message import Message
from .core.rooms import room_name
from .core.sighting import Sighting
from .io.actor import Actor, ActorHandle, PipeKind, PipeMessage
from .io.config import DEFAULT_BEACON_PORT, DEFAULT_PORT, NodeConfig
from .io.inbox_lock import InboxLock

R = TypeVar("R", bound="_AsyncRunning")

__all__ = ["Node", "Server", "scan"]


class _Opening(Generic[R]):
    """What ``Node.repeater(...)`` returns: ``await`` it for a started node, or use it
    as ``async with`` (started on entry, closed on exit)."""

    def __init__(self, start: Callable[[], Awaitable[R]]) -> None:
        self._start = start
        self._running: R | None = None

    def __await__(self) -> Generator[Any, None, R]:
        return self._start().__await__()

    async def __aenter__(self) -> R:
        self._running = await self._start()
        return self._running

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._running is not None:
            await self._running.close()


class _AsyncRunning:
    """What an asyncio node and server share: the actor, its pipe, the pump task."""

    def __init__(self, actor: Actor, config: NodeConfig) -> None:
        self.actor = actor
        self.config = config
        self.node_id = ""
        self.ready_detail = ""
        self._lock_file = InboxLock(config.db_path, shared=config.db_url is not None)
        self._handle: ActorHandle | None = None
        self._pipe: zmq.asyncio.Socket | None = None
        self._client = PipeClient(bursts=actor.takes_bursts, handover=actor.handover)
        self._arrivals = Arrivals()
        self._settled = asyncio.Condition()  # notified whenever the pump took something
        self._error: Lab93Error | None = None
        self._closing = False
        self._pump_task: asyncio.Task[None] | None = None

    async def _start(self: R, timeout: float) -> R:
        self._lock_file.acquire()
        try:
            ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
            handle = ActorHandle(
                self.actor, ctx, front_context=zmq.asyncio.Context.shadow(ctx.underlying)
            )
            pipe: zmq.asyncio.Socket = handle.pipe
            handle.launch()
            try:
                try:
                    frames = await asyncio.wait_for(pipe.recv_multipart(), timeout)
                except asyncio.TimeoutError:
                    raise Lab93Error(
                        f"the {self.actor.name} did not start within {timeout:g} s"
                    ) from None
                handle.ready(PipeMessage.parse(frames), timeout)
            except BaseException:
                pipe.close()  # an asyncio socket: this also forgets its reader in the loop
                raise
        except BaseException:
            self._lock_file.release()
            raise
        self._handle, self._pipe = handle, pipe
        self.node_id = handle.node_id or ""
        self.ready_detail = handle.ready_detail
        self._pump_task = asyncio.get_running_loop().create_task(self._pump())
        return self

    async def start(self: R) -> R:
        """Start the actor and wait until it is ready (what ``await`` and ``async with``
        of the factories do)."""
        return await self._start(max(self.config.timeout, START_TIMEOUT))

    @property
    def closed(self) -> bool:
        return self._closing or self._client.ended

    # -- the caller's side ---------------------------------------------------------

    async def _send(self, messages: list[PipeMessage]) -> None:
        if self.closed or self._pipe is None:
            raise self._error or ClosedError()
        for message in messages:
            await self._pipe.send_multipart(message.frames())

    async def _wait(self, future: asyncio.Future[Any], timeout: float | None, what: str) -> Any:
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            raise Lab93Error(f"no answer to {what} within {timeout:g} s") from None
        except asyncio.CancelledError:
            # Its caller gave up: an error the answer brings later is nobody's to see
            # (and not "never retrieved" at exit).
            future.add_done_callback(_forget)
            raise

    async def _ask(self, kind: PipeKind, timeout: object, **body: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        await self._send([self._client.ask(kind, future, **body)])
        return await self._wait(future, seconds(timeout), kind.value.upper())

    async def receive(self, timeout: float | None = None) -> Message | None:
        """The next message, or None after ``timeout`` seconds or once closed."""
        return await self._next(MESSAGES, timeout)  # type: ignore[return-value]

    async def next_event(self, timeout: float | None = None) -> Event | None:
        """The next typed event (status, notice, accepted, refused, …), or None."""
        return await self._next(EVENTS, timeout)  # type: ignore[return-value]

    async def poll(self, timeout: float | None = None) -> Message | Event | None:
        """The next message *or* event, in the one order they arrived, or None."""
        return await self._next(EVERYTHING, timeout)

    async def poll_many(
        self, timeout: float | None = None, limit: int = 1000
    ) -> list[Message | Event]:
        """What ``poll`` returns, and after it everything else ready now (at most
        ``limit`` in all), in the one order: [] when ``poll`` would return None."""
        first = await self._next(EVERYTHING, timeout)
        if first is None:
            return []
        items: list[Message | Event] = [first]
        while len(items) < limit and self._arrivals.ready(EVERYTHING):
            items.append(self._arrivals.take(EVERYTHING))
        return items

    async def _next(self, view: str, timeout: object) -> Message | Event | None:
        wait = seconds(timeout)

        async def arrived() -> None:
            async with self._settled:
                await self._settled.wait_for(
                    lambda: self._arrivals.ready(view) or self._client.ended or self._error
                )

        try:
            await asyncio.wait_for(arrived(), wait)
        except asyncio.TimeoutError:
            return None
        return self._arrivals.after_waiting(view, self._error)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._messages_until_closed()

    async def _messages_until_closed(self) -> AsyncIterator[Message]:
        while (message := await self.receive()) is not None:
            yield message

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Leave cleanly (BYE, leaving beacon, inbox closed); idempotent."""
        if self._pump_task is None or self._handle is None or self._pipe is None:
            return
        if not self.closed:
            self._closing = True
            await self._pipe.send_multipart(PipeMessage(PipeKind.STOP, {}).frames())
        self._closing = True
        try:
            await asyncio.wait_for(asyncio.shield(self._pump_task), timeout)
        except asyncio.TimeoutError:
            self._pump_task.cancel()
        if not self._client.ended:
            self._end(ClosedError("the node did not stop in time; it was left behind"))
        self._handle.join(timeout)  # it sent STOPPED as its last act: at once
        self._pipe.close()
        self._lock_file.release()

    async def __aenter__(self: R) -> R:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the pump task ----------------------------------------------------------------

    async def _pump(self) -> None:
        assert self._pipe is not None and self._handle is not None
        handle = self._handle
        try:
            while not self._client.ended:
                frames = await self._pipe.recv_multipart()
                for item in self._client.take(handle.parse(frames)):
                    self._dispatch(item)
                async with self._settled:
                    self._settled.notify_all()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug here must not leave callers waiting forever
            self._end(Lab93Error(f"internal error in the API's pump: {error!r}"))

    def _dispatch(self, item: Item) -> None:
        if isinstance(item, (Arrived, Happened)):
            self._arrivals.add(item)
        elif isinstance(item, Settled):
            settle(item.token, item)
        elif isinstance(item, Failed):
            self._error = item.error
            # An actor whose thread ends sent FATAL as its last act; one that goes on
            # (a refused client keeps taking posts until STOP) is still alive then.
            asyncio.get_running_loop().call_later(0.1, self._ended_if_gone)
        elif isinstance(item, Ended):
            self._end(self._error)

    def _ended_if_gone(self) -> None:
        if self._handle is not None and not self._handle.alive and not self._client.ended:
            self._end(self._error)

    def _end(self, error: Lab93Error | None) -> None:
        self._error = error
        self._client.ended = True
        for token in self._client.waiting():
            future: asyncio.Future[Any] = token  # type: ignore[assignment]
            if not future.done():
                future.set_exception(error or ClosedError())
        asyncio.get_running_loop().create_task(self._wake_all())

    async def _wake_all(self) -> None:
        async with self._settled:
            self._settled.notify_all()


def _forget(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class Node(NodeFacets, _AsyncRunning):
    """A broadcast node or a repeater client, for asyncio (see ``lab93zmq.Node``)."""

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
    ) -> _Opening[Node]:
        config = node_config(
            "broadcast", user=user, address=address, port=port, interfaces=interfaces,
            beacon_port=beacon_port, db=db, rooms=rooms, secure=secure,
            authorized_keys=authorized_keys, timeout=timeout, listen=listen,
        )
        return _Opening(cls(make_actor("broadcast", config), config).start)

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
    ) -> _Opening[Node]:
        config = node_config(
            "client", user=user, address=address, port=port, interfaces=interfaces,
            beacon_port=beacon_port, db=db, rooms=rooms, secure=secure, server_key=server_key,
            timeout=timeout, listen=listen,
        )
        return _Opening(cls(make_actor("client", config), config).start)

    def __init__(self, actor: Actor, config: NodeConfig) -> None:
        super().__init__(actor, config)
        self._init_facets(config)

    async def send(
        self, text: str, *, subject: str | None = None, to: str | None = None,
        room: str | None = None, id: str | None = None, action: bool = False,
        timeout: float | None = ANSWER_TIMEOUT,
    ) -> Message:
        """Send; returns the stored message (durable), as ``lab93zmq.Node.send``."""
        draft = self.draft(text, subject=subject, to=to, room=room, id=id, action=action)
        return (await self.send_many([draft], timeout=timeout))[0]

    async def send_many(
        self, drafts: Iterable[Draft], timeout: float | None = ANSWER_TIMEOUT
    ) -> list[Message]:
        wait = seconds(timeout)
        burst = list(drafts)
        if not burst:
            return []
        future: asyncio.Future[list[Message | Lab93Error]] = (
            asyncio.get_running_loop().create_future()
        )  # one for the lot
        await self._send(self._client.post_burst(burst, future))
        results: list[Message | Lab93Error] = await self._wait(future, wait, "sending a message")
        sent: list[Message] = []
        for result in results:
            if isinstance(result, Lab93Error):
                raise result
            sent.append(result)
        return sent

    async def post(self, drafts: Iterable[Draft]) -> list[asyncio.Future[Message]]:
        """``send_many`` without waiting for storage: a future per draft."""
        loop = asyncio.get_running_loop()
        pairs = [(draft, loop.create_future()) for draft in drafts]
        if pairs:
            await self._send(self._client.post(pairs))
        return [future for _, future in pairs]

    async def flush(self, timeout: float | None = ANSWER_TIMEOUT) -> list[Message]:
        """Wait until every message sent here is accepted; return those that are not."""
        wait = seconds(timeout)

        async def settled() -> None:
            async with self._settled:
                await self._settled.wait_for(
                    lambda: not self._client.unaccepted or self.closed or self._error is not None
                )

        try:
            await asyncio.wait_for(settled(), wait)
        except asyncio.TimeoutError:
            pass
        waiting = list(self._client.unaccepted.values())
        if waiting and self._error is not None:
            raise self._error  # the node cannot go on (see lab93zmq.Node.flush)
        return waiting

    # -- rooms ---------------------------------------------------------------------

    async def join(self, room: str, timeout: float | None = ANSWER_TIMEOUT) -> Joined:
        """Join ``room`` and make it current (see ``lab93zmq.Node.join``)."""
        name = room_name(room)
        future = asyncio.get_running_loop().create_future()
        await self._send([self._client.move(PipeKind.JOIN, name, future)])
        joined: Joined = await self._wait(future, seconds(timeout), f"JOIN #{name}")
        self._now_in(name)
        return joined

    async def part(self, room: str | None = None,
                   timeout: float | None = ANSWER_TIMEOUT) -> Parted:
        """Leave ``room`` (default: the current one)."""
        name = self._room_to_part(room)
        future = asyncio.get_running_loop().create_future()
        await self._send([self._client.move(PipeKind.PART, name, future)])
        parted: Parted = await self._wait(future, seconds(timeout), f"PART #{name}")
        self._left(name)
        return parted

    async def set_topic(self, text: str, room: str | None = None) -> None:
        """Set the topic of ``room`` (default: the current one)."""
        name = self._room_or_current(room)
        await self._send([PipeMessage(PipeKind.TOPIC, {"room": name, "text": text})])

    async def room_list(self, timeout: float | None = ANSWER_TIMEOUT) -> list[RoomInfo]:
        """Every room heard on the network."""
        return list(await self._ask(PipeKind.ROOMS, timeout))

    async def peers(self, timeout: float | None = ANSWER_TIMEOUT) -> list[Sighting]:
        return list(await self._ask(PipeKind.SCAN, timeout))

    async def who(self, room: str | None = None,
                  timeout: float | None = ANSWER_TIMEOUT) -> list[str]:
        return list(await self.who_away(room, timeout))

    async def who_away(self, room: str | None = None,
                       timeout: float | None = ANSWER_TIMEOUT) -> dict[str, str | None]:
        """What ``who`` lists, each with its away text (None: here)."""
        name = room_name(room) if room is not None else None
        users: Users = await self._ask(PipeKind.WHO, timeout, room=name)
        return dict.fromkeys(users.users, None) | users.away_texts

    async def set_away(self, text: str | None) -> None:
        """Be away with ``text`` (None or blank: back; see ``lab93zmq.Node.set_away``)."""
        await self._send([away_request(text)])

    async def history(
        self, limit: int | None = 20, room: str | None = None,
        timeout: float | None = ANSWER_TIMEOUT,
    ) -> list[Message]:
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 0):
            raise UsageError(f"limit takes a whole number from 0 up (or None), not {limit!r}")
        name = room_name(room) if room is not None else None
        return list(await self._ask(PipeKind.HISTORY, timeout, limit=limit, room=name))

    async def outbox(self, timeout: float | None = ANSWER_TIMEOUT) -> list[Message]:
        """What the inbox still waits to deliver (see ``lab93zmq.Node.outbox``)."""
        return list(await self._ask(PipeKind.OUTBOX, timeout))


class Server(_AsyncRunning):
    """A repeater server for asyncio: ``async with aio.Server(...) as server``."""

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
        from .io.repeater_server import ServerActor

        config = node_config(
            "server", user=user, address=address, port=port, interfaces=interfaces,
            beacon_port=beacon_port, db=db, secure=secure, authorized_keys=authorized_keys,
            timeout=timeout, irc_port=irc_port, irc_address=irc_address,
            irc_tls_cert=irc_tls_cert, irc_tls_key=irc_tls_key, irc_password=irc_password,
            irc_password_file=irc_password_file,
        )
        self._actor: ServerActor = ServerActor(config)
        super().__init__(self._actor, config)
        self.router_port = 0
        self.pub_port = 0
        self.irc_port: int | None = None

    async def start(self) -> Server:
        await self._start(max(self.config.timeout, START_TIMEOUT))
        self.router_port = self._actor.router_port or 0
        self.pub_port = self._actor.pub_port or 0
        self.irc_port = self._actor.irc_port
        return self

    def __await__(self) -> Generator[Any, None, Server]:
        return self.start().__await__()

    async def __aenter__(self) -> Server:
        return await self.start()


async def scan(
    *,
    interfaces: str | Iterable[str] | None = None,
    beacon_port: int = DEFAULT_BEACON_PORT,
    timeout: float = 2.0,
) -> list[Sighting]:
    """Probe once and list every live instance heard within ``timeout`` (the loop
    reads the beacon sockets; nothing blocks it)."""
    from .io.interfaces import resolve
    from .io.scan import Listening

    config = node_config("scan", interfaces=interfaces, beacon_port=beacon_port,
                         timeout=timeout)
    loop = asyncio.get_running_loop()
    with Listening(resolve(config.interfaces), config.beacon_port) as listening:
        for fd in listening.filenos():
            loop.add_reader(fd, listening.take, fd)
        try:
            await asyncio.sleep(config.timeout)
        finally:
            for fd in listening.filenos():
                loop.remove_reader(fd)
        return listening.found()
