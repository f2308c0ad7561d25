"""NAMES, LIST, WHO, WHOIS, ISON, USERHOST, AWAY and MODE through the IRC face."""

from __future__ import annotations

from irc_fakes import IRCNet, commands

from lab93zmq.core.irc import boundary as b
from lab93zmq.core.irc.lines import MAX_BODY_BYTES


def net_with_rooms() -> IRCNet:
    net = IRCNet()
    net.register(1, "alice")
    net.register(2, "bob")
    net.send(1, "JOIN #ops,#dev")
    net.send(2, "JOIN #ops")
    net.deliver(*net.service.lab93_join("jean.dupont", "ops"))
    net.send(1, "TOPIC #ops :Deploys")
    net.take(1)
    net.take(2)
    return net


def test_names_of_rooms_asked_of_the_service():
    net = net_with_rooms()
    got = net.send(1, "NAMES #ops,#nowhere,#-bad")
    assert [(line.command, line.params) for line in got] == [
        ("353", ("alice", "=", "#ops", "alice bob jean{2e}dupont")),
        ("366", ("alice", "#ops", "End of /NAMES list")),
        ("366", ("alice", "#nowhere", "End of /NAMES list")),
        ("366", ("alice", "#-bad", "End of /NAMES list")),
    ]
    assert [(line.command, line.params) for line in net.send(1, "NAMES")] == [
        ("366", ("alice", "*", "End of /NAMES list"))
    ]


def test_a_crowded_room_spreads_over_several_353_lines():
    net = IRCNet()
    net.register(1, "alice")
    for number in range(200):
        net.service.rooms.setdefault("big", {})[f"user{number:03d}"] = f"user{number:03d}"
    got = net.send(1, "NAMES #big")
    names = [line for line in got if line.command == "353"]
    assert len(names) > 1
    assert all(len(line.to_bytes()) <= MAX_BODY_BYTES + 2 for line in names)
    listed = " ".join(line.params[-1] for line in names).split()
    assert listed == [f"user{number:03d}" for number in range(200)]


def test_list_every_room_or_the_ones_named():
    net = net_with_rooms()
    got = net.send(1, "LIST")
    assert [(line.command, line.params[1:]) for line in got] == [
        ("321", ("Channel", "Users  Name")),
        ("322", ("#dev", "1", "")),
        ("322", ("#ops", "3", "Deploys")),
        ("323", ("End of /LIST",)),
    ]
    named = net.send(1, "LIST #ops,#-bad")
    assert [line.params[1] for line in named if line.command == "322"] == ["#ops"]
    assert net.service.requests[-1] == b.ListRooms(1, ("ops",))
    assert commands(net.send(1, "LIST #-bad")) == ["321", "323"]
    assert len([line for line in net.send(1, "LIST >2") if line.command == "322"]) == 2


def test_who_lists_a_room_or_one_user():
    net = net_with_rooms()
    net.send(2, "AWAY :brb")
    got = net.send(1, "WHO #ops")
    assert [(line.command, line.params[1:]) for line in got] == [
        ("352", ("#ops", "lab93", "lab93", "lab93.irc", "alice", "H", "0 IRC user")),
        ("352", ("#ops", "lab93", "lab93", "lab93.irc", "bob", "G", "0 IRC user")),
        ("352", ("#ops", "lab93", "lab93", "lab93.irc", "jean{2e}dupont", "H", "0 lab93 user")),
        ("315", ("#ops", "End of WHO list")),
    ]
    one = net.send(1, "WHO jean{2e}dupont")
    assert [(line.command, line.params[1:3]) for line in one] == [
        ("352", ("*", "lab93")),
        ("315", ("jean{2e}dupont", "End of WHO list")),
    ]
    assert one[0].params[5] == "jean{2e}dupont"


def test_who_with_a_mask_lists_nobody():
    net = net_with_rooms()
    before = len(net.service.requests)
    for mask in ("*", "0", "a*", "#-x"):
        got = net.send(1, f"WHO {mask}")
        assert commands(got) == ["315"], mask
    assert commands(net.send(1, "WHO")) == ["315"]
    assert len(net.service.requests) == before


def test_whois_tells_who_a_user_is():
    net = net_with_rooms()
    net.send(2, "AWAY :brb")
    got = net.send(1, "WHOIS bob")
    assert [(line.command, line.params[1:]) for line in got] == [
        ("311", ("bob", "lab93", "lab93", "*", "IRC user")),
        ("319", ("bob", "#ops")),
        ("312", ("bob", "lab93.irc", "through IRC")),
        ("301", ("bob", "brb")),
        ("318", ("bob", "End of /WHOIS list")),
    ]
    lab93 = net.send(1, "WHOIS lab93.irc jean{2e}dupont")
    assert [line.params[-1] for line in lab93 if line.command == "312"] == ["a lab93 client"]
    assert commands(net.send(1, "WHOIS nobody")) == ["401", "318"]
    assert commands(net.send(1, "WHOIS a!b")) == ["401", "318"]
    assert commands(net.send(1, "WHOIS")) == ["431"]


def test_ison_and_userhost_come_from_the_registry():
    net = net_with_rooms()
    net.send(2, "AWAY :brb")
    got = net.send(1, "ISON bob carol jean{2e}dupont :ALICE x!y")
    assert got[0].command == "303" and got[0].params[1] == "bob jean{2e}dupont ALICE"
    userhost = net.send(1, "USERHOST bob alice nobody")
    assert userhost[0].params[1] == "bob=-lab93@lab93 alice=+lab93@lab93"
    assert commands(net.send(1, "ISON", "USERHOST")) == ["461", "461"]


def test_mode_on_channels_has_no_operators():
    net = net_with_rooms()
    assert net.send(1, "MODE #ops")[0].params == ("alice", "#ops", "+n")
    assert net.send(1, "MODE #ops b")[0].command == "368"
    assert net.send(1, "MODE #ops +b")[0].command == "368"
    assert net.send(1, "MODE #ops e")[0].command == "349"
    assert net.send(1, "MODE #ops I")[0].command == "347"
    assert net.send(1, "MODE #ops +t")[0].command == "482"
    assert net.send(1, "MODE #ops +b x!*@*")[0].command == "482"
    assert net.send(1, "MODE #-x")[0].command == "403"
    assert net.send(1, "MODE")[0].command == "461"


def test_mode_on_users_keeps_plus_i_only():
    net = net_with_rooms()
    assert net.send(1, "MODE alice")[0].params == ("alice", "+")
    got = net.send(1, "MODE alice +i")
    assert [(line.command, line.source, line.params) for line in got] == [
        ("MODE", "alice!lab93@lab93", ("alice", "+i"))
    ]
    assert net.send(1, "MODE alice +i") == []  # already: no change to tell
    assert net.send(1, "MODE alice")[0].params == ("alice", "+i")
    mixed = net.send(1, "MODE alice -iw")
    assert [line.command for line in mixed] == ["MODE", "501"]
    assert mixed[0].params == ("alice", "-i")
    assert net.send(1, "MODE bob +i")[0].command == "502"
    assert net.send(1, "MODE bob")[0].command == "502"


def test_away_is_kept_cut_and_told_to_the_service():
    net = net_with_rooms()
    long_text = "x" * 500
    assert commands(net.send(1, f"AWAY :{long_text}")) == ["306"]
    assert net.service.requests[-1] == b.SetAway(1, "x" * 200)
    assert net.gateway.registry.away("ALICE") == "x" * 200
    assert commands(net.send(1, "AWAY :")) == ["305"]
    assert net.gateway.registry.away("alice") is None


def test_a_failed_query_still_ends_its_list():
    net = net_with_rooms()
    ends = {
        b.Names(1, "ops"): ["400", "366"],
        b.ListRooms(1): ["400", "323"],
        b.WhoRequest(1, room="ops"): ["400", "315"],
        b.WhoRequest(1, name="bob"): ["400", "315"],
        b.Whois(1, "bob"): ["400", "318"],
        b.GetTopic(1, "ops"): ["400"],
    }
    for request, expected in ends.items():
        net.deliver(b.RequestFailed(1, request, "The store is unreachable"))
        got = net.take(1)
        assert commands(got) == expected, request
        assert got[0].params[-1] == "The store is unreachable"
    net.deliver(b.RequestFailed(1, b.SetAway(1, None), "no"))
    assert net.take(1) == []


def test_a_room_name_the_service_got_wrong_is_left_out_of_lists():
    net = net_with_rooms()
    rooms = (b.RoomSummary("bad name", 1), b.RoomSummary("ops", 2, "t\nx"))
    net.deliver(b.ListResult(1, b.ListRooms(1), rooms))
    got = net.take(1)
    assert [line.params[1:] for line in got if line.command == "322"] == [("#ops", "2", "t x")]
