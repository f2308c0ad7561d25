"""Questions and user state: NAMES, LIST, WHO, WHOIS, ISON, USERHOST, AWAY, MODE. Pure.

NAMES, LIST, WHO and WHOIS are asked of the service; ISON, USERHOST and the
away state of IRC users come from the gateway's registry. Modes: rooms have
no operators, so a channel's only mode is ``+n`` (post only when joined) and
nobody may change it (482); a user's only mode is ``+i``, kept and shown,
which hides nobody (every member of a room is listed to its members).
"""

from __future__ import annotations

from . import numerics as rpl
from .boundary import (
    ListResult,
    ListRooms,
    Names,
    NamesResult,
    SetAway,
    UserInfo,
    Whois,
    WhoRequest,
    WhoResult,
)
from .chat import send_names
from .lines import Line, fit_utf8
from .names import channel_for, is_room, name_for, nick_for, room_for
from .registration import safe_word
from .session import USER_IDENT, IrcSession

MAX_USERHOST_NICKS = 5
MAX_ISON_NICKS = 64


def on_names(session: IrcSession, line: Line) -> None:
    if not line.params or not line.params[0]:
        session.reply(rpl.RPL_ENDOFNAMES, "*", "End of /NAMES list")
        return
    for channel in dict.fromkeys(line.params[0].split(",")):
        if not channel:
            continue
        room = room_for(channel)
        if room is None:
            session.reply(rpl.RPL_ENDOFNAMES, safe_word(channel), "End of /NAMES list")
        else:
            session.request(Names(session.conn, room))


def on_names_result(session: IrcSession, event: NamesResult) -> None:
    send_names(session, channel_for(event.request.room), event.members)


def on_list(session: IrcSession, line: Line) -> None:
    rooms: tuple[str, ...] = ()
    if line.params and line.params[0].startswith("#"):
        found = (room_for(channel) for channel in line.params[0].split(","))
        rooms = tuple(dict.fromkeys(room for room in found if room is not None))
        if not rooms:  # only names that are no rooms: an empty list, at once
            session.reply(rpl.RPL_LISTSTART, "Channel", "Users  Name")
            session.reply(rpl.RPL_LISTEND, "End of /LIST")
            return
    # Anything else (ELIST conditions such as ">3") is not supported: every room.
    session.request(ListRooms(session.conn, rooms))


def on_room_list(session: IrcSession, event: ListResult) -> None:
    wanted = set(event.request.rooms)
    session.reply(rpl.RPL_LISTSTART, "Channel", "Users  Name")
    for room in event.rooms:
        if (wanted and room.name not in wanted) or not is_room(room.name):
            continue
        topic = fit_utf8(room.topic or "", session.config.topic_bytes)
        session.reply(rpl.RPL_LIST, channel_for(room.name), str(max(0, room.users)), topic)
    session.reply(rpl.RPL_LISTEND, "End of /LIST")


def on_who(session: IrcSession, line: Line) -> None:
    mask = line.params[0] if line.params and line.params[0] else "*"
    if mask.startswith("#"):
        room = room_for(mask)
        if room is not None:
            session.request(WhoRequest(session.conn, room=room))
            return
    else:
        name = name_for(mask)
        if name is not None:
            session.request(WhoRequest(session.conn, name=name))
            return
    # Wildcard masks (and "0", "*") list nobody: a room or a nick is what WHO answers.
    session.reply(rpl.RPL_ENDOFWHO, safe_word(mask), "End of WHO list")


def on_whois(session: IrcSession, line: Line) -> None:
    if not line.params or not line.params[-1]:
        session.reply(rpl.ERR_NONICKNAMEGIVEN, "No nickname given")
        return
    target = line.params[-1].split(",")[0]  # WHOIS [<server>] <nick>; TARGMAX WHOIS:1
    name = name_for(target)
    if name is None:
        session.reply(rpl.ERR_NOSUCHNICK, safe_word(target), "No such nick/channel")
        session.reply(rpl.RPL_ENDOFWHOIS, safe_word(target), "End of /WHOIS list")
        return
    session.request(Whois(session.conn, name))


def on_who_result(session: IrcSession, event: WhoResult) -> None:
    request = event.request
    if isinstance(request, Whois):
        _whois_reply(session, request, event.users)
        return
    config = session.config
    mask = channel_for(request.room) if request.room else nick_for(request.name or "")
    channel = channel_for(request.room) if request.room else "*"
    for user in event.users:
        flags = "G" if _away(session, user) is not None else "H"
        session.reply(
            rpl.RPL_WHOREPLY,
            channel,
            USER_IDENT,
            config.user_host,
            config.server_name,
            nick_for(user.name),
            flags,
            f"0 {_realname(user)}",
        )
    session.reply(rpl.RPL_ENDOFWHO, mask or "*", "End of WHO list")


def _whois_reply(session: IrcSession, request: Whois, users: tuple[UserInfo, ...]) -> None:
    nick = nick_for(request.name)
    config = session.config
    if not users:
        session.reply(rpl.ERR_NOSUCHNICK, nick, "No such nick/channel")
    else:
        user = users[0]
        session.reply(rpl.RPL_WHOISUSER, nick, USER_IDENT, config.user_host, "*", _realname(user))
        if user.rooms:
            channels = " ".join(channel_for(room) for room in user.rooms)
            session.reply(rpl.RPL_WHOISCHANNELS, nick, fit_utf8(channels, 400))
        kind = "through IRC" if user.irc else "a lab93 client"
        session.reply(rpl.RPL_WHOISSERVER, nick, config.server_name, kind)
        away = _away(session, user)
        if away is not None:
            session.reply(rpl.RPL_AWAY, nick, away)
    session.reply(rpl.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")


def _away(session: IrcSession, user: UserInfo) -> str | None:
    """A user's away text: the service's word (a lab93 user's /away), else the registry's."""
    return user.away if user.away is not None else session.registry.away(user.name)


def _realname(user: UserInfo) -> str:
    text = user.realname or ("IRC user" if user.irc else "lab93 user")
    return fit_utf8(text, 200)


def _online(session: IrcSession, line: Line, limit: int) -> list[tuple[str, str]] | None:
    """The (nick, name) of each of the first ``limit`` nicks ``line`` asks about that is
    online; None, and ERR_NEEDMOREPARAMS told, when it names none."""
    nicks = [nick for param in line.params for nick in param.split()][:limit]
    if not nicks:
        session.reply(rpl.ERR_NEEDMOREPARAMS, line.command, "Not enough parameters")
        return None
    named = [(nick, name_for(nick)) for nick in nicks]
    return [
        (nick, name) for nick, name in named
        if name is not None and session.registry.online(name)
    ]


def on_ison(session: IrcSession, line: Line) -> None:
    online = _online(session, line, MAX_ISON_NICKS)
    if online is not None:
        session.reply(rpl.RPL_ISON, fit_utf8(" ".join(nick for nick, _ in online), 400))


def on_userhost(session: IrcSession, line: Line) -> None:
    online = _online(session, line, MAX_USERHOST_NICKS)
    if online is None:
        return
    replies = []
    for _, name in online:
        here = "-" if session.registry.away(name) is not None else "+"
        replies.append(f"{nick_for(name)}={here}{USER_IDENT}@{session.config.user_host}")
    session.reply(rpl.RPL_USERHOST, " ".join(replies))


def on_away(session: IrcSession, line: Line) -> None:
    text = fit_utf8(line.params[0], session.config.away_bytes) if line.params else ""
    session.away = text or None
    if session.nick is not None:
        session.registry.set_away(session.nick, session.away)
    session.request(SetAway(session.conn, session.away))
    if session.away is None:
        session.reply(rpl.RPL_UNAWAY, "You are no longer marked as being away")
    else:
        session.reply(rpl.RPL_NOWAWAY, "You have been marked as being away")


_LIST_ENDS = {
    "b": (rpl.RPL_ENDOFBANLIST, "End of channel ban list"),
    "e": (rpl.RPL_ENDOFEXCEPTLIST, "End of channel exception list"),
    "I": (rpl.RPL_ENDOFINVEXLIST, "End of channel invite exception list"),
}


def on_mode(session: IrcSession, line: Line) -> None:
    if not line.params or not line.params[0]:
        session.reply(rpl.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters")
        return
    target = line.params[0]
    if target.startswith("#"):
        _channel_mode(session, target, line.params[1:])
        return
    name = name_for(target)
    if name is None or not session.is_me(name):
        session.reply(rpl.ERR_USERSDONTMATCH, "Cant change mode for other users")
        return
    if len(line.params) == 1:
        session.reply(rpl.RPL_UMODEIS, "+i" if session.invisible else "+")
        return
    sign, changed, unknown = "+", [], False
    for letter in line.params[1]:
        if letter in "+-":
            sign = letter
        elif letter == "i":
            if session.invisible != (sign == "+"):
                session.invisible = sign == "+"
                changed.append(sign + "i")
        else:
            unknown = True
    if changed:
        source = session.source(session.me)
        session.send(Line("MODE", (session.me, "".join(changed)), source, trailing=True))
    if unknown:
        session.reply(rpl.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")


def _channel_mode(session: IrcSession, target: str, args: tuple[str, ...]) -> None:
    room = room_for(target)
    if room is None:
        session.reply(rpl.ERR_NOSUCHCHANNEL, safe_word(target), "No such channel")
        return
    channel = channel_for(room)
    if not args:
        session.reply(rpl.RPL_CHANNELMODEIS, channel, "+n")
        return
    letters = args[0].lstrip("+")
    if len(args) == 1 and letters in _LIST_ENDS:  # a list query: every list is empty
        numeric, text = _LIST_ENDS[letters]
        session.reply(numeric, channel, text)
        return
    session.reply(rpl.ERR_CHANOPRIVSNEEDED, channel, "You're not channel operator")
