"""What each chat command does: one table for both front ends.

A row is what to ask the node and how to show the answer. The blocking
pipeline (console.py) calls the ``lab93zmq.Node`` methods and gets values; the
prompt (prompt.py) calls the same methods of ``lab93zmq.aio.Node`` and awaits
what they return. Messages (``Say``) and ``/quit`` are the drivers' own: they
are not questions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core import commands
from ..core.errors import Lab93Error
from ..core.events import Joined, Parted
from ..core.rooms import shown
from . import lines
from .chat import ChatRun


@dataclass(frozen=True)
class Asked:
    """What a row's ``show`` knows besides the answer: the node, and the rooms it was
    in before it was asked."""

    node: Any
    rooms_before: tuple[str, ...]

    @property
    def current(self) -> str | None:
        rooms = self.node.rooms
        return rooms[0] if rooms else None


Ask = Callable[[Any, Any], Any]  # (node, action) -> the answer, or an awaitable of it
Show = Callable[[ChatRun, Asked, Any, Any], None]  # (run, asked, action, answer)
Check = Callable[[Any, Any], "str | None"]  # (node, action) -> a hint instead of asking


@dataclass(frozen=True)
class Step:
    ask: Ask | None
    show: Show
    check: Check | None = None


def _nothing(run: ChatRun, asked: Asked, action: Any, answer: Any) -> None:
    pass


def _in_a_room(node: Any, action: Any) -> str | None:
    return None if node.rooms else "you are in no room now; /join ROOM to talk in one"


def _who_room(node: Any, action: commands.Who) -> str | None:
    return action.room or (node.rooms[0] if node.rooms else None)


def _show_who(run: ChatRun, asked: Asked, action: commands.Who,
              users: dict[str, str | None]) -> None:
    run.users.update(users)
    run.answer(lines.format_who(action.room or asked.current, list(users), users))


def _show_away(run: ChatRun, asked: Asked, action: commands.Away, answer: Any) -> None:
    if action.text is None:
        run.printer.info("you are back")
    else:
        run.printer.info(f"you are away: {action.text}; /away alone when you are back")


def _show_help(run: ChatRun, asked: Asked, action: commands.Help, answer: Any) -> None:
    if action.name is None:
        run.answer(commands.HELP)
    else:
        command = commands.COMMANDS[action.name]
        run.answer(f"{command.usage}: {command.summary}")


def _show_joined(run: ChatRun, asked: Asked, action: commands.Join, joined: Joined) -> None:
    run.show_joined(joined)  # unless the node's Joined in the stream showed it already


def _not_in(node: Any, action: commands.Part) -> str | None:
    room = action.room or (node.rooms[0] if node.rooms else None)
    if room is None or room not in node.rooms:
        return f"you are not in {shown(room)}" if room else "you are in no room"
    return None


def _show_parted(run: ChatRun, asked: Asked, action: commands.Part, parted: Parted) -> None:
    now = (f"you talk in {shown(asked.current)} now" if asked.current
           else "you are in no room now; /join ROOM to talk in one")
    run.printer.info(f"you left {shown(parted.room)}; {now}")


def _show_rooms(run: ChatRun, asked: Asked, action: commands.Rooms, rooms: list[Any]) -> None:
    run.rooms.update(info.name for info in rooms)
    run.answer(lines.format_rooms(rooms, asked.current))


def _ask_topic(node: Any, action: commands.ShowOrSetTopic) -> Any:
    if action.text is None:
        return node.topic()  # what this node knows: no question to the actor
    return node.set_topic(action.text)  # the new topic comes back as a Topic event


def _show_topic(run: ChatRun, asked: Asked, action: commands.ShowOrSetTopic, topic: Any) -> None:
    if action.text is None and asked.current is not None:
        run.answer(lines.topic_line(asked.current, topic, run.view()))


def _show_outbox(run: ChatRun, asked: Asked, action: commands.Outbox, outbox: list[Any]) -> None:
    with run.lock:
        waiting = {m.id: m for m in outbox}
        # Ours of this run still waiting for peers (a broadcast room line is kept in
        # the inbox, not in its outbox, until every peer of the room holds it).
        waiting.update((i, m) for i, m in run.queued.items() if i in run.pending)
    ordered = sorted(waiting.values(), key=lambda m: (m.sent_at, m.id))
    run.answer(lines.format_outbox(ordered, run.view()))


STEPS: dict[type, Step] = {
    commands.Nothing: Step(None, _nothing),
    commands.Help: Step(None, _show_help),
    commands.Clear: Step(None, lambda run, asked, action, answer: run.printer.clear()),
    commands.Scan: Step(lambda node, action: node.peers(),
                        lambda run, asked, action, answer: run.show_scan(answer)),
    commands.Who: Step(lambda node, action: node.who_away(_who_room(node, action)), _show_who),
    commands.Away: Step(lambda node, action: node.set_away(action.text), _show_away),
    commands.History: Step(lambda node, action: node.history(limit=action.count),
                           lambda run, asked, action, answer: run.show_history(action, answer)),
    commands.Join: Step(lambda node, action: node.join(action.room), _show_joined),
    commands.Part: Step(lambda node, action: node.part(action.room), _show_parted, _not_in),
    commands.Rooms: Step(lambda node, action: node.room_list(), _show_rooms),
    commands.ShowOrSetTopic: Step(_ask_topic, _show_topic, _in_a_room),
    commands.Outbox: Step(lambda node, action: node.outbox(), _show_outbox),
}


def no_room_hint(node: Any, say: commands.Say) -> str | None:
    """A line for the room while in no room is not sent: say what to do instead."""
    return _in_a_room(node, say) if say.to is None else None


def _prepare(node: Any, run: ChatRun, action: commands.Action) -> tuple[Step, Asked] | None:
    step = STEPS[type(action)]
    hint = step.check(node, action) if step.check is not None else None
    if hint is not None:
        run.printer.note(hint)
        return None
    asked = Asked(node, tuple(node.rooms))
    if isinstance(action, commands.Join):  # its line is the run's to show, once
        with run.lock:
            run.joining[action.room] = asked.rooms_before
    return step, asked


def perform(node: Any, run: ChatRun, action: commands.Action) -> None:
    """Carry out a command on a blocking ``lab93zmq.Node`` and show its answer."""
    prepared = _prepare(node, run, action)
    if prepared is None:
        return
    step, asked = prepared
    try:
        answer = step.ask(node, action) if step.ask is not None else None
        step.show(run, asked, action, answer)
    except Lab93Error as error:
        run.failed(error)


async def perform_async(node: Any, run: ChatRun, action: commands.Action) -> None:
    """The same on a ``lab93zmq.aio.Node``: its answers are awaited."""
    prepared = _prepare(node, run, action)
    if prepared is None:
        return
    step, asked = prepared
    try:
        answer = step.ask(node, action) if step.ask is not None else None
        if hasattr(answer, "__await__"):
            answer = await answer
        step.show(run, asked, action, answer)
    except Lab93Error as error:
        run.failed(error)
