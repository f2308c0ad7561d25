"""The floor for pipelines: minimal pyzmq clients of bare_broker.py.

What a shell pipeline into a repeater cannot do without: start Python,
import pyzmq, connect, post every line and see it acknowledged, and a
listener that prints what the room feed carries. Nothing more: no inbox, no
validation, no subscription by the sender, no catch-up. It speaks the
repeater's framing (docs/PROTOCOL.rst) as far as bare_broker.py needs it, and
posts the same kind of message JSON a real client posts (version 2, with a
room), so the bytes on the wire are alike.

Modes (arguments are positional: argparse alone costs a few ms of start-up,
and start-up is part of what is measured):

``send PORT USER``
    Each line of stdin becomes one message; POSTs of up to ``BATCH`` lines,
    at most ``WINDOW`` messages unacknowledged (the real client's batch and
    window). At end of input, waits until every message is acknowledged;
    exits 0, or 1 when ``DEADLINE`` s passed first.
``listen PORT``
    HELLO, then the SUB on the PUB port from WELCOME; writes every payload of
    every ROOM as one line on stdout, until SIGTERM.
``once PORT USER TEXT``
    One POST of one message, waits for its ACK, exits (0, or 1 after
    ``DEADLINE`` s): the smallest DEALER round trip a ``--send`` could be.

Loopback only: the host is always 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid

import zmq

SIG = b"L93\x01"
HOST = "127.0.0.1"
BATCH = 100
WINDOW = 1000
DEADLINE = 60.0
TEMPLATE = (
    '{"v":2,"id":"%s","from":"%s","to":null,"room":"general","subject":null,'
    '"content":"%s","sent_at":"%s","origin":"%s","seq":%d}'
)


class Poster:
    """One DEALER that posts messages and counts their ACKs."""

    def __init__(self, ctx: zmq.Context, port: int, user: str) -> None:
        self.dealer = ctx.socket(zmq.DEALER)
        self.dealer.linger = 0
        self.dealer.connect(f"tcp://{HOST}:{port}")
        self.user = user
        self.origin = uuid.uuid4().hex
        self.sent_at = time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())
        self.sent = 0
        self.acked = 0

    def payload(self, text: str) -> bytes:
        self.sent += 1
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        fields = (uuid.uuid4().hex, self.user, escaped, self.sent_at, self.origin, self.sent)
        return (TEMPLATE % fields).encode()

    def post(self, lines: list[str]) -> None:
        frames = [SIG, b"POST", b"{}", *(self.payload(line) for line in lines)]
        self.dealer.send_multipart(frames)

    def take_acks(self) -> None:
        """Every ACK that is there now (non-blocking)."""
        while True:
            try:
                frames = self.dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) >= 3 and frames[1] == b"ACK":
                head = frames[2]
                self.acked += int(head[head.index(b":") + 1 : head.rindex(b"}")])


def send(port: int, user: str) -> int:
    ctx = zmq.Context()
    poster = Poster(ctx, port, user)
    stdin = sys.stdin.fileno()
    poller = zmq.Poller()
    poller.register(poster.dealer, zmq.POLLIN)
    poller.register(stdin, zmq.POLLIN)
    waiting: list[str] = []  # read, not yet posted (the window was full)
    rest = b""
    eof = False
    paused = False  # stdin unregistered while WINDOW lines wait: back-pressure on the pipe
    deadline = time.monotonic() + DEADLINE
    try:
        while (not eof or waiting or poster.acked < poster.sent) and time.monotonic() < deadline:
            for sock, _ in poller.poll(1000):
                if sock is poster.dealer:
                    poster.take_acks()
                    continue
                chunk = os.read(stdin, 1 << 16)
                if not chunk:
                    eof = True
                    poller.unregister(stdin)
                    if rest:
                        waiting.append(rest.decode("utf-8", "replace"))
                    continue
                *lines, rest = (rest + chunk).split(b"\n")
                waiting += [line.decode("utf-8", "replace") for line in lines]
            while waiting and poster.sent - poster.acked + BATCH <= WINDOW:
                batch, waiting = waiting[:BATCH], waiting[BATCH:]
                poster.post(batch)
            if not eof:
                full = len(waiting) >= WINDOW
                if full and not paused:
                    poller.unregister(stdin)
                elif paused and not full:
                    poller.register(stdin, zmq.POLLIN)
                paused = full
        return 0 if eof and not waiting and poster.acked >= poster.sent else 1
    finally:
        poster.dealer.close(0)
        ctx.term()


def listen(port: int) -> int:
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(f"tcp://{HOST}:{port}")
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.rcvhwm = 0  # the floor must never be the one that drops
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    out = sys.stdout.buffer
    try:
        dealer.send_multipart([SIG, b"HELLO", b'{"user":"floor"}'])
        if not dealer.poll(DEADLINE * 1000):
            print("pipe_client listen: no WELCOME", file=sys.stderr)
            return 1
        welcome = dealer.recv_multipart()[2]
        pub_port = int(welcome[welcome.index(b'"pub_port":') + 11 :].split(b"}")[0])
        sub.connect(f"tcp://{HOST}:{pub_port}")
        while running[0]:
            if not sub.poll(200):
                continue
            for _ in range(1000):
                try:
                    frames = sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if len(frames) > 3 and frames[1] == b"ROOM":
                    out.write(b"".join(frame + b"\n" for frame in frames[3:]))
                    out.flush()
        return 0
    finally:
        dealer.close(0)
        sub.close(0)
        ctx.term()


def once(port: int, user: str, text: str) -> int:
    ctx = zmq.Context()
    poster = Poster(ctx, port, user)
    try:
        poster.post([text])
        deadline = time.monotonic() + DEADLINE
        while poster.acked < 1 and time.monotonic() < deadline:
            if poster.dealer.poll(1000):
                poster.take_acks()
        return 0 if poster.acked >= 1 else 1
    finally:
        poster.dealer.close(0)
        ctx.term()


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "send":
        return send(int(argv[1]), argv[2])
    if len(argv) >= 2 and argv[0] == "listen":
        return listen(int(argv[1]))
    if len(argv) >= 4 and argv[0] == "once":
        return once(int(argv[1]), argv[2], argv[3])
    print("usage: pipe_client.py send PORT USER | listen PORT | once PORT USER TEXT",
          file=sys.stderr)  # fmt: skip
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
