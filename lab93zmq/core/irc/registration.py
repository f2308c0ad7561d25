"""Registration and the connection-level commands: CAP, PASS, NICK, USER, PING, PONG,
QUIT, MOTD; the welcome burst (001-005 and the MOTD). Pure.

A client is registered once it gave NICK and USER (and PASS, when the server
has a password), and ended any CAP negotiation it started; then the service
is asked (Register) and only its answer sends 001. The password is checked
only then, as servers do, so a client that sends PASS after NICK is fine;
a wrong or missing one gets 464 and ERROR.
"""

from __future__ import annotations

import hmac

from . import numerics as rpl
from .boundary import Register, Registered, RegisterRefused
from .lines import Line, fit_utf8
from .names import fold, nick_error
from .session import USER_IDENT, IrcPhase, IrcSession

ISUPPORT_PER_LINE = 13
MAX_USERNAME_CHARS = 16
MAX_REALNAME_BYTES = 200


def safe_word(text: str, limit: int = 64) -> str:
    """``text`` made fit to be a middle parameter of a reply (no space, no leading ':')."""
    word = "".join(ch for ch in text[:limit] if ch.isprintable() and ch != " ").lstrip(":")
    return word or "*"


def on_cap(session: IrcSession, line: Line) -> None:
    for params in session.caps.answer(line.params, session.registered):
        if params[0] == "461":
            session.reply(rpl.ERR_NEEDMOREPARAMS, "CAP", "Not enough parameters")
        elif params[0] == "410":
            session.reply(rpl.ERR_INVALIDCAPCMD, safe_word(params[1]), "Invalid CAP command")
        else:
            session.send(session.server_line("CAP", session.me, *params, trailing=True))
    try_register(session)


def on_pass(session: IrcSession, line: Line) -> None:
    if session.phase is not IrcPhase.UNREGISTERED:
        session.reply(rpl.ERR_ALREADYREGISTERED, "You may not reregister")
    elif not line.params:
        session.reply(rpl.ERR_NEEDMOREPARAMS, "PASS", "Not enough parameters")
    else:
        session.password = line.params[0]


def on_nick(session: IrcSession, line: Line) -> None:
    nick = line.params[0] if line.params else ""
    if not nick:
        session.reply(rpl.ERR_NONICKNAMEGIVEN, "No nickname given")
        return
    if session.phase is not IrcPhase.UNREGISTERED:
        if nick != session.nick:
            session.reply(
                rpl.ERR_UNKNOWNERROR,
                "NICK",
                "Nick changes are not supported: your nick is your lab93 user name "
                "for this connection; reconnect to use another",
            )
        return
    error = nick_error(nick)
    if error is not None:
        session.reply(rpl.ERR_ERRONEUSNICKNAME, safe_word(nick), f"Erroneous nickname: {error}")
        return
    if not session.registry.reserve(nick, session.conn):
        session.reply(rpl.ERR_NICKNAMEINUSE, nick, "Nickname is already in use")
        return
    old = session.nick
    if old is not None and fold(old) != fold(nick):
        session.registry.release(old, session.conn)
    session.nick = nick
    try_register(session)


def on_user(session: IrcSession, line: Line) -> None:
    if session.phase is not IrcPhase.UNREGISTERED:
        session.reply(rpl.ERR_ALREADYREGISTERED, "You may not reregister")
        return
    if len(line.params) < 4 or not line.params[0]:
        session.reply(rpl.ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")
        return
    session.username = safe_word(line.params[0], MAX_USERNAME_CHARS)
    session.realname = fit_utf8(line.params[3], MAX_REALNAME_BYTES)
    try_register(session)


def try_register(session: IrcSession) -> None:
    """Ask the service once NICK, USER (and PASS) are in and CAP negotiation is over."""
    if (
        session.phase is not IrcPhase.UNREGISTERED
        or session.nick is None
        or session.username is None
        or session.caps.negotiating
    ):
        return
    expected = session.config.password
    if expected is not None:
        given = (session.password or "").encode("utf-8")
        if session.password is None or not hmac.compare_digest(given, expected.encode("utf-8")):
            session.reply(rpl.ERR_PASSWDMISMATCH, "Password incorrect")
            session.close("Bad password")
            return
    session.phase = IrcPhase.REGISTERING
    session.request(Register(session.conn, session.nick, session.username, session.realname))


def on_registered(session: IrcSession, event: Registered) -> None:
    if session.phase is not IrcPhase.REGISTERING or session.nick is None:
        return
    session.phase = IrcPhase.REGISTERED
    session.registry.registered(session.nick, session.conn)
    config = session.config
    me = session.me
    session.reply(
        rpl.RPL_WELCOME,
        f"Welcome to the {config.network} Network, {me}!{USER_IDENT}@{config.user_host}",
    )
    session.reply(
        rpl.RPL_YOURHOST, f"Your host is {config.server_name}, running version {config.version}"
    )
    session.reply(rpl.RPL_CREATED, f"This server was created {config.created}")
    session.reply(rpl.RPL_MYINFO, config.server_name, config.version, "i", "n")
    tokens = config.isupport()
    for start in range(0, len(tokens), ISUPPORT_PER_LINE):
        chunk = tokens[start : start + ISUPPORT_PER_LINE]
        session.reply(rpl.RPL_ISUPPORT, *chunk, "are supported by this server")
    send_motd(session)


def on_register_refused(session: IrcSession, event: RegisterRefused) -> None:
    if session.phase is not IrcPhase.REGISTERING or session.nick is None:
        return
    if not event.in_use:
        session.close(event.reason)
        return
    # Not registered after all: the service has nothing to forget (no Quit).
    session.phase = IrcPhase.UNREGISTERED
    session.reply(rpl.ERR_NICKNAMEINUSE, session.nick, event.reason or "Nickname is already in use")
    session.registry.release(session.nick, session.conn)
    session.nick = None


def send_motd(session: IrcSession) -> None:
    config = session.config
    texts = [piece for text in config.motd for piece in text.splitlines()]
    if not texts:
        session.reply(rpl.ERR_NOMOTD, "MOTD File is missing")
        return
    session.reply(rpl.RPL_MOTDSTART, f"- {config.server_name} Message of the day - ")
    for text in texts:
        session.reply(rpl.RPL_MOTD, f"- {fit_utf8(text, 400)}")
    session.reply(rpl.RPL_ENDOFMOTD, "End of /MOTD command.")


def on_motd(session: IrcSession, line: Line) -> None:
    send_motd(session)


def on_ping(session: IrcSession, line: Line) -> None:
    if not line.params or not line.params[0]:
        session.reply(rpl.ERR_NEEDMOREPARAMS, "PING", "Not enough parameters")
        return
    name = session.config.server_name
    session.send(Line("PONG", (name, line.params[0]), name, trailing=True))


def on_pong(session: IrcSession, line: Line) -> None:
    """Any line proves the client alive (the connection notes it); PONG says no more."""


def on_quit(session: IrcSession, line: Line) -> None:
    text = line.params[0] if line.params else ""
    session.close(f"Quit: {fit_utf8(text, 300)}" if text else "Quit")
