"""The ceiling: a bare pyzmq broker, ROUTER in, PUB out, no storage, no checks.

It speaks just enough of the repeater's envelope (docs/PROTOCOL.rst) for the
same load generator to drive it and our server alike:

* ``HELLO`` -> ``WELCOME {"pub_port"}``;
* ``POST {} + payloads`` -> the same payload frames published at once as
  ``ROOM {} + payloads`` (zero-copy), then ``ACK {"n": count}`` to the sender;
* a ``TICK`` on the PUB every 0.1 s, so subscribers know they are joined;
* with ``--keep`` only (the catch-up baseline): every payload is also kept in
  a list in memory, and ``FETCH {"rooms": {"general": {"after": N}}, "limit"}`` with
  ``BATCH {"items", "more"}`` and the kept payloads after the N-th;
* anything else is ignored.

No storage, no validation, no numbering: what is left is ZeroMQ and a Python
loop, the fastest a Python broker with the same framing can go.

Run: ``python bench/bare_broker.py PORT [--keep]`` (binds 127.0.0.1 only).
"""

from __future__ import annotations

import json
import signal
import sys
import time

import zmq

SIGNATURE = b"L93\x02"
TOPIC = SIGNATURE + b"#general\n"  # every client of the bench is in general
TICK_EVERY = 0.1


def serve(port: int, keep: bool = False, stop_after: float = 3600.0) -> None:
    """Serve on 127.0.0.1:``port`` until SIGTERM/SIGINT or ``stop_after`` seconds."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    router.router_mandatory = False
    router.bind(f"tcp://127.0.0.1:{port}")
    pub = ctx.socket(zmq.PUB)
    pub.linger = 0
    pub_port = pub.bind_to_random_port("tcp://127.0.0.1")
    welcome = json.dumps({"server": "bare", "pub_port": pub_port}).encode()
    running = [True]

    def stop(*_: object) -> None:
        running[0] = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    end = time.monotonic() + stop_after
    next_tick = 0.0
    tick = [TOPIC, b"TICK", b"{}"]
    kept: list[zmq.Frame] = []
    try:
        while running[0] and time.monotonic() < end:
            now = time.monotonic()
            if now >= next_tick:
                pub.send_multipart(tick)
                next_tick = now + TICK_EVERY
            if not poller.poll(int(TICK_EVERY * 1000)):
                continue
            for _ in range(1000):  # drain what is there, then tick again
                try:
                    frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                if len(frames) < 4:
                    continue
                name = frames[2].bytes
                if name == b"POST":
                    payloads = frames[4:]
                    if keep:
                        kept.extend(payloads)
                    pub.send_multipart([TOPIC, b"ROOM", b"{}", *payloads], copy=False)
                    ack = b'{"n":%d}' % len(payloads)
                    router.send_multipart([frames[0], SIGNATURE, b"ACK", ack], copy=False)
                elif name == b"FETCH" and keep:
                    header = json.loads(frames[3].bytes)
                    start = int(header["rooms"]["general"]["after"] or 0)
                    limit = int(header.get("limit", 500))
                    chunk = kept[start : start + limit]
                    items = [[start + i + 1, start + i] for i in range(len(chunk))]
                    more = start + len(chunk) < len(kept)
                    batch = json.dumps({"items": items, "more": more}).encode()
                    reply = [frames[0], SIGNATURE, b"BATCH", batch, *chunk]
                    router.send_multipart(reply, copy=False)
                elif name == b"HELLO":
                    router.send_multipart([frames[0], SIGNATURE, b"WELCOME", welcome], copy=False)
    finally:
        router.close(0)
        pub.close(0)
        ctx.term()


if __name__ == "__main__":
    serve(int(sys.argv[1]), keep="--keep" in sys.argv[2:])
