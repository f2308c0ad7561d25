"""One broadcast-mode node in its own process, driven by the parent over JSON lines.

``python bench/agent.py ours`` runs our ``BroadcastActor`` (``-i lo``,
``-a 127.0.0.1``, the beacon port the parent gives); ``python bench/agent.py
client`` a ``ClientActor`` (repeater client) for the server at 127.0.0.1:``port`` (its
"peers" is 1 while connected); ``python bench/agent.py pyre`` runs a pyre
node, and refuses to unless the only network interface in sight is ``lo``
(pyre picks the first non-loopback interface by itself and cannot be told
otherwise, so it may only run in a namespace made for it).

Commands (stdin, one JSON object a line) and what the agent answers (stdout):

``{"cmd": "start", ...}``        -> ``started`` {"t_call", "t_ready"}
``{"cmd": "post", "n", "size", "tag"}`` -> ``posted`` {"t0", "t1", "n"}
``{"cmd": "expect", "n", "timeout", "tag"}`` -> ``got`` {"n", "t_first", "t_last"}, counting
                                   only room messages whose content starts with ``tag``
``{"cmd": "sync"}``              -> ``synced`` (ours: every post so far is stored)
``{"cmd": "frames"}``            -> ``frames`` {"topics": {topic: count}} (ours: the frame
                                   lists its SUBs delivered since it started, by topic)
``{"cmd": "stop"}``              -> ``stopped`` {"t_call", "t_done"}, then exit

and, unasked, ``peers`` {"n", "t"} whenever the number of peers it sees
changes. Times are ``time.monotonic()``, one clock for every process here.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import zmq
from common import CommandReader, emit

GROUP = "bench"


def only_loopback() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


class Counter:
    """Room messages of one run (their content starts with ``tag``), first and last arrival."""

    def __init__(self, tag: str = "") -> None:
        self.tag = tag
        self.n = 0
        self.t_first: float | None = None
        self.t_last: float | None = None

    def add(self, k: int = 1) -> None:
        now = time.monotonic()
        if self.t_first is None:
            self.t_first = now
        self.t_last = now
        self.n += k


class OursNode:
    """Our BroadcastActor behind its pipe."""

    def __init__(self, options: dict[str, Any], client: bool = False) -> None:
        from lab93zmq.io.actor import ActorHandle
        from lab93zmq.io.config import NodeConfig

        config = NodeConfig(
            user=options["user"],
            db_path=Path(options["db"]),
            address="127.0.0.1",
            port=int(options.get("port", 0)),
            interfaces=("lo",),
            beacon_port=int(options["beacon_port"]),
            rooms=tuple(options.get("rooms") or ("general",)),
            listen=bool(options.get("listen", True)),
        )
        if client:
            from lab93zmq.io.repeater_client import ClientActor

            self.handle = ActorHandle(ClientActor(config))
        else:
            from lab93zmq.io.broadcast_actor import BroadcastActor

            self.handle = ActorHandle(BroadcastActor(config))
        self.peers = 0
        self.received = Counter()
        self.who_answers = 0
        self._salt = secrets.token_hex(4)
        self._posted = 0
        self.topics: dict[str, int] = {}  # frame lists its SUBs delivered, by topic

    def start(self) -> None:
        self.handle.start(timeout=20)
        session = getattr(self.handle.actor, "session", None)
        if session is not None:  # a broadcast node: count what reaches it, by topic
            receive_many = session.receive_many

            def counting(batch, now, via=None, senders=None):
                if via is not None:
                    for frames in batch:
                        topic = bytes(frames[0][4:]).decode("ascii", "replace")
                        self.topics[topic] = self.topics.get(topic, 0) + 1
                return receive_many(batch, now, via, senders)

            session.receive_many = counting

    def socket(self) -> zmq.Socket:
        return self.handle.pipe

    def on_ready(self) -> None:
        """Take what the actor sent, as the API's pump does: its events as they are
        (an EVENTS batch, see io/actor.py's EventPipe), the rest framed."""
        from lab93zmq.core.events import Incoming, Status, Users
        from lab93zmq.io.actor import PipeKind

        for _ in range(500):
            if not self.handle.pipe.poll(0):
                return
            message = self.handle.parse(self.handle.pipe.recv_multipart())
            if message.kind is PipeKind.FATAL:
                raise RuntimeError(message.body.get("error"))
            if message.kind is not PipeKind.EVENTS:
                continue
            tag = self.received.tag
            for event in message.body["events"]:
                if isinstance(event, Incoming):
                    if event.message.content.startswith(tag):
                        self.received.add()
                elif isinstance(event, Status):
                    self._status(event.connected, event.detail)
                elif isinstance(event, Users):
                    self.who_answers += 1

    def _status(self, connected: bool, detail: str) -> None:
        found = re.match(r"(\d+) peer", detail)
        count = int(found.group(1)) if found else 1  # a repeater client: the server
        count = count if connected else 0
        if count != self.peers:
            self.peers = count
            emit(event="peers", n=count, t=time.monotonic())

    def post_frames(self, content: str, sent_at: str, room: str | None = None) -> list[bytes]:
        from lab93zmq.io.actor import PipeKind, PipeMessage

        self._posted += 1
        millis = int(time.time() * 1000)
        body = {
            "id": f"{millis:012x}{self._salt}{self._posted:012x}",
            "content": content,
            "subject": None,
            "to": None,
            "sent_at": sent_at,
            "room": room,
        }
        return PipeMessage(PipeKind.POST, body).frames()

    def post(self, n: int, size: int, tag: str, rooms: list[str] | None = None) -> None:
        """``n`` room messages, to the current room or round the ``rooms`` in turn."""
        sent_at = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        content = f"{tag} " + "m" * size
        pipe = self.handle.pipe
        sent = 0
        deadline = time.monotonic() + 120
        while sent < n and time.monotonic() < deadline:
            room = rooms[sent % len(rooms)] if rooms else None
            frames = self.post_frames(content, sent_at, room)
            while time.monotonic() < deadline:
                try:
                    pipe.send_multipart(frames, zmq.NOBLOCK)
                    break
                except zmq.Again:  # the actor is busy: read its events meanwhile
                    pipe.poll(10)
                    self.on_ready()
            sent += 1

    def sync(self) -> None:
        from lab93zmq.io.actor import PipeKind

        before = self.who_answers
        self.handle.request(PipeKind.WHO)
        deadline = time.monotonic() + 60
        while self.who_answers == before and time.monotonic() < deadline:
            if self.handle.pipe.poll(100):
                self.on_ready()

    def stop(self) -> None:
        self.handle.stop(timeout=10)


class PyreNode:
    """A pyre (Zyre) node that joins one group and shouts to it."""

    def __init__(self, options: dict[str, Any]) -> None:
        if not only_loopback():
            raise SystemExit(
                "refusing to run pyre: it would pick a real interface by itself; "
                "run it only in a network namespace that has nothing but lo"
            )
        import pyre

        self.node = pyre.Pyre(options["user"])
        self.node.set_port(str(options.get("beacon_port", 5670)).encode())
        self.peers: set[bytes] = set()
        self.received = Counter()

    def start(self) -> None:
        self.node.start()
        self.node.join(GROUP)

    def socket(self) -> zmq.Socket:
        return self.node.socket()

    def on_ready(self) -> None:
        sock = self.node.socket()
        for _ in range(500):
            if not sock.poll(0):
                return
            frames = self.node.recv()
            kind = frames[0]
            if kind == b"SHOUT":
                if frames[4].startswith(self.received.tag.encode()):
                    self.received.add()
            elif kind == b"ENTER":
                self._change(self.peers | {frames[1]})
            elif kind == b"EXIT":
                self._change(self.peers - {frames[1]})

    def _change(self, peers: set[bytes]) -> None:
        if len(peers) != len(self.peers):
            self.peers = peers
            emit(event="peers", n=len(peers), t=time.monotonic())
        self.peers = peers

    def post(self, n: int, size: int, tag: str) -> None:
        content = tag.encode() + b" " + b"m" * size
        sock = self.node.socket()
        for i in range(n):
            self.node.shout(GROUP, content + b" %d" % i)
            if i % 100 == 0 and sock.poll(0):
                self.on_ready()

    def sync(self) -> None:
        pass

    def stop(self) -> None:
        self.node.stop()


def main() -> None:
    kind = sys.argv[1]
    if kind == "pyre" and not only_loopback():
        emit(event="error", error="refusing to run pyre outside an lo-only network namespace")
        raise SystemExit(2)
    commands = CommandReader()
    emit(event="loaded", pid=os.getpid(), interfaces=[n for _, n in socket.if_nameindex()])
    node: OursNode | PyreNode | None = None
    expecting: tuple[int, float] | None = None
    poller = zmq.Poller()
    poller.register(commands.fileno(), zmq.POLLIN)
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            ready = dict(poller.poll(0 if commands.pending() else 1000))
            if node is not None and node.socket() in ready:
                node.on_ready()
            if expecting is not None and node is not None:
                target, until = expecting
                if node.received.n >= target or time.monotonic() >= until:
                    r = node.received
                    emit(event="got", n=r.n, t_first=r.t_first, t_last=r.t_last)
                    expecting = None
            # Two commands can come in one read: the second is buffered, and stdin
            # does not poll ready for it (it waited for the next command: a post
            # sent right after an expect ran only at the stop, 60 s later).
            if commands.fileno() not in ready and not commands.pending():
                continue
            command = commands.next(0)
            if command is None:
                if commands.closed:
                    break
                continue
            cmd = command["cmd"]
            if cmd == "start":
                if kind == "pyre":
                    node = PyreNode(command)
                else:
                    node = OursNode(command, client=kind == "client")
                t_call = time.monotonic()
                node.start()
                t_ready = time.monotonic()
                poller.register(node.socket(), zmq.POLLIN)
                emit(event="started", t_call=t_call, t_ready=t_ready)
                node.on_ready()
            elif cmd == "post" and node is not None:
                t0 = time.monotonic()
                if command.get("rooms"):
                    node.post(int(command["n"]), int(command.get("size", 40)), command["tag"],
                              command["rooms"])
                else:
                    node.post(int(command["n"]), int(command.get("size", 40)), command["tag"])
                emit(event="posted", t0=t0, t1=time.monotonic(), n=command["n"])
            elif cmd == "expect" and node is not None:
                node.received = Counter(command["tag"])
                expecting = (int(command["n"]), time.monotonic() + float(command["timeout"]))
            elif cmd == "sync" and node is not None:
                node.sync()
                emit(event="synced", t=time.monotonic())
            elif cmd == "frames" and isinstance(node, OursNode):
                emit(event="frames", topics=dict(node.topics))
            elif cmd == "stop":
                t_call = time.monotonic()
                if node is not None:
                    poller.unregister(node.socket())
                    node.stop()
                emit(event="stopped", t_call=t_call, t_done=time.monotonic())
                node = None
                break
    except Exception as error:  # report it, so the parent names the cause
        emit(event="error", error=f"{type(error).__name__}: {error}")
        raise SystemExit(1) from None
    finally:
        if node is not None:
            try:
                node.stop()
            except Exception:
                pass
    os._exit(0)  # pyre's and our daemon threads need not be joined


if __name__ == "__main__":
    main()
