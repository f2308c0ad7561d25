"""Rooms and messages: JOIN, PART, PRIVMSG, NOTICE, TAGMSG, TOPIC, and the service's
answers and news about them. Pure.

What a channel's members are is the service's answer to JoinRoom (JoinResult),
kept up to date by UserJoined / UserParted / UserQuit; a client is only told
of events in the rooms it is in. A post is only a request: the client sees
its own message again (echo-message) when the service says it is stored,
never before. NOTICE gets no error replies (RFC 2812 3.3.2: no automatic
reply to a notice, from servers either).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from . import numerics as rpl
from .boundary import (
    Delivered,
    GetTopic,
    HistoryRequest,
    HistoryTargets,
    JoinResult,
    JoinRoom,
    ListRooms,
    Names,
    PartRoom,
    PostDirect,
    PostRoom,
    RecipientAway,
    RequestFailed,
    RoomTopic,
    SetTopic,
    Stored,
    TopicChanged,
    TopicInfo,
    UserJoined,
    UserParted,
    UserQuit,
    Whois,
    WhoRequest,
)
from .history import on_history_failed
from .lines import MAX_BODY_BYTES, Line, fit_utf8
from .names import channel_for, fold, name_for, nick_for, room_for
from .registration import safe_word
from .render import message_lines, read_ctcp
from .session import IrcSession

MAX_REASON_BYTES = 300


def _rooms_named(session: IrcSession, channels: str) -> Iterator[str]:
    """The room of each channel of a comma list (JOIN, PART), in order; one that names
    no room is told ERR_NOSUCHCHANNEL, an empty one skipped."""
    for channel in channels.split(","):
        if not channel:
            continue
        room = room_for(channel)
        if room is None:
            session.reply(rpl.ERR_NOSUCHCHANNEL, safe_word(channel), "No such channel")
        else:
            yield room


def on_join(session: IrcSession, line: Line) -> None:
    if not line.params or not line.params[0]:
        session.reply(rpl.ERR_NEEDMOREPARAMS, "JOIN", "Not enough parameters")
        return
    if line.params[0] == "0":  # JOIN 0: leave every channel
        for joined in sorted(session.channels):
            part_room(session, joined, None)
        return
    for room in _rooms_named(session, line.params[0]):
        if room in session.channels or room in session.joining:
            continue
        if len(session.channels) + len(session.joining) >= session.config.max_channels:
            session.reply(
                rpl.ERR_TOOMANYCHANNELS, channel_for(room), "You have joined too many channels"
            )
            continue
        session.joining.add(room)
        session.request(JoinRoom(session.conn, room))


def on_joined(session: IrcSession, event: JoinResult) -> None:
    if event.room not in session.joining or session.nick is None:
        return  # parted before the answer came, or never asked
    session.joining.discard(event.room)
    members = {fold(name): name for name in event.members}
    members.setdefault(fold(session.nick), session.nick)
    session.channels[event.room] = members
    channel = channel_for(event.room)
    session.send(Line("JOIN", (channel,), session.source(session.nick)))
    if event.topic is not None and event.topic.text:
        send_topic(session, channel, event.topic)
    send_names(session, channel, members.values())


def on_part(session: IrcSession, line: Line) -> None:
    if not line.params or not line.params[0]:
        session.reply(rpl.ERR_NEEDMOREPARAMS, "PART", "Not enough parameters")
        return
    reason = fit_utf8(line.params[1], MAX_REASON_BYTES) if len(line.params) > 1 else None
    for room in _rooms_named(session, line.params[0]):
        if room in session.joining:  # not shown as joined yet: nothing to show as parted
            session.joining.discard(room)
            session.request(PartRoom(session.conn, room, reason or None))
        elif room not in session.channels:
            session.reply(rpl.ERR_NOTONCHANNEL, channel_for(room), "You're not on that channel")
        else:
            part_room(session, room, reason or None)


def part_room(session: IrcSession, room: str, reason: str | None) -> None:
    del session.channels[room]
    params = (channel_for(room), reason) if reason else (channel_for(room),)
    session.send(Line("PART", params, session.source(session.me), trailing=bool(reason)))
    session.request(PartRoom(session.conn, room, reason))


def on_privmsg(session: IrcSession, line: Line) -> None:
    _post(session, line, notice=False)


def on_notice(session: IrcSession, line: Line) -> None:
    _post(session, line, notice=True)


def on_tagmsg(session: IrcSession, line: Line) -> None:
    """Client-only tags are not kept (CLIENTTAGDENY=*), so a TAGMSG carries nothing."""


def _post(session: IrcSession, line: Line, notice: bool) -> None:
    speak = not notice
    if not line.params or not line.params[0]:
        if speak:
            session.reply(rpl.ERR_NORECIPIENT, f"No recipient given ({line.command})")
        return
    if len(line.params) < 2 or not line.params[1]:
        if speak:
            session.reply(rpl.ERR_NOTEXTTOSEND, "No text to send")
        return
    targets = list(dict.fromkeys(target for target in line.params[0].split(",") if target))
    if len(targets) > session.config.max_targets:
        if speak:
            session.reply(rpl.ERR_TOOMANYTARGETS, safe_word(line.params[0]), "Too many targets")
        return
    ctcp = read_ctcp(line.params[1])
    if ctcp is None:
        return  # a CTCP request other than ACTION: not chat, not kept
    action, text = ctcp
    if not text:
        if speak:
            session.reply(rpl.ERR_NOTEXTTOSEND, "No text to send")
        return
    for target in targets:
        if target.startswith("#"):
            room = room_for(target)
            if room is None:
                if speak:
                    session.reply(rpl.ERR_NOSUCHCHANNEL, safe_word(target), "No such channel")
            elif room not in session.channels and room not in session.joining:
                if speak:
                    session.reply(
                        rpl.ERR_CANNOTSENDTOCHAN,
                        channel_for(room),
                        "Cannot send to channel: join it first",
                    )
            else:
                ref = session.next_ref()
                session.request(PostRoom(session.conn, room, text, notice, action, ref))
            continue
        name = name_for(target)
        if name is None:
            if speak:
                session.reply(rpl.ERR_NOSUCHNICK, safe_word(target), "No such nick/channel")
            continue
        away = session.registry.away(name)
        if away is not None and speak:
            session.reply(rpl.RPL_AWAY, nick_for(name), away)
        session.request(PostDirect(session.conn, name, text, notice, action, session.next_ref()))


def on_recipient_away(session: IrcSession, event: RecipientAway) -> None:
    if not event.request.notice:  # a NOTICE is never answered automatically
        session.reply(rpl.RPL_AWAY, nick_for(event.name), event.text)


def on_stored(session: IrcSession, event: Stored) -> None:
    if session.caps.has("echo-message"):
        session.send_all(message_lines(session, event.message))


def on_delivered(session: IrcSession, event: Delivered) -> None:
    """A message of one of the client's rooms, or to it; its own come back only as echoes."""
    message = event.message
    if not session.registered or session.is_me(message.sender):
        return
    if message.room is not None:
        if message.room not in session.channels:
            return
    elif message.recipient is None or not session.is_me(message.recipient):
        return
    session.send_all(message_lines(session, message))


def on_user_joined(session: IrcSession, event: UserJoined) -> None:
    members = session.channels.get(event.room)
    key = fold(event.name)
    if members is None or key in members or session.is_me(event.name):
        return
    members[key] = event.name
    session.send(Line("JOIN", (channel_for(event.room),), session.source(event.name)))


def on_user_parted(session: IrcSession, event: UserParted) -> None:
    members = session.channels.get(event.room)
    if members is None or fold(event.name) not in members:
        return
    if session.is_me(event.name):  # the service took this client out of the room
        del session.channels[event.room]
    else:
        del members[fold(event.name)]
    reason = fit_utf8(event.reason, MAX_REASON_BYTES) if event.reason else ""
    params = (channel_for(event.room), reason) if reason else (channel_for(event.room),)
    session.send(Line("PART", params, session.source(event.name), trailing=bool(reason)))


def on_user_quit(session: IrcSession, event: UserQuit) -> None:
    if session.is_me(event.name):
        return
    key = fold(event.name)
    shared = False
    for members in session.channels.values():
        if members.pop(key, None) is not None:
            shared = True
    if shared:
        reason = fit_utf8(event.reason, MAX_REASON_BYTES)
        session.send(Line("QUIT", (reason,), session.source(event.name), trailing=True))


def on_topic(session: IrcSession, line: Line) -> None:
    if not line.params or not line.params[0]:
        session.reply(rpl.ERR_NEEDMOREPARAMS, "TOPIC", "Not enough parameters")
        return
    room = room_for(line.params[0])
    if room is None:
        session.reply(rpl.ERR_NOSUCHCHANNEL, safe_word(line.params[0]), "No such channel")
    elif len(line.params) == 1:
        session.request(GetTopic(session.conn, room))
    elif room not in session.channels:
        session.reply(rpl.ERR_NOTONCHANNEL, channel_for(room), "You're not on that channel")
    else:
        text = fit_utf8(line.params[1], session.config.topic_bytes)
        session.request(SetTopic(session.conn, room, text))


def on_topic_info(session: IrcSession, event: TopicInfo) -> None:
    channel = channel_for(event.request.room)
    if event.topic is None or not event.topic.text:
        session.reply(rpl.RPL_NOTOPIC, channel, "No topic is set")
    else:
        send_topic(session, channel, event.topic)


def on_topic_changed(session: IrcSession, event: TopicChanged) -> None:
    if event.room not in session.channels:
        return
    text = fit_utf8(event.topic.text, session.config.topic_bytes)
    source = session.source(event.topic.set_by)
    session.send(Line("TOPIC", (channel_for(event.room), text), source, trailing=True))


def send_topic(session: IrcSession, channel: str, topic: RoomTopic) -> None:
    session.reply(rpl.RPL_TOPIC, channel, fit_utf8(topic.text, session.config.topic_bytes))
    when = str(max(0, int(topic.set_at.timestamp())))
    session.reply(rpl.RPL_TOPICWHOTIME, channel, nick_for(topic.set_by), when)


def send_names(session: IrcSession, channel: str, names: Iterable[str]) -> None:
    """353 lines holding as many nicks as fit, then 366."""
    head = f":{session.config.server_name} {rpl.RPL_NAMREPLY} {session.me} = {channel} :"
    budget = MAX_BODY_BYTES - len(head.encode())
    line_nicks: list[str] = []
    size = 0
    for name in names:
        nick = nick_for(name)
        cost = len(nick.encode()) + (1 if line_nicks else 0)
        if line_nicks and size + cost > budget:
            session.reply(rpl.RPL_NAMREPLY, "=", channel, " ".join(line_nicks))
            line_nicks, size, cost = [], 0, len(nick.encode())
        line_nicks.append(nick)
        size += cost
    if line_nicks:
        session.reply(rpl.RPL_NAMREPLY, "=", channel, " ".join(line_nicks))
    session.reply(rpl.RPL_ENDOFNAMES, channel, "End of /NAMES list")


_COMMAND_OF = {
    PostRoom: "PRIVMSG",
    PostDirect: "PRIVMSG",
    JoinRoom: "JOIN",
    SetTopic: "TOPIC",
    GetTopic: "TOPIC",
    Names: "NAMES",
    ListRooms: "LIST",
    WhoRequest: "WHO",
    Whois: "WHOIS",
}


def on_failed(session: IrcSession, event: RequestFailed) -> None:
    """The service could not do what was asked: the numeric that request's command uses."""
    request = event.request
    reason = fit_utf8(event.reason, MAX_REASON_BYTES) or "Failed"
    if isinstance(request, (HistoryRequest, HistoryTargets)):
        on_history_failed(session, event)
        return
    if isinstance(request, (PostRoom, PostDirect)):
        if request.notice:
            return
        if isinstance(request, PostRoom):
            target = channel_for(request.room)
            missing = (rpl.ERR_NOSUCHCHANNEL, target, "No such channel")
        else:
            target = nick_for(request.to)
            missing = (rpl.ERR_NOSUCHNICK, target, "No such nick/channel")
        if event.no_such_target:
            session.reply(*missing)
        else:
            session.reply(rpl.ERR_CANNOTSENDTOCHAN, target, f"Cannot send: {reason}")
        return
    if isinstance(request, JoinRoom):
        session.joining.discard(request.room)
    command = _COMMAND_OF.get(type(request))
    if command is None:
        return  # nothing the client waits for
    room = getattr(request, "room", None)
    where = (channel_for(room),) if room else ()
    if event.no_such_target and room:
        session.reply(rpl.ERR_NOSUCHCHANNEL, channel_for(room), reason)
    else:
        session.reply(rpl.ERR_UNKNOWNERROR, command, *where, reason)
    # The end of the list a client waits for, so it does not wait for ever.
    if isinstance(request, Names):
        session.reply(rpl.RPL_ENDOFNAMES, channel_for(request.room), "End of /NAMES list")
    elif isinstance(request, ListRooms):
        session.reply(rpl.RPL_LISTEND, "End of /LIST")
    elif isinstance(request, WhoRequest):
        if request.room:
            mask = channel_for(request.room)
        else:
            mask = nick_for(request.name) if request.name else "*"
        session.reply(rpl.RPL_ENDOFWHO, mask, "End of WHO list")
    elif isinstance(request, Whois):
        session.reply(rpl.RPL_ENDOFWHOIS, nick_for(request.name), "End of /WHOIS list")
