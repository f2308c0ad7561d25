"""Our own posts in broadcast mode (core/broadcast/posting.py): numbering, MSGs, accepted."""

from __future__ import annotations

from factories import OURS, T0, make_message

from lab93zmq.core import wire
from lab93zmq.core.authoring import Draft
from lab93zmq.core.broadcast.actions import BATCH_MESSAGES, Verb
from lab93zmq.core.broadcast.posting import DUPLICATE, DirectPost, Posting, RoomPosts
from lab93zmq.core.events import Accepted, Rejected
from lab93zmq.core.message import make_id

INTERVAL = 1.0


def draft(n: int, content: str | None = None, to: str | None = None,
          room: str | None = None) -> Draft:
    text = f"post {n}" if content is None else content
    return Draft(make_id(T0, n.to_bytes(10, "big")), text, None, to, T0, room)


def numbers(authored: list) -> list[tuple[str, int]]:
    out = []
    for item in authored:
        if isinstance(item, RoomPosts):
            out += [(m.content, m.origin_seq) for m in item.messages]
        elif isinstance(item, DirectPost):
            out.append((item.message.content, item.message.origin_seq))
    return out


def test_a_burst_is_numbered_in_posting_order_room_and_direct_apart(inbox, monkeypatch):
    posting = Posting(OURS, "alice", inbox, INTERVAL, 0.0)
    calls = []
    save_within = inbox.save_within  # a run is saved inside the transaction Posting holds
    monkeypatch.setattr(inbox, "save_within",
                        lambda rows: calls.append(len(rows)) or save_within(rows))
    authored = posting.author([draft(1), draft(2), draft(3, to="bob"), draft(4), draft(5, "")])
    assert numbers(authored) == [("post 1", 1), ("post 2", 2), ("post 3", 1), ("post 4", 3)]
    # A run names its refused posts first (nothing of the run is numbered for them).
    assert [type(a) for a in authored] == [RoomPosts, DirectPost, Rejected, RoomPosts]
    assert calls[0] == 2  # a run of room posts is stored in one go
    assert [m.id for m in inbox.outbox()] == [draft(3).id]
    assert numbers(posting.author([draft(6)])) == [("post 6", 4)]


def test_a_run_with_an_id_already_stored_is_stored_one_by_one_without_holes(inbox):
    posting = Posting(OURS, "alice", inbox, INTERVAL, 0.0)
    posting.author([draft(1)])
    authored = posting.author([draft(2), draft(1), draft(3), draft(3)])
    assert [a for a in authored if isinstance(a, Rejected)] == [
        Rejected(draft(3).id, DUPLICATE),  # twice in the run: refused before anything
        Rejected(draft(1).id, DUPLICATE),  # already stored: found by the one-by-one pass
    ]
    assert numbers(authored) == [("post 2", 2), ("post 3", 3)]
    assert inbox.next_origin_seq(OURS, direct=False) == 4


def test_numbering_continues_above_what_an_older_copy_of_the_inbox_used(inbox):
    posting = Posting(OURS, "alice", inbox, INTERVAL, 0.0)
    posting.saw_own([make_message(7, origin=OURS), make_message(9, origin="a" * 32)])
    assert numbers(posting.author([draft(1)])) == [("post 1", 8)]


def test_msgs_are_packed_by_count_and_each_post_waits_to_be_accepted(inbox):
    posting = Posting(OURS, "alice", inbox, INTERVAL, 0.0)
    [run] = posting.author([draft(n) for n in range(1, BATCH_MESSAGES + 3)])
    published = [wire.decode_published(o.frames) for o in posting.publish(run.messages)]
    assert [(room, c.name, len(c.payloads)) for room, c in published] == [
        ("general", Verb.MSG, BATCH_MESSAGES), ("general", Verb.MSG, 2)
    ]
    assert published[0][1].header == {"node": OURS, "room": "general"}


def test_each_room_is_numbered_apart_and_published_on_its_topic(inbox):
    posting = Posting(OURS, "alice", inbox, INTERVAL, 0.0)
    drafts = [draft(1, room="ops"), draft(2), draft(3, room="ops"), draft(4, room="dev")]
    [run] = posting.author(drafts)
    assert [(m.room, m.origin_seq) for m in run.messages] == [
        ("ops", 1), ("general", 1), ("ops", 2), ("dev", 1)
    ]
    published = [wire.decode_published(o.frames) for o in posting.publish(run.messages)]
    assert [(room, len(c.payloads)) for room, c in published] == [
        ("ops", 2), ("general", 1), ("dev", 1)
    ]
    assert posting.waiting_in() == {"ops", "general", "dev"}
    [topic] = posting.topic("ops", "deploys at 5", make_id(T0, bytes(10)), T0).messages
    assert (topic.room, topic.origin_seq, topic.kind) == ("ops", 3, "topic")
    assert inbox.next_origin_seq(OURS, direct=False, room="ops") == 4


def test_posts_are_accepted_after_one_interval_up_to_the_lowest_mark_in_order(inbox):
    posting = Posting(OURS, "alice", inbox, INTERVAL, 0.0)
    [run] = posting.author([draft(1), draft(2), draft(3)])
    posting.publish(run.messages)
    marks = {"general": 3}

    def held(room: str) -> int:
        return marks[room]

    assert posting.next_deadline() == INTERVAL  # wake when discovery had its interval
    assert posting.accepted(0.5, held) == []  # discovery has not had one interval
    marks["general"] = 1  # the lowest mark a live peer in the room reported
    assert posting.accepted(1.0, held) == [Accepted((draft(1).id,))]
    assert posting.accepted(1.0, held) == []
    marks["general"] = 2
    assert posting.accepted(1.0, held) == [Accepted((draft(2).id,))]
    marks["general"] = 0
    assert posting.accepted(1.0, held) == []  # a live peer lacks post 3
    posting.tick(1.0)
    assert posting.next_deadline() is None
    marks["general"] = 5
    assert posting.accepted(2.0, held) == [Accepted((draft(3).id,))]
    assert posting.next_deadline() is None
    assert not posting.waiting


def test_each_room_is_accepted_by_its_own_peers(inbox):
    posting = Posting(OURS, "alice", inbox, INTERVAL, 0.0)
    [run] = posting.author([draft(1, room="ops"), draft(2, room="dev"), draft(3, room="ops")])
    posting.publish(run.messages)
    marks = {"ops": 1, "dev": 0}
    assert posting.accepted(1.0, marks.__getitem__) == [Accepted((draft(1).id,))]
    marks["dev"] = 1
    marks["ops"] = 2
    assert posting.accepted(1.0, marks.__getitem__) == [
        Accepted((draft(3).id, draft(2).id))
    ]
