"""The repeater client's small machines, each on its own: chains, the fetch schedule,
catching up, the post window, liveness, the ledger. Pure: no sockets; an inbox where
one is needed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from factories import NODE_A, T0, make_message

from lab93zmq.core.authoring import DIRECT as DIRECT_SCOPE
from lab93zmq.core.authoring import ROOM as ROOM_SCOPE
from lab93zmq.core.authoring import Draft, Numbering
from lab93zmq.core.errors import ProtocolError
from lab93zmq.core.events import Rejected
from lab93zmq.core.message import MAX_CONTENT_BYTES
from lab93zmq.core.repeater.catchup import ClientCatchUp
from lab93zmq.core.repeater.chain import JOIN_TAIL, MAX_BUFFER, Chain, Chains, Marks
from lab93zmq.core.repeater.commands import RepeaterVerb, numbered
from lab93zmq.core.repeater.fetch import FetchSchedule, FetchState
from lab93zmq.core.repeater.ledger import ClientLedger, state_key
from lab93zmq.core.repeater.liveness import MAX_SERVER_INTERVAL, Liveness
from lab93zmq.core.repeater.window import POST_LIMIT, Outgoing, PostWindow, author, outgoing
from lab93zmq.io.store import Inbox

ROOM = "#general"  # a chain's name, as logs show it


def m(seq: int, to: str | None = None, room: str | None = None):
    return make_message(seq, f"m{seq}", to=to, room=room)


# -- chains -----------------------------------------------------------------------------


def test_a_chain_takes_what_comes_next_and_keeps_the_rest_until_its_turn():
    chain = Chain(ROOM, tip=0)
    first = chain.take(1, 0, m(1))
    assert first.arrived == [(1, m(1))] and not first.gap
    later = chain.take(4, 3, m(4))  # 2 and 3 are missing
    assert later.arrived == [] and later.gap
    assert chain.take(3, 2, m(3)).arrived == []
    filled = chain.take(2, 1, m(2))
    assert [seq for seq, _ in filled.arrived] == [2, 3, 4]
    assert chain.tip == 4 and chain.waiting == {}
    assert chain.take(3, 2, m(3)).arrived == []  # held already: replay overlapping live


def test_a_chain_not_started_waits_without_calling_it_a_gap():
    chain = Chain(ROOM, tip=None)
    assert chain.take(7, 5, m(7)).gap is False  # where it starts is not known yet
    assert chain.start(5) == [(7, m(7))] and chain.tip == 7


def test_a_chain_follows_numbers_that_moved_and_forgets_what_the_tip_passed():
    chain = Chain(ROOM, tip=5)
    chain.take(9, 8, m(9))
    assert chain.take(7, 3, m(7)).arrived == [(7, m(7))]  # prev below the tip: logged, taken
    assert chain.waiting == {8: (9, m(9))}
    assert chain.follow(4) and chain.tip == 4 and chain.waiting == {}
    assert not chain.follow(10)  # a head past the tip is no loss


def test_a_chain_drops_its_buffer_rather_than_grow_without_bound():
    chain = Chain(ROOM, tip=0)
    for seq in range(2, MAX_BUFFER + 3):
        chain.take(seq, seq - 1, m(1))
    assert chain.waiting == {}  # they come again with a fetch


def test_chains_are_one_per_room_and_resume_from_marks():
    chains = Chains(None, ["general"])
    assert chains.marks() == Marks({}, {}, 0)  # the room not started: no tip to keep
    assert chains.stands() == {"general": {"after": None, "tail": JOIN_TAIL}}
    assert not chains.behind(chains.rooms["general"], 10)  # not started: lacks nothing yet
    assert chains.behind(chains.direct, 1) and chains.gap()  # a room to start is missing
    chains = Chains(Marks({"general": 3, "dev": 9}, {"ops": 4}, 2), ["general", "ops"])
    assert chains.stands() == {
        "general": {"after": 3, "tail": None},  # stayed in it: from its tip, all of it
        "ops": {"after": 4, "tail": JOIN_TAIL},  # left it: what it lacks of the tail
    }
    assert chains.follow({"general": 1, "ops": 0}, None)
    assert chains.rooms["general"].tip == 1 and chains.rooms["ops"].tip is None
    assert chains.start("ops", 6) == [] and chains.parted == {}
    assert chains.marks() == Marks({"dev": 9, "general": 1, "ops": 6}, {}, 2)  # dev kept
    assert not chains.gap()
    chains.rooms["general"].take(5, 4, m(5))
    assert chains.gap()
    assert chains.of(m(1, room="dev")) is None and chains.of(m(1, to="bob")) is chains.direct


def test_joining_and_parting_keep_each_rooms_place():
    chains = Chains(Marks({"dev": 9}, {"ops": 4}, 0))
    assert chains.join("new") is True  # never there: a first join
    assert chains.join("ops") is False and chains.rooms["ops"].after == 4  # a rejoin
    assert chains.join("dev") is False and chains.rooms["dev"].tip == 9  # resumed in full
    assert chains.join("dev") is False
    chains.part("dev")
    chains.part("ops")  # not started again yet: still parted at 4
    chains.part("nowhere")
    assert chains.marks() == Marks({}, {"dev": 9, "ops": 4}, 0)
    assert list(chains.rooms) == ["new"]


@pytest.mark.parametrize(
    "text, marks",
    [
        ('{"room": 7, "dm": 2}', Marks({"general": 7}, {}, 2)),  # lab93-node 0.1's marks
        ('{"rooms": {"ops": 1}, "parted": {"dev": 2}, "dm": 0}', Marks({"ops": 1}, {"dev": 2}, 0)),
    ],
)
def test_marks_are_read_in_both_forms(text, marks):
    assert Marks.parse(text) == marks
    assert Marks.parse(marks.to_json()) == marks


@pytest.mark.parametrize(
    "text",
    ['{"room": 7}', '{"room": -1, "dm": 0}', '{"room": "7", "dm": 0}', "[1", "7",
     '{"rooms": {"#ops": 1}, "parted": {}, "dm": 0}', '{"rooms": [], "parted": {}, "dm": 0}',
     '{"rooms": {}, "parted": {"x": true}, "dm": 0}'],
)
def test_unsound_marks_are_refused(text):
    with pytest.raises(ValueError):
        Marks.parse(text)


# -- the fetch schedule -------------------------------------------------------------------


def test_the_fetch_schedule_walks_its_four_states():
    fetches = FetchSchedule(retry=1.0)
    assert fetches.state is FetchState.IDLE and not fetches.due(0.0)
    assert fetches.next_deadline(3.0) is None
    fetches.want()
    assert fetches.state is FetchState.WANTED and fetches.due(0.0)
    fetches.sent(10.0)
    assert fetches.in_flight and not fetches.due(10.0)
    fetches.want()  # not kept: the answer says what is still missing
    assert fetches.state is FetchState.IN_FLIGHT
    assert fetches.next_deadline(3.0) == 13.0
    fetches.answered(missing=True, helped=False, now=11.0)
    assert fetches.state is FetchState.BACKOFF and fetches.next_deadline(3.0) == 12.0
    assert not fetches.due(11.5) and fetches.due(12.0)
    fetches.sent(12.0)
    fetches.answered(missing=True, helped=True, now=12.5)
    assert fetches.state is FetchState.WANTED
    fetches.sent(13.0)
    fetches.answered(missing=False, helped=True, now=13.5)
    assert fetches.state is FetchState.IDLE


def test_a_lost_or_unsent_fetch_is_asked_again():
    fetches = FetchSchedule(retry=1.0)
    fetches.sent(0.0)
    fetches.expire(2.9, bound=3.0)
    assert fetches.in_flight
    fetches.expire(3.0, bound=3.0)
    assert fetches.state is FetchState.WANTED
    fetches.unsent(5.0)  # the DEALER was full
    assert fetches.state is FetchState.BACKOFF and fetches.due(6.0)
    fetches.reset()
    assert fetches.state is FetchState.IDLE


def test_a_fetch_names_where_the_client_stands_and_its_limit():
    fetches = FetchSchedule(retry=1.0, limit=50)
    rooms = {"general": {"after": None, "tail": 100}}
    sent = fetches.request(rooms, 0, 4.0)
    assert sent.command == RepeaterVerb.FETCH.command({"rooms": rooms, "dm": 0, "limit": 50})
    assert fetches.in_flight


# -- catching up ----------------------------------------------------------------------------


def entries(*items):
    command = RepeaterVerb.BATCH.command(
        {"items": [[s, p] for s, p, _ in items]}, [msg.encode() for _, _, msg in items]
    )
    return numbered(command, outside=True)


def batch(starts=None, more=False):
    return {"rooms": starts or {}, "more": more}


def test_catching_up_merges_replay_and_live_into_one_order():
    catchup = ClientCatchUp(retry=1.0)
    catchup.new_server(None, ["general"])
    catchup.live_room("general", entries((12, 11, m(12))))  # live, before the replay starts it
    assert catchup.arrived == [] and catchup.fetches.state is FetchState.IDLE
    assert not catchup.replayed(batch({"general": 10}), entries((11, 10, m(11))), now=0.0)
    assert [seq for seq, _ in catchup.take_arrived()] == [11, 12]
    assert catchup.arrived == []


def test_catching_up_fetches_a_hole_and_pages_on():
    catchup = ClientCatchUp(retry=1.0)
    catchup.new_server(Marks({"general": 1}, {}, 0), ["general"])
    catchup.live_room("general", entries((5, 4, m(5))))
    assert catchup.due(0.0)[0].command.header == {
        "rooms": {"general": {"after": 1, "tail": None}}, "dm": 0, "limit": 500
    }
    assert catchup.replayed(batch({"general": 1}, more=True), entries((2, 1, m(2))), now=0.1)
    assert not catchup.replayed(batch({"general": 2}), [], now=0.2)
    assert catchup.fetches.state is FetchState.BACKOFF  # still missing, and it did not help
    catchup.head(catchup.chains.direct, 3)
    assert catchup.fetches.state is FetchState.BACKOFF


def test_catching_up_keeps_rooms_apart_and_drops_the_ones_it_is_not_in():
    catchup = ClientCatchUp(retry=1.0)
    catchup.new_server(Marks({"ops": 3}, {}, 0), ["ops"])
    assert catchup.join("dev") is True
    topic = make_message(1, "the dev topic", room="dev", kind="topic")
    items = entries((1, None, topic), (4, 3, m(4, room="ops")), (6, 5, m(6, room="dev")),
                    (7, 6, m(7, room="elsewhere")))
    assert not catchup.replayed(batch({"ops": 3, "dev": 5}), items, now=0.0)
    arrived = catchup.take_arrived()
    assert [(seq, msg.room) for seq, msg in arrived] == [(1, "dev"), (4, "ops"), (6, "dev")]
    assert catchup.chains.marks() == Marks({"ops": 4, "dev": 6}, {}, 0)
    catchup.part("dev")
    catchup.live_room("dev", entries((8, 6, m(8, room="dev"))))  # still draining: dropped
    assert catchup.arrived == [] and catchup.chains.parted == {"dev": 6}
    with pytest.raises(ProtocolError, match="another room's message"):
        catchup.live_room("ops", entries((9, 4, m(9, room="dev"))))


def test_a_room_joined_while_a_fetch_is_out_is_asked_for_at_once():
    catchup = ClientCatchUp(retry=1.0)
    catchup.new_server(Marks({"ops": 3}, {}, 0), ["ops"])
    catchup.fetch(0.0)
    catchup.join("dev")  # the FETCH in flight does not name it
    assert not catchup.replayed(batch({"ops": 3}), [], now=0.1)
    assert catchup.fetches.state is FetchState.WANTED
    [fetch] = catchup.due(0.1)
    assert fetch.command.header["rooms"]["dev"] == {"after": None, "tail": JOIN_TAIL}


def test_a_head_past_the_tip_wants_a_fetch():
    catchup = ClientCatchUp(retry=1.0)
    catchup.head(catchup.chains.direct, 0)
    assert catchup.due(0.0) == []
    catchup.head(None, 5)  # the TICK of a room it is not in
    assert catchup.due(0.0) == []
    catchup.head(catchup.chains.direct, 2)
    assert catchup.due(0.0)[0].command.name == "FETCH"


def test_catching_up_refuses_a_message_on_the_wrong_channel():
    catchup = ClientCatchUp(retry=1.0)
    catchup.new_server(None, ["general"])
    with pytest.raises(ProtocolError, match="another room's message"):
        catchup.live_room("general", entries((1, 0, m(1, to="bob"))))
    with pytest.raises(ProtocolError, match="DELIVER carries direct messages only"):
        catchup.live_direct(entries((1, 0, m(1))))
    assert catchup.arrived == []


# -- the post window ------------------------------------------------------------------------


@pytest.fixture
def inbox(tmp_path):
    with Inbox(tmp_path / "client.db", new_node_id=bytes.fromhex(NODE_A)) as box:
        yield box


def posts(count: int) -> list[Outgoing]:
    return [outgoing(make_message(n)) for n in range(1, count + 1)]


def test_the_window_sends_in_posts_of_post_limit_within_the_window(inbox):
    window = PostWindow(inbox, window=250)
    window.submit(posts(300))
    assert len(inbox.outbox()) == 300
    sent = window.posts(now=0.0)
    assert [len(p.command.payloads) for p in sent] == [POST_LIMIT, POST_LIMIT, 50]
    assert window.posts(now=0.0) == []  # the window is full
    window.on_ack({"items": [[mid, n] for n, mid in enumerate(sent[0].ids, start=1)]})
    # An acknowledged post leaves the window at once; the outbox keeps it until written.
    assert [len(p.command.payloads) for p in window.posts(now=1.0)] == [50]
    acked, rejected = window.take_answers()
    assert window.settle([mid for mid, _ in acked], []) == (list(sent[0].ids), [])
    assert len(window.outbox) == 200 and window.take_answers() == ([], [])


def test_each_post_is_encoded_once(inbox):
    window = PostWindow(inbox)
    [post] = posts(1)
    window.submit([post])
    [sent] = window.posts(now=0.0)
    assert sent.command.payloads[0] is post.payload
    window.restart()  # a new session: the same bytes again
    [again] = window.posts(now=1.0)
    assert again.command.payloads[0] is post.payload


def test_an_unsent_post_goes_first_and_a_silent_server_gets_everything_again(inbox):
    window = PostWindow(inbox)
    window.submit(posts(3))
    [sent] = window.posts(now=0.0)
    window.unsent(sent.ids[1:])
    assert window.posts(now=0.5)[0].ids == sent.ids[1:]
    assert window.next_deadline(6.0) == 6.0
    window.expire(5.9, bound=6.0)
    assert window.posts(now=5.9) == []
    window.expire(6.0, bound=6.0)
    assert window.posts(now=6.0)[0].ids == sent.ids


def test_a_reject_counts_only_for_our_own_posts(inbox):
    window = PostWindow(inbox)
    window.submit(posts(1))
    [sent] = window.posts(now=0.0)
    window.on_reject({"items": [[sent.ids[0], "no"], [None, "no id"], ["f" * 32, "not ours"]]})
    assert window.take_answers() == ([], [(sent.ids[0], "no")])
    with pytest.raises(ProtocolError):
        window.on_ack({"items": "not a list"})


def test_a_loaded_outbox_is_sent_again(tmp_path):
    with Inbox(tmp_path / "c.db") as box:
        PostWindow(box).submit(posts(2))
    with Inbox(tmp_path / "c.db") as box:
        window = PostWindow(box)
        window.restart()
        assert len(window.posts(now=0.0)[0].ids) == 2


def test_authoring_uses_a_number_only_for_a_message_that_can_be_sent():
    numbering = Numbering(lambda scope: 1)
    draft = Draft("0" * 32, "hello", None, None, T0)
    first = author(draft, "alice", NODE_A, numbering)
    assert isinstance(first, Outgoing) and first.message.origin_seq == 1
    assert first.payload == first.message.encode()
    empty = author(Draft("1" * 32, "", None, None, T0), "alice", NODE_A, numbering)
    assert isinstance(empty, Rejected) and empty.reason.startswith("not a valid message")
    big = author(
        Draft("2" * 32, '"' * MAX_CONTENT_BYTES, None, None, T0), "alice", NODE_A, numbering
    )
    assert isinstance(big, Rejected) and "larger than" in big.reason
    assert numbering.peek((ROOM_SCOPE, "general")) == 2  # neither used a number
    direct = author(Draft("3" * 32, "psst", None, "bob", T0), "alice", NODE_A, numbering)
    assert direct.message.origin_seq == 1 and numbering.peek(DIRECT_SCOPE) == 2


# -- liveness -------------------------------------------------------------------------------


def test_liveness_agrees_on_the_servers_heartbeat_within_reason():
    live = Liveness(heartbeat=1.0, dead_after=3.0)
    live.agree({"heartbeat": 2.0, "timeout": 1.5}, now=10.0)
    assert (live.beat, live.dead) == (0.5, 6.0)  # ping within its timeout, allow 3 beats
    assert live.deadlines() == [10.5, 16.0, 16.0]
    live.watch_feed(False, now=11.0)  # in no room: no TICK to miss
    assert live.deadlines() == [10.5, 16.0] and not live.feed_silent(100.0)
    live.watch_feed(True, now=30.0)  # a room joined: its TICKs count from now
    assert live.last_tick == 30.0 and not live.feed_silent(35.9) and live.feed_silent(36.0)
    live.agree({"heartbeat": MAX_SERVER_INTERVAL * 2, "timeout": "soon"}, now=20.0)
    assert (live.beat, live.dead) == (1.0, 3.0)
    assert not live.ping_due(20.5) and live.ping_due(21.0) and live.next_ping == 22.0


# -- the ledger -----------------------------------------------------------------------------


def test_the_ledger_keeps_each_chains_tip_and_reads_only_sound_marks(inbox):
    ledger = ClientLedger(inbox, "alice")
    window = PostWindow(inbox)
    assert ledger.marks("s" * 32) is None  # never seen this server
    assert ledger.due(Marks(), window)
    assert not ledger.due(None, window)  # a send-only run keeps no marks
    ledger.commit("s" * 32, None, window, [(3, m(3))])
    assert inbox.get_meta(state_key("s" * 32, "alice")) is None
    marks = Marks({"general": 7}, {}, 2)
    events = ledger.commit("s" * 32, marks, window, [(7, m(7)), (6, m(6))])
    assert [e.message.origin_seq for e in events] == [6, 7]  # in server order
    assert not ledger.due(Marks({"general": 7}, {}, 2), window)
    assert ledger.marks("s" * 32) == marks
    for bad in ('{"room": 7}', '{"room": -1, "dm": 0}', '{"room": "7", "dm": 0}', "[1"):
        inbox.set_meta(state_key("s" * 32, "alice"), bad)
        assert ledger.marks("s" * 32) is None
    assert ledger.last_server() is None
    ledger.welcomed_by("s" * 32)
    assert ClientLedger(inbox, "alice").last_server() == "s" * 32


def test_a_topic_that_wins_is_told_as_a_topic_not_as_a_message(inbox):
    ledger = ClientLedger(inbox, "alice")
    window = PostWindow(inbox)
    old = make_message(1, "old topic", room="ops", kind="topic")
    ledger.commit("s" * 32, None, window, [(1, old)])
    later = replace(old, id="f" * 32, origin_seq=2, content="new topic",
                    sent_at=T0 + timedelta(seconds=1))
    earlier = replace(old, id="0" * 32, origin_seq=3, content="stale",
                      sent_at=T0 - timedelta(seconds=1))
    events = ledger.commit("s" * 32, None, window, [(2, later), (3, earlier), (4, m(4))])
    assert [type(e).__name__ for e in events] == ["Topic", "Incoming"]  # in server order
    assert (events[0].room, events[0].text, events[0].by) == ("ops", "new topic", "alice")
    fresh = ClientLedger(inbox, "alice")  # a new run learns the topic from the inbox
    assert fresh.topics.current("ops").content == "new topic"
    assert fresh.topics.current("dev") is None
