"""CHATHISTORY (IRCv3 draft/chathistory), answered from the store. Pure.

::

    CHATHISTORY LATEST  <target> <* | ref> <limit>
    CHATHISTORY BEFORE  <target> <ref> <limit>
    CHATHISTORY AFTER   <target> <ref> <limit>
    CHATHISTORY AROUND  <target> <ref> <limit>
    CHATHISTORY BETWEEN <target> <ref> <ref> <limit>
    CHATHISTORY TARGETS <timestamp=...> <timestamp=...> <limit>
    ref = msgid=<id> | timestamp=YYYY-MM-DDThh:mm:ss.sssZ

A target is ``#room`` or a nick (the direct messages between the client and
that user, both ways). A limit over CHATHISTORY (005) is cut to it. The
answer is a ``chathistory`` batch (``draft/chathistory-targets`` for TARGETS)
when the client has the batch CAP, else the bare lines; every message carries
its msgid and time as the client's CAPs allow. A msgid ``<id>-<n>`` (a line of
a split message) names the message ``<id>``. Errors are standard replies:
``FAIL CHATHISTORY INVALID_PARAMS | INVALID_TARGET | MESSAGE_ERROR``.
"""

from __future__ import annotations

import re

from . import numerics as rpl
from .boundary import (
    After,
    Around,
    Before,
    Between,
    HistoryRequest,
    HistoryResult,
    HistoryTargets,
    Latest,
    MsgRef,
    Ref,
    RequestFailed,
    Selector,
    TargetsResult,
    TimeRef,
)
from .lines import Line, fit_utf8, format_time, parse_time
from .names import channel_for, is_room, name_for, nick_for, room_for
from .registration import safe_word
from .render import message_id_of, message_lines
from .session import IrcSession

_ARGUMENTS = {"LATEST": 3, "BEFORE": 3, "AFTER": 3, "AROUND": 3, "BETWEEN": 4}
_SUBCOMMAND_OF = {Latest: "LATEST", Before: "BEFORE", After: "AFTER", Around: "AROUND"}
_SUBCOMMAND_OF[Between] = "BETWEEN"
_MESSAGE_ID = re.compile(r"[A-Za-z0-9]{1,64}\Z")


class _Invalid(Exception):
    """A CHATHISTORY line we refuse: the FAIL's code, context and description."""

    def __init__(self, code: str, *context: str) -> None:
        super().__init__(code)
        self.code = code
        self.context = context


def on_chathistory(session: IrcSession, line: Line) -> None:
    if not line.params:
        session.reply(rpl.ERR_NEEDMOREPARAMS, "CHATHISTORY", "Not enough parameters")
        return
    try:
        session.request(_request(session, line.params[0], line.params[1:]))
    except _Invalid as refusal:
        session.fail("CHATHISTORY", refusal.code, *refusal.context)


def _request(
    session: IrcSession, word: str, args: tuple[str, ...]
) -> HistoryRequest | HistoryTargets:
    sub = word.upper()
    shown = safe_word(word)
    need = 3 if sub == "TARGETS" else _ARGUMENTS.get(sub)
    if need is None:
        raise _Invalid("INVALID_PARAMS", shown, "Unknown command")
    if len(args) < need:
        raise _Invalid("INVALID_PARAMS", shown, "Insufficient parameters")
    if len(args) > need:
        raise _Invalid("INVALID_PARAMS", shown, "Too many parameters")
    limit = _limit(session, shown, args[-1])
    if sub == "TARGETS":
        start, end = (_ref(shown, arg) for arg in args[:2])
        if not (isinstance(start, TimeRef) and isinstance(end, TimeRef)):
            raise _Invalid("INVALID_PARAMS", shown, "TARGETS takes two timestamps")
        return HistoryTargets(session.conn, start.at, end.at, limit)
    target = args[0]
    room = room_for(target) if target.startswith("#") else None
    peer = None if target.startswith("#") else name_for(target)
    if room is None and peer is None:
        shown_target = safe_word(target)
        raise _Invalid("INVALID_TARGET", shown, shown_target, "Messages could not be retrieved")
    selector: Selector
    if sub == "LATEST":
        selector = Latest(None if args[1] == "*" else _ref(shown, args[1]))
    elif sub == "BETWEEN":
        selector = Between(_ref(shown, args[1]), _ref(shown, args[2]))
    else:
        ref = _ref(shown, args[1])
        selector = Before(ref) if sub == "BEFORE" else After(ref) if sub == "AFTER" else Around(ref)
    return HistoryRequest(session.conn, room, peer, selector, limit)


def _ref(shown: str, text: str) -> Ref:
    kind, equals, value = text.partition("=")
    if equals and kind == "timestamp":
        when = parse_time(value)
        if when is None:
            raise _Invalid("INVALID_PARAMS", shown, safe_word(text), "Invalid timestamp")
        return TimeRef(when)
    if equals and kind == "msgid":
        message_id = message_id_of(value)
        if _MESSAGE_ID.match(message_id):
            return MsgRef(message_id)
    raise _Invalid("INVALID_PARAMS", shown, safe_word(text), "Invalid message reference")


def _limit(session: IrcSession, shown: str, text: str) -> int:
    if not text.isdigit() or not text.isascii() or int(text) < 1:
        raise _Invalid("INVALID_PARAMS", shown, safe_word(text), "Invalid limit")
    return min(int(text), session.config.history_limit)


def on_history_result(session: IrcSession, event: HistoryResult) -> None:
    request = event.request
    target = channel_for(request.room) if request.room else nick_for(request.peer or "")
    batch = session.next_batch() if session.caps.has("batch") else None
    if batch is not None:
        session.send(session.server_line("BATCH", f"+{batch}", "chathistory", target or "*"))
    for message in event.messages:
        session.send_all(message_lines(session, message, batch))
    if batch is not None:
        session.send(session.server_line("BATCH", f"-{batch}"))


def on_targets_result(session: IrcSession, event: TargetsResult) -> None:
    batch = session.next_batch() if session.caps.has("batch") else None
    if batch is not None:
        session.send(session.server_line("BATCH", f"+{batch}", "draft/chathistory-targets"))
    tags = (("batch", batch),) if batch is not None else ()
    name = session.config.server_name
    for found in event.targets[: event.request.limit]:
        if found.room is not None:
            if not is_room(found.room):
                continue
            target = channel_for(found.room)
        elif found.peer:
            target = nick_for(found.peer)
        else:
            continue
        params = ("TARGETS", target, format_time(found.latest))
        session.send(Line("CHATHISTORY", params, name, tags))
    if batch is not None:
        session.send(session.server_line("BATCH", f"-{batch}"))


def on_history_failed(session: IrcSession, event: RequestFailed) -> None:
    request = event.request
    reason = fit_utf8(event.reason, 300) or "Messages could not be retrieved"
    code = "INVALID_TARGET" if event.no_such_target else "MESSAGE_ERROR"
    if isinstance(request, HistoryTargets):
        session.fail("CHATHISTORY", code, "TARGETS", reason)
    elif isinstance(request, HistoryRequest):
        sub = _SUBCOMMAND_OF[type(request.selector)]
        target = channel_for(request.room) if request.room else nick_for(request.peer or "")
        session.fail("CHATHISTORY", code, sub, target or "*", reason)
