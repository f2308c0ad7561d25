"""Load generator: raw pyzmq clients that speak the repeater protocol.

Each simulated client is one DEALER (posts, acknowledgements) and one SUB (the
room feed), exactly what a ClientActor holds, but with none of its work
(no inbox, no validation, no ordering): the generator should measure the
server, not the client. Messages are real ``Message.encode`` JSON (the server
validates and stores them), built from a template so making them costs little.

The same generator drives our server and ``bare_broker.py``: both answer
HELLO with WELCOME {"pub_port"}, POST with ACK and publish ROOM on the PUB.

Modes (``--mode``):

``fanout``   every sending client keeps ``--window`` messages in flight, in
             POSTs of ``--batch``, for ``--duration`` s; then drains.
``latency``  client 0 posts one message per POST at ``--rate``/s; every
             subscribed client times its arrival on the SUB (and the ACK).
``fetch``    client 0 asks with FETCH for its rooms from 0 (then from the last number
             it got) until it holds ``--count`` messages: catch-up from the
             server's side, no client work.
``overload`` every sending client posts as fast as its DEALER takes them (no
             window: only ZeroMQ's high-water mark holds it back) for
             ``--duration`` s, then waits up to ``--drain`` s for the ACKs.

``--rooms N`` puts client K in room ``room<K % N>`` (default: all in ``general``);
with ``--spread`` every client is in all N and posts round them in turn.

``--count N`` ends the sending of ``fanout`` once each sender has sent N.

Talks to the parent in JSON lines: prints {"event": "ready"} once every client
is welcomed and every SUB has heard the server, waits for {"cmd": "go"},
prints {"event": "result", ...} and exits.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

import zmq
from common import CommandReader, emit

SIG = b"L93\x02"  # protocol 2: rooms
ROOM = "general"  # every client's room unless --rooms says otherwise
TEMPLATE = (
    '{"v":2,"id":"%s%s%012x","from":"%s","to":null,"room":"%s","subject":null,'
    '"content":"%s","sent_at":"%s","origin":"%s","seq":%d}'
)


@dataclass
class Client:
    index: int
    user: str
    node: str
    dealer: zmq.Socket
    sub: zmq.Socket | None = None
    curve: str | None = None  # the key dir, when the server runs --secure
    pub_port: int = 0
    sent: int = 0
    acked: int = 0
    rejected: int = 0
    inflight: int = 0
    received: int = 0
    heard: bool = False
    errors: list[str] = field(default_factory=list)
    salt: str = field(default_factory=lambda: secrets.token_hex(4))
    rooms: list[str] = field(default_factory=lambda: [ROOM])  # posts go round them in turn

    def payload(self, prefix: str, content: str, sent_at: str) -> bytes:
        room = self.rooms[self.sent % len(self.rooms)]
        self.sent += 1
        seq = self.sent
        return (
            TEMPLATE % (prefix, self.salt, seq, self.user, room, content, sent_at, self.node, seq)
        ).encode()


def rooms_of(number: int, rooms: int, spread: bool) -> list[str]:
    """Client ``number``'s rooms: ``general`` (``rooms`` 0); with ``spread`` all of
    ``room00`` .. (posting round them); else the one room ``number % rooms``."""
    if not rooms:
        return [ROOM]
    if spread:
        return [f"room{n:02d}" for n in range(rooms)]
    return [f"room{number % rooms:02d}"]


def curve(sock: zmq.Socket, directory: str, number: int) -> None:
    """Make ``sock`` a CURVE client as ``bench<number>`` of the server in ``directory``."""
    import zmq.auth

    server, _ = zmq.auth.load_certificate(f"{directory}/server.key")
    public, secret = zmq.auth.load_certificate(f"{directory}/bench{number}.key_secret")
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = server


def hello(clients: list[Client], host: str, timeout: float) -> None:
    for c in clients:
        header = {"user": c.user, "node": c.node, "software": "lab93-bench", "rooms": c.rooms}
        c.dealer.send_multipart([SIG, b"HELLO", json.dumps(header).encode()])
    poller = zmq.Poller()
    for c in clients:
        poller.register(c.dealer, zmq.POLLIN)
    waiting = {c.dealer: c for c in clients}
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for sock, _ in poller.poll(200):
            frames = sock.recv_multipart()
            if len(frames) >= 3 and frames[1] == b"WELCOME" and sock in waiting:
                c = waiting.pop(sock)
                c.pub_port = json.loads(frames[2])["pub_port"]
    if waiting:
        raise RuntimeError(f"{len(waiting)} clients got no WELCOME within {timeout:g} s")


def join_feeds(ctx: zmq.Context, clients: list[Client], host: str, timeout: float) -> None:
    poller = zmq.Poller()
    for c in clients:
        c.sub = ctx.socket(zmq.SUB)
        c.sub.linger = 0
        c.sub.rcvhwm = 0  # the generator must never be the one that drops
        for room in c.rooms:  # the rooms' topics
            c.sub.setsockopt(zmq.SUBSCRIBE, SIG + b"#" + room.encode() + b"\n")
        if c.curve:
            curve(c.sub, c.curve, c.index)
        c.sub.connect(f"tcp://{host}:{c.pub_port}")
        poller.register(c.sub, zmq.POLLIN)
    by_sock = {c.sub: c for c in clients}
    deadline = time.monotonic() + timeout
    next_ping = 0.0
    while not all(c.heard for c in clients) and time.monotonic() < deadline:
        if time.monotonic() >= next_ping:
            ping(clients)
            next_ping = time.monotonic() + 1.0
        for sock, _ in poller.poll(100):
            while sock.poll(0):
                sock.recv_multipart()
            by_sock[sock].heard = True
    if not all(c.heard for c in clients):
        raise RuntimeError(f"the room feed stayed silent for {timeout:g} s")


def ping(clients: list[Client]) -> None:
    for c in clients:
        try:
            c.dealer.send_multipart([SIG, b"PING", b"{}"], zmq.NOBLOCK)
        except zmq.Again:
            pass


def on_dealer(c: Client, frames: list, acks: deque | None, now_ns: int, ack_lat: list) -> None:
    name = frames[1].bytes
    if name == b"ACK":
        header = json.loads(frames[2].bytes)
        n = header["n"] if "n" in header else len(header["items"])
        c.inflight -= n
        c.acked += n
        if acks is not None:
            for _ in range(n):
                if acks:
                    ack_lat.append(now_ns - acks.popleft())
    elif name == b"REJECT":
        n = len(json.loads(frames[2].bytes)["items"])
        c.inflight -= n
        c.rejected += n
    elif name in (b"ERROR", b"BYE"):
        c.errors.append(frames[2].bytes.decode(errors="replace")[:200])


def run(args: argparse.Namespace, ctx: zmq.Context, clients: list[Client]) -> dict:
    senders = clients[: args.senders]
    listeners = clients[: args.subscribers]
    poller = zmq.Poller()
    kind: dict[zmq.Socket, tuple[bool, Client]] = {}
    for c in clients:
        poller.register(c.dealer, zmq.POLLIN)
        kind[c.dealer] = (True, c)
    for c in listeners:
        assert c.sub is not None
        poller.register(c.sub, zmq.POLLIN)
        kind[c.sub] = (False, c)
    for c in clients[args.subscribers :]:
        assert c.sub is not None
        c.sub.close(0)
        c.sub = None
    prefix = f"{int(time.time() * 1000):012x}"
    sent_at = time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())
    content = "x" * args.content
    latency = args.mode == "latency"
    overload = args.mode == "overload"
    send_times: dict[str, int] = {}
    acks: deque | None = deque() if latency else None
    ack_lat: list[int] = []
    deliver_lat: list[int] = []
    interval = 1.0 / args.rate if latency else 0.0
    t0 = time.monotonic()
    stop_send = t0 + args.duration
    hard_end = stop_send + args.drain
    next_send = t0
    next_ping = t0 + 1.0
    last_rx = t0
    last_ack = t0
    again = 0
    timed_out = False
    first_rx = None
    while True:
        now = time.monotonic()
        if now < stop_send:
            if latency:
                if now >= next_send:
                    c = senders[0]
                    data = c.payload(prefix, content, sent_at)
                    t_ns = time.monotonic_ns()
                    c.dealer.send_multipart([SIG, b"POST", b"{}", data])
                    send_times[json.loads(data)["id"]] = t_ns
                    acks.append(t_ns)
                    c.inflight += 1
                    next_send += interval
            else:
                for c in senders:
                    for _ in range(args.max_burst):
                        batch = args.batch
                        if args.count:
                            batch = min(batch, args.count - c.sent)
                        if batch <= 0 or (not overload and c.inflight + batch > args.window):
                            break
                        frames = [SIG, b"POST", b"{}"]
                        frames += [c.payload(prefix, content, sent_at) for _ in range(batch)]
                        try:
                            c.dealer.send_multipart(frames, zmq.NOBLOCK)
                        except zmq.Again:
                            c.sent -= batch  # never left: take the numbers back
                            again += 1
                            break
                        c.inflight += batch
                if args.count and all(c.sent >= args.count for c in senders):
                    stop_send = now
                    hard_end = stop_send + args.drain
        else:
            settled = all(c.inflight <= 0 for c in senders)
            if settled and now - last_rx >= args.quiet:
                break
            if now >= hard_end:
                timed_out = True
                break
        if now >= next_ping:
            ping(clients)
            next_ping = now + 1.0
        if latency and now < stop_send:
            wait_ms = max(0, int((next_send - time.monotonic()) * 1000))
        elif now < stop_send:
            wait_ms = 0 if overload else 50
        else:
            wait_ms = 50
        for sock, _ in poller.poll(wait_ms):
            is_dealer, c = kind[sock]
            for _ in range(64):
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                if is_dealer:
                    acked = c.acked
                    on_dealer(c, frames, acks, time.monotonic_ns(), ack_lat)
                    if c.acked != acked:
                        last_ack = time.monotonic()
                    continue
                if len(frames) > 3 and frames[1].bytes == b"ROOM":
                    c.received += len(frames) - 3
                    last_rx = time.monotonic()
                    if first_rx is None:
                        first_rx = last_rx
                    if latency:
                        t_ns = time.monotonic_ns()
                        for frame in frames[3:]:
                            sent = send_times.get(json.loads(frame.bytes)["id"])
                            if sent is not None:
                                deliver_lat.append(t_ns - sent)
    for c in clients:
        try:
            c.dealer.send_multipart([SIG, b"BYE", b"{}"], zmq.NOBLOCK)
        except zmq.Again:
            pass
    return {
        "event": "result",
        "t0": t0,
        "stop_send": stop_send,
        "first_rx": first_rx,
        "last_rx": last_rx,
        "last_ack": last_ack,
        "sent": sum(c.sent for c in senders),
        "acked": sum(c.acked for c in senders),
        "rejected": sum(c.rejected for c in senders),
        "received": [c.received for c in listeners],
        # Per room (a client in one room only): what its senders got acked, who listens.
        "acked_by_room": {room: sum(c.acked for c in senders if c.rooms == [room])
                          for room in {c.rooms[0] for c in clients if len(c.rooms) == 1}},
        "listeners_by_room": {room: sum(1 for c in listeners if c.rooms == [room])
                              for room in {c.rooms[0] for c in clients if len(c.rooms) == 1}},
        "again": again,
        "timed_out": timed_out,
        "errors": [e for c in clients for e in c.errors][:10],
        "ack_ns": ack_lat,
        "deliver_ns": deliver_lat,
    }


def fetch(args: argparse.Namespace, c: Client) -> dict:
    """Catch-up as the server serves it: FETCH after FETCH until ``--count`` messages came."""
    got, after, rounds = 0, 0, 0
    t0 = time.monotonic()
    deadline = t0 + args.drain
    while got < args.count and time.monotonic() < deadline:
        # A BATCH is complete up to its last seq in every named room: all resume there.
        header = {"rooms": {name: {"after": after} for name in c.rooms}, "dm": 0, "limit": 500}
        c.dealer.send_multipart([SIG, b"FETCH", json.dumps(header).encode()])
        rounds += 1
        while time.monotonic() < deadline:
            if not c.dealer.poll(1000):
                continue
            frames = c.dealer.recv_multipart(copy=False)
            if frames[1].bytes != b"BATCH":
                continue
            reply = json.loads(frames[2].bytes)
            got += len(frames) - 3
            if reply["items"]:
                after = reply["items"][-1][0]
            break
        else:
            break
        if not reply.get("more") and not reply["items"]:
            break
    return {"event": "result", "t0": t0, "t1": time.monotonic(), "got": got, "rounds": rounds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--first", type=int, default=0, help="number of the first client")
    parser.add_argument("--senders", type=int, default=None)
    parser.add_argument("--subscribers", type=int, default=None)
    parser.add_argument(
        "--mode", choices=("fanout", "latency", "overload", "fetch"), default="fanout"
    )
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--sndhwm", type=int, default=0, help="DEALER send queue (0: default)")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--drain", type=float, default=10.0)
    parser.add_argument("--quiet", type=float, default=0.5)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--max-burst", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--content", type=int, default=40, help="content length in bytes")
    parser.add_argument(
        "--rooms", type=int, default=0,
        help="0: every client in general; N: client K in room K %% N (room00 ..)",
    )
    parser.add_argument(
        "--spread", action="store_true",
        help="with --rooms N: every client in all N, posting round them",
    )
    parser.add_argument(
        "--curve", default=None, help="CURVE: dir with server.key and benchN.key_secret files"
    )
    args = parser.parse_args()
    if args.senders is None:
        args.senders = args.clients
    if args.subscribers is None:
        args.subscribers = args.clients
    if args.host not in ("127.0.0.1", "localhost"):
        raise SystemExit("the load generator talks to loopback only")
    commands = CommandReader()
    ctx = zmq.Context()
    clients = []
    try:
        for i in range(args.clients):
            dealer = ctx.socket(zmq.DEALER)
            dealer.linger = 0
            if args.sndhwm:
                dealer.sndhwm = args.sndhwm
            number = args.first + i
            if args.curve:
                curve(dealer, args.curve, number)
            dealer.connect(f"tcp://{args.host}:{args.port}")
            clients.append(
                Client(number, f"bench{number}", secrets.token_hex(16), dealer, curve=args.curve,
                       rooms=rooms_of(number, args.rooms, args.spread))
            )
        hello(clients, args.host, 20.0)
        join_feeds(ctx, clients, args.host, 10.0)
        emit(event="ready", pid_time=time.monotonic())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            command = commands.next(0.5)
            if command is not None and command.get("cmd") == "go":
                break
            if commands.closed:
                return
            ping(clients)
        else:
            return
        if args.mode == "fetch":
            emit(**fetch(args, clients[0]))
        else:
            emit(**run(args, ctx, clients))
    except Exception as error:  # report, so the parent names the cause
        emit(event="error", error=f"{type(error).__name__}: {error}")
    finally:
        for c in clients:
            c.dealer.close(0)
            if c.sub is not None:
                c.sub.close(0)
        ctx.term()


if __name__ == "__main__":
    main()
