"""The actor's events reach an ActorHandle's front end as the values the actor built
(EventPipe), in their one order with the framed messages, each once."""

from __future__ import annotations

import threading

import zmq
from factories import NODE_A, make_message

from lab93zmq.core.events import Accepted, Incoming, Notice, Posted, Rejected
from lab93zmq.io.actor import (
    Actor,
    ActorHandle,
    PipeKind,
    PipeMessage,
    event_frames,
    recv,
    send,
    send_events,
)

WAIT_MS = 5000


class _Scripted(Actor):
    """Sends READY, then ``script`` (("events", [...]) through send_events, or
    ("notice", text) framed), then sets ``done``; answers STOP with STOPPED."""

    name = "scripted"

    def __init__(self, script: list[tuple[str, object]]) -> None:
        self.script = script
        self.done = threading.Event()

    def run(self, ctx: zmq.Context, pipe: zmq.Socket) -> None:
        send(pipe, PipeKind.READY, node_id=NODE_A, detail="")
        for what, value in self.script:
            if what == "events":
                send_events(pipe, value)  # type: ignore[arg-type]
            else:
                send(pipe, PipeKind.NOTICE, text=value)
        self.done.set()
        while recv(pipe).kind is not PipeKind.STOP:
            pass
        send(pipe, PipeKind.STOPPED)


def read_until_stopped(handle: ActorHandle) -> list[PipeMessage]:
    """Every pipe message the handle parses, STOP asked once the actor is done."""
    handle.request(PipeKind.STOP)
    got: list[PipeMessage] = []
    while not got or got[-1].kind is not PipeKind.STOPPED:
        assert handle.pipe.poll(WAIT_MS), f"nothing more after {len(got)} messages"
        got.append(handle.parse(handle.pipe.recv_multipart()))
    return got


def started(actor: _Scripted) -> ActorHandle:
    handle = ActorHandle(actor)
    handle.start(timeout=5)
    return handle


def test_batches_come_as_the_same_objects_each_in_its_place_among_the_frames():
    one, two, three = (Incoming(make_message(n)) for n in (1, 2, 3))
    refused = Rejected("x", "no")
    actor = _Scripted([("events", [one]), ("events", [two, refused]), ("notice", "framed"),
                       ("events", [three])])
    handle = started(actor)
    try:
        assert actor.done.wait(5)  # all of it sent before the front end reads any
        got = read_until_stopped(handle)
    finally:
        handle.stop(timeout=5, stopped=True)
    assert [m.kind for m in got] == [PipeKind.EVENTS, PipeKind.EVENTS, PipeKind.NOTICE,
                                     PipeKind.EVENTS, PipeKind.STOPPED]
    batches = [m.body["events"] for m in got if m.kind is PipeKind.EVENTS]
    assert batches == [[one], [two, refused], [three]]
    assert [id(e) for b in batches for e in b] == [id(one), id(two), id(refused), id(three)]
    assert got[2].body == {"text": "framed"}  # the frame between them kept its place


def test_many_batches_among_frames_arrive_in_order_each_once_while_both_threads_run():
    count = 3000
    script: list[tuple[str, object]] = []
    for n in range(1, count + 1):
        script.append(("events", [Accepted((str(n),))]))
        if n % 97 == 0:
            script.append(("notice", str(n)))
    actor = _Scripted(script)
    handle = started(actor)
    order: list[str] = []
    try:
        # Read while the actor writes (no wait for done): bells and takes interleave.
        while len(order) < count + count // 97:
            assert handle.pipe.poll(WAIT_MS), f"stuck after {len(order)}"
            message = handle.parse(handle.pipe.recv_multipart())
            if message.kind is PipeKind.EVENTS:
                order += [event.ids[0] for event in message.body["events"]]
            else:
                assert message.kind is PipeKind.NOTICE
                order.append("notice " + message.body["text"])
        assert read_until_stopped(handle)[-1].kind is PipeKind.STOPPED
    finally:
        handle.stop(timeout=5, stopped=True)
    expected = [f"notice {value}" if what == "notice" else value[0].ids[0]  # type: ignore[index]
                for what, value in script]
    assert order == expected


def test_poll_renders_a_batch_as_the_framed_pipe_messages_it_stands_for():
    posted = Posted((make_message(1, origin=NODE_A),))
    events = [Incoming(make_message(2)), Incoming(make_message(3)), Notice("hi"), posted,
              Accepted(("a", "b"))]
    actor = _Scripted([("events", events)])
    handle = started(actor)
    try:
        assert actor.done.wait(5)
        got = []
        while (message := handle.poll(1)) is not None and len(got) < 10:
            got.append(message)
    finally:
        handle.stop(timeout=5)
    assert got == [PipeMessage.parse(frames) for frames in event_frames(events)]
    assert [m.kind for m in got] == [PipeKind.INCOMING, PipeKind.NOTICE, PipeKind.POSTED,
                                     PipeKind.ACCEPTED]
    assert got[0].body["messages"][1]["content"] == "message 3"
