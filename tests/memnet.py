"""One in-memory network for the protocol cores: a fake clock, one ordered queue,
loss and partitions. A plain module (not a test module): tests import it by name.

The generic part (``Network``) knows no mode. A party sends *outputs*; the
mode's adapter says, for each output, which deliveries it makes (a
``Delivery``: to whom, labelled how, and the call that hands it over) and
keeps whatever is not a delivery (events for the test to read). The network
hands deliveries over one at a time in the order they were sent - every
delivery of one output before anything its receivers answer - and drops the
ones a partition (``cut``: pairs of party names) or the loss predicate
(``lose(src, dst, label)``) says are lost, both asked at delivery time. Its
fake clock (``now``) wakes each party at its own deadline (``run``). Every
loop is bounded: a network that does not settle fails the test.

Adapters below the generic part, one per mode:

* broadcast mode: ``BroadcastLan`` and its ``LanNode``s - beacons reach every
  node that is up, a PUB the nodes that connected a SUB to it and subscribed
  to a prefix of the frames' first frame (ZeroMQ's topic filter), a DEALER
  send the peer's ROUTER; secure mode's CURVE handshake is played by key
  names. A delivery is handed to the session at once.
* repeater mode: ``RepeaterNet`` (one ``ServerCore``, its ``ServerEnd``, and
  ``ClientEnd``s) - a client's DEALER reaches the ROUTER, a reply the DEALER
  of that identity, the PUB the SUBs subscribed to the room's topic. A
  delivery lands in the receiver's queue (``to_server``, ``from_server``,
  ``from_pub``), which ``run`` drains as each shell's poll loop would (all
  that is readable, then ``flush``), so a test can hold back, repeat or
  forge frames on their way. ``Net`` and ``Client`` add real inboxes in a
  test's directory: a server core on one, client cores made by name.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from factories import T0, fake_trust
from factories import key_of as key_of

from lab93zmq.core import wire
from lab93zmq.core.authoring import Draft
from lab93zmq.core.broadcast.actions import (
    ConnectPeer,
    DisconnectPeer,
    PublishFrames,
    RouterPeer,
    SendBeacon,
    SendToPeer,
    Subscribe,
    Unsubscribe,
)
from lab93zmq.core.broadcast.session import BroadcastSession
from lab93zmq.core.broadcast.trust import Trust
from lab93zmq.core.endpoints import host_of
from lab93zmq.core.events import Accepted, Incoming
from lab93zmq.core.message import Message, make_id
from lab93zmq.core.presence import Beacon, BeaconKind
from lab93zmq.core.repeater.client import ClientCore
from lab93zmq.core.repeater.outputs import (
    ConnectServer,
    DisconnectServer,
    FollowRooms,
    ProbeBeacons,
    PublishRoom,
    ReplyTo,
    SendToServer,
    SubscribeFeed,
)
from lab93zmq.core.repeater.server import ServerCore
from lab93zmq.core.rooms import DEFAULT_ROOM
from lab93zmq.core.signing import node_id_of
from lab93zmq.io.store import Inbox

LIMIT = 100_000  # deliveries per settling, and clock steps per run


class Party(Protocol):
    """What the network needs of a party: a name, whether it is up, and its clock."""

    name: str

    @property
    def up(self) -> bool: ...

    def next_deadline(self) -> float: ...

    def tick(self, now: float) -> Iterable[Any]: ...


@dataclass(frozen=True)
class Delivery:
    """One output reaching one party: ``hand_over()`` gives it and returns the answer."""

    dst: Any
    label: Any  # what the loss predicate sees: a command name, "beacon", (channel, command)
    hand_over: Callable[[], Iterable[Any]]


def never(src: Any, dst: Any, label: Any) -> bool:
    return False


class Network:
    """The generic part: an ordered queue of outputs, partitions, loss, a fake clock."""

    def __init__(
        self, route: Callable[[Any, Any], Iterable[Delivery]], now: float = 0.0,
        limit: int = LIMIT,
    ) -> None:
        self.route = route
        self.now = now
        self.limit = limit
        self.cut: set[frozenset[str]] = set()  # pairs of names that cannot reach each other
        self.lose: Callable[[Any, Any, Any], bool] = never
        self._queue: deque[tuple[Any, Any]] = deque()
        self._busy = False

    def reachable(self, src: Party, dst: Party) -> bool:
        return dst is not src and dst.up and frozenset((src.name, dst.name)) not in self.cut

    def send(self, src: Party, outputs: Iterable[Any]) -> None:
        """``src`` emits ``outputs``; deliver them (and all they cause) before returning."""
        self._queue.extend((src, output) for output in outputs)
        if self._busy:
            return  # the loop below takes them in turn
        self._busy = True
        try:
            for _ in range(self.limit):
                if not self._queue:
                    return
                source, output = self._queue.popleft()
                for delivery in self.route(source, output):
                    dst = delivery.dst
                    if self.reachable(source, dst) and not self.lose(source, dst, delivery.label):
                        self._queue.extend((dst, answer) for answer in delivery.hand_over())
            raise AssertionError(f"the network did not settle in {self.limit} deliveries")
        finally:
            self._queue.clear()
            self._busy = False

    def run(self, seconds: float, parties: Callable[[], Iterable[Party]]) -> None:
        """Advance the clock by ``seconds``, waking each party that is up at its deadlines,
        and once more at the end."""
        end = self.now + seconds
        for _ in range(self.limit):
            live = [party for party in parties() if party.up]
            due = min((party.next_deadline() for party in live), default=end)
            if due > end:
                break
            self.now = max(self.now, due)
            for party in live:
                if party.up and party.next_deadline() <= self.now:
                    self.send(party, party.tick(self.now))
        else:
            raise AssertionError(f"the clock did not reach {end} in {self.limit} steps")
        self.now = end
        for party in [p for p in parties() if p.up]:
            self.send(party, party.tick(self.now))


class OnNetwork:
    """A mode's adapter over its ``network``: ``now`` is the network's fake clock."""

    network: Network

    @property
    def now(self) -> float:
        return self.network.now

    @now.setter
    def now(self, value: float) -> None:
        self.network.now = value


# -- broadcast mode --------------------------------------------------------------


class LanNode:
    """One broadcast node on a ``BroadcastLan``: a real inbox file, a session while it is
    up, and everything it did (``outputs``, ``events``, ``sent``)."""

    def __init__(self, lan: BroadcastLan, name: str, user: str, address: str,
                 node_id: str | None = None, rooms: tuple[str, ...] = (DEFAULT_ROOM,),
                 listen: bool = True) -> None:
        self.lan = lan
        self.name = name
        self.user = user
        self.address = address
        self.path = lan.directory / f"{name}.db"
        self.inbox = Inbox(self.path, new_node_id=bytes.fromhex(node_id) if node_id else None,
                           role="broadcast")  # as the broadcast shell opens it
        self.node_id = self.inbox.node_id
        self.router_port = 5000 + len(lan.nodes)
        self.pub_port = 6000 + len(lan.nodes)
        self.session: BroadcastSession | None = None
        self.outputs: list[Any] = []  # every output of every session it ran
        self.events: list[Any] = []  # the ones for its front end
        self.subs: set[str] = set()  # node ids whose PUB it subscribed to
        self.endpoints: dict[str, str] = {}  # node id -> the address its sockets went to
        self.topics: set[bytes] = set()  # what its SUBs subscribe to (after the signature)
        self.received: list[tuple[str, bytes]] = []  # (command, topic) of what its SUBs got
        self.rooms = rooms  # the rooms it starts in (each start)
        self.listen = listen
        self.sent: list[tuple[str, str, int]] = []  # (command, to, payload count)
        self.posts = 0
        self.trust: Trust | None = None  # secure mode
        self.key_name = user  # the name its key has in the others' authorized keys

    # -- what the network needs ----------------------------------------------------

    @property
    def up(self) -> bool:
        return self.session is not None

    def next_deadline(self) -> float:
        assert self.session is not None
        return self.session.next_deadline()

    def tick(self, now: float) -> list[Any]:
        assert self.session is not None
        return self.did(self.session.tick(now))

    def did(self, outputs: Iterable[Any]) -> list[Any]:
        """Record what the session returned (and hand it on)."""
        outputs = list(outputs)
        self.outputs += outputs
        return outputs

    # -- what a test does ------------------------------------------------------------

    def start(self) -> None:
        self.session = BroadcastSession(
            self.inbox, self.user, self.router_port, self.pub_port, self.lan.interval,
            self.lan.now, where="lan", trust=self.trust, rooms=self.rooms, listen=self.listen,
        )
        self.lan.perform(self, self.session.start(self.lan.now))

    def stop(self, clean: bool = True) -> None:
        """A clean exit (BYE and LEAVING), or ``clean=False``: as killed, nothing sent."""
        if clean:
            self.lan.perform(self, self.session.stop(self.lan.now))
        self.session = None
        self.subs.clear()
        self.topics.clear()

    def reopen(self) -> None:
        """The inbox file opened again, as a restarted node would."""
        self.inbox.close()
        self.inbox = Inbox(self.path, role="broadcast")

    def draft(self, content: str, to: str | None = None, room: str | None = None) -> Draft:
        self.posts += 1
        sent_at = T0 + timedelta(seconds=self.lan.now)
        return Draft(self.next_id(sent_at), content, None, to, sent_at, room)

    def next_id(self, sent_at) -> str:
        entropy = self.name.encode().ljust(6, b"-")[:6] + self.posts.to_bytes(4, "big")
        return make_id(sent_at, entropy)

    def post(self, content: str, to: str | None = None, room: str | None = None) -> str:
        draft = self.draft(content, to, room)
        self.lan.perform(self, self.session.post(draft, self.lan.now))
        return draft.id

    def join(self, room: str) -> None:
        self.lan.perform(self, self.session.join(room, self.lan.now))

    def part(self, room: str) -> None:
        self.lan.perform(self, self.session.part(room, self.lan.now))

    def set_topic(self, room: str, text: str) -> str:
        self.posts += 1
        sent_at = T0 + timedelta(seconds=self.lan.now)
        message_id = self.next_id(sent_at)
        self.lan.perform(self, self.session.set_topic(room, text, message_id, sent_at,
                                                      self.lan.now))
        return message_id

    def post_many(self, drafts: list[Draft]) -> None:
        self.lan.perform(self, self.session.post_many(drafts, self.lan.now))

    def beacon(self, kind: BeaconKind = BeaconKind.ANNOUNCE, **changes: Any) -> bytes:
        """Its beacon, as anyone could forge it (some fields changed)."""
        fields: dict[str, Any] = dict(
            router_port=self.router_port, pub_port=self.pub_port, user=self.user,
            key=key_of(self.key_name) if self.trust else b"",
        )
        fields.update(changes)
        return Beacon(kind, self.node_id, "broadcast", **fields).encode()

    def got(self, frames: tuple[bytes, ...], name: str, topic: bytes, src: LanNode,
            now: float) -> list[Any]:
        """Frames from ``src``'s PUB, as its SUB passed them (counted in ``received``)."""
        self.received.append((name, topic))
        return self.did(self.session.receive(frames, now, src.node_id))

    def room(self, room: str = DEFAULT_ROOM):
        """Its catch-up state of ``room`` (``roomsync.RoomSync``)."""
        assert self.session is not None
        return self.session.catchup.rooms[room]

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def incoming(self) -> list[str]:
        return [e.message.content for e in self.of(Incoming)]

    def accepted(self) -> set[str]:
        return {i for e in self.of(Accepted) for i in e.ids}

    def contents(self, room: str | None = None) -> list[str]:
        return sorted(m.content for m in self.inbox.history(room=room) if not m.is_topic)


class BroadcastLan(OnNetwork):
    """Broadcast nodes on one ``Network``: what each output of a session reaches.

    Everything a session sends must be valid on the wire (decoded on the way),
    and a DEALER send must go to a peer it connected to; one to an endpoint no
    node of the lan has (a forged beacon's) goes nowhere.
    """

    def __init__(self, directory: Path, interval: float = 1.0, limit: int = LIMIT) -> None:
        self.directory = directory
        self.interval = interval
        self.nodes: dict[str, LanNode] = {}
        self.network = Network(self._route, limit=limit)

    @property
    def cut(self) -> set[frozenset[str]]:
        return self.network.cut

    @cut.setter
    def cut(self, pairs: set[frozenset[str]]) -> None:
        self.network.cut = pairs

    @property
    def drop(self) -> Callable[[Any, Any, str], bool]:
        """The loss predicate: ``drop(src, dst, label)``, label a command name or "beacon"."""
        return self.network.lose

    @drop.setter
    def drop(self, predicate: Callable[[Any, Any, str], bool]) -> None:
        self.network.lose = predicate

    def node(self, name: str, user: str | None = None, start: bool = True,
             node_id: str | None = None, rooms: tuple[str, ...] = (DEFAULT_ROOM,),
             listen: bool = True) -> LanNode:
        node = LanNode(self, name, user or name, f"198.18.93.{len(self.nodes) + 1}", node_id,
                       rooms, listen)
        self.nodes[name] = node
        if start:
            node.start()
        return node

    def secure(self, name: str, *trusted: str, key_name: str | None = None,
               user: str | None = None) -> LanNode:
        """A secure node whose authorized keys are ``trusted`` (key names)."""
        node = self.node(name, user, start=False)
        node.key_name = key_name or name
        node.trust = fake_trust(node.key_name, trusted)
        node.node_id = node_id_of(key_of(node.key_name))  # a secure node's id is its key's
        node.start()
        return node

    def by_id(self, node_id: str) -> LanNode | None:
        return next((n for n in self.nodes.values() if n.node_id == node_id), None)

    def perform(self, src: LanNode, outputs: Iterable[Any]) -> None:
        """``src``'s session returned ``outputs``: carry them out, and all they cause."""
        self.network.send(src, src.did(outputs))

    def run(self, seconds: float) -> None:
        self.network.run(seconds, lambda: list(self.nodes.values()))

    def close(self) -> None:
        for node in self.nodes.values():
            node.inbox.close()

    def _route(self, src: LanNode, output: Any) -> list[Delivery]:
        now = self.now
        if isinstance(output, SendBeacon):
            Beacon.decode(output.data)  # what goes out is always a valid beacon
            return [
                Delivery(dst, "beacon", lambda dst=dst: dst.did(
                    dst.session.receive_beacon(output.data, src.address, now)))
                for dst in list(self.nodes.values())
            ]
        if isinstance(output, PublishFrames):
            topic = output.frames[0][len(wire.SIGNATURE):]
            name = wire.decode_published(output.frames)[1].name
            return [
                Delivery(dst, name, lambda dst=dst: dst.got(output.frames, name, topic, src, now))
                for dst in list(self.nodes.values())
                if src.node_id in dst.subs and dst.endpoints.get(src.node_id) == src.address
                and any(topic.startswith(t) for t in dst.topics)
            ]
        if isinstance(output, SendToPeer):
            command = wire.decode(output.frames)
            src.sent.append((command.name, output.node_id, len(command.payloads)))
            assert output.node_id in src.subs, "sent to a peer never connected"
            dst = self.by_id(output.node_id)
            if dst is None or src.endpoints.get(output.node_id) != dst.address:
                return []  # a forged beacon's endpoint: nobody is there
            # What a ROUTER learns of the connection: in secure mode, its key's name.
            sender = RouterPeer(src.name.encode(), src.key_name if src.trust else None)
            return [Delivery(dst, command.name, lambda: dst.did(
                dst.session.receive(output.frames, now, sender=sender)))]
        if isinstance(output, ConnectPeer):
            src.subs.add(output.peer.node_id)
            src.endpoints[output.peer.node_id] = output.peer.address
            src.topics = set(output.topics)
            dst = self.by_id(output.peer.node_id)
            if src.trust is not None and dst is not None and self._handshake(src, dst, output):
                self.network.send(src, src.did(src.session.on_link_up(dst.node_id, now)))
        elif isinstance(output, DisconnectPeer):
            src.subs.discard(output.node_id)
        elif isinstance(output, Subscribe):
            src.topics.update(output.topics)
        elif isinstance(output, Unsubscribe):
            src.topics.difference_update(output.topics)
        else:
            src.events.append(output)
        return []

    def _handshake(self, src: LanNode, dst: LanNode, connect: ConnectPeer) -> bool:
        """Would CURVE complete? ``dst`` holds the key ``src`` pinned, and admits ``src``'s."""
        return (
            self.network.reachable(src, dst)
            and dst.trust is not None
            and connect.peer.address == dst.address  # its endpoint, not a forged one
            and connect.peer.key == key_of(dst.key_name)
            and dst.trust.name_of(key_of(src.key_name)) is not None
        )


# -- repeater mode ---------------------------------------------------------------

SERVER = "tcp://server:5190"
PUB_PORT = 40123

Lose = Callable[[wire.Command], bool]  # True: this command is lost on its way


class ClientEnd:
    """One client core on a ``RepeaterNet``: its connection, what waits to be read,
    and everything that reached it."""

    def __init__(self, net: RepeaterNet, name: str, core: ClientCore) -> None:
        self.net = net
        self.name = name
        self.core = core
        self.identity: bytes | None = None  # its DEALER, as the ROUTER names it
        self.subscribed: str | None = None
        self.topics: frozenset[str] = frozenset()  # the rooms its SUB subscribed to
        self.feed: list[tuple[str, wire.Command]] = []  # (room, command) its SUB was sent
        self.events: list = []  # what it told its front end (and GiveUp, PinKey)
        self.sent: list[wire.Command] = []  # every command it sent the server
        self.from_server: deque[list[bytes]] = deque()
        self.from_pub: deque[list[bytes]] = deque()

    # -- what the network needs (a client process is always there) ------------------

    up = True

    def next_deadline(self) -> float:
        deadline = self.core.next_deadline()
        return float("inf") if deadline is None else deadline

    def tick(self, now: float) -> list[Any]:
        return self.core.tick(now)

    # -- what a test does ------------------------------------------------------------

    def apply(self, outputs: Iterable[Any]) -> None:
        """Carry out what the core returned."""
        self.net.network.send(self, outputs)

    def drain(self, now: float) -> bool:
        """Read what waits, as the client's poll loop does, then flush; True if any."""
        busy = bool(self.from_server or self.from_pub)
        while self.from_server:
            self.apply(self.core.receive(self.from_server.popleft(), now))
        while self.from_pub:
            self.apply(self.core.receive_pub(self.from_pub.popleft(), now))
        self.apply(self.core.flush(now))
        return busy

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def gone(self) -> None:
        """The process ended: nothing more reaches it."""
        self.identity = None
        self.subscribed = None
        self.topics = frozenset()
        self.from_server.clear()
        self.from_pub.clear()


class ServerEnd:
    """The server core's ROUTER on a ``RepeaterNet`` (down while ``net.server_up`` is
    False: what is sent to it is lost)."""

    name = "server"

    def __init__(self, net: RepeaterNet) -> None:
        self.net = net

    @property
    def up(self) -> bool:
        return self.net.server_up

    def next_deadline(self) -> float:
        return self.net.server.next_deadline()

    def tick(self, now: float) -> list[Any]:
        return self.net.server.tick(now)


class RepeaterNet(OnNetwork):
    """A server core and client cores on one ``Network``; ``now`` is its fake clock."""

    def __init__(self, server: ServerCore, now: float, endpoint: str = SERVER,
                 limit: int = LIMIT) -> None:
        self.server = server
        self.endpoint = endpoint
        self.server_up = True
        self.identities = itertools.count(1)
        self.clients: dict[str, ClientEnd] = {}
        self.end = ServerEnd(self)
        self.to_server: deque[tuple[bytes, list[bytes]]] = deque()  # the ROUTER's queue
        self.lose_pub: dict[str, Lose] = {}  # client name -> what it loses on the SUB
        self.lose_reply: dict[str, Lose] = {}  # and on its DEALER
        self.published: list[wire.Command] = []
        self.replies: list[tuple[bytes, wire.Command]] = []
        self.server_events: list = []
        self.network = Network(self._route, now, limit)
        self.network.lose = self._lost

    @property
    def feed(self) -> str:
        return f"tcp://{host_of(self.endpoint)}:{self.server.pub_port}"

    def attach(self, name: str, core: ClientCore) -> ClientEnd:
        end = self.clients[name] = ClientEnd(self, name, core)
        return end

    def route(self, outputs: Iterable[Any]) -> None:
        """Carry out what the server returned."""
        self.network.send(self.end, outputs)

    def run(self, limit: int = 10_000) -> None:
        """Deliver everything in flight, flushing every core, until the net is quiet."""
        for _ in range(limit):
            busy = bool(self.to_server)
            while self.to_server:
                identity, frames = self.to_server.popleft()
                if self.server_up:
                    self.route(self.server.receive(identity, frames, self.now))
            if self.server_up:
                self.route(self.server.flush(self.now))
            for end in list(self.clients.values()):
                busy = end.drain(self.now) or busy
            if not busy and not self.to_server:
                return
        raise AssertionError("the link never went quiet")

    def advance(self, seconds: float, step: float = 0.25) -> None:
        """Let time pass in small steps, ticking everyone."""
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            if self.server_up:
                self.route(self.end.tick(self.now))
            for client in list(self.clients.values()):
                client.apply(client.tick(self.now))
            self.run()

    def _lost(self, src: Any, dst: Any, label: Any) -> bool:
        channel, command = label
        lose = {"pub": self.lose_pub, "reply": self.lose_reply}.get(channel, {}).get(dst.name)
        return lose is not None and lose(command)

    def _route(self, src: ClientEnd | ServerEnd, output: Any) -> list[Delivery]:
        if src is self.end:
            return self._from_server(output)
        if isinstance(output, SendToServer):
            src.sent.append(output.command)
            if src.identity is None:
                src.events += src.core.send_failed(output, self.now)
                return []
            item = (src.identity, output.command.frames())
            return [Delivery(self.end, ("dealer", output.command),
                             lambda: self.to_server.append(item) or [])]
        if isinstance(output, ConnectServer):
            assert output.endpoint == self.endpoint, output.endpoint
            src.identity = b"id-%d" % next(self.identities)
            src.from_server.clear()
        elif isinstance(output, DisconnectServer):
            src.identity = None
            src.from_server.clear()
        elif isinstance(output, SubscribeFeed):
            src.subscribed = output.endpoint
        elif isinstance(output, FollowRooms):
            src.topics = output.rooms
        elif isinstance(output, ProbeBeacons):
            pass  # no beacons in memory
        else:
            assert not isinstance(output, (ReplyTo, PublishRoom)), output
            src.events.append(output)
        return []

    def _from_server(self, output: Any) -> list[Delivery]:
        if isinstance(output, ReplyTo):
            self.replies.append((output.identity, output.command))
            frames = output.command.frames()
            return [
                Delivery(end, ("reply", output.command),
                         lambda end=end: end.from_server.append(frames) or [])
                for end in self.clients.values() if end.identity == output.identity
            ]
        if isinstance(output, PublishRoom):
            self.published.append(output.command)
            frames = output.frames()
            deliveries = []
            for end in self.clients.values():
                if end.subscribed == self.feed and output.room in end.topics:
                    end.feed.append((output.room, output.command))  # sent, lost or not
                    deliveries.append(Delivery(end, ("pub", output.command),
                                               lambda end=end: end.from_pub.append(frames) or []))
            return deliveries
        self.server_events.append(output)
        return []


class Client:
    """One client core with its inbox, on a ``Net``; ``options`` go to its ClientCore
    (``rooms``, ``listen``, ...) - again at each restart."""

    def __init__(self, net: Net, name: str, user: str, path, **options) -> None:
        self.net = net
        self.user = user
        self.path = path
        self.options = options
        self.inbox = Inbox(path, role="client")
        self.end = net.attach(name, ClientCore(self.inbox, user, net.now, **options))
        self._n = itertools.count(1)

    # What reached it, and how it is connected: the net's end of it.
    core = property(lambda self: self.end.core)
    events = property(lambda self: self.end.events)
    sent = property(lambda self: self.end.sent)
    identity = property(lambda self: self.end.identity)
    subscribed = property(lambda self: self.end.subscribed)
    from_server = property(lambda self: self.end.from_server)

    def apply(self, outputs) -> None:
        self.end.apply(outputs)

    def of(self, kind) -> list:
        return self.end.of(kind)

    def connect(self) -> None:
        self.apply(self.core.use_server(SERVER, self.net.now))
        self.net.run()

    def say(self, content: str, to: str | None = None, room: str | None = None) -> Message:
        n = next(self._n)
        room = None if to is not None else room or DEFAULT_ROOM
        origin = self.inbox.node_id
        message = Message(
            id=make_id(T0 + timedelta(seconds=n), os.urandom(10)),
            author=self.user,
            recipient=to,
            subject=None,
            content=content,
            sent_at=T0,
            origin=origin,
            origin_seq=self.inbox.next_origin_seq(origin, to is not None, room or DEFAULT_ROOM),
            room=room,
        )
        self.apply(self.core.submit(message))
        return message

    def set_topic(self, room: str, text: str) -> None:
        """The front end sets ``room``'s topic now (the wall clock follows the fake one)."""
        now = T0 + timedelta(seconds=self.net.now)
        self.apply(self.core.set_topic(room, text, now, os.urandom(10)))

    def restart(self, **options) -> None:
        """The client process ends and starts again on the same inbox (with other
        ``options``, if given)."""
        self.inbox.close()
        self.inbox = Inbox(self.path, role="client")
        self.end.gone()
        self.options = options or self.options
        self.end.core = ClientCore(self.inbox, self.user, self.net.now, **self.options)

    def incoming(self, room: str | None = None) -> list[str]:
        """The contents of the messages it was shown (only ``room``'s, if given)."""
        return [
            e.message.content
            for e in self.events
            if isinstance(e, Incoming) and (room is None or e.message.room == room)
        ]

    def accepted(self) -> list[str]:
        return [i for e in self.events if isinstance(e, Accepted) for i in e.ids]


class Net(RepeaterNet):
    """A ``RepeaterNet`` with its server on a real inbox, and clients made by name."""

    def __init__(self, tmp_path, **server_options) -> None:
        self.tmp = tmp_path
        self.server_options = server_options
        self.server_inbox = Inbox(tmp_path / "server.db", role="server")
        super().__init__(ServerCore(self.server_inbox, PUB_PORT, 1000.0, **server_options), 1000.0)
        self.people: list[Client] = []

    def client(
        self, user: str, *, db: str | None = None, connect: bool = True, **options
    ) -> Client:
        name = user if db is None else f"{user}@{db}"
        c = Client(self, name, user, self.tmp / f"{db or user}.db", **options)
        self.people.append(c)
        if connect:
            c.connect()
        return c

    def restart_server(self) -> None:
        """A crash: no goodbye; a new core on the same inbox file."""
        self.server_inbox.close()
        self.server_inbox = Inbox(self.tmp / "server.db", role="server")
        self.server = ServerCore(self.server_inbox, PUB_PORT, self.now, **self.server_options)

    def close(self) -> None:
        for c in self.people:
            c.inbox.close()
        self.server_inbox.close()
