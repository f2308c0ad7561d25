"""The interactive prompt: a prompt_toolkit line editor on the asyncio API.

The prompt runs in the main thread under asyncio, with a ``lab93zmq.aio.Node``
on the same loop, so it owns the terminal from start to end: after /quit no
new prompt is drawn, and Ctrl-C, SIGTERM or the node's fatal error end the
prompt itself, which puts the terminal back as it was. What the node reports
is printed above the prompt, keeping what was typed so far.

The prompt names the current room (``alice #ops> ``); Tab completes commands,
nicks and rooms (complete.py); the input history is kept across runs in
``$XDG_STATE_HOME/lab93/history``. A line sent is taken off the prompt and
shown as a message like everyone's (chat.py); several lines pasted at once are
sent one by one, in order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ..aio import Node
from ..core import commands
from ..core.errors import ConfigError, Lab93Error, MessageError
from ..core.events import Status
from ..core.message import ACTION
from ..core.rooms import shown
from ..io.paths import prepare_parent, state_dir
from . import actions
from .chat import ChatRun
from .options import Interrupted, Terminated
from .style import visible

log = logging.getLogger(__name__)

GREETING = "Type a message and press Enter; /help lists the commands."
HISTORY_FILENAME = "history"


def prompt_text(user: str, rooms: list[str]) -> str:
    """``alice #ops> ``, or ``alice> `` in no room."""
    return f"{user} {shown(rooms[0])}> " if rooms else f"{user}> "


async def run_prompt(node: Node, run: ChatRun, prompt: str | None = None) -> None:
    """Read lines at the prompt and act on each until /quit, Ctrl-D, Ctrl-C or SIGTERM.
    ``prompt`` None: the user and the current room, as it changes."""
    from prompt_toolkit import PromptSession

    from .complete import ChatCompleter

    env = run.env
    session: PromptSession[str] = PromptSession(
        input=env.prompt_input,
        output=env.prompt_output,
        history=_history(run),
        completer=ChatCompleter(lambda: run.users, lambda: run.rooms | set(node.rooms)),
        complete_while_typing=False,
        key_bindings=_bindings(),
    )
    run.printer.answer(GREETING)
    terminal = env.stdout, env.stderr
    # Everything the front end prints while the prompt runs goes above it.
    screen = Screen(session.app, bool(env.stdout_isatty))
    env.stdout = AbovePrompt(screen, terminal[0])
    env.stderr = AbovePrompt(screen, terminal[1])
    message: Any = prompt if prompt is not None else (
        lambda: prompt_text(node.user, node.rooms))
    try:
        await _prompt_loop(node, run, session, message)
    finally:
        for stream in (env.stdout, env.stderr):
            stream.flush()
        env.stdout, env.stderr = terminal


def _history(run: ChatRun) -> Any:
    """The input history file (mode 0600 in a 0700 directory); kept in memory only,
    said once, when it cannot be."""
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    path = state_dir(run.env.environ) / HISTORY_FILENAME
    try:
        prepare_parent(path, "state")
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    except (ConfigError, OSError) as error:
        why = error.strerror if isinstance(error, OSError) else str(error)
        run.printer.info(f"the input history is not kept across runs ({path}: {why})")
        return InMemoryHistory()
    return FileHistory(str(Path(path)))


def _bindings() -> Any:
    """Enter takes the sent line off the screen (it comes back as a message, with
    its time); Ctrl-C and Ctrl-D leave the line where it was."""
    from prompt_toolkit.key_binding import KeyBindings

    bindings = KeyBindings()

    @bindings.add("enter")
    def _accept(event: Any) -> None:
        event.app.erase_when_done = True
        event.current_buffer.validate_and_handle()

    return bindings


async def _prompt_loop(node: Node, run: ChatRun, session: Any, prompt: Any) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    reasons: list[BaseException] = []

    def end(reason: BaseException) -> None:
        if not reasons:
            reasons.append(reason)
            task.cancel()

    async def show_all() -> None:
        try:
            while (item := await node.poll()) is not None:
                run.show(item)
                if isinstance(item, Status) and item.connected:
                    learners.append(loop.create_task(_learn_names(node, run)))
        except Lab93Error as error:
            end(error)

    learners = [loop.create_task(_learn_names(node, run))]  # again when (re)connected
    shower = loop.create_task(show_all())
    on_sigterm = _catch_sigterm(loop, lambda: end(Terminated(session.default_buffer.text)))
    try:
        while True:
            session.app.erase_when_done = False
            try:
                text = await session.prompt_async(prompt)
            except EOFError:  # Ctrl-D on an empty line
                return
            except KeyboardInterrupt:
                raise Interrupted(session.default_buffer.text) from None
            # A paste of several lines is several lines, sent one by one, in order.
            for line in text.splitlines() or [""]:
                if not await _act(node, run, line):
                    return
    except asyncio.CancelledError:
        if reasons:
            raise reasons[0] from None
        raise
    finally:
        shower.cancel()
        for learner in learners:
            learner.cancel()
        on_sigterm()


async def _learn_names(node: Node, run: ChatRun) -> None:
    """Who is out there, for Tab, without a word on the screen. (Rooms are learned
    from what arrives and from /rooms.)"""
    try:
        run.users.update(await node.who(None))
    except Lab93Error as error:
        log.info("could not learn the names for completion: %s", error)


async def _act(node: Node, run: ChatRun, line: str) -> bool:
    """Carry out one typed line; False when the user asked to quit."""
    action = run.parse(line)
    if isinstance(action, commands.Quit):
        return False
    if isinstance(action, commands.Say):
        try:
            await _say(node, run, action)
        except Lab93Error as error:
            run.failed(error)
    else:
        await actions.perform_async(node, run, action)
    return True


async def _say(node: Node, run: ChatRun, say: commands.Say) -> None:
    hint = actions.no_room_hint(node, say)
    if hint is not None:
        run.printer.note(hint)
        return
    try:
        draft = node.draft(say.text, subject=say.subject, to=say.to, action=say.kind == ACTION)
    except MessageError as error:
        run.invalid(say, str(error), None)
        return
    run.will_send(draft.id, say, None)
    [stored] = await node.post([draft])
    try:
        message = await stored  # in the inbox (a refusal is shown as the node reports it)
    except Lab93Error:
        return
    run.posted(message)
    if message.recipient is not None:
        run.check_addressee(message, await node.who_away())


class Screen:
    """The terminal above the prompt, shared by stdout and stderr: which line was
    written last, so that a line of ours can be drawn again in place while it is
    still the last one (its mark turns from queued to delivered)."""

    def __init__(self, app: Any, terminal: bool) -> None:
        self.app = app
        self.terminal = terminal  # escape codes may be written (a real terminal)
        self.last_key: str | None = None
        self.last_rows = 0

    def rows(self, text: str) -> int:
        """How many terminal rows ``text`` (one line, maybe wrapped) takes."""
        from prompt_toolkit.utils import get_cwidth

        columns = max(self.columns(), 1)
        return sum(max(1, -(-get_cwidth(visible(part)) // columns))
                   for part in text.rstrip("\n").split("\n"))

    def columns(self) -> int:
        try:
            return int(self.app.output.get_size().columns)
        except Exception:  # no size known (not a terminal): nothing is redrawn anyway
            return 80

    def screen_rows(self) -> int:
        try:
            return int(self.app.output.get_size().rows)
        except Exception:
            return 0

    def emit(self, stream: IO[str], text: str, up: int = 0) -> None:
        """Erase the prompt, write (``up`` rows higher, over what was there), and let
        the prompt redraw itself below, with what was typed so far."""
        running = self.app.is_running
        if running:
            self.app.renderer.erase()
        if up:
            stream.write(f"\x1b[{up}A\r\x1b[J")
        stream.write(text)
        stream.flush()
        if running:
            self.app.invalidate()


class AbovePrompt:
    """A text stream that prints complete lines above a running prompt.

    Written to only from the prompt's own thread (its asyncio loop), so each
    line is written at once, in order: erase the prompt, write, and let the
    prompt redraw itself below, with what was typed so far. (prompt_toolkit's
    patch_stdout hands lines to a thread of its own instead, which can lose
    the last ones when the prompt ends right after them.)
    """

    def __init__(self, screen: Screen, stream: IO[str]) -> None:
        self._screen = screen
        self._stream = stream
        self._partial = ""

    @property
    def encoding(self) -> str | None:
        return getattr(self._stream, "encoding", None)

    def write(self, text: str) -> int:
        self._partial += text
        if "\n" in self._partial:
            lines, _, self._partial = self._partial.rpartition("\n")
            self._screen.emit(self._stream, lines + "\n")
            self._screen.last_key = None
        return len(text)

    def write_keyed(self, text: str, key: str) -> None:
        """A line that ``rewrite`` may draw again while it is the last one."""
        self.write(text)
        self._screen.last_key = key
        self._screen.last_rows = self._screen.rows(text)

    def rewrite(self, key: str, text: str) -> bool:
        screen = self._screen
        rows = screen.last_rows
        if not screen.terminal or screen.last_key != key or rows >= screen.screen_rows() - 1:
            return False
        screen.emit(self._stream, text + "\n", up=rows)
        screen.last_rows = screen.rows(text)
        return True

    def clear(self) -> None:
        """Empty the screen; the prompt is drawn again at its top."""
        if self._screen.terminal:
            self._screen.emit(self._stream, "\x1b[H\x1b[2J")
            self._screen.last_key = None

    def flush(self) -> None:
        if not self._screen.app.is_running and self._partial:
            text, self._partial = self._partial, ""
            self._screen.emit(self._stream, text)


def _catch_sigterm(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]
                   ) -> Callable[[], None]:
    """While the prompt runs, SIGTERM ends it through the loop (so the terminal is
    restored); returns the function that puts the previous handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    loop.add_signal_handler(signal.SIGTERM, callback)

    def restore() -> None:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, previous)

    return restore
