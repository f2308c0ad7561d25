"""Who holds which name: IRC connections and the lab93 users the service names. Pure.

Names are compared folded (``names.fold``), so nicks are unique without regard
to case across IRC users (from their NICK on, before registration ends too) and
the lab93 users the chat service says are taken (``NamesTaken``). The service
stays the judge: it may still refuse a registration this table let through
(RegisterRefused), for a lab93 user who arrived in between.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from .names import fold


@dataclass
class _Holder:
    conn: Hashable
    name: str
    registered: bool = False
    away: str | None = None


class Registry:
    def __init__(self) -> None:
        self._irc: dict[str, _Holder] = {}
        self._taken: set[str] = set()

    def free_for(self, name: str, conn: Hashable) -> bool:
        """True when ``conn`` may hold ``name`` (nobody else holds it, the service has not)."""
        key = fold(name)
        holder = self._irc.get(key)
        return key not in self._taken and (holder is None or holder.conn == conn)

    def reserve(self, name: str, conn: Hashable) -> bool:
        """Hold ``name`` for ``conn``; False (and nothing changed) when it is not free."""
        if not self.free_for(name, conn):
            return False
        self._irc[fold(name)] = _Holder(conn, name)
        return True

    def release(self, name: str, conn: Hashable) -> None:
        key = fold(name)
        holder = self._irc.get(key)
        if holder is not None and holder.conn == conn:
            del self._irc[key]

    def registered(self, name: str, conn: Hashable) -> None:
        holder = self._irc.get(fold(name))
        if holder is not None and holder.conn == conn:
            holder.registered = True

    def set_taken(self, names: Iterable[str], taken: bool) -> None:
        for name in names:
            if taken:
                self._taken.add(fold(name))
            else:
                self._taken.discard(fold(name))

    def set_away(self, name: str, text: str | None) -> None:
        holder = self._irc.get(fold(name))
        if holder is not None:
            holder.away = text

    def away(self, name: str) -> str | None:
        """The away text of an IRC user, None when it is here (or not an IRC user)."""
        holder = self._irc.get(fold(name))
        return holder.away if holder is not None and holder.registered else None

    def online(self, name: str) -> bool:
        """True for a registered IRC user or a name the service says is taken."""
        key = fold(name)
        holder = self._irc.get(key)
        return key in self._taken or (holder is not None and holder.registered)

    def holder(self, name: str) -> Hashable | None:
        """The connection of the registered IRC user ``name``, if there is one."""
        holder = self._irc.get(fold(name))
        return holder.conn if holder is not None and holder.registered else None

    @property
    def irc_users(self) -> int:
        return sum(1 for holder in self._irc.values() if holder.registered)
