"""Our link with each broadcast peer, as one explicit state machine. Pure.

Every node id we deal with has at most one ``Link``, in one ``LinkState``; what
moves it is a ``LinkEvent``, and every move is in ``TRANSITIONS`` (the plain
table) or ``SECURE_TRANSITIONS`` (secure mode's), read and drawn in one place as
h11's ``_state.py`` does. An event a state has no entry for changes nothing:
``Links.apply`` returns None, and the facade does nothing about it either::

    (none) -talked-> STRANGER -joined-> LINKED -handshake-> UP <-leaving/life-> DOUBTED
                        `-joined_cut-> CUT <-cut_off- (any linked state)
    CUT -joined-> LINKED      (any linked state) -dropped-> DOWN -handshake-> UP
    (any linked state, CUT) -gone-> LEFT, which is forgotten

* STRANGER: it talked to our ROUTER (a SYNC, a DM, its ROOMS) before we took
  its beacon; its SYNCs (one per room), its rooms and the ACK we owe it wait
  here, taken when it joins.
* LINKED: its beacon was taken and our SUB and DEALER to it are open; no
  handshake seen yet (in secure mode: it has not proved its key).
* UP: our DEALER's handshake with it succeeded and the connection holds.
* DOUBTED: up, but a LEAVING (a bare datagram anyone can forge) says it left;
  life over its link (``SHOWED_LIFE``) shows the LEAVING was forged.
* DOWN: its connection dropped (in secure mode: after it was up, since a
  failed handshake ends in a drop too); the peer table gives it the link grace
  to beacon again.
* CUT: its source sent too much bad input: no sockets until the penalty ends.
* LEFT: gone (BYE, LEAVING, silence, a lost link): the record is forgotten.

The linked states (LINKED, UP, DOUBTED, DOWN) are the ones with sockets; of
them UP, DOUBTED and DOWN have *proved* their key (a handshake succeeded), which
is what makes a peer count in secure mode. Strangers are bounded
(``PENDING_LIMIT``): a node id that is not a live peer gets no more room than that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from ..events import Status
from ..presence import Peer
from .roomsync import SyncRequest

PENDING_LIMIT = 256  # strangers whose SYNC or owed ACK we keep until they beacon


class LinkState(Enum):
    STRANGER = "stranger"
    LINKED = "linked"
    UP = "up"
    DOUBTED = "doubted"
    DOWN = "down"
    CUT = "cut"
    LEFT = "left"


class LinkEvent(Enum):
    TALKED = "talked"  # a SYNC or a DM came from it before it was linked
    JOINED = "joined"  # its beacon was taken (new, restarted, or its cut-off ended)
    JOINED_CUT = "joined_cut"  # its beacon was taken while its source is cut off
    HANDSHAKE = "handshake"  # our DEALER's handshake with it succeeded
    DROPPED = "dropped"  # our DEALER's connection to it dropped
    LEAVING = "leaving"  # a LEAVING beacon for the instance on record (secure mode)
    SHOWED_LIFE = "showed_life"  # a command from it passed every check
    CUT_OFF = "cut_off"  # its source was cut off for bad input
    GONE = "gone"  # it left the peer table


S, E = LinkState, LinkEvent
LINKED_STATES = frozenset({S.LINKED, S.UP, S.DOUBTED, S.DOWN})  # our sockets to it are open
PROVEN_STATES = frozenset({S.UP, S.DOUBTED, S.DOWN})  # a handshake with it succeeded
UP_STATES = frozenset({S.UP, S.DOUBTED})  # and the connection holds

# (state before, event) -> state after; None as the state before: no record yet.
TRANSITIONS: dict[tuple[LinkState | None, LinkEvent], LinkState] = {
    (None, E.TALKED): S.STRANGER,
    (S.STRANGER, E.TALKED): S.STRANGER,
    (S.CUT, E.TALKED): S.CUT,
    (None, E.JOINED): S.LINKED,
    (S.STRANGER, E.JOINED): S.LINKED,
    (S.CUT, E.JOINED): S.LINKED,
    (None, E.JOINED_CUT): S.CUT,
    (S.STRANGER, E.JOINED_CUT): S.CUT,
    (S.CUT, E.JOINED_CUT): S.CUT,
    **{(state, E.HANDSHAKE): S.UP for state in LINKED_STATES},
    **{(state, E.DROPPED): S.DOWN for state in LINKED_STATES},
    (S.UP, E.LEAVING): S.DOUBTED,
    (S.DOUBTED, E.LEAVING): S.DOUBTED,
    (S.DOUBTED, E.SHOWED_LIFE): S.UP,
    **{(state, E.CUT_OFF): S.CUT for state in LINKED_STATES},
    **{(state, E.GONE): S.LEFT for state in LINKED_STATES | {S.CUT}},
}
# Secure mode: a failed CURVE handshake also ends in a disconnect, so only a
# connection that was up says anything when it drops.
SECURE_TRANSITIONS = {
    move: after for move, after in TRANSITIONS.items()
    if not (move[1] is E.DROPPED and move[0] not in UP_STATES)
}


@dataclass
class Link:
    """One node id we deal with: its state and, while not linked, what waits for it."""

    node_id: str
    state: LinkState
    peer: Peer | None = None  # as linked: in secure mode ``user`` is its key's name
    early_syncs: dict[str, SyncRequest] = field(default_factory=dict)  # per room
    early_rooms: dict[str, str | None] | None = None  # the ROOMS it sent, room -> topic
    early_away: str | None = None  # and the away text that ROOMS said
    owed_acks: set[str] = field(default_factory=set)  # DMs it sent that we stored
    linked_at: float = 0.0  # when it last became LINKED (secure: it has until then + proof)

    @property
    def linked(self) -> bool:
        return self.state in LINKED_STATES

    @property
    def user(self) -> str:
        return self.peer.user if self.peer is not None else ""


@dataclass(frozen=True)
class Pending:
    """What a stranger sent before it joined, taken when it does."""

    syncs: list[SyncRequest]
    rooms: dict[str, str | None] | None
    acks: set[str]
    away: str | None = None


@dataclass(frozen=True)
class Transition:
    link: Link
    before: LinkState | None
    after: LinkState

    @property
    def was_linked(self) -> bool:
        return self.before in LINKED_STATES


class Links:
    """Every ``Link``, moved only through the table; asked who is linked and who counts."""

    def __init__(self, secure: bool, pending_limit: int = PENDING_LIMIT) -> None:
        self.secure = secure
        self.table = SECURE_TRANSITIONS if secure else TRANSITIONS
        self.pending_limit = pending_limit
        self._links: dict[str, Link] = {}
        self.ever_shown = False  # for the status line: "left" rather than "heard yet"
        self._told: Status | None = None  # the status line the front end has

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._links

    def state(self, node_id: str) -> LinkState | None:
        link = self._links.get(node_id)
        return link.state if link is not None else None

    def apply(self, node_id: str, event: LinkEvent, peer: Peer | None = None) -> Transition | None:
        """Move ``node_id``'s link by ``event``; None when the table has no such move.

        ``peer`` (JOINED, JOINED_CUT) is the peer as it is linked.
        """
        link = self._links.get(node_id)
        before = link.state if link is not None else None
        after = self.table.get((before, event))
        if after is None:
            return None
        if link is None:
            if event is E.TALKED and self._strangers() >= self.pending_limit:
                return None  # no room: what it asked is dropped, as if never sent
            link = self._links[node_id] = Link(node_id, after)
        link.state = after
        if peer is not None:
            link.peer = peer
        if after is S.LEFT:
            del self._links[node_id]
        return Transition(link, before, after)

    def linked(self, node_id: str) -> Link | None:
        """The link with sockets to this peer, or None."""
        link = self._links.get(node_id)
        return link if link is not None and link.linked else None

    def all_linked(self) -> list[Link]:
        return [link for link in self._links.values() if link.linked]

    def of_user(self, user: str | None) -> list[Link]:
        return [link for link in self.all_linked() if link.user == user]

    def in_state(self, state: LinkState) -> list[Link]:
        return [link for link in self._links.values() if link.state is state]

    def counted(self) -> list[Link]:
        """The peers one chats with: in secure mode, once the peer proved its key (a
        forged beacon's endpoint never does)."""
        if not self.secure:
            return self.all_linked()
        return [link for link in self._links.values() if link.state in PROVEN_STATES]

    def unproven(self) -> list[Link]:
        """Secure mode: the links whose handshake has not completed yet (LINKED)."""
        return self.in_state(S.LINKED) if self.secure else []

    def is_proven(self, node_id: str) -> bool:
        return self.state(node_id) in PROVEN_STATES

    def is_up(self, node_id: str) -> bool:
        return self.state(node_id) in UP_STATES

    def remember_sync(self, node_id: str, request: SyncRequest) -> None:
        """A SYNC from a node id not linked: answered when it joins (if there is room)."""
        if self.apply(node_id, E.TALKED) is not None:
            self._links[node_id].early_syncs[request.room] = request

    def remember_rooms(self, node_id: str, rooms: dict[str, str | None],
                       away: str | None = None) -> None:
        """A ROOMS from a node id not linked: taken when it joins (if there is room)."""
        if self.apply(node_id, E.TALKED) is not None:
            link = self._links[node_id]
            link.early_rooms, link.early_away = rooms, away

    def owe_acks(self, node_id: str, ids: Iterable[str]) -> None:
        """Direct messages stored from a node id not linked: acknowledged when it joins."""
        if self.apply(node_id, E.TALKED) is not None:
            self._links[node_id].owed_acks.update(ids)

    def take_pending(self, node_id: str) -> Pending:
        """What waits for a peer that just joined (and forget it)."""
        link = self._links.get(node_id)
        if link is None:
            return Pending([], None, set())
        waiting = Pending(list(link.early_syncs.values()), link.early_rooms, link.owed_acks,
                          link.early_away)
        link.early_syncs, link.early_rooms, link.owed_acks = {}, None, set()
        link.early_away = None
        return waiting

    def name(self, peer: Peer | None) -> str:
        """What a peer is called: its key's name once linked in secure mode, else its user."""
        link = self.linked(peer.node_id) if peer is not None else None
        return link.user if link is not None else (peer.user if peer is not None else "?")

    def status_changed(self, where: str, shown: Callable[[Link], bool] = lambda link: True
                       ) -> list[Status]:
        """The status line, when it is not the one the front end has."""
        status = self.status(where, shown)
        if status == self._told:
            return []
        self._told = status
        return [status]

    def status(self, where: str, shown: Callable[[Link], bool] = lambda link: True) -> Status:
        """The status line: who counts (of them, the ones ``shown``: the persons), or whether
        anyone ever did."""
        users = sorted(link.user for link in self.counted() if shown(link))
        if users:
            self.ever_shown = True
            noun = "peer" if len(users) == 1 else "peers"
            return Status(True, f"{len(users)} {noun}: {', '.join(users)}")
        if self.ever_shown:
            return Status(False, f"no broadcast peers left on {where}")
        return Status(False, f"no broadcast peers heard yet on {where}")

    def _strangers(self) -> int:
        return sum(1 for link in self._links.values() if link.state is S.STRANGER)
