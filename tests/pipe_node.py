"""A broadcast node driven over its actor's pipe from stdin and stdout, as a process.

For tests that run nodes where an in-process actor cannot go (a network namespace)
and need what the command line does not give yet (posting to several rooms):

    python tests/pipe_node.py '{"user": ..., "db": ..., "interface": ..., "address": ...,
                                "beacon_port": ..., "rooms": [...]}'

stdin, one JSON object a line: ``{"post": TEXT, "room": ROOM}`` posts; any request of
the pipe contract as ``{"request": KIND, ...body}``; end of input stops the node.
stdout, one JSON object a line: every event, ``{"kind": KIND, "body": {...}}``.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import zmq

from lab93zmq.core.authoring import Draft
from lab93zmq.core.message import make_id
from lab93zmq.io.actor import ActorHandle, PipeKind
from lab93zmq.io.broadcast_actor import BroadcastActor
from lab93zmq.io.config import NodeConfig


def main(settings: dict) -> int:
    config = NodeConfig(
        user=settings["user"],
        db_path=Path(settings["db"]),
        address=settings["address"],
        port=0,
        interfaces=(settings["interface"],),
        beacon_port=int(settings["beacon_port"]),
        beacon_interval=float(settings.get("interval", 1.0)),
        rooms=tuple(settings["rooms"]),
    )
    handle = ActorHandle(BroadcastActor(config))
    handle.start()
    say({"kind": "ready", "body": {"node_id": handle.node_id}})
    stdin = sys.stdin.fileno()
    poller = zmq.Poller()
    poller.register(handle.pipe, zmq.POLLIN)
    poller.register(stdin, zmq.POLLIN)
    pending = b""  # read from stdin, not a whole line yet
    try:
        while True:
            for item, _ in poller.poll(1000):
                if item is handle.pipe:
                    # Every message now: one frame may stand for several (a batch).
                    while (event := handle.poll(0)) is not None:
                        say({"kind": event.kind.value, "body": event.body})
                    continue
                data = os.read(stdin, 65536)  # never a buffered readline: poll sees the fd
                if not data:
                    return 0
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    order(handle, json.loads(line))
    finally:
        handle.stop(on_event=lambda event: say({"kind": event.kind.value, "body": event.body}))


def order(handle: ActorHandle, request: dict) -> None:
    """One line of stdin: a post, or any request of the pipe contract."""
    if "post" in request:
        sent_at = datetime.now(timezone.utc)
        draft = Draft(make_id(sent_at, os.urandom(10)), request["post"], None, None, sent_at,
                      request.get("room"))
        handle.request(PipeKind.POST, **draft.body())
    else:
        kind = PipeKind(request.pop("request"))
        handle.request(kind, **request)


def say(event: dict) -> None:
    print(json.dumps(event), flush=True)


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
