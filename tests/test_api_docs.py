"""docs/API.rst documents every public name: what lab93zmq and lab93zmq.aio export,
every public method and attribute of their nodes and servers, and every field of
the values and events they hand out."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import lab93zmq
from lab93zmq import aio

API = (Path(__file__).parent.parent / "docs" / "API.rst").read_text()
LITERALS = set(re.findall(r"``([^`]+)``", API))  # every ``...`` of the page


def public(cls: type) -> list[str]:
    return sorted(name for name in dir(cls) if not name.startswith("_"))


def documented(name: str, *prefixes: str) -> bool:
    """``name`` is a literal of the page, alone or after one of ``prefixes`` (and
    maybe followed by its arguments: ``node.send(text, ...) -> Message``)."""
    spellings = {name, *(prefix + name for prefix in prefixes)}
    return any(re.split(r"[(\s]", literal, maxsplit=1)[0] in spellings for literal in LITERALS)


def test_every_name_lab93zmq_exports_is_documented():
    missing = [name for name in lab93zmq.__all__ if not documented(name, "lab93zmq.")]
    assert missing == []


def test_every_name_the_page_gives_as_lab93zmq_dot_something_exists():
    named = {re.match(r"lab93zmq\.(\w+)", literal).group(1)
             for literal in LITERALS if re.match(r"lab93zmq\.\w+", literal)}
    assert named - {"aio", "core"} <= set(lab93zmq.__all__)


def test_every_name_aio_exports_is_documented_as_aio_dot_name():
    assert set(aio.__all__) == {"Node", "Server", "scan"}
    for name in aio.__all__:
        assert re.search(rf"\baio\.{name}\b", API), name


def test_every_public_method_and_attribute_of_nodes_and_servers_is_documented():
    instance = {"user", "node_id", "config", "ready_detail", "router_port", "pub_port",
                "irc_port"}  # set in __init__, so dir(cls) does not list them
    for cls in (lab93zmq.Node, lab93zmq.Server, aio.Node, aio.Server):
        missing = [name for name in public(cls)
                   if not documented(name, "node.", "server.", "lab93zmq.Node.",
                                     "lab93zmq.Server.", "aio.Node.", "aio.Server.")]
        assert missing == [], cls
    for name in instance:
        assert documented(name, "node.", "server."), name


def test_every_field_of_the_values_and_events_is_documented():
    for name in ("Accepted", "Rejected", "Status", "Notice", "Joined", "Parted", "Member",
                 "Topic", "RoomInfo"):
        fields = ", ".join(field.name for field in dataclasses.fields(getattr(lab93zmq, name)))
        assert f"lab93zmq.{name}({fields})" in LITERALS, name
    for name in ("Message", "Sighting"):
        section = API.split(f"``lab93zmq.{name}``", 1)[1].split("\n\n", 1)[0]
        for field in dataclasses.fields(getattr(lab93zmq, name)):
            assert f"``{field.name}``" in section, (name, field.name)


def test_every_error_is_described_with_where_it_comes_from():
    errors = [name for name in lab93zmq.__all__ if name.endswith("Error")]
    section = API.split("\nErrors\n======\n", 1)[1].split("\nasyncio: ", 1)[0]
    for name in errors:
        assert re.search(rf"^``{name}``\n    \S", section, re.MULTILINE), name
