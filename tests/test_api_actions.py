"""Actions (/me) and the outbox through the Python API, on real sockets (loopback):
what the terminal's /me and /outbox are built on."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest

import lab93zmq
from lab93zmq import aio
from lab93zmq.core.authoring import Draft
from lab93zmq.core.errors import MessageError
from lab93zmq.core.message import ACTION
from lab93zmq.io.store import Inbox

pytestmark = pytest.mark.timeout(60)


def client(server, tmp_path, user, **options):
    return lab93zmq.Node.repeater(
        address="127.0.0.1", port=server.router_port, user=user, interfaces=["lo"],
        beacon_port=server.config.beacon_port, db=tmp_path / f"{user}.db", **options,
    )


def test_a_draft_carries_its_kind_over_the_pipe_and_only_an_action():
    at = datetime(2026, 11, 24, 20, 1, 2, tzinfo=timezone.utc)
    action = Draft("a" * 32, "waves", None, None, at, "ops", ACTION)
    assert action.body()["kind"] == "action"
    assert Draft.from_body(action.body()) == action
    assert action.author("alice", "b" * 32, 1).kind == "action"
    chat = Draft("c" * 32, "hello", None, None, at, "ops")
    assert "kind" not in chat.body()  # the pipe form of chat is what it was
    with pytest.raises(MessageError, match="kind"):
        Draft.from_body({**chat.body(), "kind": "topic"})  # a topic is set with TOPIC


def test_an_action_reaches_the_room_and_a_direct_one_its_addressee(server, tmp_path):
    with client(server, tmp_path, "alice") as alice, client(server, tmp_path, "bob") as bob:
        waved = alice.send("waves", action=True)
        assert waved.kind == "action" and waved.room == "general"
        got = bob.receive(timeout=10)
        assert got == waved and got.kind == "action"
        assert json.loads(got.to_json_line())["kind"] == "action"
        nudged = alice.send("nudges bob", to="bob", action=True)
        assert bob.receive(timeout=10) == nudged and nudged.kind == "action"
        # The history people are shown keeps actions (it leaves out only topic messages).
        assert [m.content for m in bob.history(limit=5)] == ["waves", "nudges bob"]


def test_the_outbox_answers_what_the_server_has_not_acknowledged(server, tmp_path):
    port = server.router_port
    with client(server, tmp_path, "alice") as alice:
        alice.send("delivered")
        assert alice.flush(timeout=10) == []
        assert alice.outbox() == []
    server.close()
    with lab93zmq.Node.repeater(address="127.0.0.1", port=port, user="alice",
                                interfaces=["lo"], beacon_port=server.config.beacon_port,
                                db=tmp_path / "alice.db") as alice:
        kept = [alice.send("for the room"), alice.send("psst", to="zed")]
        assert alice.outbox() == kept
    with Inbox(tmp_path / "alice.db") as inbox:
        assert inbox.outbox() == kept


def test_a_broadcast_outbox_holds_the_direct_messages_nobody_took(tmp_path, beacon_port):
    async def run() -> list[lab93zmq.Message]:
        async with aio.Node.broadcast(user="alice", interfaces=["lo"], beacon_port=beacon_port,
                                      db=tmp_path / "alice.db", port=0) as alice:
            await alice.send("to the room")
            waiting = await alice.send("see you tomorrow", to="zed")
            outbox = await alice.outbox()
            assert outbox == [waiting]
            return outbox

    assert [m.to for m in asyncio.run(run())] == ["zed"]
