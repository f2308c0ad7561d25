"""The ZAP handler of a secure node: pyzmq's, admitting exactly the authorized keys.

Apart from ``security.py`` because pyzmq's authenticator thread runs an
asyncio loop, and importing that costs every node 2.5 MiB: only a secure
node's shell imports this module. It knows the authorized keys only through
the small ``KeyNames`` protocol, so it does not import ``security`` either.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

log = logging.getLogger("lab93zmq.security")


class KeyNames(Protocol):
    """What the handler asks of the authorized keys (``security.AuthorizedKeys``)."""

    directory: Path

    def name_of(self, key: bytes) -> str | None: ...


class KeyAuthenticator(ThreadAuthenticator):
    """pyzmq's ZAP handler, admitting exactly the authorized keys (never CURVE_ALLOW_ANY).

    A connection it admits carries its key's name as ZeroMQ's ``User-Id``
    (``frame.get("User-Id")``), which is what the server trusts as the sender.
    It runs in its own thread, which owns the context's ZAP socket.
    """

    def __init__(self, context: zmq.Context, authorized: KeyNames) -> None:
        super().__init__(context, log=logging.getLogger("lab93zmq.security.zap"))
        self.authorized = authorized
        self.refused = 0  # handshakes refused (read by tests and the bench)

    def start(self) -> None:
        super().start()
        self.configure_curve_callback(domain="*", credentials_provider=self)

    def callback(self, domain: str, z85_key: bytes) -> bool:
        """Called by pyzmq for each CURVE handshake."""
        name = self.authorized.name_of(z85.decode(z85_key))
        if name is None:
            self.refused += 1
            log.warning(
                "refused a connection with key %s: it is not in %s",
                z85_key.decode("ascii", "replace"),
                self.authorized.directory,
            )
            return False
        return True

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self.authorized.name_of(client_public_key) or ""
