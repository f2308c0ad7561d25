"""The lines people read: messages, actions, joins and leaves, topics, answers. Pure.

Every function takes what it shows and returns text; nothing here reads a clock
or writes a stream (``today`` is a parameter), so the formats are unit-tested.

A message: ``[12:01:07] <bob> [lunch] pizza?``; a direct one ``<bob -> alice>``;
an action ``[12:01:07] * bob waves``; in several rooms each names its room
(``[12:01:07] #ops <bob> ...``); a line not from today carries its date
(``[2026-11-23 12:01:07] ...``); your own lines end with a mark that turns from
``(queued)`` to ``✓`` once delivered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from ..core.away import who_line_names
from ..core.events import RoomInfo, Topic
from ..core.message import Message
from ..core.rooms import shown
from .style import PLAIN, Style


def stamp(at: datetime, today: date | None, style: Style = PLAIN) -> str:
    """``[12:01:07]``, or with the date when ``at`` is not from ``today`` (None:
    always the date)."""
    local = at.astimezone()
    dated = today is None or local.date() != today
    return style.dim(local.strftime("[%Y-%m-%d %H:%M:%S]" if dated else "[%H:%M:%S]"))


def mentions(text: str, user: str) -> bool:
    """Whether ``text`` names ``user`` as a word (any case): ``alice:``, ``@alice``,
    ``thanks Alice!`` do; ``malice`` and ``alice_bot`` do not."""
    if not user:
        return False
    pattern = r"(?<![\w-])" + re.escape(user) + r"(?![\w-])"
    return re.search(pattern, text, re.IGNORECASE) is not None


@dataclass(frozen=True)
class View:
    """How to show a message to this user now."""

    today: date | None = None  # None: every line dated (--history)
    show_room: bool = False  # the node is in more than one room
    me: str = ""  # whose terminal this is (own lines, mentions)
    style: Style = PLAIN


def format_message(message: Message, view: View = View(), mark: str = "") -> str:
    """One message as people read it; ``mark``: your own line's state."""
    style = view.style
    parts = [stamp(message.sent_at, view.today, style)]
    if view.show_room and message.room is not None:
        parts.append(style.room(shown(message.room)))
    own = bool(view.me) and message.author == view.me
    author = style.nick(message.author, own)
    subject = f"[{message.subject}] " if message.subject else ""
    content = message.content.replace("\n", "\n    ")
    if not own and view.me and (message.recipient == view.me or mentions(content, view.me)):
        content = style.highlight(content)
    if message.is_action:
        to = f" (to {style.nick(message.recipient)})" if message.recipient is not None else ""
        parts.append(f"* {author} {subject}{content}{to}")
    else:
        who = author if message.recipient is None else (
            f"{author} -> {style.nick(message.recipient, message.recipient == view.me)}"
        )
        parts.append(f"<{who}> {subject}{content}")
    if mark:
        parts.append(mark)
    return " ".join(parts)


def format_member(room: str, user: str, joined: bool, at: datetime, view: View) -> str:
    """``[12:01:07] * bob joined #ops`` / ``left``."""
    style = view.style
    went = "joined" if joined else "left"
    return f"{stamp(at, view.today, style)} * {style.nick(user)} {went} {style.room(shown(room))}"


def format_topic(topic: Topic, view: View) -> str:
    """``[12:01:07] * bob set the topic of #ops: deploy on friday`` (the time it was set)."""
    style = view.style
    return (f"{stamp(topic.at, view.today, style)} * {style.nick(topic.by)} set the topic of"
            f" {style.room(shown(topic.room))}: {topic.text}")


def topic_line(room: str, topic: Topic | None, view: View) -> str:
    """What /topic and /join say about a room's topic."""
    if topic is None:
        return f"{shown(room)} has no topic yet; /topic TEXT sets one"
    when = stamp(topic.at, view.today)[1:-1]
    return f"topic of {shown(room)}: {topic.text} (set by {topic.by}, {when})"


def separator(count: int) -> str:
    """Between the backlog and the first live line."""
    noun = "message" if count == 1 else "messages"
    return f"\u2014 {count} {noun} while you were away \u2014"


def format_rooms(rooms: Sequence[RoomInfo], current: str | None) -> str:
    """/rooms: every room heard, how many are in it, its topic; yours marked ``*``."""
    if not rooms:
        return "no rooms heard on the network yet; /join ROOM makes one"
    width = max(len(shown(r.name)) for r in rooms)
    lines = ["rooms on the network (* you are in it, > the current one):"]
    for info in rooms:
        mark = ">" if info.name == current else "*" if info.joined else " "
        people = f"{info.members} {'person' if info.members == 1 else 'people'}"
        topic = f"  {info.topic}" if info.topic else ""
        lines.append(f" {mark} {shown(info.name):<{width}}  {people:>10}{topic}")
    return "\n".join(lines)


def format_who(room: str | None, users: Sequence[str],
               away: Mapping[str, str | None] | None = None) -> str:
    """/who: ``in #ops: alice, bob (away: lunch)``; ``online: ...`` for the whole
    network. ``away``: each one's away text (None: here)."""
    where = f"in {shown(room)}" if room is not None else "online"
    texts = {user: text for user, text in (away or {}).items() if text is not None}
    names = who_line_names(users, texts)
    return f"{where}: {', '.join(names) if names else 'nobody else'}"


def recipient(message: Message) -> str:
    """Whom a message waits for: ``zed`` or ``#ops``."""
    return message.recipient if message.recipient is not None else shown(message.room or "")


def quoted(text: str, length: int = 40) -> str:
    return repr(text[:length]) + ("..." if len(text) > length else "")


def format_outbox(waiting: Sequence[Message], view: View) -> str:
    """/outbox: what still waits, oldest first, each with whom it waits for."""
    if not waiting:
        return "nothing waits: everything you sent was delivered"
    noun = "message waits" if len(waiting) == 1 else "messages wait"
    lines = [f"{len(waiting)} {noun} to be delivered:"]
    for message in waiting:
        lines.append(f"  for {recipient(message)}: {stamp(message.sent_at, view.today)}"
                     f" {quoted(message.content, 60)}")
    return "\n".join(lines)


def delivered_late(messages: Sequence[Message]) -> str:
    """Own lines that were delivered after other lines were printed below them."""
    if len(messages) == 1:
        return f"delivered: {quoted(messages[0].content)} (to {recipient(messages[0])})"
    return f"delivered: {len(messages)} of your messages ({quoted(messages[0].content)}, ...)"
