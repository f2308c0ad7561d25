"""Interface selection: name parsing, the lo special case, default resolution (no I/O)."""

from __future__ import annotations

import os

import netifaces
import pytest

from lab93zmq.core.errors import Lab93Error
from lab93zmq.io import interfaces
from lab93zmq.io.interfaces import BeaconTarget, InterfaceError, parse_names, resolve

pytestmark = pytest.mark.timeout(30)

LO = BeaconTarget("lo", "127.0.0.1", "127.255.255.255")

# A pretend host: flags are the kernel's (0x1 up, 0x8 loopback).
HOST = {
    "lo": (0x9, {netifaces.AF_INET: [{"addr": "127.0.0.1", "netmask": "255.0.0.0"}]}),
    "e1": (
        0x1003,
        {
            netifaces.AF_INET: [
                {"addr": "198.18.93.1", "netmask": "255.255.255.0", "broadcast": "198.18.93.255"},
                {"addr": "198.18.94.1", "netmask": "255.255.255.0", "broadcast": "198.18.94.255"},
            ]
        },
    ),
    "e2": (
        0x1003,
        {
            netifaces.AF_INET: [
                {"addr": "198.18.93.7", "netmask": "255.255.255.0", "broadcast": "198.18.93.255"}
            ]
        },
    ),
    "down0": (
        0x1002,
        {netifaces.AF_INET: [{"addr": "10.9.0.1", "broadcast": "10.9.0.255"}]},
    ),
    "lb1": (0x9, {netifaces.AF_INET: [{"addr": "10.7.0.1", "broadcast": "10.7.0.255"}]}),
    "v6only": (0x1003, {netifaces.AF_INET6: [{"addr": "fd00::1"}]}),
    "tun0": (0x1091, {netifaces.AF_INET: [{"addr": "10.8.0.2", "peer": "10.8.0.1"}]}),
}


@pytest.fixture
def host(monkeypatch):
    """Replace the host's interfaces with HOST; returns the dict so a test can change it."""
    table = dict(HOST)
    monkeypatch.setattr(netifaces, "interfaces", lambda: list(table))
    monkeypatch.setattr(netifaces, "ifaddresses", lambda name: table[name][1])
    monkeypatch.setattr(interfaces, "_flags", lambda name: table[name][0])
    return table


@pytest.mark.parametrize(
    "names, expected",
    [
        (None, []),
        ([], []),
        (["lo"], ["lo"]),
        (["e1,e2"], ["e1", "e2"]),
        (["e1, e2,", " lo ", "e1"], ["e1", "e2", "lo"]),
        ([",,"], []),
    ],
)
def test_parse_names(names, expected):
    assert parse_names(names) == expected


def test_lo_is_the_loopback_broadcast_special_case(host):
    assert resolve(["lo"]) == [LO]
    assert resolve("lo") == [LO]


def test_named_interfaces_in_order_without_duplicate_broadcasts(host):
    assert resolve(["e1,lo", "e2"]) == [
        BeaconTarget("e1", "198.18.93.1", "198.18.93.255"),
        BeaconTarget("e1", "198.18.94.1", "198.18.94.255"),
        LO,
        # e2's broadcast address is e1's first one: one listener hears both.
    ]


@pytest.mark.parametrize(
    "names, sentence",
    [
        (["nosuch"], "There is no network interface named 'nosuch'."),
        (["e1,nosuch"], "There is no network interface named 'nosuch'."),
        (["down0"], "Network interface 'down0' is down."),
        (["v6only"], "Network interface 'v6only' has no IPv4 address."),
        (
            ["tun0"],
            "Network interface 'tun0' has no IPv4 broadcast address "
            "(give it one, e.g. ip addr add ADDR/LEN brd + dev tun0).",
        ),
        ([" , "], "The interface list is empty; name an interface with -i, e.g. -i lo."),
    ],
)
def test_unusable_interfaces_are_named_in_one_sentence(host, names, sentence):
    with pytest.raises(InterfaceError) as caught:
        resolve(names)
    assert str(caught.value) == sentence


def test_default_is_every_up_non_loopback_interface_with_broadcast(host):
    expected = [
        BeaconTarget("e1", "198.18.93.1", "198.18.93.255"),
        BeaconTarget("e1", "198.18.94.1", "198.18.94.255"),
    ]
    # lo, lb1 (loopback flag), down0, v6only and tun0 are left out; e2 shares a broadcast.
    assert resolve(None) == expected
    assert resolve([]) == expected


def test_default_with_nothing_usable_hints_at_dash_i(host):
    for name in ("e1", "e2"):
        del host[name]
    with pytest.raises(InterfaceError, match=r"choose one with -i \(for example -i lo\)\.$"):
        resolve(None)


def test_interface_error_is_a_user_facing_value_error():
    assert issubclass(InterfaceError, ValueError) and issubclass(InterfaceError, Lab93Error)
    assert "-i" in str(InterfaceError())


@pytest.mark.skipif(not os.path.exists("/sys/class/net/lo/flags"), reason="Linux sysfs only")
def test_flags_come_from_sysfs():
    assert interfaces._flags("lo") & 0x9 == 0x9  # lo is up and loopback


def test_unknown_flags_count_as_up():
    assert interfaces._flags("nosuch0") == 0x1


def test_usable_names_what_cannot_be_used_yet_and_follows_the_host(host):
    targets, waiting = interfaces.usable(["lo,v6only"])
    assert targets == [LO]
    assert waiting == ["Network interface 'v6only' has no IPv4 address."]
    with pytest.raises(InterfaceError, match="no network interface named 'nosuch'"):
        interfaces.usable(["lo,nosuch"])  # a typo is still an error at start
    assert interfaces.usable(["lo,nosuch"], missing_ok=True)[1] == [
        "There is no network interface named 'nosuch'."]
    # The address arrives while the node runs: the next look finds it.
    host["v6only"] = (0x1003, {netifaces.AF_INET: [
        {"addr": "198.18.95.2", "netmask": "255.255.255.0", "broadcast": "198.18.95.255"}]})
    assert interfaces.usable(["lo,v6only"]) == (
        [LO, BeaconTarget("v6only", "198.18.95.2", "198.18.95.255")], [])
    del host["e1"], host["e2"], host["v6only"]  # no -i and nothing usable: said, not raised
    assert interfaces.usable(None) == ([], [
        "No network interface with an IPv4 broadcast address is up; "
        "choose one with -i (for example -i lo)."])
