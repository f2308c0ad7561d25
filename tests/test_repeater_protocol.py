"""Repeater protocol cores paired over an in-memory link with a fake clock.

No sockets: ``memnet.RepeaterNet`` plays ROUTER, DEALER, PUB and SUB,
delivers frames in order and can lose chosen ones, so every recovery path is
exercised exactly; its ``Net`` gives each core a real inbox. One room
(``general``) here; test_repeater_rooms.py has many.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from factories import T0
from memnet import PUB_PORT, SERVER

from lab93zmq.core.errors import StoreError
from lab93zmq.core.events import Notice, Rejected, Status, Users
from lab93zmq.core.message import MAX_CONTENT_BYTES, Message, make_id
from lab93zmq.core.repeater.client import Phase
from lab93zmq.core.repeater.commands import ErrorCode
from lab93zmq.core.repeater.ledger import state_key
from lab93zmq.core.repeater.outputs import PublishRoom, ReplyTo, SendToServer
from lab93zmq.core.repeater.server import ServerCore
from lab93zmq.core.wire import SIGNATURE, Command, decode
from lab93zmq.io.store import Inbox

pytestmark = pytest.mark.timeout(60)

# -- connecting ------------------------------------------------------------------------


def test_hello_welcome_subscribe_and_status(net):
    alice = net.client("alice")
    assert alice.core.phase is Phase.READY
    assert alice.subscribed == f"tcp://server:{PUB_PORT}"  # learned, not guessed
    assert alice.of(Status) == [
        Status(False, f"connecting to the repeater at {SERVER}"),
        Status(True, f"connected to repeater at {SERVER}"),
    ]
    assert net.server.users() == ["alice"]
    assert [c.name for c in alice.sent[:2]] == ["HELLO", "FETCH"]


def test_two_clients_chat_and_own_messages_are_not_incoming(net):
    alice, bob = net.client("alice"), net.client("bob")
    m1 = alice.say("hi bob")
    m2 = bob.say("hi alice")
    net.run()
    assert alice.incoming() == ["hi alice"]
    assert bob.incoming() == ["hi bob"]
    assert alice.accepted() == [m1.id] and bob.accepted() == [m2.id]
    assert alice.inbox.outbox() == [] and bob.inbox.outbox() == []
    assert net.server_inbox.held(net.server.server_id, [m1.id, m2.id]) == {
        m1.id: 1,
        m2.id: 2,
    }
    # the author's own copy got its server number too
    assert alice.inbox.held(net.server.server_id, [m1.id]) == {m1.id: 1}


def test_posts_are_stored_before_they_are_acked_or_published(net):
    alice = net.client("alice")
    alice.say("one")
    alice.apply(alice.core.flush(net.now))
    # Hand the POST to the server but do not flush: nothing may go out yet.
    identity, frames = net.to_server.popleft()
    assert net.server.receive(identity, frames, net.now) == []
    assert net.server_inbox.count() == 0
    out = net.server.flush(net.now)
    assert net.server_inbox.count() == 1
    assert {type(o) for o in out} == {ReplyTo, PublishRoom}


def test_a_resend_is_acked_with_its_original_number_and_stored_once(net):
    alice = net.client("alice")
    m = alice.say("once")
    net.run()
    again = Command("POST", {}, (m.encode(),)).frames()
    net.route(net.server.receive(alice.identity, again, net.now))
    net.route(net.server.flush(net.now))
    acks = [c for i, c in net.replies if c.name == "ACK"]
    assert [a.header["items"] for a in acks] == [[[m.id, 1]], [[m.id, 1]]]
    assert net.server_inbox.count() == 1
    assert net.server.head == 1
    assert len([c for c in net.published if c.name == "ROOM"]) == 1


def test_duplicates_within_one_batch_are_stored_once(net):
    alice = net.client("alice")
    m = alice.say("twice")
    frames = Command("POST", {}, (m.encode(), m.encode())).frames()
    net.to_server.clear()
    net.route(net.server.receive(alice.identity, frames, net.now))
    out = net.server.flush(net.now)
    [ack] = [o.command for o in out if isinstance(o, ReplyTo) and o.command.name == "ACK"]
    assert ack.header["items"] == [[m.id, 1], [m.id, 1]]
    assert net.server_inbox.count() == 1


# -- catching up -------------------------------------------------------------------------


def test_new_client_gets_last_tail_room_messages_and_all_its_direct_ones(make_net):
    net = make_net(tail=10)
    alice = net.client("alice")
    alice.say("early note for carol", to="carol")
    alice.say("early note for dave", to="dave")
    for n in range(25):
        alice.say(f"room {n}")
    alice.say("late note for carol", to="carol")
    net.run()
    carol = net.client("carol")
    assert carol.incoming() == [
        "early note for carol",
        *[f"room {n}" for n in range(15, 25)],
        "late note for carol",
    ]


def test_a_client_that_was_away_gets_exactly_what_it_missed(net):
    alice, bob = net.client("alice"), net.client("bob")
    alice.say("before")
    net.run()
    bob.restart()  # gone: its session lingers until the server forgets it
    for n in range(7):
        alice.say(f"missed {n}")
    alice.say("psst", to="bob")
    net.run()
    bob.events.clear()
    bob.connect()
    assert bob.incoming() == [*[f"missed {n}" for n in range(7)], "psst"]
    # and nothing twice: once more, nothing
    bob.events.clear()
    bob.restart()
    bob.connect()
    assert bob.incoming() == []
    marks = bob.inbox.get_meta(state_key(net.server.server_id, "bob"))
    assert marks == '{"rooms": {"general": 8}, "parted": {}, "dm": 9}'


def test_incoming_follows_server_order_across_replay_and_live(net):
    alice = net.client("alice")
    for n in range(5):
        alice.say(f"m{n}")
    net.run()
    bob = net.client("bob", connect=False)
    bob.apply(bob.core.use_server(SERVER, net.now))
    # Deliver HELLO and WELCOME by hand, then let live traffic race the FETCH.
    net.route(net.server.receive(*net.to_server.popleft(), net.now))
    bob.apply(bob.core.receive(bob.from_server.popleft(), net.now))
    fetch = net.to_server.popleft()  # held back
    for n in range(5, 8):
        alice.say(f"m{n}")
    net.run()  # m5..m7 reach bob on the PUB before his replay
    assert bob.incoming() == []
    net.to_server.append(fetch)
    net.run()
    assert bob.incoming() == [f"m{n}" for n in range(8)]


def test_a_lost_publication_is_fetched_and_order_kept(net):
    alice, bob = net.client("alice"), net.client("bob")
    lost = {2, 3}
    net.lose_pub["bob"] = lambda cmd: cmd.name == "ROOM" and cmd.header["items"][0][0] in lost
    for n in range(1, 6):
        alice.say(f"m{n}")
        net.run()
    assert bob.incoming() == [f"m{n}" for n in range(1, 6)]
    fetches = [c for c in bob.sent if c.name == "FETCH"]
    assert len(fetches) == 2  # the replay at connect, and one for the hole


def test_a_lost_last_publication_is_noticed_by_the_next_tick(net):
    alice, bob = net.client("alice"), net.client("bob")
    net.lose_pub["bob"] = lambda cmd: cmd.name == "ROOM"
    alice.say("quiet")
    net.run()
    assert bob.incoming() == []
    net.advance(1.0)  # one heartbeat: TICK says room_head 1
    assert bob.incoming() == ["quiet"]


def test_a_lost_direct_message_is_noticed_by_the_next_ping(net):
    alice, bob = net.client("alice"), net.client("bob")
    net.lose_reply["bob"] = lambda cmd: cmd.name == "DELIVER"
    alice.say("secret", to="bob")
    net.run()
    assert bob.incoming() == []
    net.advance(1.0)
    assert bob.incoming() == ["secret"]


def test_replay_pages_through_a_long_absence(make_net):
    net = make_net(batch_limit=50)
    alice = net.client("alice")
    bob = net.client("bob")
    bob.restart()
    for n in range(180):
        alice.say(f"m{n}")
    net.run()
    bob.connect()
    assert bob.incoming() == [f"m{n}" for n in range(180)]
    batches = [c for i, c in net.replies if c.name == "BATCH" and i == bob.identity]
    assert [len(b.payloads) for b in batches] == [50, 50, 50, 30]


# -- direct messages ------------------------------------------------------------------------


def test_direct_messages_stay_private_and_wait_for_their_addressee(net):
    alice, carol = net.client("alice"), net.client("carol")
    alice.say("for bob only", to="bob")
    alice.say("room")
    net.run()
    assert carol.incoming() == ["room"]
    assert all(
        c.name != "ROOM" or not any(m.is_direct for m in c.messages()) for c in net.published
    )
    bob = net.client("bob")
    assert bob.incoming() == ["for bob only", "room"]
    carol2 = net.client("carol", db="fresh")  # a new inbox: replayed, still no direct message
    assert carol2.incoming() == ["room"]


def test_a_direct_message_reaches_the_authors_other_sessions(net):
    alice = net.client("alice")
    alice2 = net.client("alice", db="laptop")
    bob = net.client("bob")
    alice.say("to bob", to="bob")
    net.run()
    assert bob.incoming() == ["to bob"]
    assert alice2.incoming() == ["to bob"]
    assert alice.incoming() == []  # its own message, already in its inbox


# -- posting ---------------------------------------------------------------------------------


def test_posts_wait_in_the_outbox_until_connected(net):
    alice = net.client("alice", connect=False)
    m = alice.say("queued")
    assert [x.id for x in alice.inbox.outbox()] == [m.id]
    alice.connect()
    assert alice.accepted() == [m.id]
    assert alice.inbox.outbox() == []


def test_posts_go_in_chunks_within_the_window(net):
    alice = net.client("alice")
    alice.core.posts.window = 250
    ids = [alice.say(f"m{n}").id for n in range(600)]
    out = alice.core.flush(net.now)
    posts = [o.command for o in out if isinstance(o, SendToServer)]
    assert [len(p.payloads) for p in posts] == [100, 100, 50]
    alice.apply(out)
    net.run()
    assert alice.accepted() == ids
    assert net.server_inbox.count() == 600


def test_server_rejects_an_undecodable_message_and_stores_the_rest(net):
    alice = net.client("alice")
    good = alice.say("fine")
    bad = alice.say("from the future")
    net.to_server.clear()  # send by hand instead, one payload spoiled
    alice.core.posts._inflight.clear()
    spoiled = bad.encode().replace(b'"v":2', b'"v":7')
    frames = Command("POST", {}, (good.encode(), spoiled)).frames()
    net.route(net.server.receive(alice.identity, frames, net.now))
    net.route(net.server.flush(net.now))
    net.run()
    assert alice.accepted() == [good.id]
    [rejected] = alice.of(Rejected)
    assert rejected.id == bad.id
    assert "'v' is 7; this node speaks version 2" in rejected.reason
    assert [m.id for m in alice.inbox.outbox()] == []
    assert net.server_inbox.count() == 1


def test_the_server_forwards_the_bytes_it_validated_and_replays_encode(net):
    alice, bob = net.client("alice"), net.client("bob")
    room, direct = alice.say("spaced out"), alice.say("psst", to="bob")
    net.to_server.clear()  # send by hand: valid JSON, but not how encode() writes it
    alice.core.posts._inflight.clear()
    loose = [json.dumps(m.to_wire_dict(), indent=1).encode() for m in (room, direct)]
    bad = room.encode().replace(b'"v":2', b'"v":7')
    deep = b"[" * 5000  # past json's recursion limit: rejected, and the server lives on
    frames = Command("POST", {}, (*loose, bad, deep)).frames()
    net.route(net.server.receive(alice.identity, frames, net.now))
    net.route(net.server.flush(net.now))
    [published] = [c for c in net.published if c.name == "ROOM"]
    assert published.payloads == (loose[0],)  # as received, and only what was valid
    delivered = [c for i, c in net.replies if i == bob.identity and c.name == "DELIVER"]
    assert [c.payloads for c in delivered] == [(loose[1],)]
    [reject] = [c for i, c in net.replies if i == alice.identity and c.name == "REJECT"]
    assert [mid for mid, _ in reject.header["items"]] == [room.id, None]
    net.run()
    assert bob.incoming() == ["spaced out", "psst"]
    carol = net.client("carol")  # a replay comes from the inbox, encoded
    batches = [c for i, c in net.replies if i == carol.identity and c.name == "BATCH"]
    assert room.encode() in batches[0].payloads
    assert carol.incoming() == ["spaced out"]


def test_a_reject_for_an_unknown_id_is_only_logged(net):
    alice = net.client("alice")
    reject = Command("REJECT", {"items": [[None, "no id"], ["f" * 32, "not ours"]]})
    assert alice.core.receive(reject.frames(), net.now) == []
    assert alice.core.flush(net.now) == []


def test_oversized_post_is_rejected_at_once(net):
    alice = net.client("alice")
    big = Message(
        id=make_id(T0, b"\x02" * 10),
        author="alice",
        recipient=None,
        subject=None,
        content='"' * MAX_CONTENT_BYTES,
        sent_at=T0,
        origin=alice.inbox.node_id,
        origin_seq=1,
    )
    assert alice.core.submit(big) == [
        Rejected(big.id, "the message is larger than 81920 bytes encoded")
    ]
    assert alice.inbox.outbox() == []


def test_a_clashing_message_is_refused_alone(net):
    alice = net.client("alice")
    first = alice.say("first")
    net.run()
    clash = Message(  # same origin and origin number as "first", another id
        id=make_id(T0, b"\x03" * 10),
        author="alice",
        recipient=None,
        subject=None,
        content="clash",
        sent_at=T0,
        origin=first.origin,
        origin_seq=first.origin_seq,
    )
    ok = alice.say("fine")
    frames = Command("POST", {}, (clash.encode(), ok.encode())).frames()
    net.to_server.clear()
    net.route(net.server.receive(alice.identity, frames, net.now))
    out = net.server.flush(net.now)
    names = [(o.command.name, o.command.header.get("items")) for o in out if isinstance(o, ReplyTo)]
    assert names[0][0] == "REJECT" and [i for i, _ in names[0][1]] == [clash.id]
    assert names[0][1][0][1].startswith("the repeater cannot store it: ")
    assert ("ACK", [[ok.id, 2]]) in names
    assert net.server.head == 2


def test_who_lists_connected_users(net):
    alice, bob = net.client("alice"), net.client("bob")
    alice.apply(alice.core.who(net.now))
    net.run()
    assert alice.of(Users) == [Users(("alice", "bob"))]
    bob.apply(bob.core.stop())  # BYE
    net.run()
    assert net.server.users() == ["alice"]


# -- liveness -------------------------------------------------------------------------------


def test_a_silent_server_is_noticed_and_the_client_reconnects(net):
    alice = net.client("alice")
    m = alice.say("while down")
    net.server_up = False
    net.to_server.clear()
    net.advance(3.25)
    assert alice.of(Status)[-1].connected is False
    assert "no answer from the repeater" in alice.of(Status)[-1].detail
    assert alice.core.phase is Phase.HELLO
    assert [x.id for x in alice.inbox.outbox()] == [m.id]
    net.restart_server()
    net.server_up = True
    net.advance(3.25)  # the next HELLO goes through
    assert alice.core.phase is Phase.READY
    assert alice.of(Status)[-1].connected is True
    assert alice.accepted() == [m.id]


def test_a_restarted_server_is_noticed_by_hello_first_and_nothing_is_lost(net):
    alice, bob = net.client("alice"), net.client("bob")
    alice.say("before")
    net.run()
    net.lose_reply["alice"] = lambda cmd: cmd.name == "ACK"  # crash before the ACK went out
    m = alice.say("stored, never acked")
    net.run()
    del net.lose_reply["alice"]
    net.restart_server()
    net.advance(1.0)  # PINGs reach a server with no sessions
    for c in (alice, bob):
        assert c.core.phase is Phase.READY
    assert any(e.name == "ERROR" and e.header["code"] == "hello-first" for _, e in net.replies)
    assert alice.accepted()[-1] == m.id
    assert bob.incoming() == ["before", "stored, never acked"]
    assert net.server_inbox.count() == 2


def test_the_server_forgets_silent_sessions_and_pings_live_ones(net):
    alice = net.client("alice")
    net.clients.pop("alice")  # alice's process froze: she ticks no more
    net.advance(4.5)
    assert net.server.users() == ["alice"]
    net.advance(1.0)
    assert net.server.users() == []
    frames = Command("PING").frames()
    net.route(net.server.receive(alice.identity, frames, net.now))
    assert net.replies[-1][1].header["code"] == ErrorCode.HELLO_FIRST.value


def test_a_new_hello_from_the_same_node_replaces_its_session(net):
    alice = net.client("alice")
    alice.connect()
    alice.apply(alice.core.use_server(None, net.now))
    alice.apply(alice.core.use_server(SERVER, net.now))
    net.run()
    assert len(net.server.sessions) == 1


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frames, code",
    [
        ([b"garbage"], "malformed"),
        ([os.urandom(40), b"HELLO", b"{}"], "malformed"),
        ([b"L93\x09", b"HELLO", b"{}"], "version"),
        ([SIGNATURE, b"SHOUT", b"{}"], "unknown-command"),
        ([SIGNATURE, b"FETCH", b"{}"], "hello-first"),
        ([SIGNATURE, b"HELLO", b'{"user": "no body"}'], "bad-request"),
        ([SIGNATURE, b"POST", b"{}", b"x" * 100_000], "malformed"),
        ([SIGNATURE, b"POST", b"{}", b"x", bytearray(100_000), b"x"], "malformed"),
        ([SIGNATURE, b"POST", b"{}", *[b"x"] * 10_001], "malformed"),  # over MAX_PAYLOADS
        ([SIGNATURE, b"WHO", b"[" * 5000], "malformed"),  # nested too deep for json
    ],
)
def test_bad_frames_get_an_error_reply(net, frames, code):
    out = net.server.receive(b"raw", frames, net.now)
    assert len(out) == 1 and out[0].identity == b"raw"
    reply = out[0].command
    assert reply.name == "ERROR" and reply.header["code"] == code
    assert decode(reply.frames()) == reply


def test_a_bad_fetch_gets_an_error_and_the_session_goes_on(net):
    alice = net.client("alice")
    frames = Command("FETCH", {"room": "x", "dm": 0}).frames()
    [out] = net.server.receive(alice.identity, frames, net.now)
    assert out.command.header["code"] == "bad-request"
    assert net.server.users() == ["alice"]


def test_a_session_that_floods_bad_commands_is_cut_off_then_forgiven(net):
    from lab93zmq.core.repeater.admission import BAD_BURST, CUT_OFF

    alice = net.client("alice")
    errors = 0
    for _ in range(BAD_BURST + 20):  # all within one instant: no refill
        errors += len(net.server.receive(b"flooder", [b"garbage"], net.now))
    assert errors == BAD_BURST  # then silence: answering garbage would amplify it
    assert net.server.cut_off(net.now) == [b"flooder"]
    hello = Command("HELLO", {"user": "mallory", "node": "ab" * 16}).frames()
    assert net.server.receive(b"flooder", hello, net.now) == []  # even good commands
    assert net.server.stats["ignored"] >= 1
    alice.say("still served")
    net.run()
    assert alice.accepted() and net.server.users() == ["alice"]
    net.now += CUT_OFF
    [welcome] = net.server.receive(b"flooder", hello, net.now)
    assert welcome.command.name == "WELCOME"  # the cut-off ends


def test_fetches_beyond_the_rate_limit_go_unanswered(net):
    from lab93zmq.core.repeater.admission import COSTLY_BURST, COSTLY_RATE

    alice = net.client("alice")
    net.advance(10.0)  # the bucket is full again after the connect's own FETCH
    fetch = Command("FETCH", {"rooms": {"general": {"after": 0}}, "dm": 0}).frames()
    flood = COSTLY_BURST + 50
    answered = [net.server.receive(alice.identity, fetch, net.now) for _ in range(flood)]
    assert sum(1 for out in answered if out) == COSTLY_BURST
    assert net.server.stats["throttled"] == 50
    net.now += 1.0
    answered = [net.server.receive(alice.identity, fetch, net.now) for _ in range(200)]
    assert sum(1 for out in answered if out) == COSTLY_RATE  # refilled at the rate
    assert net.server.users() == ["alice"]  # throttled, not cut off


def test_in_secure_mode_a_hello_must_name_the_key_user(tmp_path):
    inbox = Inbox(tmp_path / "server.db")
    core = ServerCore(inbox, PUB_PORT, 0.0, names_from_keys=True)
    hello = Command("HELLO", {"user": "bob", "node": "ab" * 16}).frames()
    [refused] = core.receive(b"s1", hello, 0.0, "alice")
    assert refused.command.header["code"] == ErrorCode.FORBIDDEN.value
    assert "authorized here as 'alice', not 'bob'" in refused.command.header["reason"]
    assert core.users() == []
    [welcome] = core.receive(b"s1", hello, 0.0, "bob")
    assert welcome.command.name == "WELCOME" and core.users() == ["bob"]
    inbox.close()


def test_a_client_refused_for_its_name_stops_with_the_reason(net):
    from lab93zmq.core.errors import SecurityError

    alice = net.client("alice")
    reason = "your key is authorized here as 'al', not 'alice'; run with -u al"
    error = Command("ERROR", {"code": ErrorCode.FORBIDDEN.value, "reason": reason})
    with pytest.raises(SecurityError, match="run with -u al"):
        alice.core.receive(error.frames(), net.now)


def test_a_post_from_someone_else_is_rejected_in_any_mode(net):
    alice, bob = net.client("alice"), net.client("bob")
    now = T0 + timedelta(seconds=1)
    forged = Message(
        id=make_id(now, os.urandom(10)),
        author="bob",
        recipient=None,
        subject=None,
        content="not really bob",
        sent_at=now,
        origin=alice.core.node_id,
        origin_seq=99,
    )
    out = net.server.receive(alice.identity, Command("POST", {}, (forged.encode(),)).frames(), 0)
    [reject] = [o.command for o in out]
    assert reject.name == "REJECT"
    assert reject.header["items"] == [[forged.id, "from 'bob' is not you"]]
    assert net.server.pending == 0
    net.run()
    assert bob.incoming() == []


def test_garbage_on_the_client_side_is_dropped(net):
    alice = net.client("alice")
    assert alice.core.receive([b"nonsense"], net.now) == []
    bad_room = Command("ROOM", {"server": net.server.server_id, "items": [[1, 5]]}, (b"{}",))
    assert alice.core.receive_pub(bad_room.frames(), net.now) == []
    error = Command("ERROR", {"code": "bad-request", "reason": "nope"})
    assert alice.core.receive(error.frames(), net.now) == [Notice("the repeater says: nope")]


def test_a_server_that_lost_messages_is_followed_from_where_it_is(net):
    alice, bob = net.client("alice"), net.client("bob")
    for n in range(3):
        alice.say(f"m{n}")
    net.run()
    # The server comes back from an older copy of its inbox: it forgot m1 and m2.
    server_id = net.server.server_id
    net.server_inbox.close()
    (net.tmp / "server.db").unlink()
    for suffix in ("-wal", "-shm"):
        (net.tmp / f"server.db{suffix}").unlink(missing_ok=True)
    net.server_inbox = Inbox(net.tmp / "server.db", new_node_id=bytes.fromhex(server_id))
    [m0] = [m for m in bob.inbox.history() if m.content == "m0"]
    net.server_inbox.save(m0, server_id, 1)
    net.server = ServerCore(net.server_inbox, PUB_PORT, net.now)
    net.advance(1.0)  # hello-first, a new WELCOME with room_head 1
    assert bob.of(Notice) == [Notice("the repeater has lost messages this inbox holds")]
    alice.say("after the loss")  # numbered 2 again
    net.run()
    assert bob.incoming() == ["m0", "m1", "m2", "after the loss"]


# -- the store queries the repeater relies on -------------------------------------------------


def _numbered(inbox, server_id, specs):
    """Store messages numbered 1, 2, ... as (author, to) pairs say."""
    batch = []
    for seq, (author, to) in enumerate(specs, start=1):
        message = Message(
            id=make_id(T0, seq.to_bytes(10, "big")),
            author=author,
            recipient=to,
            subject=None,
            content=f"{seq}",
            sent_at=T0,
            origin="c" * 32,
            origin_seq=seq,
        )
        batch.append((message, server_id, seq))
    inbox.save_many(batch)


def test_visible_since_pages_two_chains_without_holes(tmp_path):
    server_id = "d" * 32
    with Inbox(tmp_path / "s.db") as inbox:
        specs = [("a", None), ("a", "bob"), ("bob", "a"), ("a", "eve"), ("a", None), ("a", "bob")]
        _numbered(inbox, server_id, specs)
        general = lambda after: {"general": after}  # noqa: E731
        found, more = inbox.visible_since(server_id, general(0), 0, "bob", 2)
        assert [s for s, _ in found] == [1, 2] and more
        found, more = inbox.visible_since(server_id, general(1), 2, "bob", 10)
        assert [s for s, _ in found] == [3, 5, 6] and not more
        found, more = inbox.visible_since(server_id, general(5), 0, "bob", 10)  # dm from 0
        assert [s for s, _ in found] == [2, 3, 6] and not more
        found, more = inbox.visible_since(server_id, {}, 0, "a", 10)  # in no room
        assert [s for s, _ in found] == [2, 3, 4, 6] and not more
        assert inbox.room_head(server_id, "general") == 5
        assert inbox.direct_head(server_id, "bob") == 6
        assert inbox.direct_head(server_id, "eve") == 4
        assert inbox.room_head(server_id, "ops") == 0 and inbox.direct_head("e" * 32, "a") == 0


def test_queue_many_and_set_server_seqs(tmp_path):
    with Inbox(tmp_path / "c.db") as inbox:
        messages = [
            Message(
                id=make_id(T0, n.to_bytes(10, "big")),
                author="alice",
                recipient=None,
                subject=None,
                content=f"{n}",
                sent_at=T0,
                origin=inbox.node_id,
                origin_seq=n,
            )
            for n in range(1, 4)
        ]
        inbox.queue_many(messages)
        inbox.queue_many(messages[:1])  # again: a no-op
        assert [m.id for m in inbox.outbox()] == [m.id for m in messages]
        inbox.set_server_seqs("d" * 32, [(messages[0].id, 7), (messages[1].id, 8)])
        assert inbox.held("d" * 32, [m.id for m in messages]) == {
            messages[0].id: 7,
            messages[1].id: 8,
            messages[2].id: None,  # stored, with no number from this server
        }
        with pytest.raises(StoreError):  # a number given twice is refused, all or nothing
            inbox.set_server_seqs("d" * 32, [(messages[2].id, 9), (messages[1].id, 7)])
        assert inbox.held("d" * 32, [messages[2].id]) == {messages[2].id: None}
