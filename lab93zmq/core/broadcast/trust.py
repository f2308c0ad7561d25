"""Secure broadcast mode's trust decisions: whom we link to, and who may speak as whom. Pure.

Beacons carry our public key; only peers whose beacon key is authorized are
linked to (pinned to that key), the others are named once in a notice and
ignored; a peer's name is its key's name. A secure node's id is derived from
its key (``signing.node_id_of``): a beacon, a command or a message claiming a
node id speaks for that one key, and nobody else can claim it - no binding,
no first come. Every message carries its author node's Ed25519 signature
(``signing.signed_bytes``), checked against the author's authorized signing
key whoever relays it; the shell injects the cryptography (``Trust.sign``,
``Author.verify``). A LEAVING only puts a peer in doubt; a beacon that would
move a peer we hear over its connection (other ports, key, name or address)
is refused.

Plain mode (``trust`` None) trusts everyone: every check here passes.
Each check returns its verdict (a ``Refusal``, a ``BeaconCheck``, a ``Fault``)
or raises ``ProtocolError``/``SpoofedSender`` for a whole command; the facade
acts on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from enum import Enum

from .. import z85
from ..errors import ProtocolError
from ..message import Message
from ..presence import Beacon, BeaconKind, Peer
from ..signing import node_id_of, signed_bytes
from .faults import Fault, SpoofedSender, spoofed

log = logging.getLogger(__name__)

# Whom bad input is held against: ("key", name), ("node", node id) or ("conn", routing id).
Source = tuple[str, Hashable]


@dataclass(frozen=True)
class Author:
    """An authorized key as the author of messages: its name, and the check of its
    Ed25519 signature (``verify(signed bytes, signature)``, the shell's)."""

    name: str
    verify: Callable[[bytes, bytes], bool]


@dataclass(frozen=True)
class Trust:
    """Secure mode as the session sees it; the shell builds it from ``SecureConfig``.

    ``name_of`` maps a raw public key to the name it speaks as, None when it is
    not authorized (``security.AuthorizedKeys.name_of``, which re-reads the
    directory when it changes); ``where`` names that directory in notices.
    ``sign`` signs bytes with our Ed25519 key; ``author_of`` finds the authorized
    key whose node id (``signing.node_id_of``) is the one given, ours included,
    None when there is none or it has no signing key.
    """

    key: bytes  # our raw 32-byte public key, announced in our beacons
    name_of: Callable[[bytes], str | None]
    where: str
    sign: Callable[[bytes], bytes]
    author_of: Callable[[str], Author | None]


@dataclass(frozen=True)
class Refusal:
    """A broadcast node's beacon we will not take, and what to say about it (once)."""

    reason: Hashable  # what it is said once for, with the node id
    text: str
    tell: bool = True  # False: a forgery, logged at debug level only (it costs no notice)


class BeaconCheck(Enum):
    """What to do with an authorized peer's beacon (secure mode; see ``judge``)."""

    TAKE = "take"  # into the peer table
    IGNORE = "ignore"  # a LEAVING of another instance than the one on record
    DOUBT = "doubt"  # a LEAVING: gone unless it shows life within the link grace
    REFUSE_MOVE = "refuse_move"  # it would move a peer whose connection is up


class KeyTrust:
    """The trust decisions of one node; plain mode when ``trust`` is None."""

    def __init__(self, trust: Trust | None, node_id: str, user: str) -> None:
        self.trust = trust
        # Secure: our id is our key's; plain: the inbox's (random, made once).
        self.node_id = node_id_of(trust.key) if trust is not None else node_id
        self.user = user

    @property
    def secure(self) -> bool:
        return self.trust is not None

    @property
    def key(self) -> bytes:
        """What our beacons announce: our public key, or nothing."""
        return self.trust.key if self.trust is not None else b""

    # -- beacons -----------------------------------------------------------------

    def refusal(self, beacon: Beacon, address: str) -> Refusal | None:
        """None when a broadcast node's beacon may be taken; else why not.

        A plain node and a secure one cannot talk (the handshake fails), and a
        secure node talks only to authorized keys: rather than connect and fail,
        say so once per node (and reason), and leave it out of the peer table.
        """
        if self.trust is None:
            if not beacon.key:
                return None
            return Refusal("secure", f"{beacon.user}'s node at {address} runs --secure; "
                                     "run with --secure to chat with it")
        if not beacon.key:
            return Refusal(
                "plain", f"{beacon.user}'s node at {address} runs without --secure; it is ignored"
            )
        name = self.trust.name_of(beacon.key)
        if name is None:
            return Refusal(
                beacon.key,
                f"{beacon.user}'s node at {address} has a key not in {self.trust.where}: "
                f"{z85.encode(beacon.key).decode('ascii')}; it is ignored",
            )
        if beacon.node_id != node_id_of(beacon.key):
            # Anyone can put a known key in a datagram; its holder's node id is fixed.
            return Refusal("forged", f"a beacon from {address} with {name}'s key claims node "
                                     f"{beacon.node_id[:8]}, which is not that key's", tell=False)
        if self.trust.author_of(beacon.node_id) is None:
            return Refusal("unsigned", f"{name}'s key in {self.trust.where} has no signing key "
                                       "(it was made by lab93-node 0.1); ask for the id.key "
                                       "lab93-node --keygen writes now; it is ignored")
        return None

    def judge(self, beacon: Beacon, address: str, known: Peer | None, up: bool) -> BeaconCheck:
        """Secure mode: what an authorized key's beacon may do to the peer on record.

        A beacon is a bare UDP datagram anyone on the LAN can forge (a key in it
        is a claim, not a proof). Two forgeries matter while a peer is heard over
        its authenticated link: a LEAVING, which would cut us off from it, and an
        ANNOUNCE with other ports, key, name or source address, which would move our
        link to an endpoint that cannot complete the handshake. So a LEAVING only puts the
        peer in doubt (like a dropped link: gone unless it shows life within the
        link grace; an honest leaver says BYE over its link first), and a beacon
        that would change a peer whose link is ``up`` is refused. A peer that
        really restarted closed its old connections, so its link is down and its
        new beacon is taken (at the latest its next one, an interval later).
        """
        if self.trust is None or known is None:
            return BeaconCheck.TAKE
        if beacon.kind is BeaconKind.LEAVING:
            if (known.router_port, known.pub_port) != (beacon.router_port, beacon.pub_port):
                return BeaconCheck.IGNORE  # not the instance on record (the table ignores it too)
            return BeaconCheck.DOUBT
        moved = (known.router_port, known.pub_port, known.key, known.user, known.address) != (
            beacon.router_port, beacon.pub_port, beacon.key, beacon.user, address
        )
        return BeaconCheck.REFUSE_MOVE if up and moved else BeaconCheck.TAKE

    def named(self, peer: Peer) -> Peer | None:
        """``peer`` as we link to it: in secure mode named by its key (names come from
        keys, not from beacons), None when its key is no longer authorized."""
        if self.trust is None:
            return peer
        name = self.trust.name_of(peer.key)
        return replace(peer, user=name) if name is not None else None

    def linkable(self, peer: Peer) -> Peer:
        """``peer`` named as its link would be, or as it is when its key is unknown."""
        return self.named(peer) or peer

    # -- who is held responsible for bad input -------------------------------------

    def source(self, via: str | None, via_name: str | None, sender: str | None,
               conn: bytes | None) -> Source | None:
        """Whom bad input is held against: a key name in secure mode (whichever socket it
        came by), else the SUB's peer or the ROUTER connection.

        ``via`` is the peer whose SUB it came on and ``via_name`` its link's name
        (None when not linked); ``sender``/``conn`` the ROUTER connection's key name
        and routing id.
        """
        if via is not None:
            if self.trust is not None and via_name is not None:
                return ("key", via_name)
            return ("node", via)
        if conn is None:
            return None
        if self.trust is not None:
            return ("key", sender) if sender else None
        return ("conn", conn)

    def peer_source(self, peer: Peer) -> Source:
        """The source a linked peer's input counts against (see ``source``)."""
        return ("key", peer.user) if self.trust is not None else ("node", peer.node_id)

    # -- commands and messages -------------------------------------------------------

    def check_sender(self, sender: str, via: str | None, via_name: str | None,
                     router_name: str | None) -> None:
        """Secure mode: a command's ``sender`` must speak as the name its connection
        proved: our SUB's to ``via`` (its link's ``via_name``, None when no longer
        linked) or, ``via`` None, the ROUTER connection's ``router_name``."""
        if via is None:
            self.authenticate(sender, router_name, "the ROUTER")
        elif via_name is None:
            raise ProtocolError(f"a command on the SUB of {via[:8]}, no longer linked")
        else:
            self.authenticate(sender, via_name, "the SUB")

    def authenticate(self, sender: str, name: str | None, where: str) -> None:
        """Secure mode: the name the connection proved (our SUB's pinned key, or the
        ``User-Id`` of a ROUTER connection) must be the one whose key ``sender`` is the
        node id of. ``where`` says which connection, for the error."""
        if self.trust is None:
            return
        if not name:
            raise ProtocolError(f"a command on {where} without an authenticated key")
        author = self.trust.author_of(sender)
        if author is None or author.name != name:
            raise SpoofedSender(f"{name}'s key sent a command as node {sender[:8]}, "
                                "which is not its key's")

    def authentic(self, message: Message, sender: str) -> Fault | None:
        """Secure mode: a fault unless ``message`` carries its origin's signature and the
        name of its origin's key, whoever relays it (``sender``)."""
        if self.trust is None:
            return None
        author = self.trust.author_of(message.origin)
        if author is None:
            return spoofed(f"{sender[:8]} sent a message of {message.origin[:8]}, "
                           "which is no authorized key's node")
        if author.name != message.author:
            return spoofed(f"a message from {sender[:8]} says it is from {message.author!r}, "
                           f"but its origin {message.origin[:8]} is {author.name}")
        if message.signature is None or not author.verify(signed_bytes(message),
                                                          message.signature):
            return spoofed(f"a message from {sender[:8]} in {author.name}'s name does not "
                           "carry their signature")
        return None

    def seal(self, message: Message) -> Message:
        """Our own message, signed in secure mode (as it is stored and sent)."""
        if self.trust is None:
            return message
        m = message
        return Message.trusted(m.id, m.author, m.recipient, m.subject, m.content, m.sent_at,
                               m.origin, m.origin_seq, m.room, m.kind,
                               self.trust.sign(signed_bytes(m)))

    def published(self, sender: str, messages: Sequence[Message]) -> tuple[list[Message],
                                                                          list[Fault]]:
        """The room messages of a MSG we keep. In secure mode a MSG carries only its
        publisher's own messages (it never relays others'), each under the name the
        publisher's key is bound to."""
        if self.trust is None:
            return list(messages), []
        for message in messages:
            if message.origin != sender:
                raise SpoofedSender(f"{sender[:8]} published a message of {message.origin[:8]}")
        return self.filter(messages, sender)

    def filter(self, messages: Sequence[Message], sender: str) -> tuple[list[Message],
                                                                       list[Fault]]:
        """``messages`` without the spoofed ones, and a fault for each of those."""
        kept: list[Message] = []
        faults: list[Fault] = []
        for message in messages:
            fault = self.authentic(message, sender)
            if fault is None:
                kept.append(message)
            else:
                faults.append(fault)
        return kept, faults

    def direct(self, message: Message, sender: str) -> Fault | None:
        """A direct message's verdict: in secure mode it travels only from its author's
        node, under its origin's bound name."""
        if self.trust is not None and message.origin != sender:
            return spoofed(f"{sender[:8]} sent a direct message of {message.origin[:8]}")
        return self.authentic(message, sender)
