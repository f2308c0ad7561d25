"""One run of the command line's front end: what was sent, what still waits, and how
what arrives is shown. Shared by the blocking drivers (console.py) and the
interactive prompt (prompt.py), which differ only in how they wait on the node.

Thread-safe: a pipeline's main thread posts while a second thread shows what
the node reports; both go through the one lock here.

What people see (README.rst, "The terminal"):

* Your own lines like everyone's, with a time and a mark: ``(queued)`` while
  the node still waits to deliver it, ``✓`` once it is delivered. On a
  terminal the line is drawn again in place when it is still the last one;
  otherwise one ``* delivered: ...`` line says it.
* The backlog: messages written before this run started that arrive before
  the first live line (a message written since, or one of yours). The first
  live line is preceded by ``— 12 messages while you were away —``.
* A line that names you, or a direct message to you, is highlighted; a live
  one rings the terminal's bell (the backlog does not ring).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..core.away import AwayNotices
from ..core.errors import Lab93Error, UndeliveredError
from ..core.events import Accepted, Event, Joined, Member, Notice, Rejected, Status, Topic
from ..core.message import Message
from ..core.rooms import shown
from ..core.saying import Say, said
from ..core.sighting import Sighting
from . import lines
from .environment import Environment
from .printer import Printer

if TYPE_CHECKING:
    from ..core import commands

log = logging.getLogger(__name__)

# The broadcast core's notice for a direct message nobody can take now. The front
# end says the same for both modes once per addressee, and names it again at the
# end only when it was not said (see ``told_waiting``).
_NOT_ONLINE = re.compile(r"(\S+) is not online; the message waits in the outbox\Z")


@dataclass(frozen=True)
class FrontEndOptions:
    subject: str | None = None
    to: str | None = None
    json: bool = False
    timeout: float = 10.0
    user: str = ""  # whose terminal this is: own lines, mentions
    mode: str = ""  # "client" (repeater) or "broadcast": where a line to someone away waits


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
        self.pending: dict[str, Say] = {}  # sent, not accepted or refused yet
        self.attempts = 0  # lines that were to become messages (sent, invalid, unreadable)
        self.status_detail = ""
        self.connected: bool | None = None
        self.line_number = 0  # of the piped input; 0 when lines are typed
        self.where: dict[str, str] = {}  # message id -> "line N" in piped input
        self.refused: list[str] = []  # what was refused, as named to the user
        self.refused_earlier = 0  # messages an earlier run left in the outbox, now refused
        self.node_failed = False  # the node cannot go on: waiting for posts is over
        self.lock = threading.RLock()
        self.settled = threading.Condition(self.lock)  # notified when a post is settled
        self.started = env.utc_now()  # what was written before is the backlog
        self.backlog = 0  # backlog lines shown before the first live one
        self.live = False  # a live line was shown (the separator is behind us)
        self.queued: dict[str, Message] = {}  # own lines shown as queued, by id
        self.told_waiting: set[str] = set()  # addressees already said to be offline
        self.told_away = AwayNotices()  # addressees already said to be away, per text
        self.kept_for: dict[str, str] = {}  # id -> addressee to name once it is accepted
        self.users: set[str] = set()  # every name heard, for completion
        self.rooms: set[str] = set()  # every room heard, for completion
        self.topics: dict[str, Topic] = {}  # the topic last shown of each room
        # /join asked, its line not shown yet: room -> the rooms we were in before. The
        # line is shown by the first of the node's Joined in the stream (in its place,
        # before the backlog it brings) and the answer to join (a node with no stream).
        self.joining: dict[str, tuple[str, ...]] = {}

    def view(self) -> lines.View:
        today = self.env.utc_now().astimezone().date()
        return lines.View(today, self.show_room(), self.options.user, self.printer.style)

    # -- what the node reports ---------------------------------------------------------

    def show_all(self, items: Sequence[Message | Event]) -> None:
        """``show`` each of ``items``, their lines on stdout written together."""
        with self.lock, self.printer.batch():
            for item in items:
                self.show(item)

    def show(self, item: Message | Event) -> None:
        with self.lock:
            if isinstance(item, Message):
                self._incoming(item)
            elif isinstance(item, Accepted):
                self._accepted(item.ids)
            elif isinstance(item, Rejected):
                self.refuse(item.id or "", item.reason)
            elif isinstance(item, Status):
                self._status(item.connected, item.detail)
            elif isinstance(item, Notice):
                self._notice(item.text)
            elif isinstance(item, Member):
                self._member(item)
            elif isinstance(item, Topic):
                self.show_topic(item)
            elif isinstance(item, Joined):
                self.show_joined(item)

    def _incoming(self, message: Message) -> None:
        self.users.add(message.author)
        if message.room is not None:
            self.rooms.add(message.room)
        if not self.show_messages:
            return
        backlog = not self.live and message.sent_at < self.started
        if backlog:
            self.backlog += 1
        else:
            self._go_live()
        if self.printer.json_mode:  # one JSON line: no view, no bell
            self.printer.json_message(message)
            return
        me = self.options.user
        named = message.author != me and (
            message.recipient == me or lines.mentions(message.content, me)
        )
        self.printer.message(message, self.view(), bell=named and not backlog)

    def _go_live(self) -> None:
        """The first live line: the backlog (if any) ends here."""
        if not self.live:
            self.live = True
            if self.backlog and not self.options.json:
                self.printer.line(lines.separator(self.backlog))

    def _accepted(self, ids: Sequence[str]) -> None:
        late = []
        for message_id in ids:
            self.pending.pop(message_id, None)
            message = self.queued.pop(message_id, None)
            if message is None:
                continue
            mark = self.printer.style.mark(delivered=True)
            if not self.printer.rewrite(message_id, message, self.view(), mark):
                late.append(message)
        if late:
            self.printer.info(lines.delivered_late(late))
        for message_id in ids:
            to = self.kept_for.pop(message_id, None)
            if to is not None:
                self._kept_by_repeater(to)
        self.settled.notify_all()

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

    def _notice(self, text: str) -> None:
        offline = _NOT_ONLINE.match(text)
        if offline is not None:
            self.tell_waiting(offline.group(1))
        else:
            self.printer.info(text)

    def _member(self, member: Member) -> None:
        self.users.add(member.user)
        self.rooms.add(member.room)
        if member.user == self.options.user or not self.show_messages:
            return  # our own coming and going is said by /join and /part
        at = self.env.utc_now()
        self.printer.line(lines.format_member(member.room, member.user, member.joined, at,
                                              self.view()))

    def show_joined(self, joined: Joined) -> None:
        """The line of a /join, once (see ``joining``); a Joined nobody asked for says
        nothing (our rooms at start)."""
        with self.lock:
            before = self.joining.pop(joined.room, None)
            if before is None:
                return
            self.rooms.add(joined.room)
            if joined.topic is not None:
                self.topics[joined.room] = joined.topic
            room = shown(joined.room)
            self.printer.info(f"you talk in {room} now" if joined.room in before
                              else f"you joined {room}; you talk there now")
            self.printer.info(lines.topic_line(joined.room, joined.topic, self.view()))

    def show_topic(self, topic: Topic) -> None:
        """A room's topic, once per change."""
        with self.lock:
            if self.topics.get(topic.room) == topic or not self.show_messages:
                return
            self.topics[topic.room] = topic
            self.printer.line(lines.format_topic(topic, self.view()))

    # -- what the user does ---------------------------------------------------------

    def will_send(self, message_id: str, say: Say, where: str | None) -> None:
        """``say`` goes out as ``message_id``: it waits until accepted or refused. Told
        before the node has it, so an answer that comes quickly finds it here."""
        self.will_send_many([(message_id, say, where)])

    def will_send_many(self, sends: Sequence[tuple[str, Say, str | None]]) -> None:
        """``will_send`` for a burst, under the lock once."""
        with self.lock:
            self.attempts += len(sends)
            pending, where = self.pending, self.where
            for message_id, say, line in sends:
                pending[message_id] = say
                if line:
                    where[message_id] = line

    def posted(self, message: Message) -> None:
        """One of ours is stored: show it like everyone's, marked queued or delivered."""
        with self.lock:
            if not self.show_messages or self.options.json:
                return
            self._go_live()
            delivered = message.id not in self.pending
            if not delivered:
                self.queued[message.id] = message
            mark = self.printer.style.mark(delivered)
            self.printer.message(message, self.view(), mark, key=message.id)

    def check_addressee(self, message: Message, online: Mapping[str, str | None]) -> None:
        """A direct message of ours whose addressee is not ``online`` (name -> its away
        text): say where it waits, once per addressee. In broadcast mode it waits in our
        outbox; a repeater stores it for the addressee, which is said once the repeater
        has taken it (while it has not, it waits in our outbox, as ``report_outbox``
        says). One who is online but away: say so, once per away text (IRC's 301)."""
        with self.lock:
            to = message.recipient
            if to is None or to == self.options.user:
                return
            if to in online:
                notice = self.told_away.notice(to, online[to])
                if notice is not None:
                    self.printer.info(notice)
                return
            if self.options.mode != "client":
                self.tell_waiting(to)
            elif message.id in self.pending:
                self.kept_for[message.id] = to
            else:
                self._kept_by_repeater(to)

    def _kept_by_repeater(self, to: str) -> None:
        if to not in self.told_waiting:
            self.told_waiting.add(to)
            self.printer.info(f"{to} is not online; the repeater keeps the message until"
                              f" {to} comes")

    def tell_waiting(self, to: str) -> None:
        with self.lock:
            if to not in self.told_waiting:
                self.told_waiting.add(to)
                self.printer.info(f"{to} is not online; the message waits in the outbox")

    def refuse(self, message_id: str, reason: str) -> None:
        """A post will never be sent: name it."""
        with self.lock:
            say = self.pending.pop(message_id, None)
            if say is None and message_id:
                # Not a line of this run: one an earlier run left in the outbox, re-sent
                # now. Its text is not known here; counting it as one of this run's lines
                # would say "1 of 1 was refused" of a run whose own line was delivered.
                self.refused_earlier += 1
                self.printer.note(f"not sent: {reason} (a message an earlier run left in"
                                  " the outbox)")
            else:
                where = self.where.get(message_id)
                self._refused(say.text if say is not None else "", reason, where)
            self.settled.notify_all()

    def invalid(self, say: Say, reason: str, where: str | None) -> None:
        """A line that cannot become a message at all (checked before it is sent)."""
        with self.lock:
            self.attempts += 1
            self._refused(say.text, reason, where)

    def _refused(self, text: str, reason: str, where: str | None) -> None:
        if not text and not where:  # no line to name (a topic the node refused)
            self.refused.append("a topic")
            self.printer.note(f"not sent: {reason}")
            return
        quoted = lines.quoted(text)
        self.refused.append(where or quoted)
        self.printer.note(f"not sent: {reason} ({f'{where}: ' if where else ''}{quoted})")

    def unreadable_line(self) -> None:
        with self.lock:
            where = f"line {self.line_number}"
            self.refused.append(where)
            self.attempts += 1
            self.printer.note(f"not sent: {where} is not valid UTF-8 text")

    def parse(self, line: str) -> commands.Action:
        """What a line means; a line that is not understood gets a hint (and Nothing).
        Plain text needs no command table: a send-only run imports it at its first
        command (core/saying.py)."""
        say = said(line, self.options.subject, self.options.to)
        if say is not None:
            return say
        from ..core import commands

        try:
            return commands.parse_line(line, self.options.subject, self.options.to)
        except commands.CommandError as error:
            self.printer.note(str(error))
            return commands.Nothing()

    # -- answers ----------------------------------------------------------------------

    def answer(self, text: str) -> None:
        with self.lock:
            self.printer.answer(text)

    def show_scan(self, sightings: Sequence[Sighting]) -> None:
        with self.lock:
            self.users.update(s.user for s in sightings)
            self.printer.beacons([s.to_json() for s in sightings])

    def show_history(self, action: commands.History, messages: Sequence[Message]) -> None:
        with self.lock:
            if action.capped:
                self.printer.answer(
                    f"showing the last {action.count}, the most /history shows"
                    " (lab93-node --history prints the whole inbox)"
                )
            view = self.view()
            if len({message.room for message in messages if message.room is not None}) > 1:
                # The inbox holds every room this node was ever in, not only the one it
                # is in now: name each line's, as lab93-node --history does.
                view = replace(view, show_room=True)
            for message in messages:
                self.printer.message(message, view)

    def failed(self, error: Lab93Error) -> None:
        with self.lock:
            self.printer.note(str(error))

    def ended(self) -> None:
        """The node cannot go on (a server refused us): nothing pending will settle now."""
        with self.lock:
            self.node_failed = True
            self.settled.notify_all()

    # -- the end ------------------------------------------------------------------------

    def wait_settled(self, deadline: float) -> None:
        """Wait until every post is accepted or refused, or the monotonic ``deadline``."""
        with self.settled:
            while self.pending and not self.node_failed:
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
            if self.refused_earlier:
                count = self.refused_earlier
                problems.append(
                    f"{'1 message' if count == 1 else f'{count} messages'} an earlier run left"
                    f" in the outbox {'was' if count == 1 else 'were'} refused and not sent"
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
        """Leaving the prompt: say what is not confirmed yet and where it waits (an
        addressee already said to be offline is not said again)."""
        with self.lock:
            by_recipient: dict[str | None, int] = {}
            for say in self.pending.values():
                if say.to not in self.told_waiting:
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
