"""What the repeater cores ask their shells to do: one vocabulary per side. Pure.

The server's shell carries out ``ReplyTo`` and ``PublishRoom``; the client's
shell ``SendToServer``, ``ConnectServer``, ``DisconnectServer``,
``SubscribeFeed``, ``FollowRooms``, ``ProbeBeacons``, ``PinKey`` and ``GiveUp``. Anything else
a core returns is an event for the front end (``core.events``), which both
shells hand to ``actor.send_events`` as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Lab93Error
from ..events import Event
from ..wire import Command, room_topic
from .commands import LEGACY_SIGNATURE

# -- the server -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyTo:
    """Send ``command`` on the ROUTER to the session ``identity`` (never block);
    ``legacy``: framed with protocol 1's signature, so a 0.1 client can read it."""

    identity: bytes
    command: Command
    legacy: bool = False

    def frames(self) -> list[bytes]:
        frames = self.command.frames()
        if self.legacy:
            frames[0] = LEGACY_SIGNATURE
        return frames


@dataclass(frozen=True)
class PublishRoom:
    """Send ``command`` on the PUB under ``room``'s topic: only its subscribers get it."""

    command: Command
    room: str

    def frames(self) -> list[bytes]:
        return self.command.frames(room_topic(self.room))


ServerOutput = ReplyTo | PublishRoom | Event


# -- the client -----------------------------------------------------------------------


@dataclass(frozen=True)
class SendToServer:
    """Send ``command`` on the DEALER (never block; on failure call ``send_failed``).

    ``ids``: the messages a POST carries, so a failed send can take them back."""

    command: Command
    ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConnectServer:
    """Close the DEALER, open a new one connected to ``endpoint``; in secure mode a
    CURVE client of the server whose raw public key is ``server_key``."""

    endpoint: str
    server_key: bytes | None = None


@dataclass(frozen=True)
class DisconnectServer:
    """Close the DEALER now (ZeroMQ would keep retrying a refused server)."""


@dataclass(frozen=True)
class SubscribeFeed:
    """Point the SUB at the room feed ``endpoint`` (and away from any earlier one)."""

    endpoint: str
    server_key: bytes | None = None


@dataclass(frozen=True)
class FollowRooms:
    """Let the SUB receive exactly these rooms' topics (subscribe to the ones it lacks,
    unsubscribe from the others): the client never receives a room it is not in."""

    rooms: frozenset[str]


@dataclass(frozen=True)
class ProbeBeacons:
    """Send a probe beacon, so repeaters on the LAN answer at once."""


@dataclass(frozen=True)
class PinKey:
    """Trust ``key`` for the server at ``where`` (``host:port``) from now on."""

    where: str
    key: bytes


@dataclass(frozen=True)
class GiveUp:
    """Retrying cannot mend ``error`` (its text a user sentence; its class crosses to
    the API): tell the front end it is over. The client still takes posts into its
    outbox until it is stopped."""

    error: Lab93Error


ClientOutput = (
    SendToServer
    | ConnectServer
    | DisconnectServer
    | SubscribeFeed
    | FollowRooms
    | ProbeBeacons
    | PinKey
    | GiveUp
    | Event
)
