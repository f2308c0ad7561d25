"""What people read, as pure functions: the lines, the colours, what Tab offers."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from factories import make_message

from lab93zmq.core.events import RoomInfo, Topic
from lab93zmq.core.message import ACTION
from lab93zmq.frontend import lines
from lab93zmq.frontend.complete import candidates
from lab93zmq.frontend.lines import View, format_message
from lab93zmq.frontend.style import NICK_COLOURS, PLAIN, Style, colour_wanted, nick_colour, visible

AT = datetime(2026, 11, 24, 20, 1, 2, tzinfo=timezone.utc)
LOCAL = AT.astimezone()
TODAY = LOCAL.date()
TIME = LOCAL.strftime("%H:%M:%S")
COLOUR = Style(colour=True, bell=True)


def message(content="pizza?", **fields):
    return replace(make_message(1, content, **fields), sent_at=AT)


def test_a_message_of_today_has_its_time_and_one_of_another_day_its_date():
    assert format_message(message(), View(TODAY)) == f"[{TIME}] <alice> pizza?"
    yesterday = View(TODAY + timedelta(days=1))
    assert format_message(message(), yesterday) == f"[{LOCAL:%Y-%m-%d} {TIME}] <alice> pizza?"
    assert format_message(message(), View(None)).startswith(f"[{LOCAL:%Y-%m-%d} ")  # --history


def test_subject_direct_room_and_continuation_lines():
    view = View(TODAY, show_room=True)
    expected = f"[{TIME}] #general <alice> [lunch] pizza?"
    assert format_message(message(subject="lunch"), view) == expected
    assert format_message(message(to="bob"), view) == f"[{TIME}] <alice -> bob> pizza?"
    assert format_message(message("one\ntwo"), View(TODAY)) == f"[{TIME}] <alice> one\n    two"


def test_an_action_is_shown_as_what_someone_does():
    assert format_message(message("waves", kind=ACTION), View(TODAY)) == f"[{TIME}] * alice waves"
    direct = message("nudges you", kind=ACTION, to="bob")
    assert format_message(direct, View(TODAY)) == f"[{TIME}] * alice nudges you (to bob)"


def test_own_lines_carry_their_mark():
    own = View(TODAY, me="alice")
    queued = format_message(message(), own, PLAIN.mark(delivered=False))
    assert queued == f"[{TIME}] <alice> pizza? (queued)"
    assert format_message(message(), own, PLAIN.mark(delivered=True)).endswith("pizza? \u2713")


@pytest.mark.parametrize("text, named", [
    ("bob: lunch?", True), ("thanks Bob!", True), ("@bob", True), ("ask bob.", True),
    ("bobby", False), ("bob_bot says", False), ("kebob", False), ("bob-team", False),
])
def test_a_mention_is_the_name_as_a_word_in_any_case(text, named):
    assert lines.mentions(text, "bob") is named


def test_colour_names_highlights_and_nothing_without_it():
    view = View(TODAY, me="bob", style=COLOUR)
    shown = format_message(message("bob: lunch?"), view)
    assert f"\x1b[{nick_colour('alice')}malice\x1b[0m" in shown
    assert "\x1b[1;30;43mbob: lunch?\x1b[0m" in shown  # highlighted: it names bob
    assert visible(shown) == f"[{TIME}] <alice> bob: lunch?"
    assert "\x1b" not in format_message(message("bob: lunch?"), View(TODAY, me="bob"))
    to_bob = format_message(message("psst", to="bob"), view)
    assert "\x1b[1;30;43mpsst" in to_bob  # a direct message to you is highlighted too
    own = format_message(message("alice here"), View(TODAY, me="alice", style=COLOUR))
    assert "\x1b[1malice\x1b[0m" in own and "43m" not in own  # yours: bold, never highlighted


def test_a_name_has_the_same_colour_every_time():
    assert nick_colour("bob") == nick_colour("bob") in NICK_COLOURS
    assert len({nick_colour(f"user{n}") for n in range(100)}) > 6  # spread over the palette


@pytest.mark.parametrize("environ, isatty, json_mode, wanted", [
    ({}, True, False, True),
    ({"NO_COLOR": "1"}, True, False, False),
    ({"NO_COLOR": ""}, True, False, True),  # no-color.org: set and not empty
    ({"TERM": "dumb"}, True, False, False),
    ({}, False, False, False),  # a pipe or a file
    ({}, True, True, False),  # --json
])
def test_when_colour_is_wanted(environ, isatty, json_mode, wanted):
    assert colour_wanted(environ, isatty, json_mode) is wanted


def test_the_style_of_a_terminal_rings_but_a_pipe_neither_rings_nor_paints():
    terminal = Style.for_terminal({"NO_COLOR": "1"}, True, False, "utf-8")
    assert (terminal.colour, terminal.bell) == (False, True)
    pipe = Style.for_terminal({}, False, False, "utf-8")
    assert (pipe.colour, pipe.bell) == (False, False)
    assert Style.for_terminal({}, True, False, "ascii").delivered_mark == "(delivered)"


def test_join_leave_and_topic_lines_have_times():
    view = View(TODAY)
    assert lines.format_member("ops", "bob", True, AT, view) == f"[{TIME}] * bob joined #ops"
    assert lines.format_member("ops", "bob", False, AT, view) == f"[{TIME}] * bob left #ops"
    topic = Topic("ops", "deploys", "bob", AT)
    assert lines.format_topic(topic, view) == f"[{TIME}] * bob set the topic of #ops: deploys"
    assert lines.topic_line("ops", topic, view) == f"topic of #ops: deploys (set by bob, {TIME})"
    assert lines.topic_line("ops", None, view) == "#ops has no topic yet; /topic TEXT sets one"


def test_the_separator_counts_the_backlog():
    assert lines.separator(12) == "\u2014 12 messages while you were away \u2014"
    assert lines.separator(1) == "\u2014 1 message while you were away \u2014"


def test_rooms_who_and_outbox_answers():
    rooms = [RoomInfo("general", 3, "lunch at noon", True), RoomInfo("ops", 1, None, True),
             RoomInfo("random", 0, None, False)]
    assert lines.format_rooms(rooms, "ops").splitlines() == [
        "rooms on the network (* you are in it, > the current one):",
        " * #general    3 people  lunch at noon",
        " > #ops        1 person",
        "   #random     0 people",
    ]
    assert lines.format_rooms([], None).startswith("no rooms heard")
    assert lines.format_who("ops", ["alice", "bob"]) == "in #ops: alice, bob"
    assert lines.format_who(None, []) == "online: nobody else"
    waiting = [message("see you", to="zed"), message("pizza?")]
    assert lines.format_outbox(waiting, View(TODAY)).splitlines() == [
        "2 messages wait to be delivered:",
        f"  for zed: [{TIME}] 'see you'",
        f"  for #general: [{TIME}] 'pizza?'",
    ]
    assert lines.format_outbox([], View(TODAY)).startswith("nothing waits")


@pytest.mark.parametrize("before, offered", [
    ("/jo", ["/join "]),
    ("/h", ["/help ", "/history "]),
    ("/join o", ["#ops "]),
    ("/join #", ["#general ", "#ops "]),
    ("/part #g", ["#general "]),
    ("/msg b", ["bob "]),
    ("/msg B", ["bob "]),
    ("/msg bob h", []),  # the text of a message: nothing to complete from the table
    ("/help jo", ["join "]),
    ("b", ["bob: "]),  # a nick at the start of a line, IRC style
    ("hi b", ["bob "]),
    ("see #o", ["#ops "]),
    ("/me pokes b", ["bob "]),
    ("/frob x", []),
    ("", []),
])
def test_tab_offers(before, offered):
    got = candidates(before, ["bob", "carol"], ["general", "ops"])
    assert [text for text, _ in got] == offered
    assert all(start == -len(before.split(" ")[-1]) for _, start in got)
