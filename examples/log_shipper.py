"""Ship a log file into a room, line by line, exactly once across restarts.

    python examples/log_shipper.py app.log --room ops --address 127.0.0.1 --port 5190

Each line becomes one message in the room, with the file's name as its
subject. How far it got is kept beside the file (``app.log.shipped``): the
offset of the next line, and the id of a line on its way. A line's id is
written down *before* it is sent and the offset moved only after ``send``
returned (the message is then in the node's outbox), so a shipper killed at
any moment and started again sends the line on its way again under the same
id: every node keeps one message per id, so it arrives once.

With ``--follow`` it keeps reading as the file grows (like ``tail -f``), until
interrupted; without, it stops at the end of the file, waits until everything
is delivered and exits (1 if something is not delivered yet: it is kept and
goes out next time).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import lab93zmq

POLL = 0.5  # seconds between looks at a followed file that did not grow


def load(state: Path) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = json.loads(state.read_text())
        return loaded
    except FileNotFoundError:
        return {"offset": 0, "pending": None}


def save(state: Path, value: dict[str, Any]) -> None:
    """Write the state durably: a new file, flushed to disk, renamed over the old one."""
    temporary = state.with_name(state.name + ".new")
    with open(temporary, "w") as out:
        json.dump(value, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, state)


def ship(node: lab93zmq.Node, path: Path, follow: bool) -> int:
    """Send every line past the saved offset; the number of lines sent."""
    state_file = path.with_name(path.name + ".shipped")
    state = load(state_file)
    sent = 0
    with open(path, "rb") as log:
        log.seek(state["offset"])
        while True:
            start = log.tell()
            raw = log.readline()
            if not raw.endswith(b"\n"):  # the end for now (a line still being written)
                log.seek(start)
                if not follow:
                    return sent
                time.sleep(POLL)
                continue
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            pending = state.get("pending")
            if pending is not None and pending["offset"] == start:
                message_id = pending["id"]  # on its way when we stopped: the same id again
            else:
                message_id = lab93zmq.message_id()
                save(state_file, {"offset": start, "pending": {"id": message_id, "offset": start}})
            if line.strip():
                node.send(line, subject=path.name, id=message_id)
                sent += 1
            state = {"offset": log.tell(), "pending": None}
            save(state_file, state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ship a log file into a lab93 room.")
    parser.add_argument("file", type=Path)
    parser.add_argument("--room", default="logs")
    parser.add_argument("--address", default=None, help="the repeater (default: find one)")
    parser.add_argument("--port", type=int, default=5190)
    parser.add_argument("--interface", action="append", default=None)
    parser.add_argument("--beacon-port", type=int, default=5190)
    parser.add_argument("--db", default=None, help="the shipper's inbox")
    parser.add_argument("--user", default="shipper")
    parser.add_argument("--follow", action="store_true")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    try:
        with lab93zmq.Node.repeater(
            address=args.address, port=args.port, user=args.user, interfaces=args.interface,
            beacon_port=args.beacon_port, db=args.db, rooms=[args.room], listen=False,
        ) as node:
            sent = ship(node, args.file, args.follow)
            undelivered = node.flush(timeout=args.timeout)
    except KeyboardInterrupt:
        return 130
    except lab93zmq.Lab93Error as error:
        print(f"log_shipper: {error}", file=sys.stderr)
        return 1
    if undelivered:
        print(f"log_shipper: {len(undelivered)} of {sent} lines not delivered yet; they are"
              " kept in the outbox and go out next time", file=sys.stderr)
        return 1
    print(f"log_shipper: shipped {sent} lines of {args.file}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
