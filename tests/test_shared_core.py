"""The small core pieces both modes share: packing, say-once, the flood gate,
drafts and numbering, saving a batch. Pure: no sockets, no files."""

from __future__ import annotations

import pytest
from factories import NODE_A, T0, make_message

from lab93zmq.core.authoring import DIRECT, ROOM, Draft, Numbering
from lab93zmq.core.batching import Budget, chunks, pack
from lab93zmq.core.errors import MessageError, StoreError
from lab93zmq.core.flood import FloodGate
from lab93zmq.core.notices import SayOnce
from lab93zmq.core.saving import save_batch


def test_pack_bounds_every_group_by_count_and_bytes():
    payloads = [bytes([n]) * size for n, size in enumerate([3, 3, 3, 3, 9, 1, 1])]
    groups = pack(payloads, max_count=3, max_bytes=8)
    assert [b"".join(group) for group in groups] == [
        b"\x00" * 3 + b"\x01" * 3,  # a third would pass 8 bytes
        b"\x02" * 3 + b"\x03" * 3,
        b"\x04" * 9,  # too big for any group: it goes alone
        b"\x05\x06",
    ]
    assert [p for group in groups for p in group] == payloads
    assert pack([b"x"] * 7, max_count=3, max_bytes=100) == [[b"x"] * 3, [b"x"] * 3, [b"x"]]
    assert pack([], 3, 8) == []


def test_a_budget_always_admits_the_first_payload():
    budget = Budget(2, 10)
    assert budget.admits(50)
    budget.take(50)
    assert not budget.admits(1)


def test_fill_appends_while_each_fits_and_reads_no_further():
    read: list[bytes] = []

    def lazily(items):
        for item in items:
            read.append(item)
            yield item

    payloads = [b"kept"]
    budget = Budget(5, 10)
    budget.take(4)
    budget.fill(payloads, lazily([b"abc", b"defg", b"h", b"i"]))
    assert payloads == [b"kept", b"abc"] and (budget.count, budget.size) == (2, 7)
    assert read == [b"abc", b"defg"]  # the one that did not fit ended the reading
    empty: list[bytes] = []
    Budget(1, 1).fill(empty, [b"too big alone", b"x"])  # an empty command takes anything
    assert empty == [b"too big alone"]


def test_chunks():
    assert [list(c) for c in chunks(range(5), 2)] == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError):
        list(chunks([1], 0))


def test_say_once_tells_again_only_after_the_quiet_time():
    said = SayOnce(quiet=60.0)
    assert said.due("bob's key", 0.0)
    assert not said.due("bob's key", 59.9)
    assert said.due("carol's key", 30.0)  # each thing on its own
    assert said.due("bob's key", 60.0)
    assert not said.due("bob's key", 61.0)
    said.forget("bob's key")
    assert said.due("bob's key", 62.0)


def test_say_once_forgets_the_least_recently_told_past_its_memory():
    said = SayOnce(quiet=60.0, remember=2)
    for key in "abc":
        assert said.due(key, 0.0)
    assert "a" not in said and "b" in said and "c" in said
    assert said.due("a", 1.0)  # forgotten, so told again


def test_the_flood_gate_cuts_off_past_the_burst_and_lets_in_after_the_penalty():
    gate = FloodGate(burst=3, rate=1.0, penalty=30.0)
    assert [gate.strike("mallory", 0.0) for _ in range(4)] == [False, False, False, True]
    assert gate.is_cut("mallory", 29.9) and not gate.is_cut("alice", 1.0)
    assert not gate.strike("mallory", 10.0)  # already cut: no second verdict
    assert gate.next_deadline() == 30.0
    assert gate.cut(1.0) == ["mallory"]
    assert gate.expire(29.0) == [] and gate.expire(30.0) == ["mallory"]
    assert not gate.is_cut("mallory", 30.0) and gate.next_deadline() is None


def test_a_penalty_never_ends_before_the_bucket_refilled():
    assert FloodGate(burst=20, rate=2.0, penalty=1.0).penalty == 10.0


def test_a_draft_becomes_a_message_and_crosses_the_pipe():
    draft = Draft("0" * 32, "pizza?", "lunch", None, T0)
    assert Draft.from_body(draft.body()) == draft
    assert draft.scope == (ROOM, "general")
    assert Draft("1" * 32, "psst", None, "bob", T0).scope == DIRECT
    message = draft.author("alice", NODE_A, 7)
    assert (message.author, message.origin, message.origin_seq) == ("alice", NODE_A, 7)
    ops = Draft("3" * 32, "deploy?", None, None, T0, room="ops")
    assert Draft.from_body(ops.body()) == ops and ops.body()["room"] == "ops"
    assert ops.scope == (ROOM, "ops") and ops.author("alice", NODE_A, 1).room == "ops"
    assert Draft("4" * 32, "psst", None, "bob", T0, room="ops").author("a", NODE_A, 1).room is None
    with pytest.raises(MessageError, match="is not a room name"):
        Draft.from_body({**ops.body(), "room": "#Ops"})  # the pipe carries the wire form
    with pytest.raises(MessageError):
        Draft("2" * 32, "", None, None, T0).author("alice", NODE_A, 8)


def test_numbering_starts_where_the_inbox_ends_and_never_reuses_a_number():
    asked = []

    def first(scope):
        asked.append(scope)
        return {ROOM: 5, DIRECT: 1}[scope]

    numbers = Numbering(first)
    assert numbers.peek(ROOM) == 5
    assert numbers.take(ROOM, 3) == 5 and numbers.peek(ROOM) == 8
    numbers.seen(ROOM, 6)  # below what we use: nothing changes
    numbers.seen(ROOM, 20)
    assert numbers.take(ROOM) == 21
    assert numbers.take(DIRECT) == 1
    assert asked == [ROOM, DIRECT]  # each scope asked once


class FakeInbox:
    """Refuses a batch holding a message numbered like one it has, as the real inbox does."""

    def __init__(self):
        self.rows = {}

    def save_many(self, batch):
        taken = {(m.origin, m.origin_seq): mid for mid, m in self.rows.items()}
        if any(taken.get((m.origin, m.origin_seq), m.id) != m.id for m, _, _ in batch):
            raise StoreError("the inbox refused a message: UNIQUE constraint failed")
        fresh = []
        for message, _, _ in batch:
            fresh.append(message.id not in self.rows)
            self.rows.setdefault(message.id, message)
        return fresh


def test_save_batch_falls_back_to_one_by_one_and_returns_the_conflicts():
    inbox = FakeInbox()
    first = make_message(1)
    assert save_batch(inbox, [(first, None, None)]).fresh == [True]
    clash = type(first).trusted("9" * 32, "mallory", None, None, "x", T0, NODE_A, 1)
    result = save_batch(inbox, [(make_message(2), None, None), (clash, None, None),
                                (first, None, None)])
    assert result.fresh == [True, False, False]
    assert [(m.id, "refused" in why) for m, why in result.conflicts] == [(clash.id, True)]
    assert make_message(2).id in inbox.rows and clash.id not in inbox.rows


def _draft(**fields):
    base = dict(id="0" * 32, content="pizza?", subject=None, to=None, sent_at=T0,
                room="general", kind=None)
    base.update(fields)
    return Draft(**base)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"room": None},
        {"to": "bob", "room": None},
        {"kind": "action"},
        {"to": "bob", "room": None, "kind": "action"},
        {"content": "x" * 70_000},
        {"subject": "s" * 1000},
        {"subject": 7},
        {"to": "not a name!"},
        {"to": "bob"},  # a direct message with a room
        {"room": "No Such Room"},
        {"kind": "topic"},
        {"kind": "shout"},
        {"id": "short"},
        {"sent_at": T0.replace(tzinfo=None)},
    ],
)
def test_a_drafts_check_refuses_exactly_what_authoring_it_refuses(fields):
    draft = _draft(**fields)
    try:
        draft.author("alice", NODE_A, 1)
    except MessageError as error:
        with pytest.raises(MessageError) as caught:
            draft.check("alice", NODE_A)
        assert str(caught.value) == str(error)
    else:
        draft.check("alice", NODE_A)
    with pytest.raises(MessageError):
        draft.check("not a user!", NODE_A)


def test_a_draft_is_authored_as_the_message_constructor_makes_it_and_refused_alike():
    from datetime import timedelta, timezone

    from lab93zmq.core.message import Message

    def full(d: Draft, seq: int) -> Message:
        return Message(d.id, "alice", d.to, d.subject, d.content, d.sent_at, NODE_A, seq,
                       room=d.room if d.to is None else None, kind=d.kind)

    base = Draft("a" * 32, "hi", "s", None, T0, None, "action")
    later = T0.astimezone(timezone(timedelta(hours=2)))
    for d in (base, base.in_room("ops"), Draft("b" * 32, "yo", None, "bob", T0),
              Draft("c" * 32, "tz", None, None, later, "dev")):
        assert d.author("alice", NODE_A, 3) == full(d, 3)
        assert d.author("alice", NODE_A, 3).sent_at.tzinfo is timezone.utc
    assert base.in_room("ops") == Draft("a" * 32, "hi", "s", None, T0, "ops", "action")
    for bad in (Draft("a" * 32, "", None, None, T0), Draft("nothex", "x", None, None, T0),
                Draft("a" * 32, "x", None, "no one", T0)):
        with pytest.raises(MessageError):
            bad.author("alice", NODE_A, 1)
        with pytest.raises(MessageError):
            full(bad, 1)
    with pytest.raises(MessageError):
        base.author("alice", NODE_A, 0)


@pytest.mark.parametrize(
    "shared",
    [
        {},
        {"room": "ops", "kind": "action"},
        {"to": "bob", "room": None},
        {"subject": "s" * 1000},
        {"to": "not a name!", "room": None},
        {"room": "No Such Room"},
        {"kind": "topic"},
        {"kind": "shout"},
    ],
)
def test_a_burst_of_drafts_is_refused_line_by_line_exactly_as_each_draft_checked_alone(shared):
    from datetime import timedelta

    from lab93zmq.core.authoring import checked_drafts
    from lab93zmq.core.message import make_id

    fields = {"subject": None, "to": None, "room": "general", "kind": None, **shared}
    texts = ["fine", "", "x" * 70_000, "bad \ud800 text", "also fine"]
    times = [T0 + timedelta(milliseconds=k) for k in range(len(texts) + 1)]
    clock = iter(times)
    entropy = bytes(range(10 * len(texts)))
    made = checked_drafts(texts, fields["subject"], fields["to"], fields["room"],
                          fields["kind"], "alice", NODE_A, lambda: next(clock), entropy)
    assert len(made) == len(texts)
    for index, (text, got) in enumerate(zip(texts, made, strict=True)):
        sent_at = times[index + 1]  # the first time is the shared fields' check's
        alone = Draft(make_id(sent_at, entropy[10 * index : 10 * index + 10]), text,
                      fields["subject"], fields["to"], sent_at, fields["room"], fields["kind"])
        try:
            alone.check("alice", NODE_A)
        except MessageError as error:
            assert isinstance(got, MessageError), text[:10]
            assert str(got) == str(error)
        else:
            assert got == alone
            assert got.author("alice", NODE_A, 4) == alone.author("alice", NODE_A, 4)

