"""Who is in which room, as the server sees it. Pure.

Each session is in the rooms its HELLO named and those it JOINed since (less
those it PARTed); a send-only session is in none. A *user* is in a room while
at least one of its sessions is: ``MemberChange`` says when that turns, which the
server publishes as MEMBER on the room's topic - a user's second session
coming or going changes nothing others see.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MemberChange:
    """``user`` came to (``joined``) or left ``room``."""

    room: str
    user: str
    joined: bool


class ServerMembership:
    """Rooms per session, and per room how many sessions each user has in it."""

    def __init__(self) -> None:
        self._sessions: dict[bytes, tuple[str, set[str]]] = {}  # identity -> (user, rooms)
        self._rooms: dict[str, dict[str, int]] = {}  # room -> user -> sessions in it

    def enter(self, identity: bytes, user: str, rooms: list[str]) -> list[MemberChange]:
        """A new session of ``user`` in ``rooms`` (an old one under the same identity
        leaves first)."""
        changes = self.leave(identity)
        self._sessions[identity] = (user, set())
        for room in rooms:
            changes += self.join(identity, room)
        return changes

    def join(self, identity: bytes, room: str) -> list[MemberChange]:
        user, rooms = self._sessions[identity]
        if room in rooms:
            return []
        rooms.add(room)
        users = self._rooms.setdefault(room, {})
        users[user] = users.get(user, 0) + 1
        return [MemberChange(room, user, True)] if users[user] == 1 else []

    def part(self, identity: bytes, room: str) -> list[MemberChange]:
        user, rooms = self._sessions[identity]
        if room not in rooms:
            return []
        rooms.discard(room)
        users = self._rooms[room]
        users[user] -= 1
        if users[user]:
            return []
        del users[user]
        if not users:
            del self._rooms[room]
        return [MemberChange(room, user, False)]

    def leave(self, identity: bytes) -> list[MemberChange]:
        """The session is gone (BYE, silence, cut off, replaced)."""
        if identity not in self._sessions:
            return []
        changes: list[MemberChange] = []
        for room in sorted(self._sessions[identity][1]):
            changes += self.part(identity, room)
        del self._sessions[identity]
        return changes

    def rooms_of(self, identity: bytes) -> frozenset[str]:
        entry = self._sessions.get(identity)
        return frozenset(entry[1]) if entry else frozenset()

    def users(self, room: str) -> list[str]:
        """Who is in ``room`` now, sorted."""
        return sorted(self._rooms.get(room, ()))

    def occupied(self) -> dict[str, int]:
        """Every room someone is in, with how many users are in it."""
        return {room: len(users) for room, users in self._rooms.items()}
