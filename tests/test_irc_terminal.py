"""A real terminal IRC client on the IRC face: irssi (Debian's package) in a pseudo-terminal.

pexpect drives it, pyte draws its screen, a lab93 client talks to it through a
real server on loopback: connect, join, send, receive, quit.
"""

from __future__ import annotations

import os
import shutil

import pexpect
import pytest
from ptys import DrawnTerminal

import lab93zmq

pytestmark = pytest.mark.timeout(90)

WAIT = 20.0
ROWS, COLUMNS = 30, 120
IRSSI = shutil.which("irssi")


class Screen(DrawnTerminal):
    """irssi in its own pseudo-terminal, what it drew kept on a pyte screen."""

    def __init__(self, argv: list[str]) -> None:
        env = {**os.environ, "TERM": "xterm", "LANG": "C.UTF-8"}
        super().__init__(argv[0], argv[1:], env, ROWS, COLUMNS, WAIT)

    def type(self, line: str) -> None:
        self.child.send(line + "\r")

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close()


@pytest.mark.skipif(IRSSI is None, reason="irssi is not installed (apt-get install irssi)")
def test_irssi_connects_joins_sends_and_receives(tmp_path, beacon_port):
    with lab93zmq.Server(address="127.0.0.1", port=0, interfaces=["lo"],
                         beacon_port=beacon_port, db=tmp_path / "server.db",
                         irc_port=0) as server, \
            lab93zmq.Node.repeater(address="127.0.0.1", port=server.router_port, user="alice",
                                   interfaces=["lo"], beacon_port=beacon_port,
                                   db=tmp_path / "alice.db", rooms=["ops"]) as alice:
        home = tmp_path / "irssi"
        home.mkdir()
        irssi = Screen([IRSSI, f"--home={home}", "--nick=erin", "--noconnect"])
        try:
            irssi.wait_screen(lambda lines: any("Irssi" in line for line in lines), "irssi")
            irssi.type(f"/connect 127.0.0.1 {server.irc_port}")
            irssi.wait_screen(lambda lines: any("Welcome to the lab93 Network" in line
                                             for line in lines), "the welcome")
            irssi.type("/join #ops")
            irssi.wait_screen(lambda lines: any("erin" in line and "has joined #ops" in line
                                             for line in lines), "the join")
            assert "erin" in alice.who("ops")
            irssi.type("hello from irssi")
            message = alice.receive(timeout=WAIT)
            assert message is not None
            assert (message.sender, message.room, message.content) == (
                "erin", "ops", "hello from irssi")
            alice.send("hi erin", room="ops")
            irssi.wait_screen(lambda lines: any("alice" in line and "hi erin" in line
                                             for line in lines), "alice's message")
            irssi.type("/quit see you")
            irssi.child.expect(pexpect.EOF)
        finally:
            irssi.close()
