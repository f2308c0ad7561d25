"""The printer: what arrived together is written together, in order, and a closed
stdout is told once."""

from __future__ import annotations

import io
import json

import pytest
from factories import make_message

from lab93zmq.frontend.environment import Environment
from lab93zmq.frontend.options import OutputClosed
from lab93zmq.frontend.printer import Printer


class CountingStream(io.StringIO):
    """A stdout that counts its writes (a write is a system call on a real pipe)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def printer(json_mode: bool = True) -> tuple[Printer, CountingStream, io.StringIO]:
    out, err = CountingStream(), io.StringIO()
    env = Environment(stdin=io.StringIO(), stdout=out, stderr=err, stdout_isatty=False,
                      environ={})
    return Printer(env, json_mode), out, err


def test_a_batch_of_json_lines_is_one_write_in_order():
    p, out, _ = printer()
    messages = [make_message(seq) for seq in range(1, 301)]
    with p.batch():
        for message in messages:
            p.json_message(message)
        assert out.writes == 0  # held until the batch ends
    assert out.writes == 1
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [m.id for m in messages]
    assert lines[0] == messages[0].to_json_line()


def test_outside_a_batch_each_line_is_written_at_once():
    p, out, _ = printer()
    p.json_message(make_message(1))
    assert out.writes == 1 and out.getvalue() == make_message(1).to_json_line() + "\n"


def test_a_note_on_stderr_comes_after_the_lines_held_before_it():
    """On a screen both streams meet: a note keeps its place among the lines."""
    p, out, err = printer(json_mode=False)
    with p.batch():
        p.line("one")
        p.note("a problem")
        assert (out.getvalue(), err.getvalue()) == ("one\n", "a problem\n")
        p.line("two")
    assert out.getvalue() == "one\ntwo\n" and out.writes == 2


def test_a_nested_batch_is_written_with_the_outer_one():
    p, out, _ = printer(json_mode=False)
    with p.batch():
        p.line("one")
        with p.batch():
            p.line("two")
        assert out.getvalue() == ""
    assert out.getvalue() == "one\ntwo\n" and out.writes == 1


class ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError()


def test_a_closed_stdout_at_the_end_of_a_batch_is_told_once():
    err = io.StringIO()
    env = Environment(stdin=io.StringIO(), stdout=ClosedPipe(), stderr=err,
                      stdout_isatty=False, environ={})
    p = Printer(env, True)
    with pytest.raises(OutputClosed):
        with p.batch():
            p.json_message(make_message(1))
    p.json_message(make_message(2))  # dropped, not raised again
    assert p.closed
