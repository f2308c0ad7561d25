"""One run of the command line's front end: what was sent, what still waits, and how
what arrives is shown. Shared by the blocking drivers (console.py) and the
interactive prompt (prompt.py), which differ only in how they wait on the node.

Thread-safe: a pipeline's main thread posts while a second thread shows what
the node reports; both go through the one lock here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..core import commands
from ..core.errors import Lab93Error, UndeliveredError
from ..core.events import Accepted, Event, Notice, Rejected, Status
from ..core.message import Message
from ..core.sighting import Sighting
from .environment import Environment
from .printer import Printer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrontEndOptions:
    subject: str | None = None
    to: str | None = None
    json: bool = False
    timeout: float = 10.0


def _messages(count: int, total: int) -> str:
    """``1 of 1 message was``, ``1 of 3 messages was``, ``2 of 3 messages were``."""
    noun = "message" if total == 1 else "messages"
    return f"{count} of {total} {noun} {'was' if count == 1 else 'were'}"


class ChatRun:
    """The front end's bookkeeping for one run, and everything it prints."""

    def __init__(
        self,
        env: Environment,
        options: FrontEndOptions,
        show_messages: bool = True,
        show_room: Callable[[], bool] = lambda: False,
    ) -> None:
        self.env = env
        self.options = options
        self.printer = Printer(env, options.json)
        self.show_messages = show_messages  # a send-only run shows none of the room's
        self.show_room = show_room  # True while the node is in more than one room
        self.pending: dict[str, commands.Say] = {}  # sent, not accepted or refused yet
        self.attempts = 0  # lines that were to become messages (sent, invalid, unreadable)
        self.status_detail = ""
        self.connected: bool | None = None
        self.line_number = 0  # of the piped input; 0 when lines are typed
        self.where: dict[str, str] = {}  # message id -> "line N" in piped input
        self.refused: list[str] = []  # what was refused, as named to the user
        self.lock = threading.RLock()
        self.settled = threading.Condition(self.lock)  # notified when a post is settled

    # -- what the node reports ---------------------------------------------------------

    def show(self, item: Message | Event) -> None:
        with self.lock:
            if isinstance(item, Message):
                if self.show_messages:
                    self.printer.message(item, show_room=self.show_room())
            elif isinstance(item, Accepted):
                for message_id in item.ids:
                    self.pending.pop(message_id, None)
                self.settled.notify_all()
            elif isinstance(item, Rejected):
                self.refuse(item.id or "", item.reason)
            elif isinstance(item, Status):
                self._status(item.connected, item.detail)
            elif isinstance(item, Notice):
                self.printer.info(item.text)

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

    # -- what the user does ---------------------------------------------------------

    def will_send(self, message_id: str, say: commands.Say, where: str | None) -> None:
        """``say`` goes out as ``message_id``: it waits until accepted or refused. Told
        before the node has it, so an answer that comes quickly finds it here."""
        with self.lock:
            self.attempts += 1
            self.pending[message_id] = say
            if where:
                self.where[message_id] = where

    def refuse(self, message_id: str, reason: str) -> None:
        """A post will never be sent: name it."""
        with self.lock:
            say = self.pending.pop(message_id, None)
            where = self.where.get(message_id)
            self._refused(say.text if say is not None else "", reason, where)
            self.settled.notify_all()

    def invalid(self, say: commands.Say, reason: str, where: str | None) -> None:
        """A line that cannot become a message at all (checked before it is sent)."""
        with self.lock:
            self.attempts += 1
            self._refused(say.text, reason, where)

    def _refused(self, text: str, reason: str, where: str | None) -> None:
        quoted = repr(text[:40]) + ("..." if len(text) > 40 else "")
        self.refused.append(where or quoted)
        self.printer.note(f"not sent: {reason} ({f'{where}: ' if where else ''}{quoted})")

    def unreadable_line(self) -> None:
        with self.lock:
            where = f"line {self.line_number}"
            self.refused.append(where)
            self.attempts += 1
            self.printer.note(f"not sent: {where} is not valid UTF-8 text")

    def parse(self, line: str) -> commands.Action:
        """What a line means; a line that is not understood gets a hint (and Nothing)."""
        try:
            return commands.parse_line(line, self.options.subject, self.options.to)
        except commands.CommandError as error:
            self.printer.note(str(error))
            return commands.Nothing()

    # -- answers ----------------------------------------------------------------------

    def show_scan(self, sightings: Sequence[Sighting]) -> None:
        with self.lock:
            self.printer.beacons([s.to_json() for s in sightings])

    def show_who(self, users: Sequence[str]) -> None:
        with self.lock:
            self.printer.answer("online: " + (", ".join(users) if users else "nobody else"))

    def show_history(self, action: commands.History, messages: Sequence[Message]) -> None:
        with self.lock:
            if action.capped:
                self.printer.answer(
                    f"showing the last {action.count}, the most /history shows"
                    " (lab93-node --history prints the whole inbox)"
                )
            for message in messages:
                self.printer.message(message, with_date=True, show_room=self.show_room())

    def show_help(self) -> None:
        with self.lock:
            self.printer.answer(commands.HELP)

    def failed(self, error: Lab93Error) -> None:
        with self.lock:
            self.printer.note(str(error))

    # -- the end ------------------------------------------------------------------------

    def wait_settled(self, deadline: float) -> None:
        """Wait until every post is accepted or refused, or the monotonic ``deadline``."""
        with self.settled:
            while self.pending:
                left = deadline - self.env.monotonic()
                if left <= 0:
                    return
                self.settled.wait(left)

    def finish(self) -> None:
        """A script's end: raise naming what was refused or is still waiting, so the
        exit status is 0 only when everything was delivered."""
        with self.lock:
            problems = []
            total = self.attempts
            if self.refused:
                shown = ", ".join(self.refused[:5]) + (", ..." if len(self.refused) > 5 else "")
                problems.append(
                    f"{_messages(len(self.refused), total)} refused and not sent ({shown})"
                )
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
        with self.lock:
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
