"""The interactive prompt: a prompt_toolkit line editor on the asyncio API.

The prompt runs in the main thread under asyncio, with a ``lab93zmq.aio.Node``
on the same loop, so it owns the terminal from start to end: after /quit no
new prompt is drawn, and Ctrl-C, SIGTERM or the node's fatal error end the
prompt itself, which puts the terminal back as it was. What the node reports
is printed above the prompt, keeping what was typed so far.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from typing import IO, Any

from ..aio import Node
from ..core import commands
from ..core.errors import Lab93Error, MessageError
from .chat import ChatRun
from .options import Interrupted, Terminated

GREETING = "Type a message and press Enter; /help lists the commands."


async def run_prompt(node: Node, run: ChatRun, prompt: str) -> None:
    """Read lines at the prompt and act on each until /quit, Ctrl-D, Ctrl-C or SIGTERM."""
    from prompt_toolkit import PromptSession

    env = run.env
    session: PromptSession[str] = PromptSession(input=env.prompt_input, output=env.prompt_output)
    run.printer.answer(GREETING)
    terminal = env.stdout, env.stderr
    # Everything the front end prints while the prompt runs goes above it.
    env.stdout = AbovePrompt(session.app, terminal[0])
    env.stderr = AbovePrompt(session.app, terminal[1])
    try:
        await _prompt_loop(node, run, session, prompt)
    finally:
        for stream in (env.stdout, env.stderr):
            stream.flush()
        env.stdout, env.stderr = terminal


async def _prompt_loop(node: Node, run: ChatRun, session: Any, prompt: str) -> None:
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
        except Lab93Error as error:
            end(error)

    shower = loop.create_task(show_all())
    on_sigterm = _catch_sigterm(loop, lambda: end(Terminated(session.default_buffer.text)))
    try:
        while True:
            try:
                line = await session.prompt_async(prompt)
            except EOFError:  # Ctrl-D on an empty line
                return
            except KeyboardInterrupt:
                raise Interrupted(session.default_buffer.text) from None
            if not await _act(node, run, line):
                return
    except asyncio.CancelledError:
        if reasons:
            raise reasons[0] from None
        raise
    finally:
        shower.cancel()
        on_sigterm()


async def _act(node: Node, run: ChatRun, line: str) -> bool:
    """Carry out one typed line; False when the user asked to quit."""
    action = run.parse(line)
    try:
        if isinstance(action, commands.Say):
            await _say(node, run, action)
        elif isinstance(action, commands.Quit):
            return False
        elif isinstance(action, commands.Scan):
            run.show_scan(await node.peers())
        elif isinstance(action, commands.Who):
            run.show_who(await node.who())
        elif isinstance(action, commands.History):
            run.show_history(action, await node.history(limit=action.count))
        elif isinstance(action, commands.Help):
            run.show_help()
    except Lab93Error as error:
        run.failed(error)
    return True


async def _say(node: Node, run: ChatRun, say: commands.Say) -> None:
    try:
        draft = node.draft(say.text, subject=say.subject, to=say.to)
    except MessageError as error:
        run.invalid(say, str(error), None)
        return
    run.will_send(draft.id, say, None)
    [stored] = await node.post([draft])
    try:
        await stored  # in the inbox (a refusal is shown as the node reports it)
    except Lab93Error:
        pass


class AbovePrompt:
    """A text stream that prints complete lines above a running prompt.

    Written to only from the prompt's own thread (its asyncio loop), so each
    line is written at once, in order: erase the prompt, write, and let the
    prompt redraw itself below, with what was typed so far. (prompt_toolkit's
    patch_stdout hands lines to a thread of its own instead, which can lose
    the last ones when the prompt ends right after them.)
    """

    def __init__(self, app: Any, stream: IO[str]) -> None:
        self._app = app
        self._stream = stream
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        if "\n" in self._partial:
            lines, _, self._partial = self._partial.rpartition("\n")
            self._emit(lines + "\n")
        return len(text)

    def flush(self) -> None:
        if not self._app.is_running and self._partial:
            text, self._partial = self._partial, ""
            self._emit(text)

    def _emit(self, text: str) -> None:
        running = self._app.is_running
        if running:
            self._app.renderer.erase()
        self._stream.write(text)
        self._stream.flush()
        if running:
            self._app.invalidate()


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
