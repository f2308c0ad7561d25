"""A repeater server's IRC face: its sockets (irc_edge.py), the IRC machine (core/irc's
``Gateway``) and the chat service (core/repeater/irc_service.py), joined.

The server's poll loop (repeater_server.py) calls ``receive`` with what the
poll found, ``pump`` after every step that may have news for IRC (a group
commit, a session gone), ``tick`` at ``next_deadline`` and ``close`` when it
stops. Everything runs on the server's actor thread; only this module and the
edge touch the IRC sockets, and only here are the wall clock and the random
bytes of a post's id read for the pure parts.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections import deque
from collections.abc import Callable, Iterable, Mapping

import zmq

from .. import __version__
from ..core.errors import UsageError
from ..core.irc import boundary as b
from ..core.irc.config import IRCConfig
from ..core.irc.gateway import Gateway
from ..core.repeater.irc_service import IRCService
from ..core.repeater.outputs import ServerOutput
from ..core.repeater.server import ServerCore
from .config import IRCSettings
from .irc_edge import IRCEdge, Lost, Opened, Received
from .irc_store import IRCHistory
from .store import Inbox, utc_now

log = logging.getLogger(__name__)

MAX_STEPS = 20_000  # outputs acted on in one call; the rest waits for the next turn


def tls_context(settings: IRCSettings) -> ssl.SSLContext | None:
    """The server side of TLS from ``--irc-tls-cert`` and ``--irc-tls-key``; a sentence
    when they cannot be read."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    except (OSError, ssl.SSLError) as error:
        raise UsageError(
            f"--irc-tls-cert {settings.tls_cert} / --irc-tls-key {settings.tls_key}: cannot"
            f" use them ({getattr(error, 'strerror', None) or error}); give a PEM certificate"
            " and its private key"
        ) from None
    return context


class IRCFace:
    def __init__(
        self,
        settings: IRCSettings,
        default_address: str,
        core: ServerCore,
        inbox: Inbox,
        poller: zmq.Poller,
        write: Callable[[list[ServerOutput]], None],
        reserved: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        tls = tls_context(settings)
        self.edge = IRCEdge(settings.address or default_address, settings.port, poller, tls)
        self.tls = tls is not None
        self.write = write
        config = IRCConfig(
            version=f"lab93zmq-{__version__}",
            created=utc_now().strftime("%Y-%m-%d %H:%M UTC"),
            password=settings.password,
            motd=(
                f"lab93 repeater {core.server_id}",
                "Every room is a channel: /join #general, /list shows them all.",
                "Your nick is your lab93 user name; what you say is stored for everyone.",
            ),
        )
        self.gateway = Gateway(config)
        self._work: deque[b.Output] = deque()  # outputs left for the next turn
        # A server of a cluster authors as itself (its instance), not as the service.
        origin = getattr(inbox, "instance_id", inbox.node_id)
        self.service = IRCService(core, IRCHistory(inbox), reserved, origin)
        self.pump(0.0)

    @property
    def port(self) -> int:
        return self.edge.port

    def endpoint(self) -> str:
        scheme = "ircs" if self.tls else "irc"
        address = self.edge.address
        host = f"[{address}]" if ":" in address else address
        return f"{scheme}://{host}:{self.edge.port}"

    def receive(self, ready: Mapping[object, int], now: float) -> None:
        """What the poll found on the IRC sockets."""
        outputs: list[b.Output] = []
        for event in self.edge.ready(ready, now):
            if isinstance(event, Opened):
                outputs += self.gateway.open(event.conn, now)
            elif isinstance(event, Received):
                outputs += self.gateway.receive(event.conn, event.data, now)
            elif isinstance(event, Lost):
                outputs += self.gateway.lost(event.conn, now)
        self._act(outputs, now)

    def pump(self, now: float) -> None:
        """Tell the gateway what the service has for it (news from the server core)."""
        self._act([], now)

    def tick(self, now: float) -> None:
        deadline = self.gateway.next_deadline()
        if deadline is not None and deadline <= now:
            self._act(self.gateway.tick(now), now)
        self.edge.tick(now)

    def next_deadline(self) -> float | None:
        if self._work:
            return 0.0  # a burst is being worked off: come back at once
        times = [self.gateway.next_deadline(), self.edge.next_deadline()]
        return min((t for t in times if t is not None), default=None)

    def close(self, reason: str = "Server shutting down") -> None:
        for output in self.gateway.close_all(reason):
            if isinstance(output, b.SendLine):
                self.edge.send(output.conn, output.data)  # type: ignore[arg-type]
        self.edge.close_all()

    def _act(self, outputs: list[b.Output], now: float) -> None:
        """Carry out the gateway's outputs; a request goes to the service, whose answers
        go back to the gateway, until nothing is left; then write every socket once.
        At most ``MAX_STEPS`` outputs a call: the rest waits in ``_work`` for the next
        turn (``next_deadline`` is then now), so a burst never holds the loop long."""
        work = self._work
        work.extend(outputs)
        for _ in range(MAX_STEPS):
            if not work:
                for event in self.service.take_events():
                    work.extend(self.gateway.deliver(event, now))
                if not work:
                    for lost in self.edge.write():
                        work.extend(self.gateway.lost(lost.conn, now))
                    if not work:
                        return
                    continue
            output = work.popleft()
            if isinstance(output, b.SendLine):
                gone = self.edge.send(output.conn, output.data)  # type: ignore[arg-type]
                if gone is not None:
                    work.extend(self.gateway.lost(gone.conn, now))
            elif isinstance(output, b.Close):
                self.edge.close(output.conn, now)  # type: ignore[arg-type]
            else:
                self.write(self.service.handle(output, utc_now(), os.urandom(10)))
                for event in self.service.take_events():
                    work.extend(self.gateway.deliver(event, now))
        for lost in self.edge.write():  # what is queued goes out meanwhile
            work.extend(self.gateway.lost(lost.conn, now))
