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
from lab93zmq.core.repeater.commit import ROOM_CHAIN, GroupCommit, Post, chains_of, direct_chain
from lab93zmq.core.repeater.outputs import PublishRoom, ReplyTo
from lab93zmq.core.repeater.replay import Heads, Replay
from lab93zmq.core.wire import SIGNATURE, Command
from lab93zmq.io.store import Inbox

SERVER = "c" * 32


@pytest.fixture
def inbox(tmp_path):
    with Inbox(tmp_path / "server.db", new_node_id=bytes.fromhex(SERVER)) as box:
        yield box


def post(identity, seq, to=None, author="alice", origin=NODE_A):
    message = make_message(seq, to=to, author=author, origin=origin)
    return Post(identity, message, message.encode())


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
    assert room.header == {"server": SERVER, "items": [[1, 0], [3, 1]]}  # prev in the room chain
    [ack] = [c for i, c in replies if c.name == "ACK"]
    assert ack.header["items"] == [[p.message.id, n] for n, p in enumerate(posts, start=1)]
    delivered = {i: c.header["items"] for i, c in replies if c.name == "DELIVER"}
    # To both of bob's sessions, and to the author's (its prev in alice's own chain).
    assert delivered == {b"b1": [[2, 0]], b"b2": [[2, 0]], b"a": [[2, 0]]}
    assert (commit.head, commit.room_head, commit.dm_head("bob")) == (3, 3, 2)


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
    assert chains_of(make_message(1)) == [ROOM_CHAIN]
    assert chains_of(make_message(1, to="bob")) == [direct_chain("bob"), direct_chain("alice")]
    assert chains_of(make_message(1, to="alice")) == [direct_chain("alice")]


# -- replay ----------------------------------------------------------------------------------


def test_a_new_client_starts_at_the_tail_and_pages_on(inbox):
    commit = GroupCommit(inbox)
    for n in range(1, 8):
        commit.add(post(b"a", n))
    commit.add(post(b"a", 1, to="bob"))
    commit.flush({})
    replay = Replay(inbox, tail=3, batch_limit=2)
    heads = Heads(8, 7, 8)
    batch = replay.answer({"room": None, "dm": 0}, "bob", heads)
    assert batch.name == "BATCH"
    assert (batch.header["room"], batch.header["more"]) == (4, True)  # the last 3 follow 4
    assert [entry[:1] for entry in numbered(batch)] == [(5,), (6,)]
    rest = replay.answer({"room": 6, "dm": 0, "limit": 50}, "bob", heads)
    assert [(seq, prev) for seq, prev, _ in numbered(rest)] == [(7, 6), (8, 0)]
    assert rest.header["more"] is False
    assert (rest.header["head"], rest.header["room_head"], rest.header["dm_head"]) == (8, 7, 8)
    carol = replay.answer({"room": 5, "dm": 0}, "carol", heads)  # bob's dm is not hers
    assert [seq for seq, _, _ in numbered(carol)] == [6, 7] and carol.header["more"] is False


@pytest.mark.parametrize(
    "header, field",
    [
        ({"room": 0}, "'dm'"),
        ({"room": 0, "dm": 0, "limit": 0}, "'limit'"),
        ({"room": -1, "dm": 0}, "'room'"),
    ],
)
def test_a_bad_fetch_names_its_field(inbox, header, field):
    with pytest.raises(ProtocolError, match=field):
        Replay(inbox).answer(header, "bob", Heads(0, 0, 0))


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
