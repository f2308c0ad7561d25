"""Stored messages as IRC lines, and IRC text as what the service stores. Pure.

A stored message becomes one PRIVMSG (NOTICE for a notice) per line of its
content: a subject is shown as ``[subject] `` before the first line; a line
longer than an IRC line can carry is cut (at a space when there is one in
its second half, else at a character) into several; an ACTION (/me) wraps
each line in CTCP ACTION. Empty lines are left out (IRC cannot carry them);
a content of line breaks only is one line holding a space. NUL and the CTCP
marker \\x01 are taken out of the text, so a lab93 message can never be read
as a CTCP request; other IRC formatting codes pass as they are.

Tags, by the client's CAPs: ``time`` (server-time) is the message's
``sent_at``; ``msgid`` (message-tags) is its id, and ``<id>-<n>`` for the
n-th line (n >= 2) of one split, so every line has its own msgid and a
client that drops repeated msgids keeps them all; ``batch`` inside a batch.
"""

from __future__ import annotations

import re

from .boundary import ChatMessage
from .lines import MAX_BODY_BYTES, MIN_LAST_PARAM_BYTES, Line, fit_utf8, format_time
from .names import channel_for, nick_for
from .session import IrcSession

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_UNSAFE = str.maketrans("", "", "\x00\x01")
ACTION_OPEN = "\x01ACTION "
ACTION_CLOSE = "\x01"


def message_lines(
    session: IrcSession, message: ChatMessage, batch: str | None = None
) -> list[Line]:
    """The lines that show ``message`` to ``session``'s client."""
    command = "NOTICE" if message.notice else "PRIVMSG"
    source = session.source(message.sender)
    if message.room is not None:
        target = channel_for(message.room)
    else:
        target = nick_for(message.recipient or "")  # a ChatMessage has one or the other
    pieces = [piece.translate(_UNSAFE) for piece in _LINE_BREAK.split(message.content)]
    pieces = [piece for piece in pieces if piece] or [" "]
    if message.subject:
        pieces[0] = f"[{message.subject.translate(_UNSAFE)}] {pieces[0]}"
    overhead = len(f":{source} {command} {target} :".encode())
    if message.action:
        overhead += len(ACTION_OPEN) + len(ACTION_CLOSE)
    budget = max(MAX_BODY_BYTES - overhead, MIN_LAST_PARAM_BYTES)
    chunks = [chunk for piece in pieces for chunk in split_text(piece, budget)]
    caps = session.caps.enabled
    stamp = format_time(message.sent_at) if "server-time" in caps else None
    with_id = "message-tags" in caps
    lines = []
    for number, chunk in enumerate(chunks, 1):
        tags: list[tuple[str, str]] = []
        if stamp is not None:
            tags.append(("time", stamp))
        if with_id:
            tags.append(("msgid", message.id if number == 1 else f"{message.id}-{number}"))
        if batch is not None:
            tags.append(("batch", batch))
        text = f"{ACTION_OPEN}{chunk}{ACTION_CLOSE}" if message.action else chunk
        lines.append(Line(command, (target, text), source, tuple(tags), trailing=True))
    return lines


def split_text(text: str, budget: int) -> list[str]:
    """``text`` in pieces of at most ``budget`` UTF-8 bytes, cut at spaces where it can."""
    chunks = []
    while len(text.encode("utf-8")) > budget:
        head = fit_utf8(text, budget)
        cut = head.rfind(" ")
        if cut > len(head) // 2:
            chunks.append(head[:cut])
            text = text[cut + 1 :]
        else:
            chunks.append(head)
            text = text[len(head) :]
    chunks.append(text)
    return [chunk for chunk in chunks if chunk]


def message_id_of(msgid: str) -> str:
    """The stored message a msgid names: ``<id>-<n>`` is a line of the message ``<id>``."""
    base, dash, number = msgid.rpartition("-")
    return base if dash and base and number.isdigit() else msgid


def read_ctcp(text: str) -> tuple[bool, str] | None:
    """(is an ACTION, its text) for what an IRC client sent; None for another CTCP.

    Only ACTION (/me) means something to lab93; VERSION, PING and the other CTCP
    requests are not chat, so they are neither stored nor passed on.
    """
    if not text.startswith("\x01"):
        return False, text
    body = text[1:-1] if text.endswith("\x01") and len(text) > 1 else text[1:]
    verb, _, rest = body.partition(" ")
    if verb.upper() == "ACTION":
        return True, rest
    return None
