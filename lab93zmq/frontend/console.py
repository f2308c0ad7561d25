"""Front ends over an actor: the interactive prompt, pipelines, --send, --listen.

Streams, TTY flags and clocks come in an ``Environment`` (the httpie habit), so
tests drive every front end with StringIO. A front end never touches the
network: it talks to its actor through ``ActorHandle`` (actor.py). Lines come
from a reader thread over their own inproc PAIR pipe, so the main thread waits
on one poller for both lines and actor events.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import zmq

from ..core import commands
from ..core.errors import Lab93Error, UndeliveredError
from ..core.message import Message, make_id
from ..io.actor import ActorHandle, Kind, PipeMessage, Post
from .environment import Environment

log = logging.getLogger(__name__)

_EOF = b""  # the line reader's end-of-input marker (a real line is never empty: it has "\n")


@dataclass(frozen=True)
class FrontEndOptions:
    subject: str | None = None
    to: str | None = None
    json: bool = False
    timeout: float = 10.0


def format_message(message: Message, with_date: bool = False) -> str:
    """One message for people, in the spirit of the seed's from/subject/content:
    ``[20:01:02] <alice> [lunch] pizza?``; a direct one shows ``<alice -> bob>``."""
    local = message.sent_at.astimezone()
    stamp = local.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
    who = (
        message.author if message.recipient is None else f"{message.author} -> {message.recipient}"
    )
    subject = f"[{message.subject}] " if message.subject else ""
    content = message.content.replace("\n", "\n    ")
    return f"[{stamp}] <{who}> {subject}{content}"


def format_beacon(beacon: dict[str, Any]) -> str:
    seen = beacon.get("last_seen", "")[11:19]
    return (
        f"{beacon['user']:<16} {beacon['mode']:<9} {beacon['address']:>15}  "
        f"router {beacon['router']:<5} pub {beacon['pub']:<5}  seen {seen}  {beacon['node'][:8]}"
        + (f"  secure, key {beacon['key']}" if "key" in beacon else "")
    )


class Printer:
    """Writes messages and answers in human or JSON form.

    In JSON mode stdout carries only messages (one object per line); answers to
    commands and notices go to stderr so ``| jq`` never chokes.
    """

    def __init__(self, env: Environment, json_mode: bool) -> None:
        self.env = env
        self.json_mode = json_mode
        self.show_info = True

    @property
    def out(self) -> IO[str]:
        return self.env.stdout

    def _answer_stream(self) -> IO[str]:
        return self.env.stderr if self.json_mode else self.out

    def message(self, message: Message, with_date: bool = False) -> None:
        line = message.to_json_line() if self.json_mode else format_message(message, with_date)
        print(line, file=self.out, flush=True)

    def note(self, text: str) -> None:
        print(text, file=self.env.stderr, flush=True)

    def info(self, text: str) -> None:
        """A ``* status`` line: shown to people, kept out of scripts unless -v."""
        if self.show_info:
            self.note(f"* {text}")
        else:
            log.info("%s", text)

    def answer(self, text: str) -> None:
        print(text, file=self._answer_stream(), flush=True)

    def beacons(self, beacons: list[dict[str, Any]]) -> None:
        if not beacons:
            self.note("no lab93 nodes or repeaters heard")
            return
        if self.json_mode:
            for beacon in beacons:
                print(json.dumps(beacon), file=self.out, flush=True)
        else:
            for beacon in beacons:
                print(format_beacon(beacon), file=self.out, flush=True)


class LineReader:
    """Reads lines in a daemon thread and hands them over an inproc PAIR pipe.

    A daemon because a blocking read on a terminal or pipe cannot be
    interrupted; the thread owns its end of the pipe and nothing else.
    """

    def __init__(self, ctx: zmq.Context, lines: Callable[[], Iterator[str]]) -> None:
        self._ctx = ctx
        self._lines = lines
        self._endpoint = f"inproc://lab93-lines-{uuid.uuid4().hex}"
        self.pipe = ctx.socket(zmq.PAIR)
        self.pipe.linger = 0
        self.pipe.bind(self._endpoint)
        threading.Thread(target=self._run, name="line-reader", daemon=True).start()

    def _run(self) -> None:
        pipe = self._ctx.socket(zmq.PAIR)
        pipe.linger = 0
        pipe.connect(self._endpoint)
        try:
            for line in self._lines():
                pipe.send_string(line if line.endswith("\n") else line + "\n")
        except (EOFError, KeyboardInterrupt):
            pass
        except zmq.ZMQError:
            return  # the front end has gone; nobody is left to read
        finally:
            try:
                pipe.send(_EOF)
            except zmq.ZMQError:
                pass
            pipe.close()

    def close(self) -> None:
        self.pipe.close()


class FrontEnd:
    """Drives one actor for one user session."""

    def __init__(self, handle: ActorHandle, env: Environment, options: FrontEndOptions) -> None:
        self.handle = handle
        self.env = env
        self.options = options
        self.printer = Printer(env, options.json)
        self.pending: dict[str, str] = {}
        self.sent = 0
        self.status_detail = ""

    # -- actor events -------------------------------------------------------

    def handle_event(self, event: PipeMessage) -> None:
        body = event.body
        kind = event.kind
        if kind is Kind.INCOMING:
            for fields in body["messages"]:
                self.printer.message(Message.from_wire_dict(fields))
        elif kind is Kind.ACCEPTED:
            for message_id in body["ids"]:
                self.pending.pop(message_id, None)
        elif kind is Kind.REJECTED:
            line = self.pending.pop(body["id"], "")
            self.printer.note(f"not sent: {body['reason']} ({line[:40]!r})")
        elif kind is Kind.STATUS:
            if body["detail"] != self.status_detail:
                self.status_detail = body["detail"]
                self.printer.info(self.status_detail)
        elif kind is Kind.NOTICE:
            self.printer.info(body["text"])
        elif kind is Kind.SCAN_RESULT:
            self.printer.beacons(body["beacons"])
        elif kind is Kind.WHO_RESULT:
            users = body["users"]
            self.printer.answer("online: " + (", ".join(users) if users else "nobody else"))
        elif kind is Kind.HISTORY_RESULT:
            for fields in body["messages"]:
                self.printer.message(Message.from_wire_dict(fields), with_date=True)
        elif kind is Kind.FATAL:
            raise Lab93Error(body["error"])

    def pump(self, timeout: float) -> PipeMessage | None:
        """Wait up to ``timeout`` for one actor event and act on it."""
        event = self.handle.poll(timeout)
        if event is not None:
            self.handle_event(event)
        return event

    # -- user actions -------------------------------------------------------

    def post(self, say: commands.Say) -> str:
        sent_at = self.env.utc_now()
        message_id = make_id(sent_at, self.env.entropy(10))
        post = Post(message_id, say.text, say.subject, say.to, sent_at)
        self.pending[message_id] = say.text
        self.sent += 1
        self.handle.request(Kind.POST, **post.body())
        return message_id

    def act(self, line: str) -> bool:
        """Carry out one line; False when the user asked to quit."""
        try:
            action = commands.parse_line(line, self.options.subject, self.options.to)
        except commands.CommandError as error:
            self.printer.note(str(error))
            return True
        if isinstance(action, commands.Say):
            self.post(action)
        elif isinstance(action, commands.Quit):
            return False
        elif isinstance(action, commands.Scan):
            self.handle.request(Kind.SCAN)
        elif isinstance(action, commands.Who):
            self.handle.request(Kind.WHO)
        elif isinstance(action, commands.History):
            self.handle.request(Kind.HISTORY, limit=action.count)
        elif isinstance(action, commands.Help):
            self.printer.answer(commands.HELP)
        return True

    def wait_delivered(self) -> None:
        """Wait until every post is accepted or the timeout passes; raise if not."""
        deadline = self.env.monotonic() + self.options.timeout
        while self.pending:
            left = deadline - self.env.monotonic()
            if left <= 0:
                break
            self.pump(min(left, 0.25))
        if self.pending:
            reason = f" ({self.status_detail})" if self.status_detail else ""
            raise UndeliveredError(
                f"{len(self.pending)} of {self.sent} messages were not delivered within "
                f"{self.options.timeout:g} s{reason}; they are kept in the inbox and sent next time"
            )

    # -- the front ends ----------------------------------------------------------

    def send_one(self, text: str) -> None:
        """``--send TEXT``: one message, wait until accepted."""
        self.post(commands.Say(text, self.options.subject, self.options.to))
        self.wait_delivered()

    def listen(self) -> None:
        """``--listen`` (and a repeater server): print what arrives until interrupted."""
        while True:
            self.pump(0.5)

    def run_lines(self, lines: Callable[[], Iterator[str]]) -> None:
        """Read lines (a pipe or the prompt) and act on each until end of input or /quit."""
        reader = LineReader(self.handle.ctx, lines)
        poller = zmq.Poller()
        poller.register(self.handle.pipe, zmq.POLLIN)
        poller.register(reader.pipe, zmq.POLLIN)
        try:
            reading = True
            while reading:
                ready = dict(poller.poll(1000))
                if self.handle.pipe in ready:
                    self.pump(0)
                if reader.pipe in ready:
                    line = reader.pipe.recv()
                    reading = line != _EOF and self.act(line.decode("utf-8", "replace"))
        finally:
            reader.close()

    def pipeline(self) -> None:
        """Non-TTY stdin: each line a message; at the end wait until all are accepted."""
        self.run_lines(lambda: iter(self.env.stdin))
        self.wait_delivered()

    def interactive_prompt(self, prompt: str) -> None:
        """A terminal: a prompt_toolkit line editor; incoming messages appear above it."""
        from prompt_toolkit import PromptSession
        from prompt_toolkit.patch_stdout import patch_stdout

        session: PromptSession[str] = PromptSession(
            input=self.env.prompt_input, output=self.env.prompt_output
        )

        def lines() -> Iterator[str]:
            while True:
                yield session.prompt(prompt)

        self.printer.answer("Type a message and press Enter; /help lists the commands.")
        terminal = self.env.stdout, self.env.stderr
        with patch_stdout(raw=True):
            # patch_stdout swaps sys.stdout and sys.stderr for a proxy that prints
            # above the prompt; notices and hints must go through it too.
            self.env.stdout, self.env.stderr = sys.stdout, sys.stderr
            try:
                self.run_lines(lines)
            finally:
                self.env.stdout, self.env.stderr = terminal
        if self.pending:
            self.printer.note(
                f"* waiting up to {self.options.timeout:g} s for {len(self.pending)} messages"
            )
            self.wait_delivered()


def run(
    handle: ActorHandle,
    env: Environment,
    options: FrontEndOptions,
    *,
    send: str | None = None,
    listen: bool = False,
    prompt: str = "> ",
) -> None:
    """Pick the front end the way DESIGN.md says and run it; stops the actor at the end."""
    front = FrontEnd(handle, env, options)
    # --send and pipelines are scripts: their stderr is for what went wrong.
    front.printer.show_info = listen or (send is None and bool(env.stdin_isatty))
    try:
        if handle.ready_detail:
            front.printer.info(handle.ready_detail)
        if send is not None:
            front.send_one(send)
        elif listen:
            front.listen()
        elif env.stdin_isatty:
            front.interactive_prompt(prompt)
        else:
            front.pipeline()
    finally:
        handle.stop(on_event=_quiet(front))


def _quiet(front: FrontEnd) -> Callable[[PipeMessage], None]:
    """While stopping, still show messages and notices, but never raise."""

    def on_event(event: PipeMessage) -> None:
        try:
            front.handle_event(event)
        except Lab93Error:
            pass

    return on_event
