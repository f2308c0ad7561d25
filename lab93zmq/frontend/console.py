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
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import zmq

from ..core import commands
from ..core.errors import Lab93Error, UndeliveredError
from ..core.message import Message, make_id
from ..io.actor import ActorHandle, Kind, PipeMessage, Post
from .environment import Environment
from .options import Interrupted, OutputClosed, Terminated

if TYPE_CHECKING:
    import asyncio  # only the interactive prompt loads it: it costs a plain node 3.5 MiB

log = logging.getLogger(__name__)

_EOF = b""  # the line reader's end-of-input marker (a real line is never empty: it has "\n")
_DRAIN = 200  # actor events taken per turn of the prompt's loop


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

    When the reader of stdout goes away (``| head -1``) the first write raises
    OutputClosed and every later one to stdout is dropped, so a clean stop
    that still has messages to show never meets the closed pipe again.
    """

    def __init__(self, env: Environment, json_mode: bool) -> None:
        self.env = env
        self.json_mode = json_mode
        self.show_info = True
        self.closed = False

    @property
    def out(self) -> IO[str]:
        return self.env.stdout

    def _answer_stream(self) -> IO[str]:
        return self.env.stderr if self.json_mode else self.out

    def _write(self, text: str, stream: IO[str]) -> None:
        if stream is self.env.stdout and self.closed:
            return
        try:
            print(text, file=stream, flush=True)
        except BrokenPipeError:
            if stream is not self.env.stdout:
                return  # nobody reads our stderr either: nothing left to tell
            self.closed = True
            raise OutputClosed() from None

    def message(self, message: Message, with_date: bool = False) -> None:
        line = message.to_json_line() if self.json_mode else format_message(message, with_date)
        self._write(line, self.out)

    def note(self, text: str) -> None:
        self._write(text, self.env.stderr)

    def info(self, text: str) -> None:
        """A ``* status`` line: shown to people, kept out of scripts unless -v."""
        if self.show_info:
            self.note(f"* {text}")
        else:
            log.info("%s", text)

    def answer(self, text: str) -> None:
        self._write(text, self._answer_stream())

    def beacons(self, beacons: list[dict[str, Any]]) -> None:
        if not beacons:
            self.note("no lab93 nodes or repeaters heard")
            return
        for beacon in beacons:
            self._write(json.dumps(beacon) if self.json_mode else format_beacon(beacon), self.out)


class LineReader:
    """Reads lines in a daemon thread and hands them over an inproc PAIR pipe, as bytes.

    A daemon because a blocking read on a pipe cannot be interrupted; the
    thread owns its end of the pipe and nothing else. Lines travel as the bytes
    that were read, so the front end, not this thread, decides what to do with
    a line that is not UTF-8.
    """

    def __init__(self, ctx: zmq.Context, lines: Callable[[], Iterator[bytes]]) -> None:
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
                pipe.send(line if line.endswith(b"\n") else line + b"\n")
        except (OSError, ValueError) as error:  # e.g. stdin closed under us
            log.info("stopped reading standard input: %s", error)
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


def byte_lines(stream: IO[str]) -> Iterator[bytes]:
    """The lines of ``stream`` as bytes: from its binary buffer when it has one (a real
    stdin), so bytes that are not UTF-8 reach the front end instead of an exception."""
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        yield from buffer
        return
    for line in stream:
        yield line.encode("utf-8", "surrogateescape")


def _messages(count: int, total: int) -> str:
    """``1 of 1 message was``, ``1 of 3 messages was``, ``2 of 3 messages were``."""
    noun = "message" if total == 1 else "messages"
    return f"{count} of {total} {noun} {'was' if count == 1 else 'were'}"


class FrontEnd:
    """Drives one actor for one user session."""

    def __init__(self, handle: ActorHandle, env: Environment, options: FrontEndOptions) -> None:
        self.handle = handle
        self.env = env
        self.options = options
        self.printer = Printer(env, options.json)
        self.pending: dict[str, commands.Say] = {}
        self.sent = 0
        self.status_detail = ""
        self.connected: bool | None = None
        self.line_number = 0  # of the piped input; 0 when lines are typed
        self.where: dict[str, str] = {}  # message id -> "line N" in piped input
        self.refused: list[str] = []  # what was refused, as named to the user
        self.unreadable = 0  # piped lines refused before they became posts (not UTF-8)

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
            self._refused(body["id"], body["reason"])
        elif kind is Kind.STATUS:
            self._status(bool(body["connected"]), body["detail"])
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

    def _refused(self, message_id: str, reason: str) -> None:
        say = self.pending.pop(message_id, None)
        text = say.text if say is not None else ""
        quoted = repr(text[:40]) + ("..." if len(text) > 40 else "")
        where = self.where.get(message_id)
        self.refused.append(where or quoted)
        self.printer.note(f"not sent: {reason} ({f'{where}: ' if where else ''}{quoted})")

    def _status(self, connected: bool, detail: str) -> None:
        """Show how the connection changed. A loss is told once: while still
        disconnected, the next steps (reconnecting, looking for a server) are
        only logged (-v), so a dying server gives one line, not two."""
        was = self.connected
        self.connected = connected
        if detail == self.status_detail:
            return
        self.status_detail = detail
        if connected or was is not False:
            self.printer.info(detail)
        else:
            log.info("%s", detail)

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
        self.pending[message_id] = say
        if self.line_number:
            self.where[message_id] = f"line {self.line_number}"
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
            if action.capped:
                self.printer.answer(
                    f"showing the last {action.count}, the most /history shows"
                    " (lab93-node --history prints the whole inbox)"
                )
            self.handle.request(Kind.HISTORY, limit=action.count)
        elif isinstance(action, commands.Help):
            self.printer.answer(commands.HELP)
        return True

    def act_on_bytes(self, data: bytes) -> bool:
        """``act`` for a piped line as read; a line that is not UTF-8 is refused, named."""
        self.line_number += 1
        try:
            line = data.decode("utf-8")
        except UnicodeDecodeError:
            where = f"line {self.line_number}"
            self.refused.append(where)
            self.unreadable += 1
            self.printer.note(f"not sent: {where} is not valid UTF-8 text")
            return True
        return self.act(line)

    def wait_delivered(self) -> None:
        """Wait until every post is accepted or the timeout passes."""
        deadline = self.env.monotonic() + self.options.timeout
        while self.pending:
            left = deadline - self.env.monotonic()
            if left <= 0:
                break
            self.pump(min(left, 0.25))

    def finish(self) -> None:
        """A script's end: wait for delivery; raise naming what was refused or is still
        waiting, so the exit status is 0 only when everything was delivered."""
        self.wait_delivered()
        problems = []
        total = self.sent + self.unreadable
        if self.refused:
            shown = ", ".join(self.refused[:5]) + (", ..." if len(self.refused) > 5 else "")
            problems.append(f"{_messages(len(self.refused), total)} refused and not sent ({shown})")
        if self.pending:
            reason = self._waiting_for()
            kept = "it is" if len(self.pending) == 1 else "they are"
            problems.append(
                f"{_messages(len(self.pending), total)} not delivered within "
                f"{self.options.timeout:g} s{f' ({reason})' if reason else ''}; "
                f"{kept} kept in the inbox and sent next time"
            )
        if problems:
            raise UndeliveredError("; ".join(problems))

    def _waiting_for(self) -> str:
        """Why the pending posts are still pending, as far as the front end can tell."""
        if not self.connected:
            return self.status_detail
        users = sorted({say.to for say in self.pending.values() if say.to is not None})
        if users and all(say.to is not None for say in self.pending.values()):
            return f"waiting for {', '.join(users)} to come online"
        return ""

    def report_outbox(self) -> None:
        """Leaving the prompt: say what is not confirmed yet and where it waits."""
        by_recipient: dict[str | None, int] = {}
        for say in self.pending.values():
            by_recipient[say.to] = by_recipient.get(say.to, 0) + 1
        for to, count in by_recipient.items():
            what = "1 message waits" if count == 1 else f"{count} messages wait"
            goes = "it goes" if count == 1 else "they go"
            if to is None:
                self.printer.note(
                    f"* {what} in the outbox for the room (not confirmed yet); {goes} out"
                    " again the next time this inbox runs"
                )
            else:
                self.printer.note(
                    f"* {what} in the outbox for {to}; {goes} out when {to} is online"
                    " while this inbox runs"
                )

    # -- the front ends ----------------------------------------------------------

    def send_one(self, text: str) -> None:
        """``--send TEXT``: one message, wait until accepted."""
        self.post(commands.Say(text, self.options.subject, self.options.to))
        self.finish()

    def listen(self) -> None:
        """``--listen`` (and a repeater server): print what arrives until interrupted."""
        while True:
            self.pump(0.5)

    def run_lines(self, lines: Callable[[], Iterator[bytes]]) -> None:
        """Read lines (piped input) and act on each until end of input or /quit."""
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
                    reading = line != _EOF and self.act_on_bytes(line)
        finally:
            reader.close()

    def pipeline(self) -> None:
        """Non-TTY stdin: each line a message; at the end wait until all are accepted."""
        self.run_lines(lambda: byte_lines(self.env.stdin))
        self.finish()

    def interactive_prompt(self, prompt: str) -> None:
        """A terminal: a prompt_toolkit line editor; incoming messages appear above it.

        The prompt runs in this (the main) thread under asyncio, with the actor's
        pipe watched by the same loop, so it owns the terminal from start to end:
        after /quit no new prompt is drawn, and Ctrl-C, SIGTERM or an actor's
        fatal error end the prompt itself, which puts the terminal back as it was.
        """
        import asyncio

        from prompt_toolkit import PromptSession

        session: PromptSession[str] = PromptSession(
            input=self.env.prompt_input, output=self.env.prompt_output
        )
        self.printer.answer("Type a message and press Enter; /help lists the commands.")
        terminal = self.env.stdout, self.env.stderr
        # Everything the front end prints while the prompt runs goes above it.
        self.env.stdout = AbovePrompt(session.app, terminal[0])
        self.env.stderr = AbovePrompt(session.app, terminal[1])
        try:
            asyncio.run(self._prompt_loop(session, prompt))
        finally:
            for stream in (self.env.stdout, self.env.stderr):
                stream.flush()
            self.env.stdout, self.env.stderr = terminal

    async def _prompt_loop(self, session: Any, prompt: str) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        reasons: list[BaseException] = []

        def end(reason: BaseException) -> None:
            if not reasons:
                reasons.append(reason)
                task.cancel()

        def drain() -> None:
            # The pipe's FD is edge-triggered: take everything waiting, a bounded
            # batch at a time so a flood of messages never starves the keyboard.
            try:
                for _ in range(_DRAIN):
                    if self.pump(0) is None:
                        return
                loop.call_soon(drain)
            except Lab93Error as error:
                end(error)

        fd = self.handle.pipe.getsockopt(zmq.FD)
        loop.add_reader(fd, drain)
        on_sigterm = _catch_sigterm(loop, lambda: end(Terminated(session.default_buffer.text)))
        try:
            drain()
            while True:
                try:
                    line = await session.prompt_async(prompt)
                except EOFError:  # Ctrl-D on an empty line
                    return
                except KeyboardInterrupt:
                    raise Interrupted(session.default_buffer.text) from None
                if not self.act(line):
                    return
                drain()  # sending on the pipe may have taken its edge
        except asyncio.CancelledError:
            if reasons:
                raise reasons[0] from None
            raise
        finally:
            loop.remove_reader(fd)
            on_sigterm()


class AbovePrompt:
    """A text stream that prints complete lines above a running prompt.

    Written to only from the prompt's own thread (its asyncio loop), so each
    line is written at once, in order: erase the prompt, write, and let the
    prompt redraw itself below, with what was typed so far. (prompt_toolkit's
    patch_stdout hands lines to a thread of its own instead, which can lose
    the last ones when the prompt ends right after them.)
    """

    def __init__(self, app: Any, stream: IO[str]) -> None:
        self._app = app
        self._stream = stream
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        if "\n" in self._partial:
            lines, _, self._partial = self._partial.rpartition("\n")
            self._emit(lines + "\n")
        return len(text)

    def flush(self) -> None:
        if not self._app.is_running and self._partial:
            text, self._partial = self._partial, ""
            self._emit(text)

    def _emit(self, text: str) -> None:
        running = self._app.is_running
        if running:
            self._app.renderer.erase()
        self._stream.write(text)
        self._stream.flush()
        if running:
            self._app.invalidate()


def _catch_sigterm(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]):
    """While the prompt runs, SIGTERM ends it through the loop (so the terminal is
    restored); returns the function that puts the previous handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    loop.add_signal_handler(signal.SIGTERM, callback)

    def restore() -> None:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, previous)

    return restore


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
    interactive = send is None and not listen and bool(env.stdin_isatty)
    # --send and pipelines are scripts: their stderr is for what went wrong.
    front.printer.show_info = listen or interactive
    try:
        if handle.ready_detail:
            front.printer.info(handle.ready_detail)
        if send is not None:
            front.send_one(send)
        elif listen:
            front.listen()
        elif interactive:
            front.interactive_prompt(prompt)
        else:
            front.pipeline()
    finally:
        handle.stop(on_event=_quiet(front))
        if interactive:
            front.report_outbox()


def _quiet(front: FrontEnd) -> Callable[[PipeMessage], None]:
    """While stopping, still show messages and notices, but never raise."""

    def on_event(event: PipeMessage) -> None:
        try:
            front.handle_event(event)
        except Lab93Error:
            pass

    return on_event
