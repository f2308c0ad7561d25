"""What the IRC face asks of the chat service, what the service answers, what to write. Pure.

Every value is a small frozen dataclass. ``conn`` is the owner's handle for one
client socket (any hashable: the server's actor picks it); every request
carries it, and every answer names it back, so the gateway routes the answer.
An answer to one request carries that request (``request``), so the
connection needs no table of what it asked.

Requests (connection -> service)::

    Register(conn, name, username, realname)           -> Registered | RegisterRefused
    JoinRoom(conn, room)                               -> JoinResult | RequestFailed
    PartRoom(conn, room, reason)                       (no answer; others see UserParted)
    PostRoom / PostDirect                              -> Stored | RequestFailed
                                                          (PostDirect to an away lab93
                                                          user: RecipientAway first)
    SetTopic(conn, room, text)                         -> TopicChanged to the room | RequestFailed
    GetTopic(conn, room)                               -> TopicInfo
    Names(conn, room)                                  -> NamesResult
    ListRooms(conn)                                    -> ListResult
    WhoRequest(conn, room | name)                      -> WhoResult
    Whois(conn, name)                                  -> WhoResult
    HistoryRequest(conn, room | peer, selector, limit) -> HistoryResult | RequestFailed
    HistoryTargets(conn, start, end, limit)            -> TargetsResult | RequestFailed
    SetAway(conn, text | None)                         (no answer)
    QuitRequest(conn, reason)                          (no answer; others see UserQuit)

Events the service sends to everyone concerned (the gateway fans them out):
``Delivered`` (a stored message), ``UserJoined``, ``UserParted``, ``UserQuit``,
``TopicChanged``, ``NamesTaken``, and ``Disconnect`` to close one client.

Outputs to the owner: ``SendLine`` (bytes to write) and ``Close`` (write what
is queued, then close the socket), beside the requests above.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime

from .names import is_room

_MESSAGE_ID = re.compile(r"[A-Za-z0-9]{1,64}\Z")


def _aware(when: datetime, field: str) -> None:
    if not isinstance(when, datetime) or when.utcoffset() is None:
        raise ValueError(f"{field} must be a timezone-aware datetime")


@dataclass(frozen=True)
class ChatMessage:
    """A stored message as IRC shows it: in a room (``room``) or to one user (``recipient``).

    ``id`` is the stored id (letters and digits: IRC's msgid carries it, and a
    line of a message split in several gets ``<id>-<n>``); ``sent_at`` is what
    server-time shows. ``action`` is a CTCP ACTION (/me); ``notice`` a NOTICE.
    """

    id: str
    sender: str
    room: str | None
    recipient: str | None
    content: str
    sent_at: datetime
    subject: str | None = None
    action: bool = False
    notice: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _MESSAGE_ID.match(self.id):
            raise ValueError("a message id is 1 to 64 ASCII letters and digits")
        if (self.room is None) == (self.recipient is None):
            raise ValueError("a message is in a room or to a recipient, not both or neither")
        if self.room is not None and not is_room(self.room):
            raise ValueError(f"not a room name: {self.room!r}")
        _aware(self.sent_at, "sent_at")


@dataclass(frozen=True)
class RoomTopic:
    text: str
    set_by: str
    set_at: datetime

    def __post_init__(self) -> None:
        _aware(self.set_at, "set_at")


@dataclass(frozen=True)
class RoomSummary:
    name: str
    users: int
    topic: str | None = None


@dataclass(frozen=True)
class UserInfo:
    """One user for WHO and WHOIS: ``irc`` says whether it is here through IRC."""

    name: str
    irc: bool = False
    realname: str = ""
    rooms: tuple[str, ...] = ()
    away: str | None = None  # its away text (an IRC user's AWAY, a lab93 user's /away)


# --- history selectors (CHATHISTORY) -------------------------------------------


@dataclass(frozen=True)
class MsgRef:
    """A message by its id (a msgid's part suffix already taken off)."""

    id: str


@dataclass(frozen=True)
class TimeRef:
    at: datetime

    def __post_init__(self) -> None:
        _aware(self.at, "at")


Ref = MsgRef | TimeRef


@dataclass(frozen=True)
class Latest:
    """The newest messages; with ``after``, only those strictly after it."""

    after: Ref | None = None


@dataclass(frozen=True)
class Before:
    """The newest messages strictly before ``ref``."""

    ref: Ref


@dataclass(frozen=True)
class After:
    """The oldest messages strictly after ``ref``."""

    ref: Ref


@dataclass(frozen=True)
class Around:
    """Messages on both sides of ``ref`` (it included when it is a message)."""

    ref: Ref


@dataclass(frozen=True)
class Between:
    """Messages strictly between ``start`` and ``end``, counted from ``start``
    (``end`` may be earlier than ``start``: then they are the ones nearest ``start``)."""

    start: Ref
    end: Ref


Selector = Latest | Before | After | Around | Between


# --- requests: connection -> service ------------------------------------------------


@dataclass(frozen=True)
class Register:
    conn: Hashable
    name: str
    username: str
    realname: str


@dataclass(frozen=True)
class JoinRoom:
    conn: Hashable
    room: str


@dataclass(frozen=True)
class PartRoom:
    conn: Hashable
    room: str
    reason: str | None = None


@dataclass(frozen=True)
class PostRoom:
    """Store and publish ``text`` in ``room``; ``client_ref`` numbers the connection's posts."""

    conn: Hashable
    room: str
    text: str
    notice: bool = False
    action: bool = False
    client_ref: int = 0


@dataclass(frozen=True)
class PostDirect:
    conn: Hashable
    to: str
    text: str
    notice: bool = False
    action: bool = False
    client_ref: int = 0


@dataclass(frozen=True)
class SetTopic:
    conn: Hashable
    room: str
    text: str


@dataclass(frozen=True)
class GetTopic:
    conn: Hashable
    room: str


@dataclass(frozen=True)
class Names:
    conn: Hashable
    room: str


@dataclass(frozen=True)
class ListRooms:
    """Every room heard of; only ``rooms`` when it names some (LIST #a,#b)."""

    conn: Hashable
    rooms: tuple[str, ...] = ()


@dataclass(frozen=True)
class WhoRequest:
    """The users of ``room``, or the one user ``name``."""

    conn: Hashable
    room: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Whois:
    conn: Hashable
    name: str


@dataclass(frozen=True)
class HistoryRequest:
    """Stored messages of ``room``, or between this user and ``peer``; at most ``limit``,
    oldest first."""

    conn: Hashable
    room: str | None
    peer: str | None
    selector: Selector
    limit: int


@dataclass(frozen=True)
class HistoryTargets:
    """The rooms and peers with a latest message between ``start`` and ``end`` (either
    order), at most ``limit``, by that time."""

    conn: Hashable
    start: datetime
    end: datetime
    limit: int


@dataclass(frozen=True)
class SetAway:
    conn: Hashable
    text: str | None


@dataclass(frozen=True)
class QuitRequest:
    """The client is gone (it said QUIT, broke a rule, or its socket closed)."""

    conn: Hashable
    reason: str


Request = (
    Register
    | JoinRoom
    | PartRoom
    | PostRoom
    | PostDirect
    | SetTopic
    | GetTopic
    | Names
    | ListRooms
    | WhoRequest
    | Whois
    | HistoryRequest
    | HistoryTargets
    | SetAway
    | QuitRequest
)


# --- events: service -> connection ---------------------------------------------------


@dataclass(frozen=True)
class Registered:
    conn: Hashable


@dataclass(frozen=True)
class RegisterRefused:
    """``in_use``: the name is taken (433, the client may try another); else the
    client is closed with ``reason``."""

    conn: Hashable
    reason: str
    in_use: bool = False


@dataclass(frozen=True)
class JoinResult:
    conn: Hashable
    room: str
    topic: RoomTopic | None
    members: tuple[str, ...]


@dataclass(frozen=True)
class Stored:
    """``request``'s post is stored as ``message``: only now is it echoed."""

    conn: Hashable
    request: PostRoom | PostDirect
    message: ChatMessage


@dataclass(frozen=True)
class RecipientAway:
    """``request`` went to a lab93 user who is away (its /away): the sender is told, as
    IRC tells of an away IRC user (the gateway knows those itself)."""

    conn: Hashable
    request: PostDirect
    name: str
    text: str


@dataclass(frozen=True)
class RequestFailed:
    """``request`` could not be done; ``no_such_target``: its room or user does not exist."""

    conn: Hashable
    request: Request
    reason: str
    no_such_target: bool = False


@dataclass(frozen=True)
class TopicInfo:
    conn: Hashable
    request: GetTopic
    topic: RoomTopic | None


@dataclass(frozen=True)
class NamesResult:
    conn: Hashable
    request: Names
    members: tuple[str, ...]


@dataclass(frozen=True)
class ListResult:
    conn: Hashable
    request: ListRooms
    rooms: tuple[RoomSummary, ...]


@dataclass(frozen=True)
class WhoResult:
    conn: Hashable
    request: WhoRequest | Whois
    users: tuple[UserInfo, ...]


@dataclass(frozen=True)
class HistoryResult:
    conn: Hashable
    request: HistoryRequest
    messages: tuple[ChatMessage, ...]


@dataclass(frozen=True)
class HistoryTarget:
    room: str | None
    peer: str | None
    latest: datetime


@dataclass(frozen=True)
class TargetsResult:
    conn: Hashable
    request: HistoryTargets
    targets: tuple[HistoryTarget, ...]


@dataclass(frozen=True)
class Disconnect:
    conn: Hashable
    reason: str


ConnEvent = (
    Registered
    | RegisterRefused
    | JoinResult
    | Stored
    | RecipientAway
    | RequestFailed
    | TopicInfo
    | NamesResult
    | ListResult
    | WhoResult
    | HistoryResult
    | TargetsResult
    | Disconnect
)


# --- events: service -> everyone concerned -------------------------------------------


@dataclass(frozen=True)
class Delivered:
    """A stored message for its room's members or its recipient (never back to its
    sender's own IRC connection, which has ``Stored``)."""

    message: ChatMessage


@dataclass(frozen=True)
class UserJoined:
    room: str
    name: str


@dataclass(frozen=True)
class UserParted:
    room: str
    name: str
    reason: str | None = None


@dataclass(frozen=True)
class UserQuit:
    """``name`` left every room at once (a lab93 client went away, an IRC user quit)."""

    name: str
    reason: str


@dataclass(frozen=True)
class TopicChanged:
    room: str
    topic: RoomTopic


@dataclass(frozen=True)
class NamesTaken:
    """These lab93 user names are taken (``taken``) or free again: an IRC client may
    not register a nick that folds to a taken one."""

    names: tuple[str, ...]
    taken: bool = True


Broadcast = Delivered | UserJoined | UserParted | UserQuit | TopicChanged | NamesTaken


# --- outputs to the owner -------------------------------------------------------------


@dataclass(frozen=True)
class SendLine:
    conn: Hashable
    data: bytes


@dataclass(frozen=True)
class Close:
    """Write what is queued for ``conn``, then close its socket."""

    conn: Hashable
    reason: str


Output = SendLine | Close | Request
