"""IRCv3 capability negotiation (CAP LS / LIST / REQ / END) for one client. Pure.

``CAP LS`` or ``CAP REQ`` before registration holds it until ``CAP END``
(``negotiating``); after registration CAP still works and END is ignored. A
REQ is taken whole or refused whole (NAK); ``-cap`` disables. ``CAP LS 302``
(or higher) is remembered: it allows replies over several lines (none of
ours needs it today) and cap values (ours have none).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import SUPPORTED_CAPS

CAP_LINE_BYTES = 400  # caps per CAP line, leaving room for the source and the nick


@dataclass
class CapState:
    supported: tuple[str, ...] = SUPPORTED_CAPS
    enabled: set[str] = field(default_factory=set)
    version: int = 0  # the highest CAP LS version the client named
    negotiating: bool = False

    def has(self, cap: str) -> bool:
        return cap in self.enabled

    def answer(self, params: tuple[str, ...], registered: bool) -> list[tuple[str, ...]]:
        """The parameters (after ``CAP <nick>``) of each reply line to ``CAP <params>``.

        An empty list for END; ``("410", sub)`` asks the caller for ERR_INVALIDCAPCMD
        and ``("461",)`` for ERR_NEEDMOREPARAMS.
        """
        if not params:
            return [("461",)]
        sub = params[0].upper()
        if sub == "LS":
            if len(params) > 1 and params[1].isdigit():
                self.version = max(self.version, min(int(params[1]), 10_000))
            self.negotiating = self.negotiating or not registered
            return self._listing("LS", list(self.supported))
        if sub == "LIST":
            return self._listing("LIST", sorted(self.enabled))
        if sub == "REQ":
            if len(params) < 2:
                return [("461",)]
            self.negotiating = self.negotiating or not registered
            return [self._request(params[1])]
        if sub == "END":
            self.negotiating = False
            return []
        return [("410", params[0])]

    def _request(self, text: str) -> tuple[str, ...]:
        wanted = text.split()
        names = [item[1:] if item.startswith("-") else item for item in wanted]
        if not wanted or any(name not in self.supported for name in names):
            return ("NAK", text.strip())
        for item, name in zip(wanted, names, strict=True):
            if item.startswith("-"):
                self.enabled.discard(name)
            else:
                self.enabled.add(name)
        return ("ACK", " ".join(wanted))

    def _listing(self, sub: str, caps: list[str]) -> list[tuple[str, ...]]:
        """One line, or (CAP 302) several with '*' on all but the last."""
        chunks: list[list[str]] = [[]]
        size = 0
        for cap in caps:
            if chunks[-1] and size + 1 + len(cap) > CAP_LINE_BYTES and self.version >= 302:
                chunks.append([])
                size = 0
            chunks[-1].append(cap)
            size += 1 + len(cap)
        lines: list[tuple[str, ...]] = [(sub, "*", " ".join(chunk)) for chunk in chunks[:-1]]
        lines.append((sub, " ".join(chunks[-1])))
        return lines
