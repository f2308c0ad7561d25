"""The command line's front ends, on the Python API: --send, --listen, pipelines,
a server's log, and (prompt.py) the interactive prompt.

Streams, TTY flags and clocks come in an ``Environment`` (the httpie habit), so
tests drive every front end with StringIO. A front end never touches the
network or a socket: it holds a ``lab93zmq.Node`` (or ``Server``) and calls it
like any program would, so every CLI test is also a test of the API.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from ..api.node import Node, Server
from ..core.authoring import Draft
from ..core.errors import Lab93Error, MessageError
from ..core.events import Joined, Parted, Topic
from ..core.message import ACTION
from ..core.rooms import room_name
from ..core.saying import Say, said
from .chat import ChatRun, FrontEndOptions
from .environment import Environment

if TYPE_CHECKING:
    from ..core import commands

log = logging.getLogger(__name__)

READ_SIZE = 1 << 16  # bytes read from piped input at once: a burst of lines, sent together
BURST_LINES = 1000  # lines of a stream without a file descriptor taken as one burst
SHOW_AT_ONCE = 1000  # what arrived together is shown together (one write), at most this

__all__ = ["FrontEndOptions", "Pipeline", "byte_bursts", "listen", "send_one"]


def byte_bursts(stream: IO[str]) -> Iterator[list[bytes]]:
    """The lines of ``stream`` as bytes, in bursts of what is there to read at once.

    From its file descriptor when it has one (a real stdin): each read takes what
    the writer has written so far, so a fast writer's lines go out together and a
    slow one's at once; bytes that are not UTF-8 reach the front end instead of an
    exception. A stream without one (tests) is read line by line, in bursts.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is None:
        burst: list[bytes] = []
        for line in stream:
            burst.append(line.encode("utf-8", "surrogateescape"))
            if len(burst) == BURST_LINES:
                yield burst
                burst = []
        if burst:
            yield burst
        return
    partial = b""
    while chunk := os.read(fd, READ_SIZE):
        lines = (partial + chunk).split(b"\n")
        partial = lines.pop()
        if lines:
            yield [line + b"\n" for line in lines]
    if partial:
        yield [partial]


class PipedRooms:
    """A send-only node (a pipeline, --send) as the action table sees it: it joins no
    room (it is not announced and keeps none of a room), so ``/join ROOM`` and
    ``/part`` only choose where the next lines go. Everything else is the node's."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.rooms: list[str] = list(node.rooms)  # the current one first

    def __getattr__(self, name: str) -> Any:
        return getattr(self._node, name)

    def _current(self, room: str | None) -> str | None:
        return room_name(room) if room is not None else (self.rooms[0] if self.rooms else None)

    def join(self, room: str) -> Joined:
        name = room_name(room)
        if name in self.rooms:
            self.rooms.remove(name)
        self.rooms.insert(0, name)
        return Joined(name, self._node.topic(name), first=False)

    def part(self, room: str | None = None) -> Parted:
        name = self._current(room) or ""
        if name in self.rooms:
            self.rooms.remove(name)
        return Parted(name)

    def topic(self, room: str | None = None) -> Topic | None:
        return self._node.topic(self._current(room))

    def set_topic(self, text: str, room: str | None = None) -> None:
        self._node.set_topic(text, self._current(room))

    def draft(self, text: str, *, to: str | None = None, room: str | None = None,
              **fields: Any) -> Draft:
        if to is None:
            room = self._current(room)
        return self._node.draft(text, to=to, room=room, **fields)

    def _drafts(self, texts: list[str], *, to: str | None = None, room: str | None = None,
                **fields: Any) -> list[Draft | MessageError]:
        if to is None:
            room = self._current(room)
        return self._node._drafts(texts, to=to, room=room, **fields)


class Pipeline:
    """Lines to a node: piped input (each line a message, a line starting with / a
    command), and --send (one line). Posts go out in bursts; what the node
    reports is shown by a second thread meanwhile."""

    def __init__(self, node: Node, run: ChatRun) -> None:
        self.node: Any = PipedRooms(node) if not node.config.listen else node
        self.run = run
        self._said: list[tuple[Say, str | None]] = []  # said in this burst, to draft
        self._drafts: list[Draft] = []  # and drafted, posted together at its end
        self._sends: list[tuple[str, Say, str | None]] = []  # and what each was
        self._shower = threading.Thread(target=self._show_all, name="lab93-show", daemon=True)
        self._shower.start()

    def _show_all(self) -> None:
        try:
            show_until_closed(self.node, self.run)
        except Lab93Error as error:
            self.failure = error  # the actor ended with this sentence
            self.run.ended()  # told now, not after --timeout
        else:
            self.failure = None

    # -- lines -------------------------------------------------------------------

    def burst(self, lines: list[bytes]) -> bool:
        """Act on a burst of lines; False when one asked to quit."""
        try:
            for data in lines:
                self.run.line_number += 1
                try:
                    line = data.decode("utf-8")
                except UnicodeDecodeError:
                    self._draft_said()  # what is wrong with the lines is said in their order
                    self.run.unreadable_line()
                    continue
                if not self.act(line, f"line {self.run.line_number}"):
                    return False
            return True
        finally:
            self._post()

    def act(self, line: str, where: str | None = None) -> bool:
        """Carry out one line (a message waits for the burst's end); False on /quit."""
        options = self.run.options
        say = said(line, options.subject, options.to)  # plain text: the usual line
        if say is None:
            self._draft_said()  # what the lines before it did wrong is said before it
            action = self.run.parse(line)
            if not isinstance(action, Say):
                self._post()  # what was said before a command goes out before it
                return self.perform(action)
            say = action  # /me, /msg
        self._said.append((say, where))
        return True

    def say(self, say: Say, where: str | None = None) -> None:
        """Send ``say`` as it is (no command parsing: --send's text)."""
        self._said.append((say, where))
        self._post()

    def _draft_said(self) -> None:
        """Draft what was said since the last time, a run of lines alike at a time (the
        same subject, addressee and kind: checked together); tell what is refused."""
        said_lines, self._said = self._said, []
        start = 0
        while start < len(said_lines):
            first = said_lines[start][0]
            end = start + 1
            while end < len(said_lines) and _alike(said_lines[end][0], first):
                end += 1
            self._draft_run(said_lines[start:end])
            start = end

    def _draft_run(self, run: list[tuple[Say, str | None]]) -> None:
        first = run[0][0]
        hint = self._no_room_hint(first)
        if hint is not None:
            for say, where in run:
                self.run.invalid(say, hint, where)
            return
        made = self.node._drafts([say.text for say, _ in run], subject=first.subject,
                                 to=first.to, action=first.kind == ACTION)
        for (say, where), draft in zip(run, made, strict=True):
            if isinstance(draft, MessageError):
                self.run.invalid(say, str(draft), where)
                continue
            self._sends.append((draft.id, say, where))
            self._drafts.append(draft)

    def _no_room_hint(self, say: Say) -> str | None:
        if say.to is not None or self.node.rooms:
            return None  # the usual line: no need of the action table
        from . import actions

        return actions.no_room_hint(self.node, say)

    def _post(self) -> None:
        self._draft_said()
        if not self._drafts:
            return
        drafts, self._drafts = self._drafts, []
        self.run.will_send_many(self._sends)  # before the node has them (see will_send)
        self._sends = []
        try:
            self.node.send_many(drafts, timeout=None)  # stored, as one burst
        except Lab93Error:
            pass  # a refusal is shown as the node reports it; the others are stored

    def perform(self, action: commands.Action) -> bool:
        """A command, in its turn among the lines (the table of actions.py); False on
        /quit."""
        from ..core import commands  # a command: its table is needed now (core/saying.py)
        from . import actions

        if isinstance(action, commands.Quit):
            return False
        actions.perform(self.node, self.run, action)
        return True

    # -- the end ------------------------------------------------------------------

    def finish(self) -> None:
        """Wait until every post is accepted or the timeout passes; raise if not."""
        self._post()
        self.run.wait_settled(self.run.env.monotonic() + self.run.options.timeout)
        self.end()
        self.run.finish()

    def end(self) -> None:
        """Close the node (cleanly) and let the shower finish what it was showing."""
        self.node.close()
        self._shower.join(5)
        failure = getattr(self, "failure", None)
        if failure is not None:
            raise failure


def _alike(say: Say, other: Say) -> bool:
    """Drafted alike: all but the text the same."""
    return say.subject == other.subject and say.to == other.to and say.kind == other.kind


def send_one(node: Node, run: ChatRun, text: str) -> None:
    """``--send TEXT``: one message, wait until accepted."""
    lines = Pipeline(node, run)
    try:
        lines.say(Say(text, run.options.subject, run.options.to))
        lines.finish()
    finally:
        node.close()


def pipeline(node: Node, run: ChatRun, env: Environment) -> None:
    """Non-TTY stdin: each line a message; at the end wait until all are accepted."""
    lines = Pipeline(node, run)
    try:
        for burst in byte_bursts(env.stdin):
            if not lines.burst(burst):
                break
        lines.finish()
    finally:
        node.close()


def show_until_closed(node: Any, run: ChatRun) -> None:
    """Show what the node reports until it is closed; what arrived together is shown
    together."""
    while items := node.poll_many(limit=SHOW_AT_ONCE):
        run.show_all(items)


def listen(node: Node | Server, run: ChatRun) -> None:
    """``--listen`` (and a repeater server): show what arrives until interrupted."""
    try:
        show_until_closed(node, run)
    finally:
        node.close()
