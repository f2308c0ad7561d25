"""Channels <-> rooms and nicks <-> lab93 user names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab93zmq.core.errors import MessageError
from lab93zmq.core.irc.names import (
    MAX_CHANNEL_CHARS,
    channel_for,
    fold,
    is_room,
    name_for,
    nick_error,
    nick_for,
    room_for,
)
from lab93zmq.core.message import check_name


@pytest.mark.parametrize(
    ("channel", "room"),
    [
        ("#ops", "ops"),
        ("#general", "general"),
        ("#OPS", "ops"),
        ("#a", "a"),
        ("#9lives", "9lives"),
        ("#a.b-c_d", "a.b-c_d"),
        ("#" + "x" * 32, "x" * 32),
    ],
)
def test_a_channel_names_its_room(channel, room):
    assert room_for(channel) == room
    assert channel_for(room) == "#" + room
    assert is_room(room)


@pytest.mark.parametrize(
    "channel",
    [
        "ops",
        "#",
        "#-ops",
        "#.ops",
        "#_ops",
        "#" + "x" * 33,
        "#a b",
        "#a,b",
        "#zoë",
        "&ops",
        "##ops",
    ],
)
def test_what_names_no_room(channel):
    assert room_for(channel) is None


def test_channellen_is_the_longest_room_with_its_prefix():
    assert MAX_CHANNEL_CHARS == 33
    assert room_for("#" + "y" * (MAX_CHANNEL_CHARS - 1)) is not None


@pytest.mark.parametrize("nick", ["alice", "Bob", "[away]", "x_y-z", "a|b", "`t^", "n}", "a" * 64])
def test_a_plain_nick_is_its_own_lab93_name(nick):
    assert nick_error(nick) is None
    assert name_for(nick) == nick
    assert nick_for(nick) == nick
    check_name(nick, "from")  # every nick is a valid lab93 user name


@pytest.mark.parametrize(
    ("nick", "why"),
    [
        ("", "empty"),
        ("a" * 65, "64"),
        ("9lives", "digit"),
        ("-x", "digit"),
        ("zoë", "ASCII"),
        ("a.b", "ASCII"),
        ("a b", "ASCII"),
        ("a,b", "ASCII"),
        ("a!b", "ASCII"),
        ("a{2e}b", "'{'"),
        ("{", "'{'"),
    ],
)
def test_what_an_irc_client_may_not_register(nick, why):
    error = nick_error(nick)
    assert error is not None and why in error


@pytest.mark.parametrize(
    ("name", "nick"),
    [
        ("jean.dupont", "jean{2e}dupont"),
        ("zoë", "zo{eb}"),
        ("1337", "{31}337"),
        ("a@b", "a{40}b"),
        ("{curly}", "{7b}curly}"),
        ("Иван", "{418}{432}{430}{43d}"),
        ("😀", "{1f600}"),
    ],
)
def test_a_name_irc_cannot_carry_is_shown_escaped_and_read_back(name, nick):
    assert nick_for(name) == nick
    assert name_for(nick) == name
    if name.isascii():  # letters and hex digits both change case: the same user, in capitals
        assert name_for(nick.upper()) == name.upper()


def test_hex_may_come_back_in_either_case():
    assert name_for("zo{EB}") == "zoë"


@pytest.mark.parametrize(
    "nick",
    ["{61}lice", "a{zz}", "{d800}", "{110000}", "{20}", "{0}", "a{2e", "#ops", "x" * 65, "a b"],
)
def test_only_the_one_spelling_names_a_user(nick):
    assert name_for(nick) is None


lab93_names = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc", "Zs", "Zl", "Zp"]),
    min_size=1,
    max_size=64,
)


@given(lab93_names)
def test_every_lab93_name_maps_to_one_nick_and_back(name):
    try:
        check_name(name, "from")
    except MessageError:
        return  # not a lab93 name
    nick = nick_for(name)
    assert name_for(nick) == name
    assert nick.isascii() and not any(ch in nick for ch in " ,*?!@:#$\r\n\x00")


@given(lab93_names, lab93_names)
def test_two_names_never_share_a_nick(one, other):
    if one != other:
        assert nick_for(one) != nick_for(other)


def test_fold_ignores_case_for_unicode_too():
    assert fold("Alice") == fold("ALICE") == "alice"
    assert fold("ZOË") == fold("zoë")
