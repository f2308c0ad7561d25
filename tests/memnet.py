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
  names.
"""

from __future__ import annotations

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
from lab93zmq.core.events import Accepted, Incoming
from lab93zmq.core.message import make_id
from lab93zmq.core.presence import Beacon, BeaconKind
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
    label: str  # what the loss predicate sees: a command name, "beacon", ...
    hand_over: Callable[[], Iterable[Any]]


def never(src: Any, dst: Any, label: str) -> bool:
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
        self.lose: Callable[[Any, Any, str], bool] = never
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
        self.inbox = Inbox(self.path, new_node_id=bytes.fromhex(node_id) if node_id else None)
        self.inbox.index_tails()  # as the broadcast shell does
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
        self.inbox = Inbox(self.path)

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


class BroadcastLan:
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
    def now(self) -> float:
        return self.network.now

    @now.setter
    def now(self, value: float) -> None:
        self.network.now = value

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
