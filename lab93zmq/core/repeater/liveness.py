"""Is the client's server still there? Pure: heartbeats and silence, by ``now``.

While saying HELLO the client waits ``dead_after`` seconds for WELCOME. Once
welcomed it PINGs every ``beat`` seconds and counts the server gone when
nothing came on its connection, or on its room feed (a TICK comes every
heartbeat for each room it is in; ``feed`` False: it is in none), for
``dead`` seconds. The WELCOME tells the server's heartbeat
and timeout; the client pings well within the timeout and allows three beats.
"""

from __future__ import annotations

from dataclasses import dataclass

DEAD_AFTER = 3.0  # a client gives up on a silent server after this long
MAX_SERVER_INTERVAL = 86_400.0  # seconds: the longest heartbeat or timeout a WELCOME may set


@dataclass
class Liveness:
    """The client's timers for one server."""

    heartbeat: float
    dead_after: float
    hello_until: float = 0.0  # saying HELLO: give up then
    last_heard: float = 0.0  # the last command on the connection
    last_tick: float = 0.0  # the last command on the room feed
    next_ping: float = 0.0
    beat: float = 0.0  # PING interval and liveness bound, as agreed in WELCOME
    dead: float = 0.0
    feed: bool = True  # the room feed is watched (the client is in a room, and listens)

    def __post_init__(self) -> None:
        self.beat, self.dead = self.heartbeat, self.dead_after

    def hello(self, now: float) -> None:
        self.hello_until = now + self.dead_after

    def agree(self, header: dict, now: float) -> None:
        """Welcomed with this header: ping well within its timeout, allow three of its
        beats. A server's word is taken within reason: a day at most (beyond a float,
        the arithmetic on it would raise)."""
        beat, timeout = header.get("heartbeat"), header.get("timeout")
        self.beat, self.dead = self.heartbeat, self.dead_after
        if isinstance(timeout, (int, float)) and 0 < timeout <= MAX_SERVER_INTERVAL:
            self.beat = min(self.beat, timeout / 3)
        if isinstance(beat, (int, float)) and 0 < beat <= MAX_SERVER_INTERVAL:
            self.dead = max(self.dead, 3 * beat)
        self.last_tick = self.last_heard = now
        self.next_ping = now + self.beat

    def ping_due(self, now: float) -> bool:
        """True when a PING should go out now (and then the next is scheduled)."""
        if now < self.next_ping:
            return False
        self.next_ping = now + self.beat
        return True

    def watch_feed(self, watched: bool, now: float) -> None:
        """Watch the room feed from ``now`` on (a first room joined), or no longer."""
        if watched and not self.feed:
            self.last_tick = now
        self.feed = watched

    def feed_silent(self, now: float) -> bool:
        return self.feed and now >= self.last_tick + self.dead

    def deadlines(self) -> list[float]:
        """When, once welcomed, a PING is due or silence would count."""
        deadlines = [self.next_ping, self.last_heard + self.dead]
        if self.feed:
            deadlines.append(self.last_tick + self.dead)
        return deadlines
