"""IRC clients for the ``irc`` bench item (a child process): raw sockets, one selector.

``--clients`` connections to our server's IRC face, each registered with
echo-message and in ``#general``; on "go" each sends ``--count`` PRIVMSG lines
at once (within the IRC face's flood allowance of 100 lines at once, so
nothing is held back or cut off), then reads until every one of its lines came
back as an echo, which the server sends only once the line is stored. Reports
the time from the first line sent to the last echo. Talks JSON lines like
loadgen.py: {"event": "ready"}, waits for {"cmd": "go"}, then {"event": "result"}.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CommandReader, emit  # noqa: E402

WAIT = 60.0


class IRCConnection:
    def __init__(self, port: int, nick: str) -> None:
        self.nick = nick
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.buffer = b""
        self.echoes = 0

    def lines(self) -> list[bytes]:
        data = self.sock.recv(1 << 16)
        if not data:
            raise SystemExit(f"{self.nick}: the server closed the connection")
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\r\n")
        return lines

    def wait_for(self, token: bytes) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if any(token in line for line in self.lines()):
                return
        raise SystemExit(f"{self.nick}: no {token!r} within {WAIT} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--content", type=int, default=40, help="bytes of text a line")
    args = parser.parse_args()
    commands = CommandReader()
    people = []
    for number in range(args.clients):
        person = IRCConnection(args.port, f"irc{number}")
        person.sock.sendall(
            b"CAP REQ :echo-message\r\nNICK %s\r\nUSER b 0 * :bench\r\nCAP END\r\n"
            b"JOIN #general\r\n" % person.nick.encode())
        person.wait_for(b" 366 ")  # in the room
        people.append(person)
    emit(event="ready")
    while (command := commands.next(60)) is not None and command.get("cmd") != "go":
        pass
    text = "x" * max(0, args.content - 12)
    cpu = time.process_time()
    started_at = time.monotonic()
    start = time.perf_counter()
    for person in people:
        lines = b"".join(b"PRIVMSG #general :%d %s\r\n" % (n, text.encode())
                         for n in range(args.count))
        person.sock.sendall(lines)
    selector = selectors.DefaultSelector()
    for person in people:
        person.sock.setblocking(False)
        selector.register(person.sock, selectors.EVENT_READ, person)
    waiting = len(people)
    deadline = time.monotonic() + WAIT
    while waiting and time.monotonic() < deadline:
        for key, _ in selector.select(1.0):
            person = key.data
            mine = b":%s!" % person.nick.encode()  # its own line, echoed
            for line in person.lines():
                if b" PRIVMSG #general :" in line and line.startswith(mine):
                    person.echoes += 1
                    if person.echoes == args.count:
                        waiting -= 1
    seconds = time.perf_counter() - start
    emit(event="result", seconds=seconds, count=sum(p.echoes for p in people),
         cpu=time.process_time() - cpu, started_at=started_at)
    for person in people:
        person.sock.close()


if __name__ == "__main__":
    main()
