"""IRC channels and nicks <-> lab93 rooms and user names. Pure.

Rooms (``core.rooms``, DESIGN.md "Rooms"): a room name is 1 to 32
characters of lowercase a-z, digits, '-', '_' and '.', starting with a letter
or digit; the IRC channel ``#ops`` is the room ``ops``, and what a client
types is folded to lower case first (``#OPS`` is ``ops`` too). So CHANNELLEN
is 33 and CHANTYPES is ``#``; nothing else names a room.

Nicks: an IRC client may register a nick of 1 to 64 (NICKLEN) characters:
ASCII letters, digits and ``- [ ] \\ ` ^ _ | }``, not starting with a digit
or '-'. That is the RFC 2812 nick without ``{``, and every such nick is a
valid lab93 user name, so an IRC user's lab93 name *is* its nick.

A lab93 name is 1-64 characters with no white space or control characters,
so it may hold what a nick cannot (``jean.dupont``, ``zoë``, ``a@b``). Such a
name is shown on IRC with each character a nick cannot carry written as
``{hex}``, its Unicode code point in lower-case hex: ``jean{2e}dupont``,
``zo{eb}``, ``{31}337`` (a leading digit). ``{`` itself is always written
``{7b}``, which is why no IRC client may register a nick holding ``{``: the
mapping is one-to-one, and ``name_for`` reads it back (hex in either case)
when an IRC user writes to ``zo{eb}``.

Case: ``fold`` (Unicode case folding) says when two names are the same user;
the chat service must fold the same way, so that nicks are unique without
regard to case across IRC and lab93 users. For every nick an IRC client sees
(ASCII only) this is exactly CASEMAPPING=ascii.
"""

from __future__ import annotations

import re

from ..message import MAX_NAME_CHARS
from ..rooms import MAX_ROOM_CHARS, RoomError, check_room, room_name, shown

CHANNEL_PREFIX = "#"
MAX_CHANNEL_CHARS = MAX_ROOM_CHARS + len(CHANNEL_PREFIX)  # CHANNELLEN
MAX_NICK_CHARS = MAX_NAME_CHARS  # NICKLEN: the longest lab93 user name
_NICK_FIRST = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz[]\\`^_|}"
_NICK_REST = frozenset(_NICK_FIRST + "0123456789-")
_NICK = re.compile(r"[A-Za-z\[\]\\`^_|}][A-Za-z0-9\[\]\\`^_|}-]{0,63}\Z")
_ESCAPE = re.compile(r"\{([0-9A-Fa-f]{1,6})\}")
_BAD_NAME = re.compile(r"[\s\x00-\x1f\x7f]")


def room_for(channel: str) -> str | None:
    """The room an IRC channel names (``#Ops`` -> ``ops``); None if it names none."""
    if not channel.startswith(CHANNEL_PREFIX) or channel != channel.strip():
        return None
    try:
        return room_name(channel)
    except RoomError:
        return None


def channel_for(room: str) -> str:
    """The IRC channel of a room: ``ops`` -> ``#ops``."""
    return shown(room)


def is_room(room: str) -> bool:
    """True for a valid room name (already folded)."""
    try:
        check_room(room)
    except RoomError:
        return False
    return True


def nick_error(nick: str) -> str | None:
    """Why an IRC client may not register ``nick`` (432's text), or None when it may."""
    if not nick:
        return "a nick must not be empty"
    if len(nick) > MAX_NICK_CHARS:
        return f"a nick is at most {MAX_NICK_CHARS} characters"
    if "{" in nick:
        return "'{' is kept for lab93 names shown on IRC"
    if not _NICK.match(nick):
        return "a nick is ASCII letters, digits and - [ ] \\ ` ^ _ | }, starting with no digit or -"
    return None


def nick_for(name: str) -> str:
    """How a lab93 user name is shown on IRC (itself when IRC can carry it)."""
    if _NICK.match(name):
        return name  # no '{' in the pattern: a nick is never mistaken for an escape
    out = []
    for index, ch in enumerate(name):
        allowed = _NICK_FIRST if index == 0 else _NICK_REST
        out.append(ch if ch in allowed else f"{{{ord(ch):x}}}")
    return "".join(out)


def name_for(nick: str) -> str | None:
    """The lab93 user name a nick shows, or None when ``nick`` shows none."""
    if _NICK.match(nick):
        return nick
    if "{" not in nick:
        return None
    out = []
    position = 0
    for match in _ESCAPE.finditer(nick):
        out.append(nick[position : match.start()])
        code = int(match.group(1), 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        out.append(chr(code))
        position = match.end()
    out.append(nick[position:])
    name = "".join(out)
    if not name or len(name) > MAX_NICK_CHARS or _BAD_NAME.search(name):
        return None
    # Only the one spelling nick_for writes (hex case aside) names the user, so
    # that "{61}lice" is not a second nick for "alice".
    return name if nick_for(name).lower() == nick.lower() else None


def fold(name: str) -> str:
    """The form two names share when they are the same user (case-insensitive)."""
    return name.casefold()
