"""Which interfaces to beacon on, and their IPv4 and broadcast addresses.

Reads the host's interfaces with ``netifaces``; sends nothing. ``-i`` names
interfaces explicitly (repeatable, comma-separated); without it every IPv4
interface that is up, is not loopback and has a broadcast address is used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import netifaces

from ..core.errors import ConfigError

LOOPBACK = "lo"
# netifaces reports no broadcast for loopback (it is point-to-point); Linux
# still routes 127.255.255.255 as the broadcast of 127.0.0.0/8 on lo, which is
# what lets several nodes on one host find each other (and what tests use).
LOOPBACK_ADDRESS = "127.0.0.1"
LOOPBACK_BROADCAST = "127.255.255.255"

_IFF_UP = 0x1
_IFF_LOOPBACK = 0x8


class InterfaceError(ConfigError, ValueError):
    """No usable network interface to beacon on; choose one with -i (for example -i lo)."""


@dataclass(frozen=True)
class BeaconTarget:
    """One place to beacon: listen on ``broadcast``, send from ``address`` to ``broadcast``."""

    name: str
    address: str
    broadcast: str


def parse_names(names: Iterable[str] | None) -> list[str]:
    """Split ``-i`` values on commas; strip blanks; drop repeats, keeping the first order."""
    result: list[str] = []
    for entry in names or ():
        for name in entry.split(","):
            name = name.strip()
            if name and name not in result:
                result.append(name)
    return result


def names() -> list[str]:
    """The names of this host's network interfaces, sorted."""
    return sorted(set(netifaces.interfaces()) | {LOOPBACK})


def exists(name: str) -> bool:
    """Whether this host has an interface called ``name`` (``lo`` always counts)."""
    return name == LOOPBACK or name in netifaces.interfaces()


def is_loopback(name: str) -> bool:
    """Whether traffic on ``name`` stays on this machine."""
    return name == LOOPBACK or bool(_flags(name) & _IFF_LOOPBACK)


def resolve(names: Sequence[str] | str | None) -> list[BeaconTarget]:
    """The beacon targets for ``-i`` values (None or empty: every suitable interface).

    Raises InterfaceError with one sentence naming the interface that cannot
    be used. Targets sharing a broadcast address are kept once, since one
    listener per broadcast address already hears them all.
    """
    if isinstance(names, str):  # a single -i value is still a list of one
        names = [names]
    wanted = parse_names(names)
    if names and not wanted:
        raise InterfaceError("The interface list is empty; name an interface with -i, e.g. -i lo.")
    targets = [t for name in wanted for t in _named(name)] if wanted else _default()
    unique: dict[str, BeaconTarget] = {}
    for target in targets:
        unique.setdefault(target.broadcast, target)
    return list(unique.values())


def describe(targets: Sequence[BeaconTarget]) -> str:
    """The beacon interfaces, for status lines ("lo", "eth0, wlan0")."""
    return ", ".join(dict.fromkeys(t.name for t in targets)) or "no interface yet"


def usable(names: Sequence[str] | str | None,
           missing_ok: bool = False) -> tuple[list[BeaconTarget], list[str]]:
    """What ``resolve`` gives, as the host's interfaces are *now*, without failing on one
    that exists but cannot be used yet (down, no IPv4 address, no broadcast address): the
    targets, and a sentence for each such interface. The broadcast shell calls it on a
    timer, so an interface that gains an address while a node runs is used from then on
    (and one that loses it is let go). A name no interface has is an error, unless
    ``missing_ok`` (while running: a USB or virtual interface may go and come back)."""
    if isinstance(names, str):
        names = [names]
    wanted = parse_names(names)
    targets: list[BeaconTarget] = []
    waiting: list[str] = []
    if not wanted:
        try:
            targets = _default()
        except InterfaceError as error:
            waiting.append(str(error))
    for name in wanted:
        if name != LOOPBACK and name not in netifaces.interfaces():
            if not missing_ok:
                raise InterfaceError(f"There is no network interface named {name!r}.")
            waiting.append(f"There is no network interface named {name!r}.")
            continue
        try:
            targets += _named(name)
        except InterfaceError as error:
            waiting.append(str(error))
    unique: dict[str, BeaconTarget] = {}
    for target in targets:
        unique.setdefault(target.broadcast, target)
    return list(unique.values()), waiting


def _named(name: str) -> list[BeaconTarget]:
    if name == LOOPBACK:
        return [BeaconTarget(LOOPBACK, LOOPBACK_ADDRESS, LOOPBACK_BROADCAST)]
    if name not in netifaces.interfaces():
        raise InterfaceError(f"There is no network interface named {name!r}.")
    if not _is_up(name):
        raise InterfaceError(f"Network interface {name!r} is down.")
    ipv4 = netifaces.ifaddresses(name).get(netifaces.AF_INET, [])
    if not ipv4:
        raise InterfaceError(f"Network interface {name!r} has no IPv4 address.")
    targets = _targets(name, ipv4)
    if not targets:
        # The kernel must know the broadcast address to send and accept one; with
        # iproute2, `ip addr add ADDR/LEN brd + dev NAME` sets it.
        raise InterfaceError(
            f"Network interface {name!r} has no IPv4 broadcast address "
            f"(give it one, e.g. ip addr add ADDR/LEN brd + dev {name})."
        )
    return targets


def _default() -> list[BeaconTarget]:
    targets: list[BeaconTarget] = []
    for name in netifaces.interfaces():
        if name == LOOPBACK or not _is_up(name) or _flags(name) & _IFF_LOOPBACK:
            continue
        ipv4 = netifaces.ifaddresses(name).get(netifaces.AF_INET, [])
        targets.extend(t for t in _targets(name, ipv4) if not t.address.startswith("127."))
    if not targets:
        raise InterfaceError(
            "No network interface with an IPv4 broadcast address is up; "
            "choose one with -i (for example -i lo)."
        )
    return targets


def _targets(name: str, ipv4: list[dict[str, str]]) -> list[BeaconTarget]:
    return [
        BeaconTarget(name, entry["addr"], entry["broadcast"])
        for entry in ipv4
        if entry.get("addr") and entry.get("broadcast")
    ]


def _flags(name: str) -> int:
    """The kernel's interface flags (Linux sysfs); 0x1 when unknown, i.e. assume up."""
    try:
        return int(Path("/sys/class/net", name, "flags").read_text().strip(), 16)
    except (OSError, ValueError):
        return _IFF_UP


def _is_up(name: str) -> bool:
    return bool(_flags(name) & _IFF_UP)
