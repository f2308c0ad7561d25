"""A node or repeater heard on the network, as ``--scan`` and ``node.peers()`` list it. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .message import parse_time


@dataclass(frozen=True)
class Sighting:
    """One live instance: who it says it is, where its beacon came from, when (UTC).

    ``mode`` is ``"broadcast"`` or ``"repeater"``; ``router`` and ``pub`` are its
    ports, reached at ``address`` (the beacon's source); ``key`` is its public key
    (Z85 text) when it runs ``--secure``.
    """

    node: str
    user: str
    mode: str
    address: str
    router: int
    pub: int
    last_seen: datetime
    key: str | None = None
    service: str | None = None  # a repeater's service id, when it is one of several

    def to_json(self) -> dict[str, Any]:
        """The ``--scan --json`` line: DESIGN.md's fields, plus ``key`` for a secure one."""
        line: dict[str, Any] = {
            "node": self.node,
            "user": self.user,
            "mode": self.mode,
            "address": self.address,
            "router": self.router,
            "pub": self.pub,
            "last_seen": self.last_seen.isoformat(timespec="microseconds"),
        }
        if self.key is not None:
            line["key"] = self.key
        if self.service is not None:
            line["service"] = self.service
        return line

    @classmethod
    def from_json(cls, line: dict[str, Any]) -> Sighting:
        return cls(
            line["node"], line["user"], line["mode"], line["address"], int(line["router"]),
            int(line["pub"]), parse_time(line["last_seen"], "last_seen"), line.get("key"),
            line.get("service"),
        )
