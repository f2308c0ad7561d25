"""The actor pipe: a burst of posts is one POSTS message with one waiter settled once;
a handle that read STOPPED does not ask again."""

from __future__ import annotations

import json

import pytest
import zmq
from factories import NODE_A, T0

from lab93zmq.api.pipe import PipeClient, Settled
from lab93zmq.core.authoring import Draft
from lab93zmq.core.errors import RefusedError
from lab93zmq.core.events import Posted, Rejected, pipe_form
from lab93zmq.core.message import make_id
from lab93zmq.io.actor import (
    Actor,
    ActorHandle,
    Handover,
    PipeKind,
    PipeMessage,
    drafts_of,
    posts_body,
    recv,
    send,
    send_events,
)


def draft(n: int, **fields: object) -> Draft:
    base = {"content": f"line {n}", "subject": None, "to": None, "sent_at": T0,
            "room": "general", "kind": None}
    base.update(fields)
    return Draft(make_id(T0, n.to_bytes(10, "big")), **base)  # type: ignore[arg-type]


def through_the_pipe(message: PipeMessage) -> PipeMessage:
    return PipeMessage.parse(message.frames())


def test_a_burst_is_one_posts_message_whose_drafts_come_back_equal():
    drafts = [draft(1), draft(2, to="bob", room=None, subject="hi"), draft(3, kind="action")]
    [message] = PipeClient(bursts=True).post_burst(drafts, "token")
    assert message.kind is PipeKind.POSTS
    assert drafts_of(through_the_pipe(message).body) == drafts


def test_a_burst_handed_over_is_a_posts_naming_its_size_and_the_drafts_themselves():
    handover = Handover()
    first, second = [draft(1), draft(2, to="bob", room=None)], [draft(3, kind="action")]
    client = PipeClient(bursts=True, handover=handover)
    [one] = client.post_burst(first, "one")
    [two] = client.post_burst(second, "two")
    assert (one.kind, through_the_pipe(one).body) == (PipeKind.POSTS, {"handed": 2})
    taken = drafts_of(through_the_pipe(one).body, handover)
    assert taken == first and all(a is b for a, b in zip(taken, first, strict=True))  # same
    assert drafts_of(through_the_pipe(two).body, handover) == second  # in the order sent


def test_a_handed_draft_of_a_kind_no_post_may_have_is_rejected_as_its_row_would_be():
    handover = Handover()
    drafts = [draft(1), draft(2, kind="topic")]
    [message] = PipeClient(bursts=True, handover=handover).post_burst(drafts, "token")
    as_rows = drafts_of(posts_body(drafts))
    assert drafts_of(message.body, handover) == as_rows
    assert as_rows[0] == drafts[0] and isinstance(as_rows[1], Rejected)
    assert as_rows[1].id == drafts[1].id and "topic" in as_rows[1].reason


def test_without_bursts_each_draft_is_its_own_post():
    messages = PipeClient(bursts=False).post_burst([draft(1), draft(2)], "token")
    assert [m.kind for m in messages] == [PipeKind.POST, PipeKind.POST]
    assert [Draft.from_body(m.body) for m in messages] == [draft(1), draft(2)]


def test_a_row_that_is_no_draft_is_rejected_with_a_reason_and_the_others_kept():
    body = posts_body([draft(1), draft(2)])
    body["drafts"].insert(1, ["only", "three", "fields"])
    body["drafts"].append([draft(4).id, "x", None, None, "yesterday", "general", None])
    body["drafts"].append([draft(5).id, "x", None, None, "2026-11-24T20:01:02+00:00",
                           "No Such Room!", None])
    body["drafts"].append([draft(6).id, "x", None, None, "2026-11-24T20:01:02+00:00",
                           "general", "topic"])
    out = drafts_of(json.loads(json.dumps(body)))
    assert out[0] == draft(1) and out[2] == draft(2)
    assert out[1] == Rejected(None, "not a valid message: not a draft")
    refused = out[3:]
    assert [r.id for r in refused] == [draft(4).id, draft(5).id, draft(6).id]  # type: ignore
    assert all(isinstance(r, Rejected) and r.reason.startswith("not a valid message: ")
               for r in refused)
    assert "sent_at" in refused[0].reason and "kind" in refused[2].reason  # type: ignore
    assert drafts_of({}) == [Rejected(None, "not a valid message: a POSTS request without"
                                            " drafts")]


def stored(d: Draft, seq: int) -> PipeMessage:
    kind, body = pipe_form(Posted((d.author("alice", NODE_A, seq),)))
    return through_the_pipe(PipeMessage(PipeKind(kind), body))


def rejected(d: Draft, reason: str) -> PipeMessage:
    kind, body = pipe_form(Rejected(d.id, reason))
    return through_the_pipe(PipeMessage(PipeKind(kind), body))


def test_a_burst_is_settled_once_when_every_draft_is_stored_or_refused():
    client = PipeClient(bursts=True)
    drafts = [draft(1), draft(2), draft(3)]
    client.post_burst(drafts, "burst")
    assert client.waiting() == ["burst"]
    assert not [i for i in client.take(stored(drafts[0], 1)) if isinstance(i, Settled)]
    assert not [i for i in client.take(rejected(drafts[1], "too big"))
                if isinstance(i, Settled)]
    [settled] = [i for i in client.take(stored(drafts[2], 2)) if isinstance(i, Settled)]
    assert settled.token == "burst" and settled.error is None
    first, refusal, last = settled.value
    assert (first.id, first.origin_seq, last.id, last.origin_seq) == (
        drafts[0].id, 1, drafts[2].id, 2)
    assert isinstance(refusal, RefusedError) and str(refusal) == "not sent: too big"
    assert client.waiting() == []


def test_the_same_draft_twice_in_a_burst_settles_both_places():
    client = PipeClient(bursts=True)
    client.post_burst([draft(1), draft(1)], "burst")
    [settled] = [i for i in client.take(stored(draft(1), 1)) if isinstance(i, Settled)]
    assert [m.id for m in settled.value] == [draft(1).id, draft(1).id]


def test_single_posts_are_still_settled_each_with_its_message():
    client = PipeClient(bursts=True)
    [message] = client.post([(draft(1), "one"), (draft(2), "two")])
    assert message.kind is PipeKind.POSTS
    items = client.take(stored(draft(2), 1)) + client.take(rejected(draft(1), "no"))
    settled = {i.token: i for i in items if isinstance(i, Settled)}
    assert settled["two"].value.id == draft(2).id
    assert isinstance(settled["one"].error, RefusedError)


def sent_events(events: list, posted_rows: bool) -> list[PipeMessage]:
    """What ``send_events`` writes for ``events``, read back from a real inproc pair."""
    ctx = zmq.Context()
    out, back = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    try:
        out.bind("inproc://sent-events")
        back.connect("inproc://sent-events")
        send_events(out, events, posted_rows=posted_rows)
        messages = []
        while back.poll(0):
            messages.append(recv(back))
        return messages
    finally:
        out.close(0)
        back.close(0)
        ctx.term()


def test_posted_as_rows_settles_with_the_messages_the_full_form_gives():
    drafts = [draft(1), draft(2, to="bob", room=None, subject="hi"), draft(3, kind="action")]
    messages = tuple(d.author("alice", NODE_A, n + 1) for n, d in enumerate(drafts))
    results = []
    for rows in (False, True):
        client = PipeClient(bursts=True)
        client.post_burst(drafts, "burst")
        [posted] = sent_events([Posted(messages)], posted_rows=rows)
        assert ("rows" in posted.body) is rows and ("messages" in posted.body) is not rows
        [settled] = [i for i in client.take(posted) if isinstance(i, Settled)]
        results.append(settled.value)
        assert list(client.unaccepted.values()) == list(messages)
    assert results[0] == results[1] == list(messages)
    assert [m.room for m in results[1]] == ["general", None, "general"]
    assert results[1][2].kind == "action" and results[1][1].to == "bob"


def test_posted_rows_keep_their_place_among_the_other_events():
    posted = Posted((draft(1).author("alice", NODE_A, 1),))
    later = Posted((draft(2).author("alice", NODE_A, 2),))
    events = [Rejected("x", "no"), posted, later, Rejected("y", "no"), posted]
    kinds = [(m.kind, len(m.body.get("rows", ()))) for m in sent_events(events, True)]
    assert kinds == [(PipeKind.REJECTED, 0), (PipeKind.POSTED, 2), (PipeKind.REJECTED, 0),
                     (PipeKind.POSTED, 1)]


class _Lingering(Actor):
    """Answers STOP with STOPPED, then stays a moment and notes what else it is sent."""

    name = "lingering"

    def __init__(self) -> None:
        self.after_stopped: list[str] = []

    def run(self, ctx: zmq.Context, pipe: zmq.Socket) -> None:
        send(pipe, PipeKind.READY, node_id=NODE_A, detail="")
        while recv(pipe).kind is not PipeKind.STOP:
            pass
        send(pipe, PipeKind.STOPPED)
        if pipe.poll(300):
            self.after_stopped.append(recv(pipe).kind.value)


def test_a_handle_whose_stopped_was_read_only_waits_for_the_thread():
    """Asking again would wait for a STOPPED that was already read (50 ms a close)."""
    actor = _Lingering()
    handle = ActorHandle(actor)
    handle.start(timeout=5)
    handle.request(PipeKind.STOP)
    assert handle.poll(5).kind is PipeKind.STOPPED  # type: ignore[union-attr]
    handle.stop(timeout=5, stopped=True)
    assert not handle.alive and actor.after_stopped == []


def test_a_drafts_time_is_written_once_and_the_same_whichever_way_it_is_authored():
    from lab93zmq.core.message import time_text

    [got] = drafts_of(json.loads(json.dumps(posts_body([draft(1)]))))
    message = got.author("alice", NODE_A, 1)  # type: ignore[union-attr]
    assert message.__dict__.get("_sent_text") == time_text(T0)  # kept from the pipe
    assert message.sent_text() == time_text(message.sent_at) == message.to_json_dict()["sent_at"]
    assert message == draft(1).author("alice", NODE_A, 1)


def test_incoming_runs_are_written_from_wire_forms_and_read_as_the_dict_form():
    from lab93zmq.core.events import Incoming, Notice, pipe_forms

    arrived = [Incoming(draft(n, content=f"é {n} \"q\"").author("bob", NODE_A, n))
               for n in (1, 2, 3)]
    events = [arrived[0], arrived[1], Notice("between"), arrived[2]]
    got = sent_events(events, posted_rows=True)
    assert [(m.kind.value, m.body) for m in got] == [
        (kind, json.loads(json.dumps(body))) for kind, body in pipe_forms(events)
    ]


def test_posted_runs_in_full_are_written_from_wire_forms_and_read_as_the_dict_form():
    from lab93zmq.core.events import Incoming, Notice, pipe_forms

    mine = [draft(n, content=f"é {n}").author("alice", NODE_A, n) for n in (1, 2, 3)]
    for message in mine[:2]:
        message.encode()  # published first: POSTED reuses that form
    theirs = Incoming(draft(9).author("bob", "b" * 32, 1))
    events = [Posted(tuple(mine[:2])), Posted((mine[2],)), Notice("x"), theirs,
              Posted((mine[0],))]
    got = sent_events(events, posted_rows=False)
    assert [m.kind for m in got] == [PipeKind.POSTED, PipeKind.NOTICE, PipeKind.INCOMING,
                                     PipeKind.POSTED]
    assert [(m.kind.value, m.body) for m in got] == [
        (kind, json.loads(json.dumps(body))) for kind, body in pipe_forms(events)
    ]


def test_a_decoded_message_reaches_the_front_end_as_the_json_it_came_in():
    """What a peer sent, checked once, is passed on as it came: the front end reads from
    it the message the actor decoded (a time not in UTC, a field it does not know)."""
    from lab93zmq.core.events import Incoming, from_pipe_form
    from lab93zmq.core.message import Message

    wire = json.loads(draft(1).author("bob", NODE_A, 1).encode())
    wire.update(sent_at="2024-05-01T14:00:00.000001+02:00", later={"a": [1]})
    raw = (" " + json.dumps(wire, ensure_ascii=False) + "\n").encode()
    decoded = Message.decode(raw)
    assert decoded.received_json() == raw
    assert decoded.sent_at.utcoffset().total_seconds() == 0
    [incoming] = sent_events([Incoming(decoded)], posted_rows=False)
    [event] = from_pipe_form(incoming.kind.value, incoming.body)
    assert event == Incoming(decoded) and event.message.sent_text() == decoded.sent_text()
    authored = draft(2).author("bob", NODE_A, 2)
    assert authored.received_json() == authored.encode()  # never decoded: its own form


def test_a_pipe_message_of_no_kind_or_no_json_is_refused_with_a_reason():
    from lab93zmq.core.errors import ProtocolError

    for frames in ([b"nonsense", b"{}"], [b"post", b"{'a': 1}"], [b"post", b"\xff"],
                   [b"post", b"{} {}"], [b"post"]):
        with pytest.raises(ProtocolError):
            PipeMessage.parse(frames)
    assert PipeMessage.parse([b"post", b' {"a": [1, 2]} ']).body == {"a": [1, 2]}
