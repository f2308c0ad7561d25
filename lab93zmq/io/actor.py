"""The actor pattern: one thread owns every ZeroMQ socket and the inbox.

A front end (console.py) talks to its actor only through an ``inproc://`` PAIR
pipe carrying typed messages: a kind frame and a JSON body frame. The actor's
thread creates its own sockets, sends ``READY`` (or ``FATAL``) once it is
serving, and returns after ``STOP``; start-up waits for that signal with a
timeout, as pyzmq's auth thread does.

Requests (front end -> actor):

``POST``     {"id", "content", "subject", "to", "sent_at", "room"}: author and queue
             a message; ``room`` names the room of a room post (null: a direct one)
``POSTS``    {"drafts": [[id, content, subject, to, sent_at, room, kind], ...]}: a
             burst of POSTs in one pipe message, for an actor whose ``takes_bursts``
             is True (one JSON object and one send for a burst of piped lines, not
             one per line)
``POSTS``    {"handed": n}: the same for an actor with a ``handover`` (every actor of
             this package that takes bursts): the burst's n drafts are handed
             over in the process as they are, not written as rows (see Handover)
``SCAN``     {}: answer with ``SCAN_RESULT``
``WHO``      {"room": str | null}: answer with ``WHO_RESULT``: who is on the
             network (null), or in that room (ourselves included)
``HISTORY``  {"limit", "room"}: answer with ``HISTORY_RESULT``: the newest ``limit``
             messages (a whole number >= 0; 0: none), or every message when
             ``limit`` is absent or null; only ``room``'s when it names one
             (see history.py)
``JOIN``     {"room"}: join the room (subscribe, catch up); answer with ``JOINED``,
             also when already in it
``PART``     {"room"}: leave the room; answer with ``PARTED``
``ROOMS``    {}: answer with ``ROOMS_RESULT``
``TOPIC``    {"room", "text"}: set the room's topic (a topic message); the new topic
             comes back as a ``TOPIC`` event
``OUTBOX``   {}: answer with ``OUTBOX_RESULT``: what this inbox still waits to
             deliver
``AWAY``     {"text": str | null}: be away with this text (null: back); no answer
             (the next ``WHO_RESULT`` shows it)
``STOP``     {}: leave cleanly (leaving beacon, inbox closed), then ``STOPPED``

Events (actor -> front end):

``READY``          {"node_id", "detail"}
``FATAL``          {"error", "error_class"}: the actor cannot go on; ``error`` is a user sentence,
                   ``error_class`` the name of its public error class (``StoreError``,
                   ``ConfigError``, ...; absent: ``Lab93Error``), raised again as that
``INCOMING``       {"messages": [wire dicts]}: messages new to this inbox, in order
``ACCEPTED``       {"ids": [...]}: these posts are delivered (see DESIGN.md)
``REJECTED``       {"id", "reason"}: this post can never be delivered
``STATUS``         {"connected": bool, "detail"}: connection state changed
``NOTICE``         {"text"}: something a user may want to know
``SCAN_RESULT``    {"beacons": [beacon JSON dicts, as DESIGN.md's --scan --json]}
``WHO_RESULT``     {"room", "users": [...], "connected", "away": {user: text}}: ``away``
                   names those of ``users`` who are away (ourselves too)
``HISTORY_RESULT`` {"messages": [wire dicts]}
``OUTBOX_RESULT``  {"messages": [wire dicts]}: the inbox's outbox, oldest first
                   (repeater: every post the server has not acknowledged;
                   broadcast: direct messages no node of the addressee took)
``POSTED``         {"messages": [wire dicts]}: the drafts just handled, authored and
                   stored (committed), in posting order; a refused one gets REJECTED.
                   Or {"rows": [[id, author, origin, seq, room], ...]}: the same, by
                   what the actor gave each draft; the poster holds the rest (its
                   drafts' content, subject, to, sent_at, kind). The repeater
                   client answers so (``send_events(..., posted_rows=True)``).
``JOINED``         {"room", "topic": {"text", "by", "at"} | null, "first": bool}: we are
                   in the room (subscribed); its topic as known then (a connected
                   repeater client: after the server's first answer for the room);
                   ``first``: this inbox was never in it before
``PARTED``         {"room"}: we left it; nothing of it is stored from now on
``ROOMS_RESULT``   {"rooms": [{"name", "members", "topic", "joined"}]}: every room
                   heard on the network, sorted by name
``TOPIC``          {"room", "text", "by", "at"}: the room's topic is now this (only
                   when it changes the winner: the greatest (sent_at, id))
``MEMBER``         {"room", "user", "joined": bool}: someone came to or left a room
                   we are in
``STOPPED``        {}

An ``ActorHandle``'s actor writes its pipe through an ``EventPipe``: what it gives
``send_events`` (INCOMING, POSTED, ACCEPTED, ... above) is handed to the front end as
the typed events themselves, each batch announced by one ``EVENTS`` frame (an empty
body) in its place on the pipe; ``ActorHandle.parse`` takes that batch for it. The
rest (READY, FATAL, STOPPED, the answers sent with ``send``) is written as above,
and so is everything on any other pipe (``event_frames`` writes a batch's forms).
"""

from __future__ import annotations

import json
import json.scanner
import logging
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import zmq

from ..core.authoring import Draft
from ..core.errors import Lab93Error, MessageError, ProtocolError, error_kind, error_of_kind
from ..core.events import Event, Incoming, Posted, Rejected, pipe_forms
from ..core.message import ACTION, Message, keep_time_text, parse_time, time_text
from ..core.rooms import check_room

log = logging.getLogger(__name__)


class PipeKind(str, Enum):
    POST = "post"
    POSTS = "posts"
    SCAN = "scan"
    WHO = "who"
    HISTORY = "history"
    JOIN = "join"
    PART = "part"
    ROOMS = "rooms"
    TOPIC = "topic"  # a request (front end -> actor) and an event (actor -> front end)
    OUTBOX = "outbox"
    AWAY = "away"
    STOP = "stop"
    READY = "ready"
    FATAL = "fatal"
    INCOMING = "incoming"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    STATUS = "status"
    NOTICE = "notice"
    SCAN_RESULT = "scan_result"
    WHO_RESULT = "who_result"
    HISTORY_RESULT = "history_result"
    OUTBOX_RESULT = "outbox_result"
    POSTED = "posted"
    JOINED = "joined"
    PARTED = "parted"
    ROOMS_RESULT = "rooms_result"
    MEMBER = "member"
    STOPPED = "stopped"
    EVENTS = "events"  # in process only: the next batch handed over (see EventPipe)


@dataclass(frozen=True)
class PipeMessage:
    kind: PipeKind
    body: dict[str, Any]

    def frames(self) -> list[bytes]:
        return [self.kind.value.encode(), json.dumps(self.body).encode()]

    @classmethod
    def parse(cls, frames: list[bytes]) -> PipeMessage:
        if len(frames) != 2:
            raise ProtocolError(f"a pipe message has 2 frames, not {len(frames)}")
        kind = _KINDS.get(bytes(frames[0]))
        if kind is None:
            raise ProtocolError(f"bad pipe message: no kind {bytes(frames[0])[:20]!r}")
        try:
            return cls(kind, _body(frames[1]))
        except ValueError as error:  # UnicodeDecodeError too
            raise ProtocolError(f"bad pipe message: {error}") from None


_KINDS = {kind.value.encode(): kind for kind in PipeKind}
_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # typeshed


def _body(data: bytes) -> Any:
    """``json.loads(data)`` a third as dear (0.6 us against 1.8 for a POST): the pipe's
    bodies are UTF-8 JSON with nothing around them, so the scanner runs at once; anything
    else goes to json.loads to decide, as ``core.message`` does for the wire."""
    text = data.decode()
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def send(pipe: zmq.Socket, kind: PipeKind, **body: Any) -> None:
    pipe.send_multipart(PipeMessage(kind, body).frames())


class EventPipe(zmq.Socket):  # type: ignore[type-arg]
    """The actor's end of an ActorHandle's pipe. ``send_events`` hands the events
    themselves (immutable values the actor built and checked) to the front end's side
    through ``batches``, and rings the pipe with one EVENTS frame for each batch, so
    the front end's poll still wakes and the batch keeps its place among the pipe's
    other messages; nothing is encoded, decoded or checked again on the way."""

    batches: deque[tuple[list[Event], bool]] | None = None


EVENTS_BELL = [PipeKind.EVENTS.value.encode(), b""]


def _is_bell(frames: list[bytes]) -> bool:
    """Is this pipe message an EVENTS frame (its batch waits in the EventPipe)?"""
    return len(frames) == 2 and frames[0] == EVENTS_BELL[0] and not frames[1]


def send_events(pipe: zmq.Socket, events: list[Event], posted_rows: bool = False) -> None:
    """Several events, a run of incoming messages as one pipe message. ``posted_rows``:
    POSTED as rows (see above) - a message's content went through the pipe once as a
    draft, and need not come back, encoded and decoded again, to say it was stored.
    Through an ``EventPipe``: the events as they are, and an EVENTS frame."""
    if not events:
        return
    batches = pipe.batches if isinstance(pipe, EventPipe) else None
    if batches is not None:
        batches.append((events, posted_rows))  # before the bell: it is there when heard
        pipe.send_multipart(EVENTS_BELL)
        return
    for frames in event_frames(events, posted_rows):
        pipe.send_multipart(frames)


def event_frames(events: list[Event], posted_rows: bool = False) -> list[list[bytes]]:
    """The pipe messages (their frames) that stand for ``events``, in order."""
    out: list[list[bytes]] = []
    if posted_rows and any(isinstance(event, Posted) for event in events):
        rows: list[list[Any]] = []
        others: list[Event] = []
        for event in events:
            if isinstance(event, Posted):
                rows += [[m.id, m.author, m.origin, m.origin_seq, m.room] for m in event.messages]
            else:
                if rows:
                    _event_runs(out, others)
                    others = []
                    out.append(PipeMessage(PipeKind.POSTED, {"rows": rows}).frames())
                    rows = []
                others.append(event)
        _event_runs(out, others)
        if rows:
            out.append(PipeMessage(PipeKind.POSTED, {"rows": rows}).frames())
        return out
    _event_runs(out, events)
    return out


def _event_runs(out: list[list[bytes]], events: list[Event]) -> None:
    """The events in order; a run of Incoming as one INCOMING, a run of Posted as one
    POSTED, each written from its messages' wire form (the same JSON as their wire dicts',
    without building the dicts; a message sent on before is encoded already)."""
    others: list[Event] = []
    run: list[Message] = []
    run_kind: PipeKind | None = None
    for event in events:
        kind = _RUNS.get(type(event))
        if run and kind is not run_kind:
            out.append(_message_frames(run_kind, run))
            run = []
        run_kind = kind
        if kind is None:
            others.append(event)
            continue
        if others:
            out += _form_frames(others)
            others = []
        if isinstance(event, Incoming):
            run.append(event.message)
        elif isinstance(event, Posted):
            run += event.messages
    if others:
        out += _form_frames(others)
    if run:
        out.append(_message_frames(run_kind, run))


_RUNS: dict[type, PipeKind] = {Incoming: PipeKind.INCOMING, Posted: PipeKind.POSTED}


def _form_frames(events: list[Event]) -> list[list[bytes]]:
    return [PipeMessage(PipeKind(kind), body).frames() for kind, body in pipe_forms(events)]


def _message_frames(kind: PipeKind | None, messages: list[Message]) -> list[bytes]:
    assert kind is not None
    if kind is PipeKind.INCOMING:
        body = b'{"messages":[' + b",".join(m.received_json() for m in messages) + b"]}"
    else:
        body = b'{"messages":[' + b",".join(m.encode() for m in messages) + b"]}"
    return [kind.value.encode(), body]


def recv(pipe: zmq.Socket) -> PipeMessage:
    return PipeMessage.parse(pipe.recv_multipart())


def drain_requests(pipe: zmq.Socket, limit: int = 1000) -> list[PipeMessage]:
    """The front end's waiting requests, in order, at most ``limit``, never waiting;
    a malformed one is logged and dropped."""
    requests = []
    for _ in range(limit):
        try:
            frames = pipe.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            break
        try:
            requests.append(PipeMessage.parse(frames))
        except ProtocolError as error:
            log.error("bad request from the front end: %s", error)
    return requests


def posts_body(drafts: list[Draft]) -> dict[str, Any]:
    """The body of a POSTS message: each draft as a row (smaller and quicker to encode
    and decode than a JSON object a draft)."""
    return {
        "drafts": [
            [d.id, d.content, d.subject, d.to, time_text(d.sent_at), d.room, d.kind]
            for d in drafts
        ]
    }


class Handover:
    """Bursts of drafts handed from the front end to the actor of this process as the
    objects they are: the POSTS of a burst says only how many (``{"handed": n}``),
    and the actor takes the burst here, in the order the POSTS reach it on the pipe.

    Each draft was checked when it was made (``Node.draft``) and is checked again
    when it is authored: writing it as a JSON row, reading it back and checking it
    a third time cost 2.6 us a piped line, of the pump's and the actor's time.
    One thread gives (the one that sends the POSTS, after giving), one takes."""

    def __init__(self) -> None:
        self._bursts: deque[list[Draft]] = deque()

    def give(self, drafts: list[Draft]) -> PipeMessage:
        """The POSTS that hands ``drafts`` over; send it after giving."""
        self._bursts.append(drafts)
        return PipeMessage(PipeKind.POSTS, {"handed": len(drafts)})

    def take(self, count: object) -> list[Draft | Rejected]:
        """The next burst, for the POSTS ``{"handed": count}``; a draft of a kind no
        post may have (a program's own Draft) is Rejected, as a row of it would be."""
        burst = self._bursts.popleft()
        if count != len(burst):  # our own bug: the pipe and the bursts went out of step
            log.error("a POSTS handed %r drafts, the handover held %d", count, len(burst))
        return [
            draft if draft.kind is None or draft.kind == ACTION else Rejected(
                draft.id, f"not a valid message: {_kind_error(draft.kind)}")
            for draft in burst
        ]


def _kind_error(kind: object) -> MessageError:
    return MessageError("kind", f"of a posted message is {ACTION} or absent, not {kind!r}")


def drafts_of(body: dict[str, Any], handover: Handover | None = None) -> list[Draft | Rejected]:
    """The drafts of a POSTS body, in order, each checked as ``Draft.from_body`` checks
    one; a row that is no draft is Rejected with the reason. A POSTS that handed its
    drafts over takes them from ``handover``."""
    if "handed" in body and handover is not None:
        return handover.take(body["handed"])
    rows = body.get("drafts")
    if not isinstance(rows, list):
        return [Rejected(None, "not a valid message: a POSTS request without drafts")]
    drafts: list[Draft | Rejected] = []
    for row in rows:
        try:
            mid, content, subject, to, sent_at, room, kind = row
        except (TypeError, ValueError):
            drafts.append(Rejected(None, "not a valid message: not a draft"))
            continue
        try:
            if room is not None:
                room = check_room(room)
            if kind is not None and kind != ACTION:
                raise _kind_error(kind)
            draft = Draft(mid, content, subject, to, parse_time(sent_at), room, kind)
            keep_time_text(draft, sent_at)
            drafts.append(draft)
        except MessageError as exc:
            drafts.append(Rejected(mid if isinstance(mid, str) else None,
                                   f"not a valid message: {exc}"))
    return drafts



class Actor(ABC):
    """A body of code that runs in its own thread and owns its sockets."""

    name = "actor"
    takes_bursts = False  # True: it understands POSTS (a burst of drafts in one message)
    handover: Handover | None = None  # where a front end in this process hands POSTS over

    @abstractmethod
    def run(self, ctx: zmq.Context, pipe: zmq.Socket) -> None:
        """Serve until ``STOP`` arrives on ``pipe``.

        Send ``READY`` once serving, or raise a Lab93Error (the handle turns it
        into ``FATAL``). Must answer ``STOP`` with ``STOPPED`` and return.
        """


class ActorHandle:
    """The front end's side: starts the actor thread and holds its pipe."""

    def __init__(
        self,
        actor: Actor,
        ctx: zmq.Context | None = None,
        front_context: zmq.Context | None = None,
    ) -> None:
        """``front_context``: where the front end's end of the pipe is made (an asyncio
        context shadowing ``ctx``, for the asyncio API); default ``ctx``."""
        self.actor = actor
        self.ctx = ctx or zmq.Context.instance()
        self.endpoint = f"inproc://lab93-{actor.name}-{uuid.uuid4().hex}"
        self.pipe = (front_context or self.ctx).socket(zmq.PAIR)
        self.pipe.linger = 0
        self.pipe.bind(self.endpoint)
        self._thread = threading.Thread(target=self._main, name=actor.name, daemon=True)
        self.node_id: str | None = None
        self.ready_detail = ""
        # What the actor's send_events hands over, a batch per EVENTS frame (EventPipe).
        self._batches: deque[tuple[list[Event], bool]] = deque()
        self._rendered: deque[PipeMessage] = deque()  # what poll has still to return

    def _main(self) -> None:
        pipe = self.ctx.socket(zmq.PAIR, socket_class=EventPipe)
        pipe.batches = self._batches
        pipe.linger = 0
        pipe.connect(self.endpoint)
        try:
            self.actor.run(self.ctx, pipe)
        except Lab93Error as error:
            send(pipe, PipeKind.FATAL, error=str(error), error_class=error_kind(error))
        except Exception as error:  # a bug: say so rather than hang the front end
            log.exception("the %s thread failed", self.actor.name)
            send(pipe, PipeKind.FATAL, error=f"internal error in {self.actor.name}: {error!r}")
        finally:
            pipe.close()

    def start(self, timeout: float = 10.0) -> None:
        """Start the thread and wait for READY; raise the actor's error otherwise."""
        self.launch()
        if not self.pipe.poll(int(timeout * 1000)):
            raise Lab93Error(f"the {self.actor.name} did not start within {timeout:g} s")
        self.ready(recv(self.pipe), timeout)

    def launch(self) -> None:
        """Start the thread; its first event (READY or FATAL) goes to ``ready``."""
        self._thread.start()

    def ready(self, event: PipeMessage, timeout: float = 10.0) -> None:
        """Take the actor's first event: READY, or raise its FATAL sentence."""
        if event.kind is PipeKind.FATAL:
            self._thread.join(timeout)
            raise error_of_kind(event.body.get("error_class"), event.body["error"])
        if event.kind is not PipeKind.READY:
            raise Lab93Error(f"the {self.actor.name} sent {event.kind.value} before ready")
        self.node_id = event.body.get("node_id")
        self.ready_detail = event.body.get("detail", "")

    def join(self, timeout: float) -> None:
        """Wait for the actor's thread to end (after STOPPED or FATAL it is about to)."""
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def request(self, kind: PipeKind, **body: Any) -> None:
        send(self.pipe, kind, **body)

    def parse(self, frames: list[bytes]) -> PipeMessage:
        """A pipe message read from ``pipe``; an EVENTS frame comes with its batch:
        ``{"events": [Event, ...]}``, the very values the actor sent."""
        if _is_bell(frames):
            return PipeMessage(PipeKind.EVENTS, {"events": self._batches.popleft()[0]})
        return PipeMessage.parse(frames)

    def poll(self, timeout: float) -> PipeMessage | None:
        """The next event, or None after ``timeout`` seconds; a batch handed over by
        object comes as the pipe messages it would have been (``event_frames``). One
        frame on ``pipe`` may so be several messages: once it is readable, take them
        all (``poll(0)`` until None) before waiting on it again."""
        if not self._rendered and self.pipe.poll(max(0, int(timeout * 1000))):
            frames = self.pipe.recv_multipart()
            if _is_bell(frames):
                events, posted_rows = self._batches.popleft()
                self._rendered += map(PipeMessage.parse, event_frames(events, posted_rows))
            else:
                return PipeMessage.parse(frames)
        return self._rendered.popleft() if self._rendered else None

    def stop(
        self,
        timeout: float = 5.0,
        on_event: Callable[[PipeMessage], None] | None = None,
        stopped: bool = False,
    ) -> None:
        """Ask the actor to leave cleanly and wait; events met meanwhile go to ``on_event``.
        ``stopped``: its STOPPED was read already; only wait for its thread to end (asking
        again would wait for an answer that never comes)."""
        if stopped:
            self._thread.join(timeout)
        elif self._thread.is_alive():
            send(self.pipe, PipeKind.STOP)
            deadline = time.monotonic() + timeout
            while self._thread.is_alive() and time.monotonic() < deadline:
                event = self.poll(0.05)
                if event is None:
                    continue
                if event.kind in (PipeKind.STOPPED, PipeKind.FATAL):
                    break
                if on_event is not None:
                    on_event(event)
            self._thread.join(max(deadline - time.monotonic(), 0.1))
        self.pipe.close()
