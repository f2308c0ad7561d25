"""How messages, answers and notices are shown: for people, or one JSON object a line.

In JSON mode stdout carries only messages; answers to commands and notices go
to stderr, so ``| jq`` never chokes. Logs go to stderr too, never into the
JSON stream.
"""

from __future__ import annotations

import json
import logging
from typing import IO, Any

from ..core.message import Message
from .environment import Environment
from .options import OutputClosed

log = logging.getLogger(__name__)


def format_message(message: Message, with_date: bool = False, show_room: bool = False) -> str:
    """One message for people, in the spirit of the seed's from/subject/content:
    ``[20:01:02] <alice> [lunch] pizza?``; a direct one shows ``<alice -> bob>``; with
    ``show_room`` (a node in several rooms) a room message names its room:
    ``[20:01:02] #ops <alice> pizza?``."""
    local = message.sent_at.astimezone()
    stamp = local.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
    where = f"#{message.room} " if show_room and message.room is not None else ""
    who = (
        message.author if message.recipient is None else f"{message.author} -> {message.recipient}"
    )
    subject = f"[{message.subject}] " if message.subject else ""
    content = message.content.replace("\n", "\n    ")
    return f"[{stamp}] {where}<{who}> {subject}{content}"


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

    def message(self, message: Message, with_date: bool = False, show_room: bool = False) -> None:
        if self.json_mode:
            line = message.to_json_line()
        else:
            line = format_message(message, with_date, show_room)
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
        for beacon in grouped(beacons):
            self._write(json.dumps(beacon) if self.json_mode else format_beacon(beacon), self.out)
