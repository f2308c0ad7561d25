"""The server's machines on their own: group commit and numbering, replay, commands.

A real inbox in a temporary directory; no sockets, no clock.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from factories import NODE_A, NODE_B, make_message

from lab93zmq.core.errors import ProtocolError
from lab93zmq.core.events import Accepted, Rejected
from lab93zmq.core.repeater.commands import (
    ErrorCode,
    RepeaterVerb,
    numbered,
    refusal_code,
    seq_pair,
)
from lab93zmq.core.repeater.commit import GroupCommit, Post, chains_of, direct_chain, room_chain
from lab93zmq.core.repeater.directory import RoomDirectory
from lab93zmq.core.repeater.outputs import PublishRoom, ReplyTo
from lab93zmq.core.repeater.replay import Replay
from lab93zmq.core.wire import SIGNATURE, Command
from lab93zmq.io.store import Inbox

SERVER = "c" * 32


@pytest.fixture
def inbox(tmp_path):
    with Inbox(tmp_path / "server.db", new_node_id=bytes.fromhex(SERVER)) as box:
        yield box


def post(identity, seq, to=None, author="alice", origin=NODE_A, room=None, kind=None):
    message = make_message(seq, to=to, author=author, origin=origin, room=room, kind=kind)
    return Post(identity, message, message.encode())


def replay_of(inbox, commit, **options):
    directory = RoomDirectory(inbox)
    return Replay(inbox, commit, directory, **options), directory


def general(after=None, tail=None):
    return {"general": {"after": after, "tail": tail}}


def by_kind(outputs):
    replies = [(o.identity, o.command) for o in outputs if isinstance(o, ReplyTo)]
    published = [o.command for o in outputs if isinstance(o, PublishRoom)]
    return replies, published


# -- group commit ------------------------------------------------------------------------


def test_a_flush_numbers_stores_and_only_then_tells(inbox):
    commit = GroupCommit(inbox)
    posts = [post(b"a", 1), post(b"a", 1, to="bob"), post(b"a", 2)]
    for p in posts:
        commit.add(p)
    assert inbox.count() == 0 and commit.pending == 3
    flushed = commit.flush({"alice": [b"a"], "bob": [b"b1", b"b2"]})
    assert (flushed.stored, flushed.duplicates, flushed.refused) == (3, 0, 0)
    assert inbox.count() == 3 and commit.pending == 0
    replies, published = by_kind(flushed.outputs)
    [room] = published
    # prev in the room's chain; on the room's topic
    assert room.header == {"server": SERVER, "room": "general", "items": [[1, 0], [3, 1]]}
    [ack] = [c for i, c in replies if c.name == "ACK"]
    assert ack.header["items"] == [[p.message.id, n] for n, p in enumerate(posts, start=1)]
    delivered = {i: c.header["items"] for i, c in replies if c.name == "DELIVER"}
    # To both of bob's sessions, and to the author's (its prev in alice's own chain).
    assert delivered == {b"b1": [[2, 0]], b"b2": [[2, 0]], b"a": [[2, 0]]}
    assert (commit.head, commit.room_head("general"), commit.dm_head("bob")) == (3, 3, 2)


def test_each_room_is_a_chain_of_its_own_published_on_its_topic(inbox):
    commit = GroupCommit(inbox)
    for p in [post(b"a", 1, room="ops"), post(b"a", 1, room="dev"), post(b"a", 2, room="ops"),
              post(b"a", 1, to="bob"), post(b"a", 2, room="dev")]:
        commit.add(p)
    flushed = commit.flush({})
    rooms = [o for o in flushed.outputs if isinstance(o, PublishRoom)]
    assert [(o.room, o.command.header["room"], o.command.header["items"]) for o in rooms] == [
        ("ops", "ops", [[1, 0], [3, 1]]),
        ("dev", "dev", [[2, 0], [5, 2]]),
    ]
    assert rooms[0].frames()[0] == SIGNATURE + b"#ops\n"  # a SUB of #dev never gets it
    assert all(m.room == "ops" for m in rooms[0].command.messages())
    assert [commit.room_head(r) for r in ("ops", "dev", "general")] == [3, 5, 0]
    assert [n.seq for n in flushed.fresh] == [1, 2, 3, 4, 5]
    again = GroupCommit(inbox)  # a restart reads each chain's head from the inbox
    assert (again.head, again.room_head("ops"), again.room_head("dev")) == (5, 3, 5)
    assert (again.dm_head("bob"), again.dm_head("alice"), again.dm_head("carol")) == (4, 4, 0)


def test_a_resend_is_acknowledged_with_its_first_number(inbox):
    commit = GroupCommit(inbox)
    first = post(None, 1)
    commit.add(first)
    assert commit.flush({}).outputs[0] == Accepted((first.message.id,))
    commit.add(first)
    commit.add(post(b"a", 1))  # the same message from a session
    flushed = commit.flush({})
    assert (flushed.stored, flushed.duplicates) == (0, 2)
    [(identity, ack)] = by_kind(flushed.outputs)[0]
    assert ack.header["items"] == [[first.message.id, 1]]
    assert commit.head == 1


def test_a_refused_post_leaves_no_hole_in_the_numbering(inbox):
    commit = GroupCommit(inbox)
    commit.add(post(b"a", 1))
    commit.flush({})
    # The same origin and origin number as the first, under another id.
    clash = Post(b"a", replace(make_message(1), id="f" * 32), None)
    commit.add(clash)
    commit.add(post(b"a", 2))
    commit.add(post(None, 3))
    flushed = commit.flush({})
    assert (flushed.stored, flushed.refused) == (2, 1)
    replies, published = by_kind(flushed.outputs)
    assert replies[0][1].name == "REJECT" and replies[0][1].header["items"][0][0] == "f" * 32
    assert [items for c in published for items in c.header["items"]] == [[2, 1], [3, 2]]
    assert Accepted((clash.message.id,)) not in flushed.outputs
    assert [o for o in flushed.outputs if isinstance(o, Accepted)] == [
        Accepted((make_message(3).id,))
    ]
    local = Post(None, replace(make_message(1), id="e" * 32), None)
    commit.add(local)
    [refused] = commit.flush({}).outputs
    assert isinstance(refused, Rejected) and refused.reason.startswith("the repeater cannot store")


def test_chains_are_named_per_room_and_per_user():
    assert chains_of(make_message(1)) == [room_chain("general")]
    assert chains_of(make_message(1, room="ops")) == ["#ops"] != [direct_chain("ops")]
    assert chains_of(make_message(1, to="bob")) == [direct_chain("bob"), direct_chain("alice")]
    assert chains_of(make_message(1, to="alice")) == [direct_chain("alice")]


# -- replay ----------------------------------------------------------------------------------


def test_a_new_client_starts_at_the_tail_and_pages_on(inbox):
    commit = GroupCommit(inbox)
    for n in range(1, 8):
        commit.add(post(b"a", n))
    commit.add(post(b"a", 1, to="bob"))
    commit.flush({})
    replay, _ = replay_of(inbox, commit, tail=3, batch_limit=2)
    batch = replay.answer({"rooms": general(tail=100), "dm": 0}, "bob")  # the server's tail: 3
    assert batch.name == "BATCH"
    assert (batch.header["rooms"], batch.header["more"]) == ({"general": 4}, True)  # 3 follow 4
    assert [entry[:1] for entry in numbered(batch)] == [(5,), (6,)]
    rest = replay.answer({"rooms": general(6), "dm": 0, "limit": 50}, "bob")
    assert [(seq, prev) for seq, prev, _ in numbered(rest)] == [(7, 6), (8, 0)]
    assert rest.header["more"] is False
    assert (rest.header["head"], rest.header["heads"], rest.header["dm_head"]) == (
        8, {"general": 7}, 8
    )
    carol = replay.answer({"rooms": general(5), "dm": 0}, "carol")  # bob's dm is not hers
    assert [seq for seq, _, _ in numbered(carol)] == [6, 7] and carol.header["more"] is False
    nowhere = replay.answer({"rooms": {}, "dm": 0}, "bob")  # in no room: its direct ones
    assert [seq for seq, _, _ in numbered(nowhere)] == [8] and nowhere.header["heads"] == {}


def test_a_join_gets_the_tail_of_its_room_only_and_a_rejoin_what_it_lacks(inbox):
    commit = GroupCommit(inbox)
    for n in range(1, 11):  # ops 1..10 are numbered 1, 3, 5, ...; dev 1..10 2, 4, 6, ...
        commit.add(post(b"a", n, room="ops"))
        commit.add(post(b"a", n, room="dev"))
    commit.flush({})
    replay, _ = replay_of(inbox, commit)
    ops = {"ops": {"after": None, "tail": 3}}
    first = replay.answer({"rooms": ops, "dm": 0}, "bob")
    assert first.header["rooms"] == {"ops": 13}  # ops' last 3 are 15, 17, 19
    assert [(s, p, m.room) for s, p, m in numbered(first)] == [
        (15, 13, "ops"), (17, 15, "ops"), (19, 17, "ops")
    ]
    back = {"ops": {"after": 17, "tail": 3}}  # parted at 17: it lacks only 19
    assert [s for s, _, _ in numbered(replay.answer({"rooms": back, "dm": 0}, "bob"))] == [19]
    long_gone = {"ops": {"after": 3, "tail": 3}}  # parted at 3: the last 3, not all since
    assert replay.answer({"rooms": long_gone, "dm": 0}, "bob").header["rooms"] == {"ops": 13}
    both = {"ops": {"after": 17}, "dev": {"after": 16}}
    answer = replay.answer({"rooms": both, "dm": 0}, "bob")
    assert [(s, p) for s, p, _ in numbered(answer)] == [(18, 16), (19, 17), (20, 18)]
    assert answer.header["heads"] == {"ops": 19, "dev": 20}


def test_a_join_gets_the_rooms_topic_even_when_it_is_older_than_the_tail(inbox):
    commit = GroupCommit(inbox)
    commit.add(post(b"a", 1, room="ops", kind="topic"))
    for n in range(2, 6):
        commit.add(post(b"a", n, room="ops"))
    flushed = commit.flush({})
    replay, directory = replay_of(inbox, commit)
    directory.stored(flushed.fresh)
    join = {"rooms": {"ops": {"after": None, "tail": 2}}, "dm": 0}
    batch = replay.answer(join, "bob")
    entries = numbered(batch, outside=True)
    assert [(s, p) for s, p, _ in entries] == [(1, None), (4, 3), (5, 4)]  # the topic: outside
    assert entries[0][2].is_topic and batch.header["rooms"] == {"ops": 3}
    with pytest.raises(ProtocolError):  # only a BATCH may carry one outside its chain
        numbered(batch)
    stay = replay.answer({"rooms": {"ops": {"after": 3}}, "dm": 0}, "bob")
    assert [s for s, _, _ in numbered(stay)] == [4, 5]  # staying in the room: no topic again
    inside = replay.answer({"rooms": {"ops": {"after": None, "tail": 10}}, "dm": 0}, "bob")
    assert [(s, p) for s, p, _ in numbered(inside)][:1] == [(1, 0)]  # in the tail: in order


@pytest.mark.parametrize(
    "header, field",
    [
        ({"rooms": {}}, "'dm'"),
        ({"rooms": {}, "dm": 0, "limit": 0}, "'limit'"),
        ({"rooms": {"general": {"after": -1}}, "dm": 0}, "'after'"),
        ({"rooms": {"general": {}}, "dm": 0}, "'after', 'tail' or both"),
        ({"rooms": {"#ops": {"after": 0}}, "dm": 0}, "'rooms'"),
        ({"rooms": [], "dm": 0}, "'rooms'"),
        ({"rooms": {f"r{n}": {"after": 0} for n in range(257)}, "dm": 0}, "at most 256"),
        ({"rooms": {"general": 5}, "dm": 0}, "each room"),
    ],
)
def test_a_bad_fetch_names_its_field(inbox, header, field):
    commit = GroupCommit(inbox)
    with pytest.raises(ProtocolError, match=field):
        replay_of(inbox, commit)[0].answer(header, "bob")


# -- commands -------------------------------------------------------------------------------


def test_the_verb_enum_names_every_command_and_nothing_else():
    assert RepeaterVerb.of(Command("ACK")) is RepeaterVerb.ACK
    assert RepeaterVerb.of(Command("SHOUT")) is None and RepeaterVerb.of(Command("ack")) is None
    assert RepeaterVerb.PING.command() == Command("PING", {}, ())
    assert refusal_code([b"L93\x09", b"HELLO", b"{}"]) is ErrorCode.VERSION
    assert (
        refusal_code([SIGNATURE]) is ErrorCode.MALFORMED and refusal_code([]) is ErrorCode.MALFORMED
    )


@pytest.mark.parametrize("item", [[1, 1], [0, 0], [2, -1], [2**63, 1], ["2", 1], [True, 0]])
def test_a_numbered_entry_must_go_forward(item):
    with pytest.raises(ProtocolError):
        seq_pair(item)


def test_numbered_entries_must_match_the_payloads():
    message = make_message(1, origin=NODE_B)
    command = RepeaterVerb.ROOM.command({"items": [[1, 0], [2, 1]]}, [message.encode()])
    with pytest.raises(ProtocolError, match="must list 1 entries"):
        numbered(command)
