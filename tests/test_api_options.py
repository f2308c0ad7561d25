"""The options of a node, a server and a scan: one set of checks for the API and the CLI."""

from __future__ import annotations

import pytest

from lab93zmq.api.options import node_config, room_names, whole_number
from lab93zmq.core.errors import UsageError
from lab93zmq.frontend.cli import main
from lab93zmq.frontend.environment import Environment


def test_rooms_are_folded_kept_in_order_and_given_once():
    assert room_names(None) == ("general",)
    assert room_names(["#Ops", "dev,ops", " build.ci "]) == ("ops", "dev", "build.ci")
    assert room_names("alerts") == ("alerts",)


@pytest.mark.parametrize("rooms", [["-bad"], ["ops", "x" * 33], [","], 7, ["", "ops"]])
def test_a_bad_room_is_a_usage_error(rooms):
    with pytest.raises(UsageError, match="--room"):
        room_names(rooms)


def test_the_api_and_the_command_line_say_the_same_sentence(capsys):
    with pytest.raises(UsageError) as api:
        node_config("broadcast", port="x", interfaces=["lo"])
    env = Environment()
    assert main(["-b", "-i", "lo", "-p", "x"], env) == 2
    assert f"lab93-node: {api.value}" in capsys.readouterr().err
    with pytest.raises(UsageError, match="--room 'Not a room'"):
        node_config("client", rooms=["Not a room"])


def test_an_empty_interface_beside_others_and_a_servers_bad_port_name_their_option():
    with pytest.raises(UsageError, match="-i/--interface '' names no interface"):
        node_config("broadcast", interfaces=["", "lo"])
    with pytest.raises(UsageError, match=r"-a/--address '127.0.0.1:x': the port takes a whole"):
        node_config("client", address="127.0.0.1:x", interfaces=["lo"])
    assert node_config("client", address="h:5191,h", interfaces="lo,").servers == (
        ("h", 5191), ("h", 5190))


def test_numbers_take_ints_or_their_text_but_not_bools_or_fractions():
    assert whole_number(5190, "-p/--port", 0, 65_535) == 5190
    assert whole_number("5190", "-p/--port", 0, 65_535) == 5190
    for bad in (True, 5190.5, "5x", None, 70_000):
        with pytest.raises(UsageError, match="-p/--port takes a whole number"):
            whole_number(bad, "-p/--port", 0, 65_535)


def test_a_config_carries_the_rooms_the_first_being_current(tmp_path):
    config = node_config("broadcast", interfaces="lo", db=tmp_path / "n.db", rooms=["ops", "dev"],
                         user="alice")
    assert config.rooms == ("ops", "dev") and config.user == "alice"
    assert config.address == "127.0.0.1"  # -i lo keeps everything on this machine
    assert config.db_path == tmp_path / "n.db" and config.listen is True
    assert node_config("client", interfaces="lo").address is None  # a client finds its server
