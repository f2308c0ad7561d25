import json
from datetime import datetime, timedelta, timezone

import pytest
from factories import NODE_A, T0, make_message

from lab93zmq.core.errors import MessageError
from lab93zmq.core.message import MAX_CONTENT_BYTES, MAX_WIRE_BYTES, Message, make_id, time_text


def test_wire_round_trip_keeps_every_field():
    original = make_message(7, "pizza?", subject="lunch", to="bob")
    decoded = Message.decode(original.encode())
    assert decoded == original
    assert decoded.sent_at.tzinfo is not None


def test_json_line_is_exactly_the_contract():
    line = make_message(1, "pizza?", subject="lunch").to_json_line()
    fields = json.loads(line)
    assert list(fields) == ["id", "from", "to", "room", "subject", "content", "sent_at", "origin"]
    assert fields["room"] == "general"
    assert fields["from"] == "alice" and fields["to"] is None
    assert fields["sent_at"] == "2026-11-24T20:01:02.123456+00:00"
    assert fields["origin"] == NODE_A


def test_ids_sort_by_time_and_are_unique():
    early = make_id(T0, bytes(10))
    late = make_id(T0 + timedelta(milliseconds=1), bytes(10))
    assert early < late
    assert make_id(T0, b"\x01" * 10) != make_id(T0, b"\x02" * 10)
    assert len(early) == 32


def test_non_utc_time_is_normalised():
    plus_two = timezone(timedelta(hours=2))
    message = Message(
        make_id(T0, bytes(10)), "a", None, None, "x", T0.astimezone(plus_two), NODE_A, 1
    )
    assert message.sent_at.utcoffset() == timedelta(0)
    assert message.sent_at == T0


def wire(**changes):
    fields = make_message(1).to_wire_dict()
    fields.update(changes)
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    "data, field",
    [
        (wire(content=5), "content"),
        (wire(content=""), "content"),
        (wire(content="x" * (MAX_CONTENT_BYTES + 1)), "content"),
        (wire(subject="s" * 201), "subject"),
        (wire(subject="two\nlines"), "subject"),
        (wire(**{"from": "has space"}), "from"),
        (wire(**{"from": ""}), "from"),
        (wire(to=12), "to"),
        (wire(sent_at="yesterday"), "sent_at"),
        (wire(sent_at="2026-11-24T20:01:02"), "sent_at"),
        (wire(origin="xyz"), "origin"),
        (wire(seq=0), "seq"),
        (wire(seq=True), "seq"),
        (wire(id="nothex"), "id"),
        (wire(v=1), "v"),  # 0.1.0's messages had no room
        (wire(room="Not A Room"), "room"),
        (wire(room=None), "room"),
        (wire(kind="poem"), "kind"),
        (b"\xff\xfe not utf-8", "message"),
        (b"{not json", "message"),
        (b"[1, 2]", "message"),
        (b"x" * (MAX_WIRE_BYTES + 1), "message"),
        (b"[" * 5000, "message"),  # nested past the recursion limit: refused, no crash
    ],
)
def test_bad_input_names_the_field(data, field):
    with pytest.raises(MessageError) as caught:
        Message.decode(data)
    assert caught.value.field == field


@pytest.mark.parametrize(
    "missing", ["id", "from", "to", "subject", "content", "sent_at", "origin", "seq"]
)
def test_missing_field_is_named(missing):
    fields = make_message(1).to_wire_dict()
    del fields[missing]
    with pytest.raises(MessageError) as caught:
        Message.decode(json.dumps(fields).encode())
    assert caught.value.field == missing


def test_naive_time_is_refused():
    with pytest.raises(MessageError):
        Message(make_id(T0, bytes(10)), "a", None, None, "x", datetime(2026, 1, 1), NODE_A, 1)


def test_unknown_extra_fields_are_ignored_for_forward_compatibility():
    fields = make_message(3).to_wire_dict()
    fields["future"] = {"anything": 1}
    assert Message.decode(json.dumps(fields).encode()) == make_message(3)


@pytest.mark.parametrize(
    "content, ok",
    [
        ("x" * MAX_CONTENT_BYTES, True),
        ("é" * (MAX_CONTENT_BYTES // 2), True),
        ("é" * (MAX_CONTENT_BYTES // 2) + "x", False),  # few characters, too many bytes
        ("\ud800", False),  # a lone surrogate (JSON "\\ud800") is no Unicode text
    ],
)
def test_content_is_measured_in_utf8_bytes(content, ok):
    fields = make_message(1).to_wire_dict()
    fields["content"] = content
    # Raw UTF-8 (escapes would pass the size limit); a surrogate can only come escaped.
    data = json.dumps(fields, ensure_ascii="\ud800" in content).encode()
    if ok:
        assert Message.decode(data).content == content
    else:
        with pytest.raises(MessageError) as caught:
            Message.decode(data)
        assert caught.value.field == "content"


@pytest.mark.parametrize(
    "data, ok",
    [
        (b" \n" + wire() + b"\r\n\t", True),  # white space around the object is JSON
        (wire() + b" {}", False),  # a second value is not
        (wire()[:-1], False),
        (b"\xef\xbb\xbf" + wire(), False),  # a UTF-8 BOM is refused, as json.loads does
        (b"", False),
    ],
)
def test_json_edges_match_json_loads(data, ok):
    if ok:
        assert Message.decode(data) == make_message(1)
    else:
        with pytest.raises(MessageError) as caught:
            Message.decode(data)
        assert caught.value.field == "message"


def test_decoded_and_constructed_messages_agree():
    plus_two = timezone(timedelta(hours=2))
    fields = make_message(4, "é ok", subject="s", to="bob").to_wire_dict()
    fields["sent_at"] = T0.astimezone(plus_two).isoformat()
    decoded = Message.decode(json.dumps(fields).encode())
    assert decoded == make_message(4, "é ok", subject="s", to="bob")
    assert decoded.sent_at.tzinfo is timezone.utc
    with pytest.raises(AttributeError):  # still frozen
        decoded.content = "changed"


def test_time_text_is_isoformat_with_microseconds():
    plus_two = timezone(timedelta(hours=2))
    times = [T0, T0.replace(microsecond=0), datetime(7, 2, 3, 4, 5, 6, 7, tzinfo=timezone.utc)]
    times += [T0.astimezone(plus_two), T0.replace(tzinfo=timezone(timedelta(0)))]
    for when in times:
        assert time_text(when) == when.isoformat(timespec="microseconds")


def test_a_room_message_names_its_room_and_a_direct_one_none():
    assert make_message(1).room == "general"  # built without a room: the default room
    ops = Message.decode(wire(room="ops"))
    assert ops.room == "ops" and ops.to_json_dict()["room"] == "ops"
    direct = make_message(2, to="bob")
    assert direct.room is None and Message.decode(direct.encode()).room is None
    assert direct.to_json_dict()["room"] is None
    with pytest.raises(MessageError, match="room"):
        Message(make_id(T0, bytes(10)), "a", "bob", None, "x", T0, NODE_A, 1, room="ops")


def test_a_topic_is_one_short_line_of_a_room():
    topic = Message(make_id(T0, bytes(10)), "a", None, None, "standup at 10", T0, NODE_A, 1,
                    room="ops", kind="topic")
    assert topic.is_topic and Message.decode(topic.encode()) == topic
    assert "kind" not in make_message(1).to_wire_dict()  # chat carries no kind
    for content in ("two\nlines", "x" * 391):
        with pytest.raises(MessageError, match="topic"):
            Message(make_id(T0, bytes(10)), "a", None, None, content, T0, NODE_A, 1, kind="topic")
    with pytest.raises(MessageError, match="kind"):
        Message(make_id(T0, bytes(10)), "a", "bob", None, "x", T0, NODE_A, 1, kind="topic")


def test_an_action_is_a_message_of_kind_action_in_a_room_or_direct():
    """/me and IRC's CTCP ACTION: kind "action", any content a message may hold; its JSON
    line says so (and only an action's: chat has no "kind", a topic is never a line)."""
    in_room = Message(make_id(T0, bytes(10)), "a", None, None, "waves\nand smiles", T0, NODE_A, 1,
                      room="ops", kind="action")
    direct = Message(make_id(T0, bytes(10)), "a", "bob", None, "nods", T0, NODE_A, 1,
                     kind="action")
    for message in (in_room, direct):
        assert message.is_action and not message.is_topic
        assert Message.decode(message.encode()) == message
        assert message.to_json()["kind"] == "action"
        assert message.to_wire_dict()["kind"] == "action"
    assert "kind" not in make_message(1).to_json()
    topic = Message(make_id(T0, bytes(10)), "a", None, None, "t", T0, NODE_A, 1, room="ops",
                    kind="topic")
    assert "kind" not in topic.to_json()


@pytest.mark.parametrize(
    "written",
    [
        "2026-11-24T20:01:02.123456+00:00",  # canonical: kept as it came
        "2026-11-24 20:01:02.123456+00:00",
        "2026-11-24T20:01:02+00:00",
        "2026-11-24T21:01:02.123456+01:00",
        "2026-11-24T20:01:02.123456Z",
    ],
)
def test_a_messages_time_as_text_is_always_time_texts_whatever_it_arrived_as(written):
    fields = make_message(1).to_wire_dict()
    fields["sent_at"] = written
    for message in (Message.from_wire_dict(fields), Message.from_checked_dict(fields)):
        assert message.sent_text() == time_text(message.sent_at)
        assert message.to_json_dict()["sent_at"] == time_text(message.sent_at)
        assert message == Message.decode(message.encode())


def test_the_json_line_is_json_dumps_of_the_json_dict():
    message = make_message(1, "pizza? ünïcode \u2028 \"quoted\"")
    assert message.to_json_line() == json.dumps(message.to_json_dict(), ensure_ascii=False)
