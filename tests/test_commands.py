import pytest

from lab93zmq.core import commands
from lab93zmq.core.commands import (
    COMMANDS,
    HELP,
    ROOM,
    USER,
    Clear,
    CommandError,
    Help,
    History,
    Join,
    Nothing,
    Outbox,
    Part,
    Quit,
    Rooms,
    Say,
    Scan,
    ShowOrSetTopic,
    Who,
    parse_line,
)


@pytest.mark.parametrize(
    "line, action",
    [
        ("hello", Say("hello")),
        ("hello\n", Say("hello")),
        ("   ", Nothing()),
        ("/quit", Quit()),
        ("/scan", Scan()),
        ("/who", Who()),
        ("/help", Help()),
        ("/history", History(20)),
        ("/history 5", History(5)),
        ("/history 007", History(7)),
        ("/history 10000", History(10_000)),
        # More than /history shows: the most it shows, said so - not "not a whole number".
        ("/history 10001", History(10_000, capped=True)),
        ("/history 99999999999999999999", History(10_000, capped=True)),
        ("/history " + "9" * 5000, History(10_000, capped=True)),
        ("/msg bob hi there", Say("hi there", None, "bob")),
        ("/subject lunch pizza at noon?", Say("pizza at noon?", "lunch")),
        ('/subject "team lunch" pizza?', Say("pizza?", "team lunch")),
        ("/subject 'it is' don't worry", Say("don't worry", "it is")),
        ("//slash at start", Say("/slash at start")),
        ("/me waves at bob", Say("waves at bob", kind="action")),
        ("/join #Ops", Join("ops")),
        ("/join ops", Join("ops")),
        ("/part", Part()),
        ("/part #ops", Part("ops")),
        ("/rooms", Rooms()),
        ("/topic", ShowOrSetTopic()),
        ("/topic deploy on friday", ShowOrSetTopic("deploy on friday")),
        ("/who #ops", Who("ops")),
        ("/outbox", Outbox()),
        ("/clear", Clear()),
        ("/help join", Help("join")),
        ("/help /msg", Help("msg")),
        ("/JOIN #ops", Join("ops")),  # command names in any case, as IRC takes them
    ],
)
def test_lines(line, action):
    assert parse_line(line) == action


def test_defaults_from_options_apply_to_plain_text():
    assert parse_line("disk full", subject="app", to="ops") == Say("disk full", "app", "ops")
    assert parse_line("/subject other x", subject="app") == Say("x", "other")
    me = parse_line("/me shrugs", subject="app", to="ops")
    assert me == Say("shrugs", "app", "ops", "action")


@pytest.mark.parametrize(
    "line, hint",
    [
        ("/frobnicate", "unknown command /frobnicate; type /help"),
        ("/msg bob", "usage: /msg"),
        ("/msg", "usage: /msg"),
        ("/subject lunch", "usage: /subject"),
        ('/subject "never closed text', "never closed"),
        ("/history zero", "usage: /history"),
        ("/history 0", "usage: /history"),
        ("/history 000", "usage: /history"),
        ("/history -5", "usage: /history"),
        ("/history ²", "usage: /history"),
        ("/quit now", "takes no arguments"),
        ("/join", "usage: /join ROOM"),
        ("/join Bad Room", "takes one room"),
        ("/join #no!", "'#no!' is not a room name: 1 to 32"),
        ("/part #a #b", "takes one room"),
        ("/who not_a room", "takes one room"),
        ("/who -x", "'-x' is not a room name"),
        ("/me", "usage: /me ACTION"),
        ("/rooms all", "/rooms: takes no arguments"),
        ("/topic " + "t" * 391, "at most 390 characters"),
        ("/jion ops", r"unknown command /jion \(did you mean /join\?\); type /help"),
        ("/help frob", "there is no command /frob"),
    ],
)
def test_bad_commands_get_a_hint_and_are_not_messages(line, hint):
    with pytest.raises(CommandError, match=hint):
        parse_line(line)


def test_help_lists_every_command_of_the_table_once():
    listed = [line.split()[0] for line in HELP.splitlines() if line.startswith("  /")]
    assert listed == ["/" + name for name in COMMANDS]
    for command in COMMANDS.values():
        assert f"  {command.usage} " in HELP and command.summary in HELP


def test_the_table_says_what_each_argument_is_for_completion():
    assert COMMANDS["msg"].completes == (USER,)
    assert {name for name, c in COMMANDS.items() if ROOM in c.completes} == {"join", "part", "who"}


def test_dispatch_is_the_table_not_a_chain_of_ifs():
    """A command added to the table is parsed, with no other change."""
    extra = commands.ChatCommand("ping", "", "test", lambda rest, defaults: Nothing())
    COMMANDS["ping"] = extra
    try:
        assert parse_line("/ping") == Nothing()
    finally:
        del COMMANDS["ping"]
