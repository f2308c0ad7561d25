"""IRC lines: parsing, writing, tag escaping, limits, the stream splitter, server-time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab93zmq.core.irc.lines import (
    MAX_BODY_BYTES,
    MAX_CLIENT_LINE_BYTES,
    MAX_TAG_DATA_BYTES,
    Line,
    LineError,
    LineSplitter,
    escape_tag_value,
    fit_utf8,
    format_time,
    parse,
    parse_time,
    unescape_tag_value,
)


def test_a_plain_line_has_command_and_params():
    line = parse(b"PRIVMSG #ops :hello there")
    assert line == Line("PRIVMSG", ("#ops", "hello there"))


def test_the_command_is_upper_cased_and_spaces_repeat():
    line = parse(b"privmsg   #ops    hi")
    assert line.command == "PRIVMSG" and line.params == ("#ops", "hi")


def test_the_examples_of_modern_ircdocs():
    assert parse(b":irc.example.com CAP * LIST :").params == ("*", "LIST", "")
    assert parse(b"CAP * LS :multi-prefix sasl").params == ("*", "LS", "multi-prefix sasl")
    assert parse(b"CAP REQ :sasl message-tags foo").params == ("REQ", "sasl message-tags foo")
    assert parse(b":dan!d@localhost PRIVMSG #chan :Hey!").params == ("#chan", "Hey!")
    assert parse(b":dan!d@localhost PRIVMSG #chan Hey!").params == ("#chan", "Hey!")
    assert parse(b":dan!d@localhost PRIVMSG #chan ::-)").params == ("#chan", ":-)")
    assert parse(b":dan!d@localhost PRIVMSG #chan ::-)").source == "dan!d@localhost"


def test_tags_are_read_and_unescaped():
    line = parse(b"@id=123AB;rose;url=;netsplit=tur,ty :nick PING x")
    assert line.tags == (("id", "123AB"), ("rose", ""), ("url", ""), ("netsplit", "tur,ty"))
    assert line.tag("rose") == "" and line.tag("absent") is None
    assert (
        parse(rb"@a=semi\:colon\sspace\\back\r\nx PING").tag("a") == "semi;colon space\\back\r\nx"
    )


def test_a_repeated_tag_key_keeps_the_last_value():
    assert parse(b"@a=1;b=2;a=3 PING").tags == (("b", "2"), ("a", "3"))


def test_unescaping_drops_a_lone_backslash_and_unknown_escapes():
    assert unescape_tag_value("test\\") == "test"
    assert unescape_tag_value("\\b") == "b"
    assert unescape_tag_value("plain") == "plain"


@given(st.text())
def test_tag_values_round_trip_through_escaping(value):
    escaped = escape_tag_value(value)
    assert not any(ch in escaped for ch in "; \r\n")
    assert unescape_tag_value(escaped) == value


@given(st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"])))
def test_a_tag_value_survives_a_line(value):
    line = Line("PRIVMSG", ("#a", "x"), "s", (("k", value),))
    got = parse(line.to_bytes())
    assert got.tag("k") == value


def test_empty_and_space_only_lines_are_nothing():
    assert parse(b"") is None
    assert parse(b"   ") is None
    assert parse(b"@a=b ") is None


def test_writing_puts_a_colon_only_where_needed_unless_asked():
    assert Line("JOIN", ("#ops",), "n!u@h").to_bytes() == b":n!u@h JOIN #ops\r\n"
    assert Line("PRIVMSG", ("#a", "two words")).to_bytes() == b"PRIVMSG #a :two words\r\n"
    assert Line("PRIVMSG", ("#a", ":)")).to_bytes() == b"PRIVMSG #a ::)\r\n"
    assert Line("PRIVMSG", ("#a", "")).to_bytes() == b"PRIVMSG #a :\r\n"
    assert Line("PRIVMSG", ("#a", "x"), trailing=True).to_bytes() == b"PRIVMSG #a :x\r\n"


def test_writing_tags_escapes_values_and_omits_empty_ones():
    line = Line("PING", ("x",), tags=(("time", "t 1;2"), ("flag", "")))
    assert line.to_bytes() == b"@time=t\\s1\\:2;flag PING x\r\n"


@pytest.mark.parametrize(
    "line",
    [
        Line("PRIVMSG", ("#a b", "x")),
        Line("PRIVMSG", (":a", "x")),
        Line("PRIVMSG", ("", "x")),
        Line("PRIVMSG", ("#a\n", "x")),
        Line("PRIV MSG", ("#a",)),
        Line("PING", ("x",), "a b"),
        Line("PING", ("x",), tags=(("k", "nul\x00"),)),
    ],
)
def test_a_line_the_grammar_cannot_carry_is_our_bug(line):
    with pytest.raises(ValueError):
        line.to_bytes()


def test_line_breaks_and_nul_in_the_last_parameter_become_spaces():
    line = Line("TOPIC", ("#a", "one\r\ntwo\nthree\x00"), "n!u@h")
    assert line.to_bytes() == b":n!u@h TOPIC #a :one  two three\r\n"


def test_a_long_last_parameter_is_cut_at_a_character():
    line = Line("PRIVMSG", ("#a", "é" * 400), "server")
    data = line.to_bytes()
    assert len(data) <= MAX_BODY_BYTES + 2
    assert data.decode("utf-8").endswith("é\r\n")


def test_the_body_may_hold_510_bytes_and_no_more():
    head = b"PRIVMSG #a :"
    ok = head + b"x" * (MAX_BODY_BYTES - len(head))
    assert parse(ok).params[1] == "x" * (MAX_BODY_BYTES - len(head))
    with pytest.raises(LineError) as refused:
        parse(ok + b"x")
    assert refused.value.kind == "too-long" and refused.value.command == "PRIVMSG"


def test_tags_do_not_count_against_the_body_but_have_their_own_limit():
    body = b"PRIVMSG #a :" + b"x" * 400
    tags = b"@" + b"k=" + b"v" * (MAX_TAG_DATA_BYTES - 2) + b" "
    assert parse(tags + body).params[1] == "x" * 400
    too_many = b"@" + b"k=" + b"v" * (MAX_TAG_DATA_BYTES - 1) + b" "
    with pytest.raises(LineError) as refused:
        parse(too_many + body)
    assert refused.value.kind == "too-long"


def test_invalid_utf8_is_refused_with_the_command_named():
    with pytest.raises(LineError) as refused:
        parse(b"PRIVMSG #ops :caf\xe9")
    assert refused.value.kind == "utf8" and refused.value.command == "PRIVMSG"
    assert "UTF-8" in str(refused.value)
    with pytest.raises(LineError) as in_tags:
        parse(b"@k=\xff PRIVMSG #ops :x")
    assert in_tags.value.kind == "utf8"


def test_nul_and_bad_commands_are_refused():
    with pytest.raises(LineError) as nul:
        parse(b"PRIVMSG #a :x\x00y")
    assert nul.value.kind == "malformed"
    with pytest.raises(LineError) as bad:
        parse(b"PRIV?MSG #a :x")
    assert bad.value.kind == "command" and bad.value.command == "PRIV?MSG"
    with pytest.raises(LineError) as digits:
        parse(b"1234 x")
    assert digits.value.kind == "command"
    assert parse(b"001 nick :hi").command == "001"
    with pytest.raises(LineError):
        parse(b":source-only")


def test_the_splitter_takes_crlf_and_bare_lf_in_any_chunks():
    splitter = LineSplitter()
    stream = b"NICK a\r\nUSER u 0 * :x\nPING 1\r\n\r\n\n"
    got = []
    for byte in stream:
        got += splitter.feed(bytes([byte]))
    assert got == [b"NICK a", b"USER u 0 * :x", b"PING 1"]
    assert splitter.buffered == 0


def test_the_splitter_keeps_a_partial_line():
    splitter = LineSplitter()
    assert splitter.feed(b"PING a\r\nPIN") == [b"PING a"]
    assert splitter.buffered == 3
    assert splitter.feed(b"G b\r\n") == [b"PING b"]


def test_an_endless_line_costs_one_line_of_memory_and_one_mark():
    splitter = LineSplitter()
    marks = []
    for _ in range(100):
        marks += splitter.feed(b"x" * 1000)
        assert splitter.buffered <= MAX_CLIENT_LINE_BYTES
    assert marks == [None]
    assert splitter.feed(b"xxx\r\nPING ok\r\n") == [b"PING ok"]


def test_a_whole_line_too_long_in_one_chunk_is_marked():
    splitter = LineSplitter(max_line=10)
    assert splitter.feed(b"x" * 11 + b"\nPING\n") == [None, b"PING"]


def test_the_splitter_needs_room():
    with pytest.raises(ValueError):
        LineSplitter(max_line=0)


def test_server_time_is_utc_with_milliseconds():
    when = datetime(2026, 11, 24, 20, 1, 2, 123456, tzinfo=timezone.utc)
    assert format_time(when) == "2026-11-24T20:01:02.123Z"
    paris = when.astimezone(timezone(timedelta(hours=1)))
    assert format_time(paris) == "2026-11-24T20:01:02.123Z"
    assert format_time(when.replace(microsecond=0)) == "2026-11-24T20:01:02.000Z"


def test_timestamps_parse_back():
    assert parse_time("2026-11-24T20:01:02.123Z") == datetime(
        2026, 11, 24, 20, 1, 2, 123000, tzinfo=timezone.utc
    )
    assert parse_time("2026-11-24T21:01:02+01:00") == datetime(
        2026, 11, 24, 20, 1, 2, tzinfo=timezone.utc
    )
    assert parse_time("2026-11-24T20:01:02.123456789Z").microsecond == 123456
    for bad in (
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-11-24T20:01:02",
        "0001-01-01T00:00:00+01:00",
    ):
        assert parse_time(bad) is None


@given(st.datetimes(timezones=st.just(timezone.utc)))
def test_server_time_round_trips_to_the_millisecond(when):
    assert parse_time(format_time(when)) == when.replace(
        microsecond=when.microsecond // 1000 * 1000
    )


def test_fit_utf8_never_cuts_a_character():
    assert fit_utf8("ab€", 4) == "ab"
    assert fit_utf8("ab€", 5) == "ab€"
    assert fit_utf8("", 0) == ""


@given(st.binary(max_size=600))
def test_parsing_random_bytes_returns_or_refuses_never_crashes(data):
    try:
        line = parse(data)
    except LineError as refusal:
        assert refusal.kind in {"too-long", "utf8", "command", "malformed"}
        return
    if line is not None:
        assert line.command and line.command == line.command.upper()
