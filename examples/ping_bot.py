"""An asyncio bot that answers ``!ping`` in a room with ``pong``.

    python examples/ping_bot.py --room general --address 127.0.0.1 --port 5190

Runs on ``lab93zmq.aio``: one event loop, nothing blocking it. For each
message in its room that is exactly ``!ping`` (from someone else), it answers
``pong <name>`` in the same room; ``!time`` gets the time. ``--answers N``
stops after N answers (for scripts and tests).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime

import lab93zmq
from lab93zmq import aio


def answer_to(message: lab93zmq.Message, me: str) -> str | None:
    """What the bot says to ``message`` (None: nothing)."""
    if message.sender == me or message.room is None:
        return None
    text = message.content.strip()
    if text == "!ping":
        return f"pong {message.sender}"
    if text == "!time":
        return f"{message.sender}: it is {datetime.now().astimezone():%H:%M:%S %Z}"
    return None


async def run(args: argparse.Namespace) -> int:
    answers = 0
    async with aio.Node.repeater(
        address=args.address, port=args.port, user=args.user, interfaces=args.interface,
        beacon_port=args.beacon_port, db=args.db, rooms=[args.room],
    ) as bot:
        async for message in bot:
            reply = answer_to(message, bot.user)
            if reply is None:
                continue
            await bot.send(reply, room=message.room)
            answers += 1
            if args.answers is not None and answers >= args.answers:
                break
        await bot.flush(timeout=10)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Answer !ping in a lab93 room.")
    parser.add_argument("--room", default="general")
    parser.add_argument("--address", default=None)
    parser.add_argument("--port", type=int, default=5190)
    parser.add_argument("--interface", action="append", default=None)
    parser.add_argument("--beacon-port", type=int, default=5190)
    parser.add_argument("--db", default=None)
    parser.add_argument("--user", default="pingbot")
    parser.add_argument("--answers", type=int, default=None, help="stop after N answers")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130
    except lab93zmq.Lab93Error as error:
        print(f"ping_bot: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
