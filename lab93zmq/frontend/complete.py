"""Tab completion at the prompt: commands, nicks and rooms.

``candidates`` is pure (a line before the cursor in, what may complete it out);
``ChatCompleter`` hands it to prompt_toolkit. What a command's arguments are
comes from the command table (core/commands.py): ``/msg`` completes a nick,
``/join``, ``/part`` and ``/who`` a room, ``/help`` a command. In a message a
word completes to a nick (``bob: `` at the start of the line, as IRC clients
do), and a word starting with ``#`` to a room.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from ..core.commands import COMMAND, COMMANDS, ROOM, USER


def _matching(word: str, choices: Iterable[str], suffix: str = " ") -> list[tuple[str, int]]:
    folded = word.lower()
    return [(choice + suffix, -len(word)) for choice in sorted(set(choices))
            if choice.lower().startswith(folded) and choice != word]


def candidates(before: str, users: Iterable[str], rooms: Iterable[str]
               ) -> list[tuple[str, int]]:
    """What may replace the word before the cursor: (text, start relative to the
    cursor) pairs, sorted."""
    words = before.split(" ")
    word = words[-1]
    room_names = [f"#{room}" for room in rooms]
    if before.startswith("/") and len(words) == 1:
        return _matching(word, (f"/{name}" for name in COMMANDS))
    if before.startswith("/") and not before.startswith("//"):
        command = COMMANDS.get(words[0][1:].lower())
        if command is None:
            return []
        position = len(words) - 2  # which argument the cursor is in
        what = command.completes[position] if position < len(command.completes) else None
        if what == USER:
            return _matching(word, users)
        if what == ROOM:
            bare = word.removeprefix("#").lower()
            return [(name + " ", -len(word)) for name in sorted(set(room_names))
                    if name[1:].startswith(bare) and name != word]
        if what == COMMAND:
            return _matching(word.lstrip("/"), COMMANDS)
        if command.name != "me":
            return []
    if word.startswith("#"):
        return _matching(word, room_names)
    if not word:
        return []
    at_start = len(words) == 1
    return _matching(word, users, ": " if at_start else " ")


class ChatCompleter(Completer):
    """prompt_toolkit's side: completions from what the run has heard so far."""

    def __init__(self, users: Callable[[], Iterable[str]], rooms: Callable[[], Iterable[str]]
                 ) -> None:
        self.users = users
        self.rooms = rooms

    def get_completions(self, document: Document, complete_event: CompleteEvent
                        ) -> Iterator[Completion]:
        before = document.text_before_cursor
        if "\n" in before:
            before = before.rsplit("\n", 1)[1]
        for text, start in candidates(before, self.users(), self.rooms()):
            yield Completion(text, start_position=start, display=text.rstrip(": "))
