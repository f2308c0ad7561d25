"""Rooms and messages through the IRC face: JOIN, PART, PRIVMSG, NOTICE, TOPIC, echoes."""

from __future__ import annotations

from datetime import datetime, timezone

from irc_fakes import IRCNet, commands, texts

from lab93zmq.core.irc import boundary as b
from lab93zmq.core.irc.config import IRCConfig
from lab93zmq.core.irc.lines import MAX_BODY_BYTES

ALL_CAPS = "server-time message-tags echo-message batch draft/chathistory"
WHEN = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)


def two_in_ops(caps_alice: str = ALL_CAPS, caps_bob: str = "") -> IRCNet:
    net = IRCNet()
    net.register(1, "alice", caps_alice)
    net.register(2, "bob", caps_bob)
    net.send(1, "JOIN #ops")
    net.send(2, "JOIN #ops")
    net.take(1)
    return net


def posts(net: IRCNet) -> list[b.Request]:
    return [r for r in net.service.requests if isinstance(r, (b.PostRoom, b.PostDirect))]


def test_join_shows_the_channel_its_topic_and_names():
    net = IRCNet()
    net.service.topics["ops"] = b.RoomTopic("Deploys at noon", "carol", WHEN)
    net.deliver(*net.service.lab93_join("jean.dupont", "ops"))
    net.register(1, "alice")
    got = net.send(1, "JOIN #OPS")
    assert net.service.requests[-1] == b.JoinRoom(1, "ops")
    assert commands(got) == ["JOIN", "332", "333", "353", "366"]
    assert got[0].source == "alice!lab93@lab93" and got[0].params == ("#ops",)
    assert got[1].params == ("alice", "#ops", "Deploys at noon")
    assert got[2].params == ("alice", "#ops", "carol", str(int(WHEN.timestamp())))
    assert got[3].params == ("alice", "=", "#ops", "jean{2e}dupont alice")
    assert got[4].params == ("alice", "#ops", "End of /NAMES list")


def test_the_others_in_the_room_see_a_join_once():
    net = IRCNet()
    net.register(1, "alice")
    net.send(1, "JOIN #ops")
    net.register(2, "bob")
    net.send(2, "JOIN #ops,#ops")
    seen = net.take(1)
    assert [(line.command, line.source, line.params) for line in seen] == [
        ("JOIN", "bob!lab93@lab93", ("#ops",))
    ]
    assert [r for r in net.service.requests if isinstance(r, b.JoinRoom)].count(
        b.JoinRoom(2, "ops")
    ) == 1


def test_join_errors():
    net = IRCNet(IRCConfig(max_channels=2))
    net.register(1, "alice")
    assert commands(net.send(1, "JOIN")) == ["461"]
    bad = net.send(1, "JOIN ops,#-x,#zoë")
    assert commands(bad) == ["403"] * 3
    assert bad[0].params == ("alice", "ops", "No such channel")
    net.send(1, "JOIN #a,#b")
    full = net.send(1, "JOIN #c")
    assert commands(full) == ["405"] and full[0].params[1] == "#c"
    assert net.send(1, "JOIN #a") == []  # already in: nothing


def test_join_0_parts_every_channel():
    net = IRCNet()
    net.register(1, "alice")
    net.send(1, "JOIN #a,#b")
    got = net.send(1, "JOIN 0")
    assert [(line.command, line.params) for line in got] == [("PART", ("#a",)), ("PART", ("#b",))]
    assert b.PartRoom(1, "a") in net.service.requests


def test_part_tells_the_client_the_service_and_the_room():
    net = two_in_ops()
    got = net.send(2, "PART #ops :lunch")
    assert [(line.command, line.params) for line in got] == [("PART", ("#ops", "lunch"))]
    assert b.PartRoom(2, "ops", "lunch") in net.service.requests
    seen = net.take(1)
    assert [(line.command, line.source, line.params) for line in seen] == [
        ("PART", "bob!lab93@lab93", ("#ops", "lunch"))
    ]
    assert commands(net.send(2, "PART #ops")) == ["442"]
    assert commands(net.send(2, "PART #-x")) == ["403"]
    assert commands(net.send(2, "PART")) == ["461"]


def test_part_before_the_join_is_answered_shows_nothing():
    net = IRCNet()
    net.register(1, "alice")
    net.hold = True
    net.send(1, "JOIN #ops", "PART #ops")
    assert net.take(1) == []
    net.hold = False
    net.release()  # the service joins, then parts: the late JoinResult is ignored
    assert net.take(1) == []
    assert commands(net.send(1, "PART #ops")) == ["442"]


def test_the_echo_comes_only_after_the_message_is_stored():
    net = two_in_ops()
    net.hold = True
    assert net.send(1, "PRIVMSG #ops :hello") == []
    assert net.take(2) == []
    assert net.held == [b.PostRoom(1, "ops", "hello", client_ref=1)]
    net.hold = False
    net.release()
    echo = net.take(1)
    assert len(echo) == 1 and echo[0].params == ("#ops", "hello")
    assert echo[0].source == "alice!lab93@lab93"
    assert echo[0].tag("msgid") == net.service.messages[0].id
    assert echo[0].tag("time") == "2026-11-24T20:01:03.123Z"
    seen = net.take(2)
    assert [(line.command, line.params, line.tags) for line in seen] == [
        ("PRIVMSG", ("#ops", "hello"), ())
    ]  # bob asked for no CAP: no tags


def test_no_echo_without_echo_message_and_none_for_a_refused_post():
    net = two_in_ops(caps_alice="server-time")
    assert net.send(1, "PRIVMSG #ops :hi") == []
    assert texts(net.take(2)) == ["hi"]
    net.send(2, "CAP REQ echo-message")
    net.service.refuse_posts = "The store is full"
    refused = net.send(2, "PRIVMSG #ops :lost?")
    assert [(line.command, line.params) for line in refused] == [
        ("404", ("bob", "#ops", "Cannot send: The store is full"))
    ]
    assert net.take(1) == []


def test_privmsg_errors():
    net = two_in_ops()
    assert commands(net.send(1, "PRIVMSG")) == ["411"]
    assert commands(net.send(1, "PRIVMSG #ops")) == ["412"]
    assert commands(net.send(1, "PRIVMSG #ops :")) == ["412"]
    assert commands(net.send(1, "PRIVMSG #elsewhere :hi")) == ["404"]
    assert commands(net.send(1, "PRIVMSG #-bad :hi")) == ["403"]
    assert commands(net.send(1, "PRIVMSG a!b :hi")) == ["401"]
    assert commands(net.send(1, "PRIVMSG a,b,c,d,e :hi")) == ["407"]
    assert commands(net.send(1, "PRIVMSG nobody :hi")) == ["401"]  # the service knows no nobody
    assert net.take(2) == []


def test_one_privmsg_to_several_targets_posts_each_once():
    net = two_in_ops()
    net.send(1, "PRIVMSG #ops,bob,#ops :both")
    assert [(type(r), getattr(r, "room", getattr(r, "to", None))) for r in posts(net)] == [
        (b.PostRoom, "ops"),
        (b.PostDirect, "bob"),
    ]
    assert [(line.params[0], line.params[1]) for line in net.take(2)] == [
        ("#ops", "both"),
        ("bob", "both"),
    ]


def test_a_direct_message_reaches_only_its_recipient():
    net = two_in_ops()
    net.register(3, "carol")
    echo = net.send(1, "PRIVMSG Bob :psst")
    assert posts(net)[-1] == b.PostDirect(1, "Bob", "psst", client_ref=1)
    got = net.take(2)
    assert [(line.source, line.params) for line in got] == [("alice!lab93@lab93", ("bob", "psst"))]
    assert net.take(3) == []
    assert [line.params for line in echo] == [("bob", "psst")]


def test_a_direct_message_to_a_lab93_user_uses_the_mapped_nick():
    net = two_in_ops()
    net.deliver(*net.service.lab93_join("jean.dupont", "ops"))
    net.send(1, "PRIVMSG jean{2E}dupont :salut")
    assert posts(net)[-1].to == "jean.dupont"
    net.deliver(*net.service.lab93_post("jean.dupont", "merci", to="alice"))
    got = net.take(1)
    assert [(line.source, line.params) for line in got][-1] == (
        "jean{2e}dupont!lab93@lab93",
        ("alice", "merci"),
    )
    assert net.take(2)[-1].command == "JOIN"  # bob saw the join, not the direct message


def test_an_away_user_is_reported_to_who_writes_to_it():
    net = two_in_ops()
    assert commands(net.send(2, "AWAY :at lunch")) == ["306"]
    got = net.send(1, "PRIVMSG bob :there?")
    assert got[0].command == "301" and got[0].params == ("alice", "bob", "at lunch")
    assert "301" not in commands(net.send(1, "NOTICE bob :no 301 for a notice"))
    assert commands(net.take(2)) == ["PRIVMSG", "NOTICE"]
    assert commands(net.send(2, "AWAY")) == ["305"]
    assert [line.command for line in net.send(1, "PRIVMSG bob :back?")] == ["PRIVMSG"]
    assert b.SetAway(2, "at lunch") in net.service.requests
    assert b.SetAway(2, None) in net.service.requests


def test_notice_gets_no_error_replies():
    net = two_in_ops()
    for line in (
        "NOTICE",
        "NOTICE #ops",
        "NOTICE #elsewhere :x",
        "NOTICE a!b :x",
        "NOTICE nobody :x",
    ):
        assert net.send(1, line) == [], line
    net.service.refuse_posts = "no"
    assert net.send(1, "NOTICE #ops :refused quietly") == []
    net.service.refuse_posts = None
    net.send(1, "NOTICE #ops :fyi")
    assert posts(net)[-1] == b.PostRoom(1, "ops", "fyi", notice=True, client_ref=3)
    assert [(line.command, line.params) for line in net.take(2)] == [("NOTICE", ("#ops", "fyi"))]


def test_ctcp_action_is_an_action_both_ways_and_other_ctcp_is_dropped():
    net = two_in_ops()
    net.send(1, "PRIVMSG #ops :\x01ACTION waves\x01")
    assert posts(net)[-1] == b.PostRoom(1, "ops", "waves", action=True, client_ref=1)
    assert texts(net.take(2)) == ["\x01ACTION waves\x01"]
    net.send(1, "PRIVMSG #ops :\x01ACTION no closing marker")
    assert posts(net)[-1].text == "no closing marker"
    before = len(posts(net))
    assert net.send(1, "PRIVMSG bob :\x01VERSION\x01") == []
    assert len(posts(net)) == before
    net.take(2)


def test_an_empty_action_is_no_text():
    net = two_in_ops()
    assert commands(net.send(1, "PRIVMSG #ops :\x01ACTION \x01")) == ["412"]


def test_a_lab93_message_with_a_subject_and_several_lines():
    net = two_in_ops()
    net.deliver(*net.service.lab93_join("dave", "ops"))
    net.take(1)
    net.deliver(
        *net.service.lab93_post("dave", "pizza?\n\nor sushi?\r\n", room="ops", subject="lunch")
    )
    got = net.take(1)
    assert texts(got) == ["[lunch] pizza?", "or sushi?"]
    message_id = net.service.messages[-1].id
    assert [line.tag("msgid") for line in got] == [message_id, f"{message_id}-2"]
    assert all(line.source == "dave!lab93@lab93" for line in got)
    assert texts(net.take(2)) == ["[lunch] pizza?", "or sushi?"]


def test_a_long_lab93_line_is_cut_into_lines_irc_can_carry():
    net = two_in_ops()
    words = " ".join(f"word{i}" for i in range(300))
    net.deliver(*net.service.lab93_post("dave", words, room="ops", action=True))
    got = net.take(1)
    assert len(got) > 1
    for line in got:
        body = line.to_bytes().split(b" ", 1)[1]  # after the tags
        assert len(body) <= MAX_BODY_BYTES + 2
        assert line.params[1].startswith("\x01ACTION ") and line.params[1].endswith("\x01")
    rejoined = " ".join(line.params[1][len("\x01ACTION ") : -1] for line in got)
    assert rejoined == words


def test_a_name_of_rare_characters_still_carries_its_text():
    net = two_in_ops()
    name = "😀" * 64
    net.deliver(b.Delivered(net.service.store(name, "x" * 300, room="ops")))
    got = net.take(1)
    assert "".join(texts(got)) == "x" * 300


def test_what_irc_cannot_carry_is_taken_out():
    net = two_in_ops()
    net.deliver(*net.service.lab93_post("dave", "\x01VERSION\x01 nul\x00 byte", room="ops"))
    assert texts(net.take(2)) == ["VERSION nul byte"]
    net.deliver(*net.service.lab93_post("dave", "\n\r\n", room="ops"))
    assert texts(net.take(2)) == [" "]


def test_news_of_rooms_a_client_is_not_in_stays_away():
    net = two_in_ops()
    net.deliver(*net.service.lab93_join("erin", "elsewhere"))
    net.deliver(*net.service.lab93_post("erin", "hi", room="elsewhere"))
    net.deliver(b.TopicChanged("elsewhere", b.RoomTopic("t", "erin", WHEN)))
    net.deliver(b.UserParted("elsewhere", "erin"))
    assert net.take(1) == [] and net.take(2) == []


def test_a_lab93_user_quitting_is_one_quit_per_client_that_shares_a_room():
    net = two_in_ops()
    net.send(1, "JOIN #dev")
    net.register(3, "carol")
    for room in ("ops", "dev"):
        net.deliver(*net.service.lab93_join("dave", room))
    net.take(1)
    net.take(2)
    net.deliver(*net.service.lab93_quit("dave"))
    quits = net.take(1)
    assert [(line.command, line.source, line.params) for line in quits] == [
        ("QUIT", "dave!lab93@lab93", ("lab93 client left",))
    ]
    assert commands(net.take(2)) == ["QUIT"]
    assert net.take(3) == []
    assert net.service.lab93 == set() and net.gateway.registry.free_for("dave", 9)


def test_an_irc_user_quitting_is_seen_by_the_others():
    net = two_in_ops()
    net.send(2, "QUIT :bye")
    seen = net.take(1)
    assert [(line.command, line.source, line.params) for line in seen] == [
        ("QUIT", "bob!lab93@lab93", ("Quit: bye",))
    ]


def test_the_service_may_take_a_client_out_of_a_room():
    net = two_in_ops()
    net.deliver(b.UserParted("ops", "bob", "room closed"))
    got = net.take(2)
    assert [(line.command, line.params) for line in got] == [("PART", ("#ops", "room closed"))]
    assert commands(net.send(2, "PRIVMSG #ops :x")) == ["404"]


def test_topic_query_set_and_errors():
    net = two_in_ops()
    assert [(line.command, line.params) for line in net.send(1, "TOPIC #ops")] == [
        ("331", ("alice", "#ops", "No topic is set"))
    ]
    for got in (net.send(2, "TOPIC #ops :Release day"), net.take(1)):
        assert [(line.command, line.source, line.params) for line in got] == [
            ("TOPIC", "bob!lab93@lab93", ("#ops", "Release day"))
        ]
    shown = net.send(1, "TOPIC #ops")
    assert commands(shown) == ["332", "333"] and shown[0].params[-1] == "Release day"
    assert shown[1].params[2] == "bob"
    assert commands(net.send(1, "TOPIC #elsewhere :x")) == ["442"]
    assert commands(net.send(1, "TOPIC #-x")) == ["403"]
    assert commands(net.send(1, "TOPIC")) == ["461"]
    assert commands(net.send(1, "TOPIC #elsewhere")) == ["331"]  # asking needs no membership


def test_a_long_topic_is_cut_to_topiclen():
    net = IRCNet(IRCConfig(topic_bytes=10))
    net.register(1, "alice")
    net.send(1, "JOIN #ops")
    net.send(1, "TOPIC #ops :" + "é" * 20)
    assert net.service.requests[-1] == b.SetTopic(1, "ops", "é" * 5)


def test_a_refused_join_or_topic_is_told():
    net = IRCNet()
    net.register(1, "alice")
    net.hold = True
    net.send(1, "JOIN #ops")
    net.deliver(b.RequestFailed(1, b.JoinRoom(1, "ops"), "Rooms are full"))
    got = net.take(1)
    assert [(line.command, line.params) for line in got] == [
        ("400", ("alice", "JOIN", "#ops", "Rooms are full"))
    ]
    net.send(1, "JOIN #ops")
    assert net.held[-1] == b.JoinRoom(1, "ops")  # it may ask again
    net.deliver(b.RequestFailed(1, b.SetTopic(1, "ops", "x"), "no", no_such_target=True))
    assert commands(net.take(1)) == ["403"]


def test_direct_delivery_goes_to_the_holder_of_the_name_only():
    net = two_in_ops()
    message = net.service.store("dave", "for bob", to="BOB")
    net.deliver(b.Delivered(message))
    assert texts(net.take(2)) == ["for bob"]
    assert net.take(1) == []
    net.deliver(b.Delivered(net.service.store("dave", "nobody", to="zed")))
    assert net.take(1) == [] and net.take(2) == []


def test_client_only_tags_are_dropped_and_the_message_kept():
    net = two_in_ops()
    net.send(1, "@+draft/reply=m0001;+typing=active PRIVMSG #ops :tagged")
    assert posts(net)[-1] == b.PostRoom(1, "ops", "tagged", client_ref=1)
    got = net.take(2)
    assert [(line.params, line.tags) for line in got] == [(("#ops", "tagged"), ())]
    assert net.send(1, "@+typing=active TAGMSG #ops") == []


def test_a_topic_with_line_breaks_from_the_service_is_one_line():
    net = two_in_ops()
    net.deliver(b.TopicChanged("ops", b.RoomTopic("one\ntwo", "dave", WHEN)))
    assert [line.params for line in net.take(2)] == [("#ops", "one two")]
