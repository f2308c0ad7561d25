"""Front ends over a scripted actor: real inproc pipes, no network.

The scripted actor accepts every post whose content does not start with
"hold", so a test can leave some undelivered and check the exit path.
"""

import io
import json

import pytest
import zmq
from factories import NODE_A, make_message

from lab93zmq.core.errors import Lab93Error, UndeliveredError
from lab93zmq.frontend.console import (
    Environment,
    FrontEnd,
    FrontEndOptions,
    byte_lines,
    run,
)
from lab93zmq.frontend.options import Interrupted
from lab93zmq.io import actor as pipe_protocol
from lab93zmq.io.actor import Actor, ActorHandle, Kind, Post

pytestmark = pytest.mark.timeout(30)


class ScriptedActor(Actor):
    name = "scripted"

    def __init__(self, greet=(), fail_on_start=None):
        self.greet = list(greet)
        self.fail_on_start = fail_on_start
        self.posts: list[Post] = []
        self.requests: list[Kind] = []
        self.seq = 0

    def run(self, ctx, pipe):
        if self.fail_on_start:
            raise Lab93Error(self.fail_on_start)
        pipe_protocol.send(pipe, Kind.READY, node_id=NODE_A, detail="scripted actor ready")
        if self.greet:
            rows = [message.to_wire_dict() for message in self.greet]
            pipe_protocol.send(pipe, Kind.INCOMING, messages=rows)
        while True:
            request = pipe_protocol.recv(pipe)
            self.requests.append(request.kind)
            if request.kind is Kind.STOP:
                pipe_protocol.send(pipe, Kind.STOPPED)
                return
            if request.kind is Kind.POST:
                post = Post.from_body(request.body)
                self.posts.append(post)
                if post.content == "too big":
                    pipe_protocol.send(pipe, Kind.REJECTED, id=post.id, reason="too big")
                elif not post.content.startswith("hold"):
                    pipe_protocol.send(pipe, Kind.ACCEPTED, ids=[post.id])
                else:
                    pipe_protocol.send(pipe, Kind.STATUS, connected=False, detail="nobody there")
            elif request.kind is Kind.WHO:
                pipe_protocol.send(pipe, Kind.WHO_RESULT, users=["bob", "carol"])
            elif request.kind is Kind.HISTORY:
                rows = [make_message(1, "old news").to_wire_dict()]
                pipe_protocol.send(
                    pipe, Kind.HISTORY_RESULT, messages=rows[: request.body["limit"]]
                )


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def environment(stdin=""):
    return Environment(
        stdin=io.StringIO(stdin), stdout=io.StringIO(), stderr=io.StringIO(), stdin_isatty=False
    )


def start(ctx, scripted):
    handle = ActorHandle(scripted, ctx)
    handle.start(timeout=5)
    return handle


def test_pipeline_sends_each_line_and_waits_for_acceptance(ctx):
    scripted = ScriptedActor()
    env = environment("disk full\n\n/subject db replica lag\nthird line\n")
    run(start(ctx, scripted), env, FrontEndOptions(subject="app", timeout=5))
    assert [(p.content, p.subject) for p in scripted.posts] == [
        ("disk full", "app"),
        ("replica lag", "db"),
        ("third line", "app"),
    ]
    assert scripted.requests[-1] is Kind.STOP  # the actor was stopped cleanly
    assert env.stdout.getvalue() == ""


def test_pipeline_exit_path_names_the_undelivered_and_why(ctx):
    scripted = ScriptedActor()
    env = environment("one\nhold two\nhold three\n")
    with pytest.raises(UndeliveredError) as caught:
        run(start(ctx, scripted), env, FrontEndOptions(timeout=0.5))
    text = str(caught.value)
    assert "2 of 3 messages were not delivered within 0.5 s (nobody there)" in text
    assert "kept in the inbox" in text


def test_unknown_command_gets_a_hint_and_is_not_sent(ctx):
    scripted = ScriptedActor()
    env = environment("/frobnicate now\nreal message\n")
    run(start(ctx, scripted), env, FrontEndOptions(timeout=5))
    assert [p.content for p in scripted.posts] == ["real message"]
    assert "unknown command /frobnicate; type /help" in env.stderr.getvalue()


def test_quit_stops_reading(ctx):
    scripted = ScriptedActor()
    env = environment("before\n/quit\nafter\n")
    run(start(ctx, scripted), env, FrontEndOptions(timeout=5))
    assert [p.content for p in scripted.posts] == ["before"]


def pump_until(front, done, rounds=40):
    """Take the actor's events until ``done()`` (at most ``rounds`` waits of 0.25 s)."""
    for _ in range(rounds):
        if done():
            return
        front.pump(0.25)
    assert done()


def test_commands_answer_on_stdout_or_on_stderr_in_json_mode(ctx):
    env = environment("/who\n/history 1\n/help\n")
    front = FrontEnd(start(ctx, ScriptedActor()), env, FrontEndOptions(timeout=5))
    front.run_lines(lambda: byte_lines(env.stdin))
    # The answers to /who and /history may come in while lines are read, or after.
    pump_until(front, lambda: "old news" in env.stdout.getvalue())
    front.handle.stop()
    out = env.stdout.getvalue()
    assert "online: bob, carol" in out and "old news" in out and "/msg USER TEXT" in out

    env = environment("/who\n")
    front = FrontEnd(start(ctx, ScriptedActor()), env, FrontEndOptions(json=True, timeout=5))
    front.run_lines(lambda: byte_lines(env.stdin))
    pump_until(front, lambda: "online:" in env.stderr.getvalue())
    front.handle.stop()
    assert env.stdout.getvalue() == ""
    assert "online: bob, carol" in env.stderr.getvalue()


def test_send_one_and_rejection(ctx):
    scripted = ScriptedActor()
    env = environment()
    run(start(ctx, scripted), env, FrontEndOptions(to="bob", timeout=5), send="hello bob")
    assert [(p.content, p.to) for p in scripted.posts] == [("hello bob", "bob")]

    env = environment()
    with pytest.raises(UndeliveredError, match=r"^1 of 1 message was refused and not sent"):
        run(start(ctx, ScriptedActor()), env, FrontEndOptions(timeout=5), send="too big")
    assert "not sent: too big ('too big')" in env.stderr.getvalue()


def test_listen_prints_json_lines_only_on_stdout(ctx):
    greet = [make_message(1, "pizza?", subject="lunch"), make_message(2, "psst", to="me")]
    env = environment()
    front = FrontEnd(start(ctx, ScriptedActor(greet)), env, FrontEndOptions(json=True))
    front.pump(2)  # one pipe message carries both
    front.handle.stop()
    rows = [json.loads(line) for line in env.stdout.getvalue().splitlines()]
    assert rows == [m.to_json_dict() for m in greet]


def test_human_form_of_incoming(ctx):
    env = environment()
    front = FrontEnd(
        start(ctx, ScriptedActor([make_message(1, "pizza?", subject="lunch")])),
        env,
        FrontEndOptions(),
    )
    front.pump(2)
    front.handle.stop()
    assert "<alice> [lunch] pizza?" in env.stdout.getvalue()


def test_an_actor_that_cannot_start_is_a_clear_error(ctx):
    handle = ActorHandle(ScriptedActor(fail_on_start="port 5190 is taken"), ctx)
    with pytest.raises(Lab93Error, match="port 5190 is taken"):
        handle.start(timeout=5)


def test_interactive_prompt_sends_lines_and_quits(ctx):
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    scripted = ScriptedActor([make_message(1, "welcome back")])
    with create_pipe_input() as keyboard:
        env = Environment(
            stdin=io.StringIO(),
            stdout=io.StringIO(),
            stderr=io.StringIO(),
            stdin_isatty=True,
            prompt_input=keyboard,
            prompt_output=DummyOutput(),
        )
        keyboard.send_text("hello room\r/msg bob psst\r/bogus\r/quit\r")
        run(start(ctx, scripted), env, FrontEndOptions(timeout=5))
    assert [(p.content, p.to) for p in scripted.posts] == [("hello room", None), ("psst", "bob")]
    # While the prompt runs, everything is printed above it, on the front end's streams.
    assert "unknown command /bogus" in env.stderr.getvalue()
    assert "welcome back" in env.stdout.getvalue()


def prompt_environment(keyboard):
    from prompt_toolkit.output import DummyOutput

    return Environment(
        stdin=io.StringIO(),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
        stdin_isatty=True,
        prompt_input=keyboard,
        prompt_output=DummyOutput(),
    )


def test_ctrl_c_at_the_prompt_is_an_interrupt_that_names_the_unsent_line(ctx):
    from prompt_toolkit.input import create_pipe_input

    scripted = ScriptedActor()
    with create_pipe_input() as keyboard:
        keyboard.send_text("sent\rhalf a thou\x03")
        with pytest.raises(Interrupted) as caught:
            run(start(ctx, scripted), prompt_environment(keyboard), FrontEndOptions(timeout=5))
    assert caught.value.unsent == "half a thou"
    assert [p.content for p in scripted.posts] == ["sent"]
    assert scripted.requests[-1] is Kind.STOP


def test_quit_reports_what_waits_in_the_outbox_and_does_not_wait(ctx):
    from prompt_toolkit.input import create_pipe_input

    with create_pipe_input() as keyboard:
        env = prompt_environment(keyboard)
        keyboard.send_text("hold on\r/msg zed hold this\r/msg zed hold that\r/quit\r")
        run(start(ctx, ScriptedActor()), env, FrontEndOptions(timeout=60))
    told = env.stderr.getvalue()
    assert "* 1 message waits in the outbox for the room (not confirmed yet)" in told
    assert "* 2 messages wait in the outbox for zed; they go out when zed is online" in told


def test_a_fatal_error_ends_the_prompt(ctx):
    from prompt_toolkit.input import create_pipe_input

    class FailingActor(ScriptedActor):
        def run(self, ctx, pipe):
            pipe_protocol.send(pipe, Kind.READY, node_id=NODE_A, detail="")
            pipe_protocol.send(pipe, Kind.FATAL, error="the server refused our key")
            while pipe_protocol.recv(pipe).kind is not Kind.STOP:
                pass
            pipe_protocol.send(pipe, Kind.STOPPED)

    with create_pipe_input() as keyboard:
        with pytest.raises(Lab93Error, match="the server refused our key"):
            run(start(ctx, FailingActor()), prompt_environment(keyboard), FrontEndOptions())


def test_history_of_more_than_it_shows_says_so_and_shows_the_most(ctx):
    scripted = ScriptedActor()
    env = environment("/history 99999999999999999999\n")
    front = FrontEnd(start(ctx, scripted), env, FrontEndOptions(timeout=5))
    front.run_lines(lambda: byte_lines(env.stdin))
    front.handle.stop()
    assert Kind.HISTORY in scripted.requests
    out = env.stdout.getvalue()
    assert "showing the last 10000, the most /history shows" in out
    assert "usage: /history" not in env.stderr.getvalue()


class StatusActor(ScriptedActor):
    """Tells the story of a server that dies and comes back, as a repeater client does."""

    STORY = [
        (Kind.STATUS, {"connected": True, "detail": "connected to repeater at tcp://pi:5190"}),
        (Kind.STATUS, {"connected": False, "detail": "no answer from pi for 3 s; reconnecting"}),
        (Kind.NOTICE, {"text": "the repeater of pi went away"}),
        (Kind.STATUS, {"connected": False, "detail": "no repeater known; listening for one"}),
        (Kind.STATUS, {"connected": False, "detail": "connecting to the repeater at pi"}),
        (Kind.STATUS, {"connected": True, "detail": "connected to repeater at tcp://pi:5190"}),
    ]

    def run(self, ctx, pipe):
        pipe_protocol.send(pipe, Kind.READY, node_id=NODE_A, detail="")
        for kind, body in self.STORY:
            pipe_protocol.send(pipe, kind, **body)
        while pipe_protocol.recv(pipe).kind is not Kind.STOP:
            pass
        pipe_protocol.send(pipe, Kind.STOPPED)


def test_a_lost_connection_is_one_line_until_it_is_back(ctx):
    env = environment()
    front = FrontEnd(start(ctx, StatusActor()), env, FrontEndOptions())
    for _ in StatusActor.STORY:
        assert front.pump(5) is not None
    front.handle.stop()
    assert env.stderr.getvalue().splitlines() == [
        "* connected to repeater at tcp://pi:5190",
        "* no answer from pi for 3 s; reconnecting",
        "* the repeater of pi went away",
        "* connected to repeater at tcp://pi:5190",
    ]
    # What a script is told at the end is still the latest state.
    assert front.status_detail == "connected to repeater at tcp://pi:5190"


class PeeredActor(ScriptedActor):
    """Connected to a peer (bob); accepts room posts, never a direct one to zed."""

    def run(self, ctx, pipe):
        pipe_protocol.send(pipe, Kind.READY, node_id=NODE_A, detail="")
        pipe_protocol.send(pipe, Kind.STATUS, connected=True, detail="1 peer: bob")
        while (request := pipe_protocol.recv(pipe)).kind is not Kind.STOP:
            if request.kind is Kind.POST and request.body["to"] is None:
                pipe_protocol.send(pipe, Kind.ACCEPTED, ids=[request.body["id"]])
        pipe_protocol.send(pipe, Kind.STOPPED)


def test_undelivered_direct_messages_are_blamed_on_the_absent_addressee(ctx):
    env = environment("to the room\n/msg zed are you there?\n")
    with pytest.raises(UndeliveredError) as caught:
        run(start(ctx, PeeredActor()), env, FrontEndOptions(timeout=0.3))
    assert str(caught.value) == (
        "1 of 2 messages was not delivered within 0.3 s (waiting for zed to come online);"
        " it is kept in the inbox and sent next time"
    )
