"""Direct messages of broadcast mode (core/broadcast/direct.py): outbox, offers, ACKs."""

from __future__ import annotations

import pytest
from factories import NODE_A, NODE_B, OURS, make_message

from lab93zmq.core import wire
from lab93zmq.core.broadcast.actions import BATCH_MESSAGES, SendToPeer, Verb
from lab93zmq.core.broadcast.direct import DirectMessages, ack_ids
from lab93zmq.core.broadcast.faults import spoofed
from lab93zmq.core.broadcast.links import Link, LinkState
from lab93zmq.core.errors import ProtocolError
from lab93zmq.core.events import Accepted, Incoming, Notice
from lab93zmq.core.message import Message
from lab93zmq.core.presence import Peer

INTERVAL = 1.0


def link(node_id: str, user: str) -> Link:
    peer = Peer(node_id, user, "broadcast", "198.18.93.2", 5000, 6000, 0.0, 0.0)
    return Link(node_id, LinkState.UP, peer)


def ours(seq: int, to: str) -> Message:
    return make_message(seq, f"to {to} {seq}", origin=OURS, author="alice", to=to)


def dms(outputs: list) -> list[tuple[str, list[str]]]:
    return [(o.node_id, [m.content for m in wire.decode(o.frames).messages()])
            for o in outputs if isinstance(o, SendToPeer)]


def test_a_dm_waits_in_the_outbox_is_offered_when_its_user_joins_and_again_until_acked(inbox):
    direct = DirectMessages(OURS, "alice", inbox, INTERVAL)
    message = ours(1, "bob")
    inbox.queue(message)
    assert direct.post(message, [], 0.0) == [
        Notice("bob is not online; the message waits in the outbox")
    ]
    assert direct.next_deadline([]) is None  # nobody to offer it to: nothing to wake for
    bob = link(NODE_B, "bob")
    assert dms(direct.offer(bob, 1.0)) == [(NODE_B, ["to bob 1"])]
    assert direct.next_deadline(["bob"]) == 1.0 + direct.resend_after
    carol = link(NODE_A, "carol")
    assert direct.offer_due([bob, carol], 1.0 + direct.resend_after - 0.01) == []
    assert dms(direct.offer_due([bob, carol], 1.0 + direct.resend_after)) == [
        (NODE_B, ["to bob 1"])  # only to its addressee's nodes
    ]
    assert direct.acknowledged("carol", [message.id]) == []  # not hers to acknowledge
    assert direct.acknowledged("bob", [message.id, 7, "unknown"]) == [Accepted((message.id,))]
    assert inbox.outbox() == [] and direct.next_deadline(["bob"]) is None
    assert direct.acknowledged("bob", [message.id]) == []  # once


def test_the_outbox_survives_a_restart_and_offers_go_in_bounded_batches(inbox):
    for seq in range(1, BATCH_MESSAGES + 3):
        inbox.queue(ours(seq, "bob"))
    inbox.queue(make_message(1, origin=NODE_A, to="bob"))  # not ours: never offered by us
    direct = DirectMessages(OURS, "alice", inbox, INTERVAL)
    offered = dms(direct.offer(link(NODE_B, "bob"), 0.0))
    assert [len(contents) for _, contents in offered] == [BATCH_MESSAGES, 2]
    # Accepted is for the front end that posted them; these were posted by an earlier run.
    assert direct.acknowledged("bob", [ours(1, "bob").id]) == []


def test_a_note_to_self_is_delivered_at_once_and_copied_to_our_other_nodes(inbox):
    direct = DirectMessages(OURS, "alice", inbox, INTERVAL)
    note = ours(1, "alice")
    inbox.queue(note)
    outputs = direct.post(note, [link(NODE_A, "alice")], 0.0)
    assert outputs[0] == Accepted((note.id,))
    assert dms(outputs) == [(NODE_A, ["to alice 1"])]
    assert inbox.outbox() == []


def test_a_dm_is_stored_shown_once_and_acknowledged_or_owed(inbox):
    direct = DirectMessages(OURS, "alice", inbox, INTERVAL)
    mine = make_message(1, "hi alice", origin=NODE_B, author="bob", to="alice")
    other = make_message(2, "hi carol", origin=NODE_B, author="bob", to="carol")
    payloads = [mine.encode(), other.encode(), b"{}"]
    got = direct.take(NODE_B, payloads, lambda message, sender: None, linked=True)
    assert [o.message for o in got.outputs if isinstance(o, Incoming)] == [mine]
    [ack] = [wire.decode(o.frames) for o in got.outputs if isinstance(o, SendToPeer)]
    assert (ack.name, ack.header) == (Verb.ACK, {"node": OURS, "ids": [mine.id]})
    assert sorted((f.stat, f.strike) for f in got.faults) == [("bad_messages", True),
                                                             ("misaddressed", False)]
    assert other.id not in inbox
    again = direct.take(NODE_B, [mine.encode()], lambda message, sender: None, linked=False)
    assert again.outputs == [] and again.owed == {mine.id}  # a copy: acked, never shown twice


def test_trust_s_verdict_on_each_dm_is_kept_as_a_fault(inbox):
    direct = DirectMessages(OURS, "alice", inbox, INTERVAL)
    dm = make_message(1, origin=NODE_B, author="bob", to="alice")
    got = direct.take(NODE_B, [dm.encode()], lambda message, sender: spoofed("no"), linked=True)
    assert got.outputs == [] and [f.stat for f in got.faults] == ["spoofed"]
    assert dm.id not in inbox


def test_an_ack_header_is_a_bounded_list():
    assert ack_ids({"ids": ["a"]}) == ["a"]
    for header in ({}, {"ids": 7}, {"ids": ["x"] * 10_001}):
        with pytest.raises(ProtocolError, match="'ids'"):
            ack_ids(header)
