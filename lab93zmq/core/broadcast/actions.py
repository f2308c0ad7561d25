"""Broadcast mode's one vocabulary with its shell: the commands on the wire and the
actions the shell carries out. Pure.

Every machine of ``core.broadcast`` returns these (and the front-end events of
``core.events``); the shell (``io.broadcast_actor``) dispatches on the seven
action types below and passes every event on to the front end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .. import wire
from ..events import Event
from ..presence import Peer

MODE = "broadcast"  # what our beacons say, and the mode of the peers we chat with
BATCH_MESSAGES = 200  # messages in one MSG, BATCH or DM command
BATCH_BYTES = 1 << 20  # and about this many bytes of payload


class Verb(str, Enum):
    """A broadcast command (frame 1 of ``wire``); its value is the name on the wire.

    A ``str`` enum, so a decoded ``wire.Command.name`` compares (and hashes) equal.
    """

    MSG = "MSG"  # PUB #room: room messages the sender authored, in its numbering order
    HAVE = "HAVE"  # PUB #room: the sender's version vector of the room
    BEAT = "BEAT"  # PUB *: the rooms the sender is in, each with its vector's digest
    ROOMS = "ROOMS"  # PUB * or ROUTER: the rooms the sender is in, with their topics
    SYNC = "SYNC"  # ROUTER: "this is what I hold of a room; send me what I lack"
    BATCH = "BATCH"  # ROUTER: a room's messages the asker lacks, the answerer's vector
    DM = "DM"  # ROUTER: direct messages to the receiver's user
    ACK = "ACK"  # ROUTER: the receiver stored these direct messages
    BYE = "BYE"  # ROUTER: "I am leaving now" (a clean exit)


class Channel(Enum):
    """Which of our sockets a command arrived on."""

    PUB = "pub"  # the SUB we connected to a peer's PUB
    ROUTER = "router"  # our ROUTER, which every peer's DEALER connects to


ON_PUB, ON_ROUTER = frozenset({Channel.PUB}), frozenset({Channel.ROUTER})
# Which sockets each command arrives on: anything else there is a protocol error.
ARRIVES_ON: dict[Verb, frozenset[Channel]] = {
    Verb.MSG: ON_PUB,
    Verb.HAVE: ON_PUB,
    Verb.BEAT: ON_PUB,
    Verb.ROOMS: ON_PUB | ON_ROUTER,  # to everyone on a change, to a newcomer directly
    Verb.SYNC: ON_ROUTER,
    Verb.BATCH: ON_ROUTER,
    Verb.DM: ON_ROUTER,
    Verb.ACK: ON_ROUTER,
    Verb.BYE: ON_ROUTER,
}
# The commands published on a room's topic (``#room\n``); the others go on ``*``.
ROOM_TOPIC_VERBS = frozenset({Verb.MSG, Verb.HAVE})


def verb_on(name: str, channel: Channel) -> Verb | None:
    """The command ``name`` names, when it may arrive on ``channel``; else None."""
    try:
        verb = Verb(name)
    except ValueError:
        return None
    return verb if channel in ARRIVES_ON[verb] else None


def command_frames(
    verb: Verb, header: Mapping[str, Any], payloads: Sequence[bytes] = ()
) -> tuple[bytes, ...]:
    """The frames of one command to a peer's ROUTER, ``header`` carrying our ``node``."""
    return tuple(wire.Command(verb.value, dict(header), tuple(payloads)).frames())


def published_frames(
    verb: Verb, header: Mapping[str, Any], payloads: Sequence[bytes] = ()
) -> tuple[bytes, ...]:
    """The frames of one command for our PUB, on its topic: ``#room\n`` for a room's
    (``header["room"]``), ``*`` for the node's own."""
    topic = wire.room_topic(header["room"]) if verb in ROOM_TOPIC_VERBS else wire.NODE_TOPIC
    return tuple(wire.Command(verb.value, dict(header), tuple(payloads)).frames(topic))


# -- what the shell hands in -------------------------------------------------------


@dataclass(frozen=True)
class RouterPeer:
    """Who sent a frame list to our ROUTER: its connection's routing id and, in secure
    mode, the ``User-Id`` the ZAP handler gave it (the name of its key)."""

    conn: bytes
    user_id: str | None = None


# -- what the shell must do --------------------------------------------------------


@dataclass(frozen=True)
class SendBeacon:
    """Broadcast this datagram on every beacon interface."""

    data: bytes


@dataclass(frozen=True)
class PublishFrames:
    """Send these frames on the PUB socket."""

    frames: tuple[bytes, ...]


@dataclass(frozen=True)
class SendToPeer:
    """Send these frames over the DEALER connected to this peer's ROUTER (never block)."""

    node_id: str
    frames: tuple[bytes, ...]


@dataclass(frozen=True)
class ConnectPeer:
    """Open a SUB to ``tcp://address:pub_port`` and a DEALER to ``tcp://address:router_port``;
    the SUB subscribes to ``topics`` (each after the signature: ``*``, ``#ops\n``)."""

    peer: Peer
    topics: tuple[bytes, ...]


@dataclass(frozen=True)
class Subscribe:
    """Every peer's SUB subscribes to ``topics`` too (we joined a room)."""

    topics: tuple[bytes, ...]


@dataclass(frozen=True)
class Unsubscribe:
    """Every peer's SUB drops ``topics`` (we left a room)."""

    topics: tuple[bytes, ...]


@dataclass(frozen=True)
class DisconnectPeer:
    """Close this peer's SUB and DEALER."""

    node_id: str


Action = (
    SendBeacon | PublishFrames | SendToPeer | ConnectPeer | DisconnectPeer | Subscribe
    | Unsubscribe
)
Output = Action | Event
