"""The link state machine of broadcast mode (core/broadcast/links.py): pure, no network."""

from __future__ import annotations

import pytest
from factories import NODE_A, NODE_B

from lab93zmq.core.broadcast.links import (
    LINKED_STATES,
    PROVEN_STATES,
    SECURE_TRANSITIONS,
    TRANSITIONS,
    LinkEvent,
    Links,
    LinkState,
    Pending,
)
from lab93zmq.core.broadcast.roomsync import SyncRequest
from lab93zmq.core.events import Status
from lab93zmq.core.presence import Peer

S, E = LinkState, LinkEvent
NODE_C = "c" * 32


def sync(vector: dict | None = None, room: str = "general") -> SyncRequest:
    return SyncRequest(room, vector or {})


def peer(node_id: str = NODE_A, user: str = "alice") -> Peer:
    return Peer(node_id, user, "broadcast", "198.18.93.1", 5000, 6000, 0.0, 0.0)


def walk(links: Links, node_id: str, *events: LinkEvent) -> list[LinkState | None]:
    """The state after each event (None where the table had no move)."""
    states = []
    for event in events:
        moved = links.apply(node_id, event, peer(node_id) if event is E.JOINED else None)
        states.append(moved.after if moved is not None else None)
    return states


def test_a_peer_goes_through_its_whole_life_by_the_table():
    links = Links(secure=True)
    assert walk(links, NODE_A, E.TALKED, E.JOINED, E.HANDSHAKE, E.LEAVING, E.SHOWED_LIFE,
                E.DROPPED, E.HANDSHAKE, E.CUT_OFF, E.JOINED, E.GONE) == [
        S.STRANGER, S.LINKED, S.UP, S.DOUBTED, S.UP, S.DOWN, S.UP, S.CUT, S.LINKED, S.LEFT,
    ]
    assert NODE_A not in links and links.state(NODE_A) is None  # LEFT is forgotten


@pytest.mark.parametrize(
    "before, event",
    [
        (None, E.HANDSHAKE),  # a stranger's connection events mean nothing
        (None, E.DROPPED),
        (None, E.GONE),
        (S.UP, E.SHOWED_LIFE),  # only a doubted peer is cleared by life
        (S.LINKED, E.LEAVING),  # a LEAVING of a link never up changes nothing here
        (S.LINKED, E.JOINED),  # already linked
        (S.STRANGER, E.CUT_OFF),  # only links are cut (a stranger has no sockets)
    ],
)
def test_an_event_without_a_move_changes_nothing(before, event):
    links = Links(secure=False)
    setup = {None: [], S.UP: [E.JOINED, E.HANDSHAKE], S.LINKED: [E.JOINED],
             S.STRANGER: [E.TALKED]}[before]
    walk(links, NODE_A, *setup)
    assert links.state(NODE_A) is before
    assert links.apply(NODE_A, event) is None
    assert links.state(NODE_A) is before


def test_secure_mode_ignores_a_drop_of_a_link_that_never_came_up():
    plain, secure = Links(secure=False), Links(secure=True)
    for links in (plain, secure):
        walk(links, NODE_A, E.JOINED)
    assert walk(plain, NODE_A, E.DROPPED, E.DROPPED) == [S.DOWN, S.DOWN]
    assert walk(secure, NODE_A, E.DROPPED) == [None]  # a failed handshake drops too
    assert walk(secure, NODE_A, E.HANDSHAKE, E.DROPPED, E.DROPPED) == [S.UP, S.DOWN, None]
    # The secure table is the plain one less those moves, nothing added.
    assert set(SECURE_TRANSITIONS.items()) < set(TRANSITIONS.items())
    assert {move for move in TRANSITIONS if move not in SECURE_TRANSITIONS} == {
        (S.LINKED, E.DROPPED), (S.DOWN, E.DROPPED)
    }


def test_the_table_never_leaves_left_and_cut_opens_no_sockets():
    assert not [move for move in TRANSITIONS if move[0] is S.LEFT]
    assert S.CUT not in LINKED_STATES and S.STRANGER not in LINKED_STATES
    assert PROVEN_STATES < LINKED_STATES
    # Only a beacon (JOINED) makes a link; a stranger or a cut-off waits for one.
    assert {after for (before, event), after in TRANSITIONS.items()
            if after is S.LINKED} == {S.LINKED}
    assert {event for (before, event), after in TRANSITIONS.items()
            if after is S.LINKED} == {E.JOINED}


def test_who_counts_plain_every_link_secure_only_proven_ones():
    for secure, counted in ((False, [NODE_A, NODE_B]), (True, [NODE_B])):
        links = Links(secure=secure)
        links.apply(NODE_A, E.JOINED, peer(NODE_A, "alice"))
        links.apply(NODE_B, E.JOINED, peer(NODE_B, "bob"))
        links.apply(NODE_B, E.HANDSHAKE)
        links.remember_sync(NODE_C, sync())  # a stranger never counts
        assert [link.node_id for link in links.counted()] == counted
        assert [link.node_id for link in links.all_linked()] == [NODE_A, NODE_B]
        assert [link.node_id for link in links.of_user("bob")] == [NODE_B]
        assert links.is_up(NODE_B) and not links.is_up(NODE_A)


def test_what_a_stranger_asked_waits_for_its_beacon_once():
    links = Links(secure=False)
    links.remember_sync(NODE_A, sync({NODE_B: 3}))
    links.remember_sync(NODE_A, sync({NODE_B: 1}, "ops"))  # one per room
    links.remember_rooms(NODE_A, {"ops": "deploys", "general": None})
    links.owe_acks(NODE_A, ["m1"])
    links.owe_acks(NODE_A, ["m2"])
    assert links.state(NODE_A) is S.STRANGER and links.linked(NODE_A) is None
    links.apply(NODE_A, E.JOINED, peer())
    assert links.take_pending(NODE_A) == Pending(
        [sync({NODE_B: 3}), sync({NODE_B: 1}, "ops")], {"ops": "deploys", "general": None},
        {"m1", "m2"},
    )
    assert links.take_pending(NODE_A) == Pending([], None, set())
    assert links.take_pending(NODE_C) == Pending([], None, set())


def test_strangers_are_bounded_but_one_already_kept_is_updated():
    links = Links(secure=False, pending_limit=2)
    links.remember_sync(NODE_A, sync())
    links.remember_sync(NODE_B, sync())
    links.remember_sync(NODE_C, sync({NODE_A: 1}))  # no room
    assert NODE_C not in links
    links.remember_sync(NODE_A, sync({NODE_B: 2}))
    assert links.take_pending(NODE_A).syncs == [sync({NODE_B: 2})]
    # Links do not count against the bound.
    links.apply(NODE_B, E.JOINED, peer(NODE_B))
    links.owe_acks(NODE_C, ["m"])
    assert links.take_pending(NODE_C) == Pending([], None, {"m"})


def test_the_status_line_says_who_counts_or_whether_anyone_ever_did():
    links = Links(secure=False)
    assert links.status("lo") == Status(False, "no broadcast peers heard yet on lo")
    links.apply(NODE_B, E.JOINED, peer(NODE_B, "bob"))
    links.apply(NODE_A, E.JOINED, peer(NODE_A, "alice"))
    assert links.status("lo") == Status(True, "2 peers: alice, bob")
    links.apply(NODE_A, E.GONE)
    assert links.status("lo") == Status(True, "1 peer: bob")
    links.apply(NODE_B, E.CUT_OFF)
    assert links.status("lo") == Status(False, "no broadcast peers left on lo")


def test_the_status_line_names_only_the_peers_it_is_told_to_show():
    links = Links(secure=False)
    links.apply(NODE_A, E.JOINED, peer(NODE_A, "pipeline"))
    # A send-only run is linked, but is nobody to the people: it is not shown.
    def persons(link) -> bool:
        return link.user != "pipeline"

    assert links.status("lo", persons) == Status(False, "no broadcast peers heard yet on lo")
    links.apply(NODE_B, E.JOINED, peer(NODE_B, "bob"))
    assert links.status("lo", persons) == Status(True, "1 peer: bob")
    links.apply(NODE_B, E.GONE)
    assert links.status("lo", persons) == Status(False, "no broadcast peers left on lo")
