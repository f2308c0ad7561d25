"""The rooms a client is in, and the front end's questions about rooms and people. Pure.

Joining a room subscribes the feed to its topic (``FollowRooms``), tells the
server (JOIN, when connected; a HELLO names every room anyway) and starts its
chain - where, the next replay says (catchup.py). Parting does the opposite;
its tip is kept, so a later join gets only what it lacks of the room's last
messages. PARTED comes at once. JOINED comes at once when not connected (with
the topic as the inbox knows it then); when connected it waits for the
server's first answer for the room (a BATCH naming it), which brings the
room's current topic, so JOINED tells the topic the server knows - the topic
that answer sent outside the chain is told by JOINED, not again as a TOPIC.

WHO and ROOMS go to the server and come back in order (ROOMLIST in one or
more pages); without a server they are answered at once with what this
client knows, marked not connected.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from ..away import AwayTextError, away_map
from ..errors import ProtocolError
from ..events import Event, Joined, Member, Notice, Parted, RoomInfo, RoomList, Topic, Users
from ..message import Message
from ..rooms import shown
from .catchup import ClientCatchUp
from .commands import MAX_ROOMS, RepeaterVerb, room_field
from .outputs import ClientOutput, FollowRooms, SendToServer
from .topics import TopicBoard


class RoomSet:
    """A client's rooms (``names``, in the order it joined them) and its open questions."""

    def __init__(
        self, rooms: Sequence[str], catchup: ClientCatchUp, topics: TopicBoard, *,
        listen: bool = True,
    ) -> None:
        self.listen = listen
        self.names: list[str] = list(dict.fromkeys(rooms)) if listen else []
        self.catchup = catchup
        self.topics = topics
        self._who: deque[str | None] = deque()  # the rooms of WHOs asked, oldest first
        self._asked_rooms = 0  # ROOMS asked, not answered
        self._pages: list[dict] = []  # ROOMLIST pages of the answer under way
        self.away: str | None = None  # our away text (/away): in each HELLO, AWAY on change
        self.joining: dict[str, bool] = {}  # JOINED held for the server's answer: room -> first

    def follow(self) -> FollowRooms:
        return FollowRooms(frozenset(self.names))

    def topic(self, room: str) -> Topic | None:
        message = self.topics.current(room)
        return None if message is None else Topic.of(message)

    # -- joining and parting ----------------------------------------------------------

    def join(self, room: str, connected: bool) -> list[ClientOutput]:
        """Be in ``room``; JOINED at once when not connected or already in it, else once
        the server has answered for it (``answered``)."""
        if not self.listen:
            return [Notice(f"a send-only run joins no room; not joining {shown(room)}")]
        if room in self.names:
            return [Joined(room, self.topic(room), False)]
        if len(self.names) >= MAX_ROOMS:
            return [Notice(f"a client is in at most {MAX_ROOMS} rooms; part one first")]
        first = self.catchup.join(room)
        self.names.append(room)
        out: list[ClientOutput] = [self.follow()]
        if not connected:
            return out + [Joined(room, self.topic(room), first)]
        self.joining[room] = first
        return out + [SendToServer(RepeaterVerb.JOIN.command({"room": room}))]

    def answered(
        self, rooms: set[str], outside: list[Message], events: list[ClientOutput]
    ) -> list[ClientOutput]:
        """The server answered for ``rooms`` and what it brought is stored (``events``):
        JOINED for each held join among them, with its topic now, before ``events`` -
        less the topics sent ``outside`` their chain of those rooms, which JOINED tells."""
        joined = [Joined(room, self.topic(room), self.joining.pop(room))
                  for room in list(self.joining) if room in rooms]
        told = {Topic.of(message) for message in outside
                if any(message.room == j.room for j in joined)}
        kept = [e for e in events if not (isinstance(e, Topic) and e in told)]
        return [*joined, *kept]

    def _unhold(self, rooms: list[str]) -> list[Event]:
        """JOINED for held joins the server will not answer now: the inbox's topic."""
        return [Joined(room, self.topic(room), self.joining.pop(room))
                for room in rooms if room in self.joining]

    def part(self, room: str, connected: bool) -> list[ClientOutput]:
        """Leave ``room``; PARTED at once (also when not in it)."""
        if room not in self.names:
            return [Parted(room)]
        self.names.remove(room)
        self.catchup.part(room)
        out: list[ClientOutput] = [*self._unhold([room]), self.follow(), Parted(room)]
        if connected:
            out.append(SendToServer(RepeaterVerb.PART.command({"room": room})))
        return out

    def member(self, room: str, header: dict, user: str) -> list[Event]:
        """MEMBER on ``room``'s topic: someone else came or went."""
        who, joined = header.get("user"), header.get("joined")
        if not isinstance(who, str) or type(joined) is not bool:
            raise ProtocolError("MEMBER needs a user and whether it joined")
        if room not in self.names or who == user:
            return []
        return [Member(room, who, joined)]

    # -- questions ------------------------------------------------------------------------

    def who(self, room: str | None, connected: bool) -> list[ClientOutput]:
        if not connected:
            return [Users((), connected=False, room=room)]
        self._who.append(room)
        header = {} if room is None else {"room": room}
        return [SendToServer(RepeaterVerb.WHO.command(header))]

    def on_users(self, header: dict) -> list[Event]:
        users = header.get("users")
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise ProtocolError("USERS needs a list of names")
        room = None if header.get("room") is None else room_field(header)
        try:  # a server of before /away sends none: nobody is away
            away = away_map(header.get("away", {}))
        except AwayTextError as error:
            raise ProtocolError(f"USERS: {error}") from None
        if not self._who:
            return []
        asked = self._who.popleft()
        texts = tuple((user, away[user]) for user in sorted(set(users)) if user in away)
        return [Users(tuple(users), room=asked if room is None else room, away=texts)]

    def set_away(self, text: str | None, connected: bool) -> list[ClientOutput]:
        """Be away with ``text`` (None: back): AWAY to the server now when connected (and
        in every HELLO from now on). A send-only run is nobody to others: it says none."""
        if text == self.away or not self.listen:
            return []
        self.away = text
        return [SendToServer(RepeaterVerb.AWAY.command({"text": text}))] if connected else []

    def ask_rooms(self, connected: bool) -> list[ClientOutput]:
        if not connected:
            return [self._listing([])]
        self._asked_rooms += 1
        return [SendToServer(RepeaterVerb.ROOMS.command())]

    def on_roomlist(self, header: dict) -> list[Event]:
        rooms = header.get("rooms")
        if not isinstance(rooms, list) or not all(isinstance(r, dict) for r in rooms):
            raise ProtocolError("ROOMLIST needs a list of rooms")
        for entry in rooms:
            room_field(entry, "name")
            topic = entry.get("topic")
            if type(entry.get("users")) is not int or not (topic is None or isinstance(topic, str)):
                raise ProtocolError("each room of ROOMLIST needs its users and topic")
        if self._asked_rooms == 0:
            return []
        self._pages += rooms
        if header.get("more") is True:
            return []
        self._asked_rooms -= 1
        pages, self._pages = self._pages, []
        return [self._listing(pages)]

    def _listing(self, heard: list[dict]) -> RoomList:
        """The rooms the server listed, and ours (it may not list one it has not heard
        of yet, or we are not connected), each marked whether we are in it."""
        rooms = {
            entry["name"]: RoomInfo(entry["name"], entry["users"], entry["topic"],
                                    entry["name"] in self.names)
            for entry in heard
        }
        for room in self.names:
            if room not in rooms:
                topic = self.topics.current(room)
                rooms[room] = RoomInfo(room, 0, None if topic is None else topic.content, True)
        return RoomList(tuple(rooms[name] for name in sorted(rooms)))

    def dropped(self) -> list[Event]:
        """The connection is gone: what was asked is answered with what we know."""
        out: list[Event] = self._unhold(list(self.joining))
        out += [Users((), connected=False, room=room) for room in self._who]
        out += [self._listing([]) for _ in range(self._asked_rooms)]
        self._who.clear()
        self._asked_rooms = 0
        self._pages = []
        return out

    def unsent(self, verb: RepeaterVerb) -> list[Event]:
        """A WHO or ROOMS could not be sent (the DEALER is full): answer it now."""
        if verb is RepeaterVerb.WHO and self._who:
            return [Users((), connected=False, room=self._who.pop())]
        if verb is RepeaterVerb.ROOMS and self._asked_rooms:
            self._asked_rooms -= 1
            return [self._listing([])]
        return []
