"""React to the messages of one room: print each alert and count them by subject.

    python examples/alert_listener.py --room alerts --address 127.0.0.1 --port 5190

A program that only listens: it joins one room, and for every message there
(the ones it missed while it was away first, then live ones) it prints a line
and runs its reaction. Here the reaction is a count per subject; a real one
would page someone. ``--count N`` stops after N messages (for scripts and
tests); Ctrl-C stops it too.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import lab93zmq


def react(message: lab93zmq.Message, seen: Counter[str]) -> None:
    subject = message.subject or "(no subject)"
    seen[subject] += 1
    stamp = message.sent_at.astimezone().strftime("%H:%M:%S")
    print(f"[{stamp}] ALERT #{message.room} from {message.sender} [{subject}]"
          f" {message.content} (#{seen[subject]} of its kind)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="React to the messages of one lab93 room.")
    parser.add_argument("--room", default="alerts")
    parser.add_argument("--address", default=None)
    parser.add_argument("--port", type=int, default=5190)
    parser.add_argument("--interface", action="append", default=None)
    parser.add_argument("--beacon-port", type=int, default=5190)
    parser.add_argument("--db", default=None)
    parser.add_argument("--user", default="alerts-bot")
    parser.add_argument("--count", type=int, default=None, help="stop after N messages")
    args = parser.parse_args(argv)
    seen: Counter[str] = Counter()
    try:
        with lab93zmq.Node.repeater(
            address=args.address, port=args.port, user=args.user, interfaces=args.interface,
            beacon_port=args.beacon_port, db=args.db, rooms=[args.room],
        ) as node:
            for message in node:
                if message.room != args.room:
                    continue  # a direct message to the bot: not an alert
                react(message, seen)
                if args.count is not None and sum(seen.values()) >= args.count:
                    break
    except KeyboardInterrupt:
        return 130
    except lab93zmq.Lab93Error as error:
        print(f"alert_listener: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
