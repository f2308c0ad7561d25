"""CHATHISTORY: selectors, batches, targets, errors; history after a reconnect."""

from __future__ import annotations

import pytest
from irc_fakes import T0, IRCNet, commands, texts

from lab93zmq.core.irc import boundary as b
from lab93zmq.core.irc.config import IRCConfig
from lab93zmq.core.irc.lines import format_time

CAPS = "server-time message-tags batch draft/chathistory"


def room_with_messages(count: int = 10, config: IRCConfig | None = None) -> IRCNet:
    net = IRCNet(config)
    net.register(1, "alice", CAPS)
    net.send(1, "JOIN #ops")
    for number in range(1, count + 1):
        net.deliver(*net.service.lab93_post("dave", f"message {number}", room="ops"))
    net.take(1)
    return net


def history_texts(lines) -> list[str]:
    return texts([line for line in lines if line.tag("batch") or line.command == "PRIVMSG"])


def last_request(net: IRCNet):
    return net.service.requests[-1]


def test_latest_is_a_chathistory_batch_with_tags():
    net = room_with_messages(3)
    got = net.send(1, "CHATHISTORY LATEST #ops * 50")
    assert last_request(net) == b.HistoryRequest(1, "ops", None, b.Latest(None), 50)
    assert commands(got) == ["BATCH", "PRIVMSG", "PRIVMSG", "PRIVMSG", "BATCH"]
    assert got[0].params == ("+b1", "chathistory", "#ops") and got[0].source == "lab93.irc"
    assert got[-1].params == ("-b1",)
    stored = net.service.messages
    for line, message in zip(got[1:-1], stored, strict=True):
        assert line.tag("batch") == "b1"
        assert line.tag("msgid") == message.id
        assert line.tag("time") == format_time(message.sent_at)
        assert line.source == "dave!lab93@lab93" and line.params == ("#ops", message.content)


def test_without_batch_the_lines_come_bare():
    net = room_with_messages(2)
    net.send(1, "CAP REQ :-batch -message-tags")
    got = net.send(1, "CHATHISTORY LATEST #ops * 5")
    assert commands(got) == ["PRIVMSG", "PRIVMSG"]
    assert [name for name, _ in got[0].tags] == ["time"]


def test_an_empty_history_is_an_empty_batch():
    net = room_with_messages(0)
    assert commands(net.send(1, "CHATHISTORY LATEST #ops * 5")) == ["BATCH", "BATCH"]


@pytest.mark.parametrize(
    ("line", "selector"),
    [
        ("LATEST #ops msgid=m0003 5", b.Latest(b.MsgRef("m0003"))),
        ("BEFORE #ops msgid=m0003-2 5", b.Before(b.MsgRef("m0003"))),
        ("AFTER #ops msgid=m0003 5", b.After(b.MsgRef("m0003"))),
        ("AROUND #ops msgid=m0003 5", b.Around(b.MsgRef("m0003"))),
        (
            "BETWEEN #ops msgid=m0001 timestamp=2026-11-24T20:01:05.000Z 5",
            b.Between(b.MsgRef("m0001"), b.TimeRef(T0.replace(second=5, microsecond=0))),
        ),
        (
            "latest #OPS timestamp=2026-11-24T21:01:05.5+01:00 5",
            b.Latest(b.TimeRef(T0.replace(second=5, microsecond=500000))),
        ),
    ],
)
def test_each_selector_becomes_its_request(line, selector):
    net = room_with_messages(1)
    net.send(1, f"CHATHISTORY {line}")
    assert last_request(net) == b.HistoryRequest(1, "ops", None, selector, 5)


def test_selectors_pick_the_right_messages():
    net = room_with_messages(10)
    ids = [message.id for message in net.service.messages]

    def picked(line: str) -> list[str]:
        return history_texts(net.send(1, f"CHATHISTORY {line}"))

    assert picked("LATEST #ops * 3") == ["message 8", "message 9", "message 10"]
    assert picked(f"LATEST #ops msgid={ids[7]} 5") == ["message 9", "message 10"]
    assert picked(f"BEFORE #ops msgid={ids[4]} 2") == ["message 3", "message 4"]
    assert picked(f"AFTER #ops msgid={ids[4]} 2") == ["message 6", "message 7"]
    assert picked(f"AROUND #ops msgid={ids[4]} 4") == [f"message {n}" for n in (3, 4, 5, 6)]
    assert picked(f"BETWEEN #ops msgid={ids[1]} msgid={ids[5]} 10") == [
        "message 3",
        "message 4",
        "message 5",
    ]
    assert picked(f"BETWEEN #ops msgid={ids[8]} msgid={ids[1]} 2") == ["message 7", "message 8"]
    when = format_time(net.service.messages[2].sent_at)
    assert picked(f"BEFORE #ops timestamp={when} 10") == ["message 1", "message 2"]
    assert picked(f"AFTER #ops timestamp={when} 2") == ["message 3", "message 4"]


def test_a_limit_over_chathistory_is_cut_to_it():
    net = room_with_messages(5, IRCConfig(history_limit=3))
    got = net.send(1, "CHATHISTORY LATEST #ops * 1000")
    assert last_request(net).limit == 3
    assert history_texts(got) == ["message 3", "message 4", "message 5"]


def test_a_split_message_keeps_one_msgid_per_line_and_each_names_the_message():
    net = room_with_messages(0)
    net.deliver(*net.service.lab93_post("dave", "one\ntwo\nthree", room="ops"))
    net.deliver(*net.service.lab93_post("dave", "after", room="ops"))
    net.take(1)
    first = net.service.messages[0].id
    got = net.send(1, "CHATHISTORY LATEST #ops * 10")
    assert [line.tag("msgid") for line in got[1:-1]] == [
        first,
        f"{first}-2",
        f"{first}-3",
        net.service.messages[1].id,
    ]
    assert history_texts(net.send(1, f"CHATHISTORY AFTER #ops msgid={first}-3 10")) == ["after"]


def test_direct_history_is_the_conversation_both_ways():
    net = IRCNet()
    net.register(1, "alice", CAPS)
    net.register(2, "bob")
    net.send(1, "PRIVMSG bob :hi bob")
    net.send(2, "PRIVMSG alice :hi alice")
    net.register(3, "carol")
    net.send(3, "PRIVMSG alice :not with bob")
    net.take(1)
    got = net.send(1, "CHATHISTORY LATEST Bob * 10")
    assert last_request(net) == b.HistoryRequest(1, None, "Bob", b.Latest(None), 10)
    assert got[0].params == ("+b1", "chathistory", "Bob")
    assert [(line.source.split("!")[0], line.params) for line in got[1:-1]] == [
        ("alice", ("bob", "hi bob")),
        ("bob", ("alice", "hi alice")),
    ]


def test_targets_lists_rooms_and_peers_by_their_latest_message():
    net = room_with_messages(2)
    net.register(2, "bob")
    net.send(2, "PRIVMSG alice :psst")
    net.take(1)
    start, end = "timestamp=2026-01-01T00:00:00.000Z", "timestamp=2027-01-01T00:00:00.000Z"
    got = net.send(1, f"CHATHISTORY TARGETS {start} {end} 10")
    assert got[0].params == ("+b1", "draft/chathistory-targets")
    assert [line.params for line in got[1:-1]] == [
        ("TARGETS", "#ops", format_time(net.service.messages[1].sent_at)),
        ("TARGETS", "bob", format_time(net.service.messages[2].sent_at)),
    ]
    assert all(line.tag("batch") == "b1" for line in got[1:-1])
    assert got[-1].params == ("-b1",)


@pytest.mark.parametrize(
    ("line", "context"),
    [
        ("FROB #ops * 5", ("INVALID_PARAMS", "FROB", "Unknown command")),
        ("LATEST #ops *", ("INVALID_PARAMS", "LATEST", "Insufficient parameters")),
        ("LATEST #ops * 5 6", ("INVALID_PARAMS", "LATEST", "Too many parameters")),
        ("BEFORE #ops * 5", ("INVALID_PARAMS", "BEFORE", "*", "Invalid message reference")),
        (
            "BEFORE #ops timestamp=yesterday 5",
            ("INVALID_PARAMS", "BEFORE", "timestamp=yesterday", "Invalid timestamp"),
        ),
        ("AFTER #ops msgid= 5", ("INVALID_PARAMS", "AFTER", "msgid=", "Invalid message reference")),
        (
            "AFTER #ops msgid=a;b 5",
            ("INVALID_PARAMS", "AFTER", "msgid=a;b", "Invalid message reference"),
        ),
        ("AFTER #ops id=x 5", ("INVALID_PARAMS", "AFTER", "id=x", "Invalid message reference")),
        ("LATEST #ops * 0", ("INVALID_PARAMS", "LATEST", "0", "Invalid limit")),
        ("LATEST #ops * -3", ("INVALID_PARAMS", "LATEST", "-3", "Invalid limit")),
        ("LATEST #ops * ten", ("INVALID_PARAMS", "LATEST", "ten", "Invalid limit")),
        ("LATEST #-x * 5", ("INVALID_TARGET", "LATEST", "#-x", "Messages could not be retrieved")),
        ("LATEST a!b * 5", ("INVALID_TARGET", "LATEST", "a!b", "Messages could not be retrieved")),
        (
            "TARGETS msgid=m1 timestamp=2026-01-01T00:00:00Z 5",
            ("INVALID_PARAMS", "TARGETS", "TARGETS takes two timestamps"),
        ),
    ],
)
def test_invalid_requests_are_standard_replies(line, context):
    net = room_with_messages(1)
    before = len(net.service.requests)
    got = net.send(1, f"CHATHISTORY {line}")
    assert [(reply.command, reply.params) for reply in got] == [("FAIL", ("CHATHISTORY", *context))]
    assert len(net.service.requests) == before


def test_chathistory_without_parameters_is_461():
    net = room_with_messages(0)
    assert commands(net.send(1, "CHATHISTORY")) == ["461"]


def test_a_store_that_fails_is_message_error_and_an_unknown_target_invalid_target():
    net = room_with_messages(1)
    net.service.fail_history = True
    got = net.send(1, "CHATHISTORY LATEST #ops * 5")
    assert [(line.command, line.params) for line in got] == [
        ("FAIL", ("CHATHISTORY", "MESSAGE_ERROR", "LATEST", "#ops", "The store is unreachable"))
    ]
    request = b.HistoryRequest(1, None, "zed", b.Before(b.MsgRef("m1")), 5)
    net.deliver(b.RequestFailed(1, request, "No such user", no_such_target=True))
    assert net.take(1)[0].params == (
        "CHATHISTORY",
        "INVALID_TARGET",
        "BEFORE",
        "zed",
        "No such user",
    )
    targets = b.HistoryTargets(1, net.service.clock, net.service.clock, 5)
    net.deliver(b.RequestFailed(1, targets, "down"))
    assert net.take(1)[0].params == ("CHATHISTORY", "MESSAGE_ERROR", "TARGETS", "down")


def test_after_a_reconnect_history_holds_what_was_said_with_the_same_msgids():
    net = IRCNet()
    net.register(1, "alice", CAPS + " echo-message")
    net.send(1, "JOIN #ops")
    echoes = net.send(1, "PRIVMSG #ops :before I go")
    net.deliver(*net.service.lab93_post("dave", "while you were away", room="ops"))
    net.send(1, "QUIT")
    assert net.closed[1] == "Quit"
    net.deliver(*net.service.lab93_post("dave", "still away", room="ops"))
    net.register(5, "alice", CAPS)
    net.send(5, "JOIN #ops")
    got = net.send(5, "CHATHISTORY LATEST #ops * 10")
    assert history_texts(got) == ["before I go", "while you were away", "still away"]
    assert got[1].tag("msgid") == echoes[0].tag("msgid")
