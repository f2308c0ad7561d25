"""A program on the Python API, for the ``api`` bench item (a child process).

``send``: lab93zmq.Node.repeater, then ``--count`` calls of ``node.send`` (one
message each, as a program would write it) and one ``node.flush``; then as many
again through ``node.send_many`` in bursts of 100 (what a pipeline does) and a
``flush``.
``receive``: lab93zmq.Node.repeater, iterating until ``--count`` messages
arrived. Talks JSON lines like loadgen.py: {"event": "ready"}, waits for
{"cmd": "go"}, then {"event": "result", ...}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CommandReader, emit  # noqa: E402

import lab93zmq  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("send", "receive"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--beacon-port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--user", default="apibench")
    args = parser.parse_args()
    commands = CommandReader()
    with lab93zmq.Node.repeater(
        address="127.0.0.1", port=args.port, user=args.user, interfaces=["lo"],
        beacon_port=args.beacon_port, db=args.db, listen=args.mode == "receive",
    ) as node:
        if args.mode == "receive":
            node.who()  # connected (answered by the server) before we say ready
        emit(event="ready")
        while (command := commands.next(60)) is not None and command.get("cmd") != "go":
            pass
        cpu = time.process_time()
        if args.mode == "send":
            start = time.perf_counter()
            for number in range(args.count):
                node.send(f"api bench message {number}")
            undelivered = len(node.flush(timeout=60))
            seconds = time.perf_counter() - start
            one_cpu, cpu = time.process_time() - cpu, time.process_time()
            start = time.perf_counter()
            for first in range(0, args.count, 100):
                node.send_many([node.draft(f"api bench burst {n}")
                                for n in range(first, min(first + 100, args.count))])
            undelivered += len(node.flush(timeout=60))
            burst_seconds = time.perf_counter() - start
            emit(event="result", seconds=seconds, count=args.count, undelivered=undelivered,
                 cpu=one_cpu, burst_seconds=burst_seconds, burst_cpu=time.process_time() - cpu)
            return
        first = last = None
        got = 0
        for _ in node:
            now = time.perf_counter()
            first = first or now
            last = now
            got += 1
            if got == args.count:
                break
        emit(event="result", seconds=(last or 0) - (first or 0), count=got,
             cpu=time.process_time() - cpu, last_at=time.monotonic())


if __name__ == "__main__":
    main()
