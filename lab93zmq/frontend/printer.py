"""How messages, answers and notices are shown: for people, or one JSON object a line.

In JSON mode stdout carries only messages; answers to commands and notices go
to stderr, so ``| jq`` never chokes. Logs go to stderr too, never into the
JSON stream.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from ..core.message import Message
from .environment import Environment
from .lines import View, format_message
from .options import OutputClosed
from .style import BELL, Style

log = logging.getLogger(__name__)


def format_beacon(beacon: dict[str, Any]) -> str:
    seen = beacon.get("last_seen", "")[11:19]
    return (
        f"{beacon['user']:<16} {beacon['mode']:<9} {beacon['address']:>15}  "
        f"router {beacon['router']:<5} pub {beacon['pub']:<5}  seen {seen}  {beacon['node'][:8]}"
        + (f"  secure, key {beacon['key']}" if "key" in beacon else "")
        + (f"  service {beacon['service'][:8]}" if "service" in beacon else "")
    )


def grouped(beacons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``beacons`` in their order, but the servers of one service together, where the
    first of them stands."""
    out: list[dict[str, Any]] = []
    placed: set[str] = set()
    for beacon in beacons:
        service = beacon.get("service")
        if service is None:
            out.append(beacon)
        elif service not in placed:
            placed.add(service)
            out += [b for b in beacons if b.get("service") == service]
    return out


class Printer:
    """Writes messages and answers in human or JSON form.

    In JSON mode stdout carries only messages (one object per line); answers to
    commands and notices go to stderr so ``| jq`` never chokes.

    When the reader of stdout goes away (``| head -1``) the first write raises
    OutputClosed and every later one to stdout is dropped, so a clean stop
    that still has messages to show never meets the closed pipe again.

    Inside ``batch()`` the lines for stdout are written together at its end,
    with one flush: a burst of 300 messages is one write, not 300.
    """

    def __init__(self, env: Environment, json_mode: bool) -> None:
        self.env = env
        self.json_mode = json_mode
        self.show_info = True
        self.closed = False
        self._held: list[str] | None = None  # stdout's lines of the batch under way
        self.style = Style.for_terminal(
            env.environ, bool(env.stdout_isatty), json_mode, getattr(env.stdout, "encoding", None)
        )

    @property
    def out(self) -> IO[str]:
        return self.env.stdout

    def _answer_stream(self) -> IO[str]:
        return self.env.stderr if self.json_mode else self.out

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Hold stdout's lines until the end of the block, then write them at once."""
        if self._held is not None:  # already in one: its end writes these too
            yield
            return
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            if held:
                self._put("".join(held), self.env.stdout)

    def _write(self, text: str, stream: IO[str], key: str | None = None) -> None:
        if stream is self.env.stdout and self.closed:
            return
        keyed = getattr(stream, "write_keyed", None) if key is not None else None
        if self._held is not None and stream is self.env.stdout and keyed is None:
            self._held.append(text + "\n")
            return
        if self._held:  # what came before goes first
            held, self._held = "".join(self._held), []
            self._put(held, self.env.stdout)
        if keyed is not None:
            self._put(text + "\n", stream, keyed, key)
        else:
            self._put(text + "\n", stream)

    def _put(self, text: str, stream: IO[str], keyed: Any = None, key: str | None = None) -> None:
        if stream is self.env.stdout and self.closed:
            return
        try:
            if keyed is not None:
                keyed(text, key)
            else:
                stream.write(text)
                stream.flush()
        except BrokenPipeError:
            if stream is not self.env.stdout:
                return  # nobody reads our stderr either: nothing left to tell
            self.closed = True
            raise OutputClosed() from None

    def message(self, message: Message, view: View, mark: str = "", bell: bool = False,
                key: str | None = None) -> None:
        """One message: its JSON line, or the line people read (``bell``: ring the
        terminal's bell with it; ``key``: a line that may be rewritten, see rewrite)."""
        if self.json_mode:
            self._write(message.to_json_line(), self.out)
            return
        line = format_message(message, view, mark)
        if bell and self.style.bell:
            line += BELL
        self._write(line, self.out, key)

    def json_message(self, message: Message) -> None:
        """A message's JSON line (JSON mode)."""
        self._write(message.to_json_line(), self.out)

    def rewrite(self, key: str, message: Message, view: View, mark: str) -> bool:
        """Draw the line written with ``key`` again, in place, if it is still the last
        line above the prompt; False when it cannot be (the caller says it otherwise)."""
        rewrite = getattr(self.out, "rewrite", None)
        if rewrite is None or self.json_mode or self.closed or not self.env.stdout_isatty:
            return False
        return bool(rewrite(key, format_message(message, view, mark)))

    def line(self, text: str) -> None:
        """A line of the conversation that is not a message (joins, leaves, topics):
        with the messages for people, kept out of a JSON stream."""
        if self.json_mode:
            log.info("%s", text)
        else:
            self._write(text, self.out)

    def clear(self) -> None:
        """/clear: empty the terminal (nothing to do for a pipe or JSON)."""
        clear = getattr(self.out, "clear", None)
        if clear is not None and self.env.stdout_isatty and not self.json_mode:
            clear()

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
        for beacon in grouped(beacons):
            self._write(json.dumps(beacon) if self.json_mode else format_beacon(beacon), self.out)
