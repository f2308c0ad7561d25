"""The interactive prompt in a real pseudo-terminal: pexpect drives it, pyte draws the screen.

What a user sees is checked on the drawn screen (``lines``), escape codes and the
bell on the raw output (``output``).

Each test runs ``sh -c 'NODE & wait; stty -a'`` in a fresh terminal, so after
the node has gone the same terminal is asked for its modes: a node that left it
raw shows ``-isig -icanon -echo`` there.
"""

from __future__ import annotations

import os
import signal
import sys

import pexpect
import pyte
import pytest
from procs import NodeProcess
from ptys import DrawnTerminal

import lab93zmq
from lab93zmq.frontend.style import nick_colour
from lab93zmq.io.store import Inbox

pytestmark = pytest.mark.timeout(90)

WAIT = 20.0
ROWS, COLUMNS = 24, 100
# The node runs as a job of a non-interactive shell (so the shell can ask the same
# terminal for its modes afterwards); such a job's stdin would be /dev/null, hence fd 3.
SCRIPT = 'exec 3<&0; "$@" <&3 3<&- & echo "PID=$!"; wait "$!"; echo "EXIT=$?"; stty -a'


class Terminal(DrawnTerminal):
    """One lab93-node in its own pseudo-terminal, with what it drew kept on a pyte screen."""

    def __init__(self, *argv: str, environ: dict[str, str] | None = None) -> None:
        env = {
            # A colour test decides about NO_COLOR itself, whatever the caller's is.
            **{name: value for name, value in os.environ.items() if name != "NO_COLOR"},
            "TERM": "xterm",
            # pexpect answers no cursor position requests; without this prompt_toolkit
            # waits for the answer before it draws.
            "PROMPT_TOOLKIT_NO_CPR": "1",
            "PYTHONUNBUFFERED": "1",
            **(environ or {}),
        }
        super().__init__("sh", ["-c", SCRIPT, "sh", sys.executable, "-m", "lab93zmq", *argv],
                         env, ROWS, COLUMNS, WAIT)
        self.child.expect(r"PID=(\d+)")
        self.pid = int(self.child.match.group(1))

    def expect(self, text: str) -> None:
        self.child.expect_exact(text)

    def wait_line(self, text: str) -> None:
        """Until a drawn line contains ``text``."""
        self.wait_screen(lambda lines: any(text in line for line in lines), repr(text))

    def wait_prompt(self, typed: str = "") -> None:
        """Until the last drawn line is the prompt holding ``typed`` (the screen's lines
        end where their text does: a space typed last is not seen)."""
        wanted = [(PROMPT + typed).rstrip()]
        self.wait_screen(lambda lines: [line for line in lines if line][-1:] == wanted,
                         f"the prompt with {typed!r}")

    def wait_prompt_of(self, prompt: str) -> None:
        """Until the last drawn line is ``prompt`` (another user's, or room's)."""
        self.wait_screen(lambda lines: [line for line in lines if line][-1:] == [prompt.rstrip()],
                         repr(prompt))

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
def processes():
    started: list[NodeProcess] = []
    yield started
    for process in started:
        process.kill()


@pytest.fixture
def state_home(tmp_path):
    """The prompt's input history goes here, never to the real ~/.local/state."""
    return tmp_path / "state"


@pytest.fixture
def node_args(tmp_path, beacon_port):
    beacon = str(beacon_port)

    def args(user: str) -> list[str]:
        db = str(tmp_path / f"{user}.db")
        return ["-b", "-i", "lo", "--beacon-port", beacon, "-p", "0", "--db", db, "-u", user]

    return args


PROMPT = "alice #general> "


def screen_of(text: str) -> list[str]:
    """The lines a terminal shows after drawing ``text``, blank ones left out."""
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.Stream(screen).feed(text)
    return [line.rstrip() for line in screen.display if line.strip()]


def assert_no_prompt_after(lines: list[str], last: str | None) -> None:
    """The prompt was left holding ``last`` and none was drawn after it; ``last`` None:
    the line was sent (taken off the screen) and no prompt is left at all."""
    prompts = [n for n, line in enumerate(lines) if line.startswith(PROMPT.rstrip())]
    if last is None:
        assert not prompts, lines
        return
    assert prompts and lines[prompts[-1]] == last.rstrip(), lines
    assert all(PROMPT.rstrip() not in line for line in lines[prompts[-1] + 1 :]), lines


def assert_cooked(modes: set[str]) -> None:
    for mode in ("isig", "icanon", "echo"):
        assert mode in modes and f"-{mode}" not in modes, f"{mode}: {sorted(modes)}"


def start_alice(terminals, node_args, state_home, *more: str, environ=None) -> Terminal:
    alice = Terminal(*node_args("alice"), "--timeout", "60", *more,
                     environ={"XDG_STATE_HOME": str(state_home), **(environ or {})})
    terminals.append(alice)
    alice.expect("Type a message and press Enter")
    alice.expect(PROMPT.rstrip())
    return alice


def send_as(processes, args: list[str], text: str) -> None:
    """Another user sends one line and is gone (a send-only run: no join, no leave)."""
    other = NodeProcess([*args, "--send", text])
    processes.append(other)
    assert other.finish() == 0, other.err


@pytest.mark.parametrize(
    "how, keys, status, left, exit_text",
    [
        ("/quit", "/quit\r", 0, None, ""),
        ("Ctrl-D", "\x04", 0, "", ""),
        ("Ctrl-C", "draft\x03", 130, "draft",
         "interrupted; the line you were typing was not sent: 'draft'"),
        ("SIGTERM", "draft", 143, "draft",
         "terminated; the line you were typing was not sent: 'draft'"),
    ],
)
def test_every_way_out_gives_the_terminal_back(
    terminals, node_args, state_home, how, keys, status, left, exit_text
):
    alice = start_alice(terminals, node_args, state_home)
    alice.child.send(keys)
    if how == "SIGTERM":
        alice.wait_prompt("draft")
        os.kill(alice.pid, signal.SIGTERM)
    got, modes, lines = alice.exit_status_and_modes()
    assert got == status, lines
    assert_cooked(modes)
    # A line being typed stays on screen as it was; a line sent (/quit) is taken off
    # the prompt; no prompt is drawn after either.
    assert_no_prompt_after(lines, None if left is None else PROMPT + left)
    if exit_text:
        assert lines[-1] == f"lab93-node: {exit_text}", lines
    assert not any("Traceback" in line for line in lines)


def test_a_message_arriving_mid_line_keeps_the_line_intact(
    terminals, processes, node_args, state_home, tmp_path
):
    alice = start_alice(terminals, node_args, state_home)
    alice.child.send("half typ")
    alice.wait_prompt("half typ")
    send_as(processes, node_args("bob"), "hello alice")

    def drawn(lines: list[str]) -> bool:
        shown = [line for line in lines if line]
        return any("<bob> hello alice" in line for line in shown[:-1])

    alice.wait_screen(drawn, "bob's message")
    # The message is drawn above the prompt, and the prompt still holds the draft
    # (the notices of bob's coming and going may follow it: wait for the last redraw).
    alice.wait_prompt("half typ")
    alice.child.send("ed line\r")
    # The line sent is shown like everyone's: a time, the name, a mark (nobody is
    # there to take it any more: queued).
    alice.wait_screen(lambda lines: any(
        line.endswith("<alice> half typed line (queued)") and line.startswith("[")
        for line in lines), "alice's own line")
    alice.child.send("/quit\r")
    status, modes, lines = alice.exit_status_and_modes()
    assert status == 0
    assert_cooked(modes)
    assert_no_prompt_after(lines, None)
    with Inbox(tmp_path / "alice.db") as inbox:
        mine = [m.content for m in inbox.history() if m.author == "alice"]
    assert mine == ["half typed line"]


def test_quit_with_a_message_to_someone_offline_is_immediate_and_says_it_once(
    terminals, node_args, state_home, tmp_path
):
    alice = start_alice(terminals, node_args, state_home)  # with --timeout 60: waiting would show
    alice.child.send("/msg zed see you tomorrow\r")
    alice.wait_line("<alice -> zed> see you tomorrow (queued)")  # /msg echoes what was sent
    alice.wait_line("* zed is not online; the message waits in the outbox")
    alice.child.send("/quit\r")
    status, modes, lines = alice.exit_status_and_modes()
    assert status == 0, lines
    assert_cooked(modes)
    assert_no_prompt_after(lines, None)
    text = "\n".join(lines)
    # Said once: when it was sent, not again next to the /quit.
    assert text.count("waits in the outbox") == 1, lines
    assert "peers left" not in text and "1 messages" not in text
    with Inbox(tmp_path / "alice.db") as inbox:
        kept = [(m.recipient, m.content) for m in inbox.outbox()]
    assert kept == [("zed", "see you tomorrow")]


# -- what an IRC or LAN-messenger user expects ---------------------------------------


def test_nicks_are_coloured_and_a_mention_highlights_and_rings_the_bell(
    terminals, processes, node_args, state_home
):
    alice = start_alice(terminals, node_args, state_home)
    send_as(processes, node_args("bob"), "nothing for anyone")
    alice.wait_line("<bob> nothing for anyone")
    assert "\a" not in alice.output  # not named: no bell
    colour = f"\x1b[{nick_colour('bob')}mbob\x1b[0m"
    assert f"<{colour}> nothing for anyone" in alice.output
    send_as(processes, node_args("bob"), "Alice: lunch?")
    alice.wait_line("<bob> Alice: lunch?")
    assert alice.output.count("\a") == 1
    assert "\x1b[1;30;43mAlice: lunch?\x1b[0m" in alice.output  # highlighted


def test_no_color_means_no_colour_and_a_mention_still_rings(
    terminals, processes, node_args, state_home
):
    alice = start_alice(terminals, node_args, state_home, environ={"NO_COLOR": "1"})
    send_as(processes, node_args("bob"), "ping alice")
    alice.wait_line("<bob> ping alice")
    line = next(chunk for chunk in alice.output.split("\n") if "ping alice" in chunk)
    assert "<bob> ping alice" in line and "\x1b[3" not in line and "\x1b[9" not in line
    assert "\a" in line  # the bell is not a colour


def test_tab_completes_commands_nicks_and_rooms(terminals, processes, node_args, state_home):
    alice = start_alice(terminals, node_args, state_home)
    send_as(processes, node_args("bob"), "hi")  # alice has heard of bob now
    alice.wait_line("<bob> hi")
    alice.child.send("/jo\t")
    alice.wait_prompt("/join ")
    alice.child.send("#gen\t")
    alice.wait_prompt("/join #general ")
    alice.child.send("\x15/msg b\t")  # Ctrl-U: a new line
    alice.wait_prompt("/msg bob ")
    alice.child.send("\x15b\t")
    alice.wait_prompt("bob: ")


def test_input_history_is_kept_across_runs(terminals, node_args, state_home):
    first = start_alice(terminals, node_args, state_home)
    first.child.send("a line from yesterday\r/quit\r")
    assert first.exit_status_and_modes()[0] == 0
    history = state_home / "lab93" / "history"
    assert "a line from yesterday" in history.read_text()
    assert os.stat(history.parent).st_mode & 0o777 == 0o700
    assert os.stat(history).st_mode & 0o777 == 0o600
    again = start_alice(terminals, node_args, state_home)
    again.child.send("\x1b[A")  # Up: the last line, /quit
    again.wait_prompt("/quit")
    again.child.send("\x1b[A")
    again.wait_prompt("a line from yesterday")


def test_pasted_lines_are_sent_one_by_one_in_order(terminals, node_args, state_home, tmp_path):
    alice = start_alice(terminals, node_args, state_home)
    # A terminal with bracketed paste gives the lines in one piece; one without,
    # each with its own Enter. Both are lines, sent in order.
    alice.child.send("\x1b[200~one\ntwo\nthree\x1b[201~\r")
    alice.child.send("four\rfive\r")
    alice.wait_line("<alice> five")
    alice.child.send("/quit\r")
    assert alice.exit_status_and_modes()[0] == 0
    with Inbox(tmp_path / "alice.db") as inbox:
        mine = [m.content for m in inbox.history() if m.author == "alice"]
    assert mine == ["one", "two", "three", "four", "five"]


@pytest.fixture
def repeater(processes, tmp_path, beacon_port):
    """A repeater server on loopback; ``client(user)`` are a client's arguments."""
    beacon = str(beacon_port)
    net = ["-i", "lo", "--beacon-port", beacon]
    server = NodeProcess(["-r", "-s", "-p", "0", *net, "--db", str(tmp_path / "server.db")])
    processes.append(server)
    server.wait_err("repeater at tcp://127.0.0.1:")

    def client(user: str, db: str | None = None) -> list[str]:
        return ["-r", "-c", *net, "--db", str(tmp_path / f"{db or user}.db"), "-u", user]

    return client


def test_rooms_at_the_prompt(terminals, processes, repeater, state_home):
    bob = NodeProcess([*repeater("bob"), "--room", "ops", "--listen"])
    processes.append(bob)
    bob.wait_err("* connected to repeater")
    alice = Terminal(*repeater("alice"), environ={"XDG_STATE_HOME": str(state_home)})
    terminals.append(alice)
    alice.wait_prompt()
    alice.wait_line("* connected to repeater")
    alice.child.send("hello general\r")
    # A repeater stores it at once: the line is drawn again in place, delivered.
    alice.wait_screen(lambda lines: any(line.endswith("<alice> hello general \u2713")
                                        for line in lines), "the line marked delivered")
    assert not any("(queued)" in line or "delivered:" in line for line in alice.lines())
    alice.child.send("/join #Ops\r")
    alice.wait_line("* you joined #ops; you talk there now")
    alice.wait_line("* #ops has no topic yet; /topic TEXT sets one")
    alice.wait_screen(lambda lines: [line for line in lines if line][-1] == "alice #ops>",
                      "the prompt naming #ops")
    send_as(processes, [*repeater("bob", "bob-send"), "--room", "ops"], "deploy at five")
    # In two rooms, each line names its room.
    alice.wait_screen(lambda lines: any(line.startswith("[") and line.endswith(
        "] #ops <bob> deploy at five") for line in lines), "bob's line in #ops")
    alice.child.send("/topic deploys\r")
    alice.wait_line("* alice set the topic of #ops: deploys")
    alice.child.send("/who\r")
    alice.wait_line("in #ops: alice, bob")
    alice.child.send("/rooms\r")
    alice.wait_line("> #ops")
    alice.wait_line("* #general")
    alice.child.send("/join Not A Room\r")
    alice.wait_line("/join: takes one room; usage: /join ROOM")
    alice.child.send("/join #bad!\r")
    alice.wait_line("'#bad!' is not a room name")
    bob.signal(signal.SIGTERM)
    alice.wait_screen(lambda lines: any(line.startswith("[") and line.endswith("* bob left #ops")
                                        for line in lines), "bob leaving, with a time")
    alice.child.send("/part\r")
    alice.wait_line("* you left #ops; you talk in #general now")
    alice.wait_prompt()
    alice.child.send("/quit\r")
    status, modes, lines = alice.exit_status_and_modes()
    assert status == 0, lines
    assert_cooked(modes)


def test_a_repeater_message_to_nobody_online_says_where_it_waits(terminals, repeater, state_home):
    alice = Terminal(*repeater("alice"), environ={"XDG_STATE_HOME": str(state_home)})
    terminals.append(alice)
    alice.wait_line("* connected to repeater")
    alice.child.send("/msg zed are you there?\r")
    alice.wait_line("<alice -> zed> are you there? \u2713")  # the repeater has it
    alice.wait_line("* zed is not online; the repeater keeps the message until zed comes")
    alice.child.send("/clear\r")
    alice.wait_screen(lambda lines: lines[0] == PROMPT.rstrip() and not any(lines[1:]),
                      "an empty screen under the prompt")
    alice.child.send("/quit\r")
    status, modes, lines = alice.exit_status_and_modes()
    assert status == 0 and "waits" not in "\n".join(lines)  # nothing left in the outbox


def test_away_shows_in_who_and_is_told_once_to_whoever_sends_a_direct_message(
        terminals, repeater, state_home):
    zed = Terminal(*repeater("zed"), environ={"XDG_STATE_HOME": str(state_home / "zed")})
    terminals.append(zed)
    zed.wait_line("* connected to repeater")
    zed.child.send("/away out to lunch\r")
    zed.wait_line("* you are away: out to lunch; /away alone when you are back")
    zed.child.send("/who\r")  # after its AWAY on one connection: the server has it
    zed.wait_line("in #general: zed (away: out to lunch)")
    alice = Terminal(*repeater("alice"), environ={"XDG_STATE_HOME": str(state_home)})
    terminals.append(alice)
    alice.wait_line("* connected to repeater")
    alice.child.send("/who\r")
    alice.wait_line("in #general: alice, zed (away: out to lunch)")
    alice.child.send("/msg zed are you there?\r")
    alice.wait_line("<alice -> zed> are you there?")
    alice.wait_line("* zed is away: out to lunch")
    alice.child.send("/msg zed still there?\r")
    alice.wait_line("<alice -> zed> still there?")
    alice.child.send("/who\r")  # answered after the second message's own WHO
    alice.wait_screen(lambda lines: sum("in #general: alice, zed" in line for line in lines) == 2,
                      "the second /who")
    assert sum("zed is away" in line for line in alice.lines()) == 1  # once per text
    zed.child.send("/away\r")
    zed.wait_line("* you are back")
    zed.child.send("/who\r")
    zed.wait_line("in #general: alice, zed")
    for terminal in (alice, zed):
        terminal.child.send("/quit\r")
        status, modes, lines = terminal.exit_status_and_modes()
        assert status == 0, lines
        assert_cooked(modes)


def test_a_repeater_join_shows_the_rooms_topic_before_its_backlog(
    terminals, server, state_home, tmp_path
):
    """bob (-r -c --room ops) set the topic and talked; alice's /join #ops says the topic
    the server knows, never "has no topic yet", and its backlog comes after it."""
    with lab93zmq.Node.repeater(address="127.0.0.1", port=server.router_port, user="bob",
                                interfaces=["lo"], beacon_port=server.config.beacon_port,
                                db=tmp_path / "bob.db", rooms=["ops"]) as bob:
        bob.set_topic("deploys on friday")
        while not isinstance(bob.next_event(timeout=WAIT), lab93zmq.Topic):
            pass
        bob.send("friday it is")
        assert bob.flush(timeout=WAIT) == []
    alice = Terminal(
        "-r", "-c", "-a", "127.0.0.1", "-p", str(server.router_port), "-i", "lo",
        "--beacon-port", str(server.config.beacon_port), "--db", str(tmp_path / "alice.db"),
        "-u", "alice", "--timeout", "60", environ={"XDG_STATE_HOME": str(state_home)})
    terminals.append(alice)
    alice.expect(PROMPT.rstrip())
    alice.child.send("/join #ops\r")
    alice.wait_line("<bob> friday it is")
    alice.wait_prompt_of("alice #ops> ")
    lines = [line for line in alice.lines() if line]
    assert not any("has no topic yet" in line for line in lines), lines
    [said] = [n for n, line in enumerate(lines) if "* topic of #ops: deploys on friday" in line]
    assert said < [n for n, line in enumerate(lines) if "friday it is" in line][0], lines
