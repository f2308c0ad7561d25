"""The interactive prompt in a real pseudo-terminal: pexpect drives it, pyte draws the screen.

Each test runs ``sh -c 'NODE & wait; stty -a'`` in a fresh terminal, so after
the node has gone the same terminal is asked for its modes: a node that left it
raw shows ``-isig -icanon -echo`` there.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pexpect
import pyte
import pytest
from procs import NodeProcess, free_udp_port

from lab93zmq.io.store import Inbox

pytestmark = pytest.mark.timeout(90)

WAIT = 20.0
ROWS, COLUMNS = 24, 100
# The node runs as a job of a non-interactive shell (so the shell can ask the same
# terminal for its modes afterwards); such a job's stdin would be /dev/null, hence fd 3.
SCRIPT = 'exec 3<&0; "$@" <&3 3<&- & echo "PID=$!"; wait "$!"; echo "EXIT=$?"; stty -a'


class Terminal:
    """One lab93-node in its own pseudo-terminal, with what it drew kept on a pyte screen."""

    def __init__(self, *argv: str) -> None:
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self._stream = pyte.Stream(self.screen)
        self.output = ""
        env = {
            **os.environ,
            "TERM": "xterm",
            # pexpect answers no cursor position requests; without this prompt_toolkit
            # waits for the answer before it draws.
            "PROMPT_TOOLKIT_NO_CPR": "1",
            "PYTHONUNBUFFERED": "1",
        }
        self.child = pexpect.spawn(
            "sh",
            ["-c", SCRIPT, "sh", sys.executable, "-m", "lab93zmq", *argv],
            env=env,
            encoding="utf-8",
            dimensions=(ROWS, COLUMNS),
            timeout=WAIT,
        )
        self.child.logfile_read = self
        self.child.expect(r"PID=(\d+)")
        self.pid = int(self.child.match.group(1))

    # pexpect's logfile_read: everything the terminal shows goes to the screen too.
    def write(self, text: str) -> None:
        self.output += text
        self._stream.feed(text)

    def flush(self) -> None:
        pass

    def expect(self, text: str) -> None:
        self.child.expect_exact(text)

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def wait_screen(self, condition, what: str) -> None:
        """Read output until the drawn screen satisfies ``condition`` (bounded)."""
        deadline = time.monotonic() + WAIT
        while not condition(self.lines()):
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.lines()}"
            try:
                self.child.read_nonblocking(4096, timeout=0.1)
            except pexpect.TIMEOUT:
                pass

    def exit_status_and_modes(self) -> tuple[int, set[str], list[str]]:
        """The node's exit status, the terminal's modes after it, and the screen as it
        was when the node had gone (before ``stty -a`` printed)."""
        self.child.expect(r"EXIT=(\d+)")
        status = int(self.child.match.group(1))
        self.child.expect(pexpect.EOF)
        modes = set(self.child.before.split())
        self.child.close()
        return status, modes, screen_of(self.output[: self.output.index("EXIT=")])

    def close(self) -> None:
        if self.child.isalive():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.child.close(force=True)


@pytest.fixture
def terminals():
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


@pytest.fixture
def node_args(tmp_path):
    beacon = str(free_udp_port())

    def args(user: str) -> list[str]:
        db = str(tmp_path / f"{user}.db")
        return ["-b", "-i", "lo", "--beacon-port", beacon, "-p", "0", "--db", db, "-u", user]

    return args


def screen_of(text: str) -> list[str]:
    """The lines a terminal shows after drawing ``text``, blank ones left out."""
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.Stream(screen).feed(text)
    return [line.rstrip() for line in screen.display if line.strip()]


def assert_no_prompt_after_the_last(lines: list[str], last: str) -> None:
    """The prompt is drawn for the last line typed and never again after it."""
    prompts = [n for n, line in enumerate(lines) if line.startswith("alice>")]
    assert prompts and lines[prompts[-1]] == last.rstrip(), lines
    assert all("alice>" not in line for line in lines[prompts[-1] + 1 :]), lines


def assert_cooked(modes: set[str]) -> None:
    for mode in ("isig", "icanon", "echo"):
        assert mode in modes and f"-{mode}" not in modes, f"{mode}: {sorted(modes)}"


def start_alice(terminals, node_args) -> Terminal:
    alice = Terminal(*node_args("alice"), "--timeout", "60")
    terminals.append(alice)
    alice.expect("Type a message and press Enter")
    alice.expect("alice>")
    return alice


@pytest.mark.parametrize(
    "how, keys, status, exit_text",
    [
        ("/quit", "/quit\r", 0, ""),
        ("Ctrl-D", "\x04", 0, ""),
        ("Ctrl-C", "draft\x03", 130, "interrupted; the line you were typing was not sent: 'draft'"),
        ("SIGTERM", "draft", 143, "terminated; the line you were typing was not sent: 'draft'"),
    ],
)
def test_every_way_out_gives_the_terminal_back(terminals, node_args, how, keys, status, exit_text):
    alice = start_alice(terminals, node_args)
    alice.child.send(keys)
    if how == "SIGTERM":
        alice.wait_screen(lambda lines: any("alice> draft" in line for line in lines), "draft")
        os.kill(alice.pid, signal.SIGTERM)
    got, modes, lines = alice.exit_status_and_modes()
    assert got == status, lines
    assert_cooked(modes)
    # The line as it was when the node left stays on screen; no prompt is drawn after it.
    assert_no_prompt_after_the_last(lines, "alice> " + keys.rstrip("\r\x03\x04"))
    if exit_text:
        assert lines[-1] == f"lab93-node: {exit_text}", lines
    assert not any("Traceback" in line for line in lines)


def test_a_message_arriving_mid_line_keeps_the_line_intact(terminals, node_args, tmp_path):
    alice = start_alice(terminals, node_args)
    alice.child.send("half typ")
    alice.wait_screen(lambda lines: any(line == "alice> half typ" for line in lines), "the draft")
    bob = NodeProcess([*node_args("bob"), "--send", "hello alice"])
    try:
        assert bob.finish() == 0, bob.err
    finally:
        bob.kill()

    def drawn(lines: list[str]) -> bool:
        shown = [line for line in lines if line]
        return any("<bob> hello alice" in line for line in shown[:-1])

    alice.wait_screen(drawn, "bob's message")
    # The message is drawn above the prompt, and the prompt still holds the draft
    # (the notices of bob's coming and going may follow it: wait for the last redraw).
    alice.wait_screen(
        lambda lines: [line for line in lines if line][-1] == "alice> half typ",
        "the draft redrawn under the message",
    )
    alice.child.send("ed line\r/quit\r")
    status, modes, lines = alice.exit_status_and_modes()
    assert status == 0
    assert_cooked(modes)
    assert_no_prompt_after_the_last(lines, "alice> /quit")
    with Inbox(tmp_path / "alice.db") as inbox:
        mine = [m.content for m in inbox.history() if m.author == "alice"]
    assert mine == ["half typed line"]


def test_quit_with_a_message_to_someone_offline_is_immediate_and_keeps_it(
    terminals, node_args, tmp_path
):
    alice = start_alice(terminals, node_args)  # with --timeout 60: waiting would show
    alice.child.send("/msg zed see you tomorrow\r")
    alice.wait_screen(lambda lines: any("/msg zed" in line for line in lines), "the /msg")
    alice.child.send("/quit\r")
    status, modes, lines = alice.exit_status_and_modes()
    assert status == 0, lines
    assert_cooked(modes)
    assert_no_prompt_after_the_last(lines, "alice> /quit")
    text = "\n".join(lines)
    assert "* 1 message waits in the outbox for zed; it goes out when zed is online" in text
    assert "peers left" not in text and "1 messages" not in text
    with Inbox(tmp_path / "alice.db") as inbox:
        kept = [(m.recipient, m.content) for m in inbox.outbox()]
    assert kept == [("zed", "see you tomorrow")]
