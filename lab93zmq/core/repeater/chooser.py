"""Which repeater a client uses, and whether it trusts its key. Pure.

Told where its server is (``-a``), a client uses it; a secure client needs
that server's key too: ``--server-key``, else the line for it in
known_servers, else the key the server's own beacon shows - trusted on first
use and pinned (``PinKey``), as SSH's known_hosts does.

With no ``-a`` it listens for beacons and uses the first repeater it heard
that it may use: a plain client plain repeaters, a secure client secure ones
(preferring keys it trusted before, wherever they are now); one showing
another key than the one pinned for its address is refused, saying which
line to remove. When the chosen repeater goes away it looks again; when its
handshake fails it refuses that one and looks for another, and with none
left that it may use it gives up as a client told where its server is does.

``ServerChooser`` returns what to do: ``UseServer``, ``RefuseServer``, and
for the shell ``PinKey``, ``ProbeBeacons`` and notices. The known_servers
file is read through the ``KnownKeys`` the shell hands in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .. import z85
from ..endpoints import tcp, where
from ..errors import Lab93Error, SecurityError
from ..events import Notice
from ..notices import SayOnce
from .outputs import DisconnectServer, GiveUp, PinKey, ProbeBeacons

if TYPE_CHECKING:
    from ..presence import Peer, PresenceEvent


class KnownKeys(Protocol):
    """The repeater keys a client trusted (``io.security.KnownServers``)."""

    path: object  # shown in notices: where to remove a line

    def keys(self) -> frozenset[bytes]: ...

    def get(self, where: str) -> bytes | None: ...


@dataclass(frozen=True)
class Secure:
    """What a secure client's choice needs: its trusted keys and how to name its own."""

    known: KnownKeys
    own_key: str  # our public key, as Z85 text
    own_key_path: str  # where our public key's file is, to hand to an operator
    server_key: bytes | None = None  # --server-key: pinned on the command line


@dataclass(frozen=True)
class GivenServer:
    """``-a ADDRESS -p PORT``; ``addresses``: every address it stands for, to know its
    beacon by the beacon's source (the shell resolves them). ``others``: the further
    servers given (``-a h1,h2:5191``), to move to when the one in use dies."""

    address: str
    port: int
    addresses: frozenset[str]
    others: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class UseServer:
    """Talk to the repeater at ``endpoint`` (CURVE key ``server_key``); None: to none."""

    endpoint: str | None
    server_key: bytes | None = None


@dataclass(frozen=True)
class RefuseServer:
    """Close the connection to the server in use now: it is refused."""


Choice = UseServer | RefuseServer | PinKey | ProbeBeacons | Notice


def key_text(key: bytes) -> str:
    return z85.encode(key).decode("ascii")


class ServerChooser:
    """One client's choice of server; ``listens``: it needs beacons to choose."""

    def __init__(self, user: str, given: GivenServer | None, secure: Secure | None) -> None:
        self.user = user
        self.given = given
        self.secure = secure
        self.server_key = secure.server_key if secure else None
        self.listens = given is None
        self._learn = False  # given, secure, its key unknown: learn it from its beacon
        if given is not None and secure is not None and self.server_key is None:
            self.server_key = secure.known.get(where(given.address, given.port))
            self._learn = self.listens = self.server_key is None
        self._chosen: str | None = None  # node id of the repeater found by beacon
        self._endpoint: str | None = None  # where we told the client to go
        self._refused: set[str] = set()  # node ids we will not use
        self._refusals: list[tuple[str | None, str]] = []  # (endpoint, why) of handshakes
        self._said = SayOnce()  # (node id, what) told already
        self._gave_up = False
        # Failover: the servers given, the one in use; the live repeaters last heard.
        self._servers = [(given.address, given.port), *given.others] if given else []
        self._current = 0
        self._live: list[Peer] = []

    def start(self) -> list[Choice]:
        """What to do first."""
        given = self.given
        if given is not None and not self._learn:
            self._endpoint = tcp(given.address, given.port)
            return [UseServer(self._endpoint, self.server_key)]
        out: list[Choice] = []
        if given is not None:
            out.append(
                Notice(
                    f"learning the key of the repeater at {where(given.address, given.port)}"
                    " from its beacon (first use; --server-key KEY pins it instead)"
                )
            )
        return [*out, ProbeBeacons(), UseServer(None)]  # repeaters answer a probe at once

    def give_up(self) -> None:
        """The client ended for good: choose nothing any more."""
        self._gave_up = True
        self._endpoint = None

    def heard(
        self, events: Sequence[PresenceEvent], live: Sequence[Peer], now: float
    ) -> list[Choice]:
        """Use the first repeater heard; follow it when it moves; look again when it leaves.
        ``live``: the live table now."""
        if self._gave_up:
            return []
        # Beacons come only to a client that listens for them (not one given -a): the
        # beacon code is imported for it alone.
        from ..presence import PeerChanged, PeerJoined, PeerLeft

        self._live = [p for p in live if p.mode == "repeater"]
        out: list[Choice] = []
        for event in events:
            if isinstance(event, PeerLeft) and event.peer.node_id == self._chosen:
                self._chosen = None
                out.append(Notice(f"the repeater of {event.peer.user} went away"))
            elif (
                isinstance(event, (PeerJoined, PeerChanged)) and event.peer.node_id == self._chosen
            ):
                out += self._use(event.peer)
        if self._chosen is None:
            usable = self._usable(out, [p for p in live if p.mode == "repeater"], now)
            if usable:
                peer = min(usable, key=lambda p: p.last_seen)  # the first heard, not by name
                self._chosen = peer.node_id
                out += self._use(peer)
            elif self._endpoint is not None:
                self._endpoint = None
                out.append(UseServer(None))
        return out

    @property
    def can_move(self) -> bool:
        """True when there may be another server to move to."""
        if len(self._servers) > 1 and not self._learn:
            return True
        chosen = next((p for p in self._live if p.node_id == self._chosen), None)
        return chosen is not None and any(
            p.service == chosen.service and p.node_id != chosen.node_id
            for p in self._live
            if chosen.service
        )

    def server_lost(self, endpoint: str | None) -> list[Choice]:
        """The server in use died (silence, or its connection dropped): where to go now.
        Given several servers, the next of them; found by beacon, another live repeater
        of the same service (its servers share one order: the client resumes there).
        Nothing when there is no other: the client keeps trying the same one."""
        if self._gave_up:
            return []
        if len(self._servers) > 1 and not self._learn:
            self._current = (self._current + 1) % len(self._servers)
            address, port = self._servers[self._current]
            self._endpoint = tcp(address, port)
            key = self.server_key
            if self.secure is not None:
                key = self.secure.known.get(where(address, port)) or key
            text = f"moving to the repeater at {where(address, port)}"
            return [Notice(text), UseServer(self._endpoint, key)]
        chosen = next((p for p in self._live if p.node_id == self._chosen), None)
        if chosen is None or not chosen.service:
            return []
        others = [
            p for p in self._live if p.service == chosen.service and p.node_id != chosen.node_id
        ]
        usable = self._usable([], others, 0.0)
        if not usable:
            return []
        peer = max(usable, key=lambda p: p.last_seen)  # the one heard last: alive
        self._chosen = peer.node_id
        self._live = [p for p in self._live if p.node_id != chosen.node_id]
        return self._use(peer)

    def handshake_failed(
        self, problem: str, endpoint: str | None, now: float = 0.0
    ) -> list[Choice]:
        """The handshake with the server at ``endpoint`` failed. Told where the server
        is, the client cannot fix itself: SecurityError. Found by beacon: refuse that
        repeater, say why, look for another - and when no other we may use is heard,
        SecurityError naming why each refused (the same end as told where it is)."""
        secure = self.secure
        if secure is not None and "key" in problem:
            if "does not know our key" in problem:
                problem += (
                    f" (our key {secure.own_key}: give {secure.own_key_path} to its operator,"
                    f" to save as authorized_keys/{self.user}.key)"
                )
            elif self.server_key is not None:
                problem += f" (we expect the key {key_text(self.server_key)})"
        if self._chosen is None:
            raise SecurityError(f"the repeater at {endpoint}: {problem}")
        self._refused.add(self._chosen)
        self._refusals.append((endpoint, problem))
        self._chosen = None
        self._endpoint = None
        # The connection is closed first, or ZeroMQ keeps retrying, and failing.
        out: list[Choice] = [
            RefuseServer(),
            Notice(f"not using the repeater at {endpoint}: {problem}"),
        ]
        if not self._usable(out, self._live, now):
            # No other repeater heard that we may use: waiting for one would only end in
            # "not delivered (no repeater known)"; say why each one refused, as with -a.
            raise SecurityError(self._refusal_text())
        return [*out, UseServer(None)]

    def _refusal_text(self) -> str:
        """Why the repeaters found by beacon refused us: each problem once, with every
        repeater that gave it."""
        by_problem: dict[str, list[str]] = {}
        for endpoint, problem in self._refusals:
            by_problem.setdefault(problem, []).append(str(endpoint))
        parts = []
        for problem, endpoints in by_problem.items():
            if len(endpoints) == 1:
                parts.append(f"the repeater at {endpoints[0]}: {problem}")
            else:
                listed = ", ".join(endpoints[:-1]) + f" and {endpoints[-1]}"
                parts.append(f"the repeaters at {listed}: {problem}")
        return "; ".join(parts)

    def _usable(self, out: list[Choice], repeaters: list[Peer], now: float) -> list[Peer]:
        """The repeaters this client may use: secure ones for a secure client (preferring
        keys it trusted before), plain ones for a plain client; it says why it skips one."""
        usable = []
        given = self.given if self._learn else None
        for peer in repeaters:
            at = where(peer.address, peer.router_port)
            if peer.node_id in self._refused:
                continue
            if given is not None and not (
                peer.address in given.addresses and peer.router_port == given.port
            ):
                continue
            if self.secure is None and peer.key:
                if self._said.due((peer.node_id, "secure"), now):
                    text = f"the repeater of {peer.user} at {at} runs --secure; ignored (run"
                    out.append(Notice(text + " with --secure to use it)"))
            elif self.secure is not None and not peer.key:
                if self._said.due((peer.node_id, "plain"), now):
                    text = f"the repeater of {peer.user} at {at} runs without --secure; ignored"
                    out.append(Notice(text))
            else:
                usable.append(peer)
        if self.secure is None:
            return usable
        known = self.secure.known
        keys = known.keys()
        trusted = [p for p in usable if p.key in keys]
        if trusted:
            return trusted  # a key we trusted before proves it is that server, wherever it is
        first_use = []
        for peer in usable:
            at = where(peer.address, peer.router_port)
            pinned = known.get(at)
            if pinned is not None and pinned != peer.key:
                self._refused.add(peer.node_id)
                out.append(
                    Notice(
                        f"refused the repeater of {peer.user} at {at}: it shows the key"
                        f" {key_text(peer.key)}, but you trusted {key_text(pinned)} there; if"
                        f" its key really changed, remove the line for {at} from {known.path}"
                    )
                )
            else:
                first_use.append(peer)
        return first_use

    def _use(self, peer: Peer) -> list[Choice]:
        endpoint = tcp(peer.address, peer.router_port)
        out: list[Choice] = []
        if self.secure is not None:
            at = where(peer.address, peer.router_port)
            if peer.key not in self.secure.known.keys():
                out.append(PinKey(at, peer.key))
                out.append(
                    Notice(
                        f"trusting the key {key_text(peer.key)} of the repeater of {peer.user}"
                        f" at {at} (first use; pinned in {self.secure.known.path})"
                    )
                )
            rekeyed = peer.key != self.server_key
            self.server_key = peer.key
            if rekeyed and endpoint == self._endpoint:
                # Same address, another key: the old connection was made for the old one.
                self._endpoint = None
                out.append(UseServer(None))
        if endpoint != self._endpoint:
            self._endpoint = endpoint
            out.append(
                Notice(
                    f"using the repeater of {peer.user} at {peer.address}:{peer.router_port}"
                    " (found by its beacon)"
                )
            )
            out.append(UseServer(endpoint, self.server_key))
        return out


class Choosing:
    """A client core's half that follows its chooser (a mixin of ``ClientCore``, which
    has ``use_server``): where to connect, what to refuse, when to give up."""

    chooser: ServerChooser | None
    dealer_endpoint: str | None
    endpoint: str | None

    def use_server(
        self, endpoint: str | None, now: float, server_key: bytes | None = None
    ) -> list: ...  # ClientCore's

    def _reconnect(self, now: float, why: str, move: bool = True) -> list: ...  # ClientCore's

    def start(self, now: float) -> list:
        """The first outputs: where the chooser goes (nothing without a chooser)."""
        return self._choose(self.chooser.start(), now) if self.chooser else []

    def heard(
        self, events: Sequence[PresenceEvent], live: Sequence[Peer], now: float
    ) -> list:
        """What the beacons said (``live``: the live table now)."""
        return self._choose(self.chooser.heard(events, live, now), now) if self.chooser else []

    def failover(self, now: float) -> list | None:
        """The server in use died: the outputs that move to another one, or None when
        there is no other to move to."""
        if self.chooser is None:
            return None
        choices = self.chooser.server_lost(self.endpoint)
        if not any(isinstance(choice, UseServer) for choice in choices):
            return None
        return self._choose(choices, now)

    def connection_lost(self, now: float) -> list:
        """The shell saw the connection to the server drop (a killed server's kernel
        closes it at once): move to another server now, if there is one; else ZeroMQ
        reconnects by itself and the heartbeats tell."""
        if self.dealer_endpoint is None or self.chooser is None:
            return []
        if not self.chooser.can_move:
            return []
        return self._reconnect(now, f"lost the connection to the repeater at {self.endpoint}")

    def handshake_failed(self, problem: str, now: float) -> list:
        """The DEALER's handshake failed; SecurityError when retrying cannot help."""
        if self.chooser is None:
            raise SecurityError(f"the repeater at {self.dealer_endpoint}: {problem}")
        choices = self.chooser.handshake_failed(problem, self.dealer_endpoint, now)
        return self._choose(choices, now)

    def give_up(self, error: Lab93Error, now: float) -> list:
        """A refusal retrying cannot mend (a key not admitted, another name, a changed
        server key): tell the front end, and stop talking to any server - but go on
        taking posts into the outbox until stopped, so a line sent meanwhile is kept."""
        if self.chooser is not None:
            self.chooser.give_up()
        self.dealer_endpoint = None
        return [GiveUp(error), DisconnectServer(), *self.use_server(None, now)]

    def _choose(self, choices: list[Choice], now: float) -> list:
        out: list = []
        for choice in choices:
            if isinstance(choice, UseServer):
                out += self.use_server(choice.endpoint, now, choice.server_key)
            elif isinstance(choice, RefuseServer):
                self.dealer_endpoint = None
                out.append(DisconnectServer())
            else:
                out.append(choice)
        return out
