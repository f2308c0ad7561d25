"""The IRC face's settings and limits, and the ISUPPORT (005) tokens they make. Pure.

Every number a client is told in 005 comes from here or from ``names``, so
what is advertised is what the machine enforces.
"""

from __future__ import annotations

from dataclasses import dataclass

from .names import MAX_CHANNEL_CHARS, MAX_NICK_CHARS

# CAP names (docs/IRC.rst, "Capabilities").
SUPPORTED_CAPS = ("batch", "draft/chathistory", "echo-message", "message-tags", "server-time")


@dataclass(frozen=True)
class IRCConfig:
    """What one IRC listener is; the defaults suit a LAN.

    ``password``: when set, a client must send it with PASS before it is let in.
    ``motd``: the lines of the message of the day (none: 422).
    Times are in seconds of the owner's monotonic clock.
    """

    server_name: str = "lab93.irc"
    network: str = "lab93"
    version: str = "lab93zmq"
    created: str = "at start-up"
    user_host: str = "lab93"  # the host every user's source shows (no addresses leak)
    password: str | None = None
    motd: tuple[str, ...] = ()
    # Limits.
    max_channels: int = 50  # CHANLIMIT
    topic_bytes: int = 300  # TOPICLEN: a longer topic is cut (at a character)
    away_bytes: int = 200  # AWAYLEN
    history_limit: int = 100  # CHATHISTORY: the most messages one request returns
    max_targets: int = 4  # TARGMAX for PRIVMSG and NOTICE
    # A client may send ``flood_burst`` lines at once, then ``flood_rate`` a second;
    # past that it is told ERROR and closed.
    flood_rate: float = 25.0
    flood_burst: float = 100.0
    # Liveness: PING a client silent this long, close it when it stays silent as long again.
    ping_interval: float = 120.0
    ping_timeout: float = 60.0
    registration_timeout: float = 60.0
    # Lines a client sends while its registration waits on the service.
    max_pending_lines: int = 100

    def __post_init__(self) -> None:
        for field in ("server_name", "network", "user_host"):
            value = getattr(self, field)
            if not value or any(ch in value for ch in " ,!@:\r\n\x00"):
                raise ValueError(f"{field} must be one word, without , ! @ or :")
        if " " in self.version or not self.version:
            raise ValueError("version must be one word")
        for text in (self.created, self.version, *self.motd):
            if "\x00" in text:
                raise ValueError("the server's texts must not hold NUL")
        if self.password is not None and not self.password:
            raise ValueError("an empty password: use None for none")
        for field in ("max_channels", "history_limit", "max_targets", "max_pending_lines"):
            if type(getattr(self, field)) is not int or getattr(self, field) < 1:
                raise ValueError(f"{field} must be a whole number from 1 up")
        if not 1 <= self.topic_bytes <= 390 or not 1 <= self.away_bytes <= 390:
            raise ValueError("topic_bytes and away_bytes must fit a line (1 to 390)")
        if not (self.flood_rate > 0 and self.flood_burst >= 1):
            raise ValueError("the flood limit needs a positive rate and a burst of 1 or more")
        if not (self.ping_interval > 0 and self.ping_timeout > 0 and self.registration_timeout > 0):
            raise ValueError("the liveness times must be positive")

    def isupport(self) -> list[str]:
        """The 005 tokens, in the order they are sent."""
        return [
            f"AWAYLEN={self.away_bytes}",
            "CASEMAPPING=ascii",
            f"CHANLIMIT=#:{self.max_channels}",
            "CHANMODES=,,,n",
            f"CHANNELLEN={MAX_CHANNEL_CHARS}",
            "CHANTYPES=#",
            f"CHATHISTORY={self.history_limit}",
            "CLIENTTAGDENY=*",
            "MSGREFTYPES=msgid,timestamp",
            f"NETWORK={self.network}",
            f"NICKLEN={MAX_NICK_CHARS}",
            "PREFIX=",
            f"TARGMAX=PRIVMSG:{self.max_targets},NOTICE:{self.max_targets},WHOIS:1",
            f"TOPICLEN={self.topic_bytes}",
            "UTF8ONLY",
        ]
