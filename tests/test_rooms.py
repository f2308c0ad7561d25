"""Room names (pure) and rooms in the inbox: per-room numbering, the 0.1.0 migration."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from factories import NODE_A, NODE_B, T0, make_message

from lab93zmq.core.inbox import RoomState
from lab93zmq.core.message import Message, make_id
from lab93zmq.core.rooms import DEFAULT_ROOM, RoomError, check_room, room_name, shown
from lab93zmq.io.store import SCHEMA_VERSION, Inbox

OLD_INBOX = Path(__file__).parent / "data" / "inbox-0.1.0.db"


@pytest.mark.parametrize(
    "typed, name",
    [("ops", "ops"), ("#ops", "ops"), ("#Ops", "ops"), (" general ", "general"),
     ("a.b-c_9", "a.b-c_9"), ("9lives", "9lives"), ("x" * 32, "x" * 32)],
)
def test_room_names_fold_to_one_form(typed, name):
    assert room_name(typed) == name
    assert shown(name) == f"#{name}"


@pytest.mark.parametrize(
    "typed", ["", "#", "-ops", ".ops", "_ops", "o ps", "ops!", "x" * 33, "##ops", "öps", 7, None]
)
def test_what_is_not_a_room_name_is_refused_with_the_rule(typed):
    with pytest.raises(RoomError) as caught:
        room_name(typed)
    assert "is not a room name: 1 to 32 letters a-z" in str(caught.value)


def test_the_wire_form_is_strict():
    assert check_room("ops") == "ops"
    for text in ("#ops", "Ops"):
        with pytest.raises(RoomError):
            check_room(text)
    assert DEFAULT_ROOM == "general"


def room_message(seq, room, origin=NODE_A, content=None):
    entropy = bytes.fromhex(origin[:8]) + seq.to_bytes(4, "big") + room.encode()[:2].ljust(2, b"-")
    return Message(make_id(T0, entropy), "alice", None, None, content or f"{room} {seq}", T0,
                   origin, seq, room=room)


def test_each_room_of_an_origin_is_numbered_apart(tmp_path):
    with Inbox(tmp_path / "inbox.db") as inbox:
        for message in (room_message(1, "ops"), room_message(2, "ops"), room_message(1, "general"),
                        room_message(4, "ops")):
            assert inbox.save(message)
        assert inbox.next_origin_seq(NODE_A, direct=False, room="ops") == 5
        assert inbox.next_origin_seq(NODE_A, direct=False) == 2  # general
        assert inbox.next_origin_seq(NODE_A, direct=False, room="dev") == 1
        assert inbox.origin_marks("ops") == {NODE_A: 2}  # 4 is past a hole
        assert inbox.origin_marks() == {NODE_A: 1}
        later = inbox.origin_after(NODE_A, 1, 10, room="ops")
        assert [m.content for m in later] == ["ops 2", "ops 4"]
        assert [m.room for m in inbox.history()] == ["ops", "ops", "general", "ops"]


def test_an_inbox_written_by_0_1_0_opens_with_its_room_in_general(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(OLD_INBOX, path)
    with Inbox(path) as inbox:
        assert inbox.node_id == "93" * 16  # the node id is kept
        history = inbox.history()
        assert len(history) == 7
        rooms = {m.content: m.room for m in history}
        assert rooms["hello from 0.1.0"] == "general" and rooms["pizza?"] == "general"
        assert rooms["psst, carol"] is None and rooms["a direct message to alice"] is None
        # Numbering goes on where 0.1.0 left off, in general and for direct messages.
        assert inbox.next_origin_seq(inbox.node_id, direct=False) == 4
        assert inbox.next_origin_seq(inbox.node_id, direct=True) == 2
        assert inbox.origin_marks() == {inbox.node_id: 3, NODE_B: 2}
        assert [m.content for m in inbox.outbox()] == ["psst, carol"]
        assert inbox.get_meta("schema_version") == str(SCHEMA_VERSION)
        # 0.1.0 was in its one room all along: it stays in general, caught up in full.
        assert inbox.room_states() == {"general": RoomState(True, False, {})}
        # What it stores from now on lands next to what it had, by room.
        assert inbox.save(room_message(4, "general", origin=inbox.node_id))
        assert inbox.save(room_message(1, "ops", origin=inbox.node_id))
        assert inbox.origin_marks() == {inbox.node_id: 4, NODE_B: 2}
    with Inbox(path) as again:  # opening a migrated inbox changes nothing
        assert len(again.history()) == 9


def test_a_failed_migration_leaves_the_old_file_as_it_was(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(OLD_INBOX, path)
    db = sqlite3.connect(path)
    # A column the migration adds second: the first ALTER succeeds, the second fails.
    db.execute("ALTER TABLE message ADD COLUMN kind TEXT")
    db.commit()
    db.close()
    from lab93zmq.core.errors import StoreError

    with pytest.raises(StoreError):
        Inbox(path)
    db = sqlite3.connect(path)
    columns = [row[1] for row in db.execute("PRAGMA table_info(message)")]
    version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    db.close()
    assert "room" not in columns and version == ("1",)  # the first ALTER was rolled back


def test_old_messages_and_a_direct_message_in_general_are_told_apart():
    assert make_message(1).room == "general" and make_message(1, to="bob").room is None


# -- rooms on the wire: topic frames on a PUB ------------------------------------------


def test_a_published_command_carries_its_room_in_frame_0():
    from lab93zmq.core import wire

    command = wire.Command("TICK", {"room": "ops"})
    frames = command.frames(wire.room_topic("ops"))
    assert frames[0] == b"L93\x02#ops\n" == wire.subscription(wire.room_topic("ops"))
    assert wire.decode_published(frames) == ("ops", command)
    assert wire.decode_published(command.frames(wire.NODE_TOPIC)) == (None, command)
    # A SUB's prefix match: #op's subscription does not match #ops, thanks to the "\n".
    assert not frames[0].startswith(wire.subscription(wire.room_topic("op")))
    assert command.frames()[0] == wire.SIGNATURE  # ROUTER and DEALER: the bare signature


@pytest.mark.parametrize("topic", [b"", b"#ops", b"#\n", b"#Ops\n", b"#o ps\n", b"ops\n", b"**"])
def test_a_published_command_without_a_valid_topic_is_a_protocol_error(topic):
    from lab93zmq.core import wire
    from lab93zmq.core.errors import ProtocolError

    with pytest.raises(ProtocolError):
        wire.decode_published(wire.Command("TICK").frames(topic))
    with pytest.raises(ProtocolError):
        wire.decode_published([])


def test_history_by_room_on_the_command_line(tmp_path):
    import io
    import json

    from lab93zmq.frontend.cli import main
    from lab93zmq.frontend.environment import Environment

    path = tmp_path / "inbox.db"
    with Inbox(path) as inbox:
        inbox.save(room_message(1, "ops", content="deploy at 10"))
        inbox.save(room_message(1, "general", content="lunch?"))
        topic = Message(make_id(T0, b"topic-ops!"), "alice", None, None, "release day", T0,
                        NODE_A, 2, room="ops", kind="topic")
        inbox.save(topic)

    def history(*flags):
        env = Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO())
        assert main(["--history", "--db", str(path), *flags], env) == 0
        return env.stdout.getvalue().splitlines()

    assert [json.loads(x)["content"] for x in history("--room", "#ops", "--json")] == [
        "deploy at 10"]  # the topic message is not a line of the conversation
    both = history()
    assert len(both) == 2 and any("] #ops <alice> deploy at 10" in x for x in both)
    assert any("] #general <alice> lunch?" in x for x in both)
    assert history("--room", "dev") == []


def test_a_room_name_asked_again_is_the_same_and_a_bad_one_stays_bad():
    for _ in range(2):  # the second time from the table of names already found
        assert room_name("#Ops") == "ops" and room_name(" ops ") == "ops"
        with pytest.raises(RoomError):
            room_name("#no such room")
