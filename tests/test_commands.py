import pytest

from lab93zmq.core.commands import (
    CommandError,
    Help,
    History,
    Nothing,
    Quit,
    Say,
    Scan,
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
    ],
)
def test_lines(line, action):
    assert parse_line(line) == action


def test_defaults_from_options_apply_to_plain_text():
    assert parse_line("disk full", subject="app", to="ops") == Say("disk full", "app", "ops")
    assert parse_line("/subject other x", subject="app") == Say("x", "other")


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
    ],
)
def test_bad_commands_get_a_hint_and_are_not_messages(line, hint):
    with pytest.raises(CommandError, match=hint):
        parse_line(line)
