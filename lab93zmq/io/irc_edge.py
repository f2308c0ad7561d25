"""The IRC face's sockets: one listening TCP socket and its clients, polled by the server.

The repeater server's actor thread owns these sockets like its ROUTER and
PUB: they are plain non-blocking sockets registered by file descriptor in the
server's one ``zmq.Poller``, so an IRC line and a lab93 command are handled by
the same thread in the same loop, and an IRC post joins the same group commit
(docs/IRC.rst, "Driving it", says why this and not an asyncio edge).

What this module does, and nothing more: accept (at most ``MAX_CLIENTS`` at
once), read what each client sends (at most ``READ_BUDGET`` bytes a client a
turn, so one fast client cannot starve the others), queue what is to be sent
(at most ``MAX_QUEUE`` bytes a client, beside a kernel send buffer of a fixed
``SEND_BUFFER``: one that does not read is closed), and
with TLS do each handshake without blocking, in the poll loop. What the bytes
mean is core/irc's business (``Gateway``); ``irc_face.py`` joins the two.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import zmq

from ..core.errors import Lab93Error

log = logging.getLogger(__name__)

MAX_CLIENTS = 1000  # IRC connections at once; more are closed as they come
MAX_QUEUE = 1024 * 1024  # bytes queued for one client before it is closed as not reading
# The kernel's send buffer of a client socket, fixed (Linux doubles it) rather than
# autotuned up to 4 MiB: with MAX_QUEUE, what one client that does not read can hold.
SEND_BUFFER = 256 * 1024
READ_BUDGET = 256 * 1024  # bytes read from one client in one turn of the loop
ACCEPT_BUDGET = 64  # connections accepted in one turn
HANDSHAKE_TIMEOUT = 10.0  # seconds a TLS handshake may take
LINGER = 2.0  # seconds a closed client's last lines (ERROR ...) may take to leave
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Opened:
    """A client is connected (with TLS: its handshake is done)."""

    conn: int


@dataclass(frozen=True)
class Received:
    conn: int
    data: bytes


@dataclass(frozen=True)
class Lost:
    """The client is gone (EOF, an error, or it let ``MAX_QUEUE`` bytes pile up)."""

    conn: int
    reason: str


EdgeEvent = Opened | Received | Lost


@dataclass
class _Client:
    conn: int
    sock: socket.socket
    peer: str
    handshake_until: float | None = None  # TLS: when the handshake must be done by
    want_write: bool = False  # TLS: the handshake or a read needs the socket writable
    out: bytearray = field(default_factory=bytearray)
    close_by: float | None = None  # closing: when to give up writing what is queued
    flags: int = 0  # what the poller watches now


class IRCEdge:
    """The listener at (``address``, ``port``) (0: any free port; ``port`` says which),
    its clients, registered in ``poller``. ``tls``: wrap each accepted socket."""

    def __init__(
        self, address: str, port: int, poller: zmq.Poller, tls: ssl.SSLContext | None = None
    ) -> None:
        try:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            self.listener = socket.create_server((address, port), family=family, backlog=128)
        except OSError as error:
            why = os.strerror(error.errno) if error.errno else str(error)
            raise Lab93Error(f"cannot open the IRC face on {address} port {port}: {why}") from None
        self.listener.setblocking(False)
        self.address = address
        self.port: int = self.listener.getsockname()[1]
        self.poller = poller
        self.tls = tls
        poller.register(self.listener.fileno(), zmq.POLLIN)
        self._clients: dict[int, _Client] = {}
        self._fds: dict[int, _Client] = {}
        self._again: set[int] = set()  # clients with bytes left to read (budget spent)
        self._dirty: set[int] = set()  # clients with lines queued since the last write
        self._next_conn = 0

    def __len__(self) -> int:
        return len(self._clients)

    # -- the poll loop ------------------------------------------------------------------

    def ready(self, ready: Mapping[object, int], now: float) -> list[EdgeEvent]:
        """What the poll found (``dict(poller.poll())``): new clients, bytes, losses."""
        events: list[EdgeEvent] = []
        if ready.get(self.listener.fileno()):
            self._accept(now, events)
        again, self._again = self._again, set()
        # Only the clients the poll named, and those with bytes left from the last turn.
        touched = {
            self._fds[fd].conn for fd in ready if isinstance(fd, int) and fd in self._fds
        } | again
        for conn in sorted(touched):
            client = self._clients.get(conn)
            if client is None:
                continue  # dropped meanwhile
            flags = ready.get(client.sock.fileno(), 0)
            if client.handshake_until is not None:
                self._handshake(client, events)
                if client.handshake_until is not None or client.conn not in self._clients:
                    continue
            if flags & zmq.POLLOUT:
                self._flush(client, events)
            if client.conn in self._clients and client.close_by is None:
                self._read(client, events)
        return events

    def next_deadline(self) -> float | None:
        if self._again:
            return 0.0
        times = [
            when
            for client in self._clients.values()
            for when in (client.handshake_until, client.close_by)
            if when is not None
        ]
        return min(times, default=None)

    def tick(self, now: float) -> None:
        """Close handshakes that took too long and closing clients that would not read
        (neither is known to the gateway any more, or yet)."""
        for client in list(self._clients.values()):
            if client.handshake_until is not None and now >= client.handshake_until:
                log.info("IRC client %s: no TLS handshake in %g s", client.peer, HANDSHAKE_TIMEOUT)
                self._drop(client)
            elif client.close_by is not None and now >= client.close_by:
                self._drop(client)

    # -- what the gateway says ------------------------------------------------------------

    def send(self, conn: int, data: bytes) -> Lost | None:
        """Queue ``data`` for ``conn`` (``write`` sends it); Lost when the client let too
        much pile up (it is closed)."""
        client = self._clients.get(conn)
        if client is None or client.close_by is not None:
            return None
        client.out += data
        if len(client.out) > MAX_QUEUE:
            log.info("IRC client %s does not read; closed", client.peer)
            self._drop(client)
            return Lost(conn, "Send queue exceeded")
        self._dirty.add(conn)
        return None

    def write(self) -> list[EdgeEvent]:
        """Write what was queued since the last call, as far as each socket takes it (one
        send a client, not one a line); Lost for a client whose socket failed."""
        events: list[EdgeEvent] = []
        dirty, self._dirty = self._dirty, set()
        for conn in dirty:
            client = self._clients.get(conn)
            if client is not None and client.handshake_until is None:
                self._flush(client, events)
        return events

    def close(self, conn: int, now: float) -> None:
        """Write what is queued for ``conn`` (for at most ``LINGER`` s), then close it."""
        client = self._clients.get(conn)
        if client is None:
            return
        client.close_by = now + LINGER
        events: list[EdgeEvent] = []
        self._flush(client, events)
        if client.conn in self._clients and not client.out:
            self._drop(client)

    def close_all(self) -> None:
        """The server stops: one last try to write each client's queue, then close all."""
        for client in list(self._clients.values()):
            if client.handshake_until is None:
                self._flush(client, [])
            self._drop(client)
        self.poller.unregister(self.listener.fileno())
        self.listener.close()

    def peers(self) -> Iterator[str]:
        return (client.peer for client in self._clients.values())

    # -- sockets ----------------------------------------------------------------------------

    def _accept(self, now: float, events: list[EdgeEvent]) -> None:
        for _ in range(ACCEPT_BUDGET):
            try:
                sock, where = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # EMFILE and the like: keep serving the others
                log.warning("the IRC face cannot accept a connection: %s", error)
                return
            peer = f"{where[0]}:{where[1]}"
            if len(self._clients) >= MAX_CLIENTS:
                log.warning("IRC client %s refused: %d clients already", peer, MAX_CLIENTS)
                sock.close()
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            self._next_conn += 1
            conn = self._next_conn
            handshake_until = None
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(
                        sock, server_side=True, do_handshake_on_connect=False
                    )
                except (ssl.SSLError, OSError) as error:
                    log.info("IRC client %s: %s", peer, error)
                    sock.close()
                    continue
                handshake_until = now + HANDSHAKE_TIMEOUT
            client = _Client(conn, sock, peer, handshake_until)
            self._clients[conn] = client
            self._fds[sock.fileno()] = client
            self._watch(client)
            if handshake_until is None:
                events.append(Opened(conn))
            else:
                self._handshake(client, events)

    def _handshake(self, client: _Client, events: list[EdgeEvent]) -> None:
        sock = client.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            client.want_write = False
        except ssl.SSLWantWriteError:
            client.want_write = True
        except (ssl.SSLError, OSError) as error:
            log.info("IRC client %s: TLS handshake failed: %s", client.peer, error)
            self._drop(client)
            return
        else:
            client.handshake_until = None
            client.want_write = False
            events.append(Opened(client.conn))
            self._again.add(client.conn)  # it may have sent its first lines with the handshake
        self._watch(client)

    def _read(self, client: _Client, events: list[EdgeEvent]) -> None:
        chunks: list[bytes] = []
        budget = READ_BUDGET
        lost: str | None = None
        while budget > 0:
            try:
                data = client.sock.recv(min(_CHUNK, budget))
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                break
            except ssl.SSLWantWriteError:
                client.want_write = True
                break
            except (ssl.SSLError, OSError) as error:
                lost = f"Read error: {getattr(error, 'strerror', None) or error}"
                break
            if not data:
                lost = "Connection closed"
                break
            chunks.append(data)
            budget -= len(data)
        else:
            self._again.add(client.conn)  # more may be waiting: come back next turn
        if chunks:
            events.append(Received(client.conn, b"".join(chunks)))
        if lost is not None:
            self._drop(client)
            events.append(Lost(client.conn, lost))
        else:
            self._watch(client)

    def _flush(self, client: _Client, events: list[EdgeEvent]) -> None:
        out = client.out
        while out:
            try:
                sent = client.sock.send(memoryview(out)[:_CHUNK])
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                break
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLError, OSError) as error:
                self._drop(client)
                if client.close_by is None:
                    events.append(Lost(client.conn, f"Write error: {error}"))
                return
            del out[:sent]
        if client.close_by is not None and not out:
            self._drop(client)
            return
        self._watch(client)

    def _watch(self, client: _Client) -> None:
        flags = zmq.POLLIN
        if client.out or client.want_write:
            flags |= zmq.POLLOUT
        if flags != client.flags:
            self.poller.register(client.sock.fileno(), flags)
            client.flags = flags

    def _drop(self, client: _Client) -> None:
        if self._clients.pop(client.conn, None) is None:
            return
        self._again.discard(client.conn)
        self._dirty.discard(client.conn)
        fd = client.sock.fileno()
        self._fds.pop(fd, None)
        if fd >= 0:
            self.poller.unregister(fd)
        try:
            client.sock.close()
        except OSError:
            pass
