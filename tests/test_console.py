"""The command line's front ends over a scripted actor, through the Python API:
real inproc pipes and a real inbox lock, no network.

The scripted actor stores every post (POSTED) and accepts it unless its content
starts with "hold"; "too big" is refused. So a test can leave some undelivered
and check the exit path.
"""

import asyncio
import io
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from factories import NODE_A, T0, make_message

from lab93zmq import aio
from lab93zmq.api.node import Node
from lab93zmq.core.authoring import Draft
from lab93zmq.core.errors import Lab93Error, UndeliveredError
from lab93zmq.frontend import console
from lab93zmq.frontend.chat import ChatRun, FrontEndOptions
from lab93zmq.frontend.environment import Environment
from lab93zmq.frontend.options import Interrupted
from lab93zmq.frontend.prompt import run_prompt
from lab93zmq.io import actor as pipe_protocol
from lab93zmq.io.actor import Actor, PipeKind
from lab93zmq.io.config import NodeConfig

pytestmark = pytest.mark.timeout(30)


class ScriptedActor(Actor):
    name = "scripted"

    def __init__(self, greet=(), fail_on_start=None):
        self.greet = list(greet)
        self.fail_on_start = fail_on_start
        self.posts: list[Draft] = []
        self.requests: list[PipeKind] = []
        self.topics: list[tuple[str, str]] = []
        self.seq = 0

    def run(self, ctx, pipe):
        if self.fail_on_start:
            raise Lab93Error(self.fail_on_start)
        pipe_protocol.send(pipe, PipeKind.READY, node_id=NODE_A, detail="scripted actor ready")
        self.after_ready(pipe)
        if self.greet:
            rows = [message.to_wire_dict() for message in self.greet]
            pipe_protocol.send(pipe, PipeKind.INCOMING, messages=rows)
        while True:
            request = pipe_protocol.recv(pipe)
            self.requests.append(request.kind)
            if request.kind is PipeKind.STOP:
                pipe_protocol.send(pipe, PipeKind.STOPPED)
                return
            self.answer(pipe, request)

    def answer(self, pipe, request):
        if request.kind is PipeKind.POST:
            post = Draft.from_body(request.body)
            self.posts.append(post)
            if post.content == "too big":
                pipe_protocol.send(pipe, PipeKind.REJECTED, id=post.id, reason="too big")
                return
            self.seq += 1
            stored = post.author("alice", NODE_A, self.seq)
            pipe_protocol.send(pipe, PipeKind.POSTED, messages=[stored.to_wire_dict()])
            if self.accepts(post):
                pipe_protocol.send(pipe, PipeKind.ACCEPTED, ids=[post.id])
            else:
                self.holds(pipe, post)
        elif request.kind is PipeKind.WHO:
            pipe_protocol.send(pipe, PipeKind.WHO_RESULT, users=["bob", "carol"])
        elif request.kind is PipeKind.HISTORY:
            rows = [make_message(1, "old news").to_wire_dict()]
            pipe_protocol.send(
                pipe, PipeKind.HISTORY_RESULT, messages=rows[: request.body["limit"]]
            )
        elif request.kind is PipeKind.JOIN:
            pipe_protocol.send(pipe, PipeKind.JOINED, room=request.body["room"], topic=None,
                               first=True)
        elif request.kind is PipeKind.PART:
            pipe_protocol.send(pipe, PipeKind.PARTED, room=request.body["room"])
        elif request.kind is PipeKind.ROOMS:
            rooms = [{"name": "general", "members": 3, "topic": "lunch", "joined": True}]
            pipe_protocol.send(pipe, PipeKind.ROOMS_RESULT, rooms=rooms)
        elif request.kind is PipeKind.TOPIC:
            self.topics.append((request.body["room"], request.body["text"]))
        elif request.kind is PipeKind.OUTBOX:
            rows = [p.author("alice", NODE_A, 1).to_wire_dict() for p in self.posts
                    if not self.accepts(p)]
            pipe_protocol.send(pipe, PipeKind.OUTBOX_RESULT, messages=rows)

    def accepts(self, post):
        return not post.content.startswith("hold")

    def after_ready(self, pipe):
        pass

    def holds(self, pipe, post):
        pipe_protocol.send(pipe, PipeKind.STATUS, connected=False, detail="nobody there")


@pytest.fixture
def config(tmp_path):
    return NodeConfig(user="alice", db_path=tmp_path / "inbox.db")


def environment(stdin=""):
    return Environment(
        stdin=io.StringIO(stdin), stdout=io.StringIO(), stderr=io.StringIO(), stdin_isatty=False
    )


QUICK = FrontEndOptions(timeout=5)


def chat(env, options=QUICK, show_messages=True, listening=False):
    run = ChatRun(env, options, show_messages=show_messages)
    run.printer.show_info = listening
    return run


def pipe_lines(scripted, config, env, options=QUICK):
    """A pipeline as run.py runs it: a send-only node."""
    node = Node(scripted, replace(config, listen=False))
    console.pipeline(node, chat(env, options, show_messages=False), env)


def test_pipeline_sends_each_line_and_waits_for_acceptance(config):
    scripted = ScriptedActor([make_message(1, "backlog a send-only run does not show")])
    env = environment("disk full\n\n/subject db replica lag\nthird line\n")
    pipe_lines(scripted, config, env, FrontEndOptions(subject="app", timeout=5))
    assert [(p.content, p.subject) for p in scripted.posts] == [
        ("disk full", "app"),
        ("replica lag", "db"),
        ("third line", "app"),
    ]
    assert scripted.requests[-1] is PipeKind.STOP  # the actor was stopped cleanly
    assert env.stdout.getvalue() == ""


def test_pipeline_exit_path_names_the_undelivered_and_why(config):
    env = environment("one\nhold two\nhold three\n")
    with pytest.raises(UndeliveredError) as caught:
        pipe_lines(ScriptedActor(), config, env, FrontEndOptions(timeout=0.5))
    text = str(caught.value)
    assert "2 of 3 messages were not delivered within 0.5 s (nobody there)" in text
    assert "kept in the inbox" in text


def test_unknown_command_gets_a_hint_and_is_not_sent(config):
    scripted = ScriptedActor()
    env = environment("/frobnicate now\nreal message\n")
    pipe_lines(scripted, config, env)
    assert [p.content for p in scripted.posts] == ["real message"]
    assert "unknown command /frobnicate; type /help" in env.stderr.getvalue()


def test_quit_stops_reading(config):
    scripted = ScriptedActor()
    env = environment("before\n/quit\nafter\n")
    pipe_lines(scripted, config, env)
    assert [p.content for p in scripted.posts] == ["before"]


def test_a_line_that_cannot_be_a_message_is_refused_before_it_is_sent(config):
    scripted = ScriptedActor()
    env = environment("fine\n" + "x" * 70_000 + "\n")
    refused = r"1 of 2 messages was refused and not sent \(line 2\)"
    with pytest.raises(UndeliveredError, match=refused):
        pipe_lines(scripted, config, env)
    assert [p.content for p in scripted.posts] == ["fine"]
    assert "not sent: message field 'content' is longer than" in env.stderr.getvalue()


def test_what_is_wrong_with_the_lines_of_a_burst_is_said_in_their_order(config):
    """Lines are drafted a burst at a time, yet each note comes in its line's place:
    a refused line, one that is not UTF-8, an unknown command, another refused line."""
    scripted = ScriptedActor()
    # One burst (a stream without a descriptor); \udcff is the byte 0xff read as is.
    env = environment("fine\n" + "x" * 70_000 + "\n\udcff\n/frobnicate\n/me " + "y" * 70_000
                      + "\n/me waves\nlast\n")
    with pytest.raises(UndeliveredError, match=r"3 of 6 messages were refused"
                       r" and not sent \(line 2, line 3, line 5\)"):
        pipe_lines(scripted, config, env)
    assert [(p.content, p.kind) for p in scripted.posts] == [
        ("fine", None), ("waves", "action"), ("last", None)]
    notes = [line for line in env.stderr.getvalue().splitlines() if line]
    assert [note.split(":")[0] for note in notes] == ["not sent"] * 2 + [
        "unknown command /frobnicate; type /help for the list", "not sent"]
    assert "(line 2: " in notes[0] and "line 3 is not valid UTF-8" in notes[1]
    assert "(line 5: " in notes[3]


def test_commands_answer_on_stdout_or_on_stderr_in_json_mode(config):
    env = environment("/who\n/history 1\n/help\n")
    pipe_lines(ScriptedActor(), config, env)
    out = env.stdout.getvalue()
    assert "in #general: bob, carol" in out and "old news" in out and "/msg USER TEXT" in out

    env = environment("/who\n")
    pipe_lines(ScriptedActor(), config, env, FrontEndOptions(json=True, timeout=5))
    assert env.stdout.getvalue() == ""
    assert "in #general: bob, carol" in env.stderr.getvalue()


def test_send_one_and_rejection(config):
    scripted = ScriptedActor()
    env = environment()
    options = FrontEndOptions(to="bob", timeout=5)
    console.send_one(Node(scripted, config), chat(env, options, False), "hello bob")
    assert [(p.content, p.to) for p in scripted.posts] == [("hello bob", "bob")]

    env = environment()
    with pytest.raises(UndeliveredError, match=r"^1 of 1 message was refused and not sent"):
        console.send_one(Node(ScriptedActor(), config), chat(env, FrontEndOptions(timeout=5),
                                                             False), "too big")
    assert "not sent: too big ('too big')" in env.stderr.getvalue()


class OneShot(ScriptedActor):
    """Greets, then stops by itself (as if interrupted), so --listen returns."""

    def run(self, ctx, pipe):
        pipe_protocol.send(pipe, PipeKind.READY, node_id=NODE_A, detail="")
        pipe_protocol.send(pipe, PipeKind.INCOMING, messages=[m.to_wire_dict() for m in self.greet])
        pipe_protocol.send(pipe, PipeKind.STOPPED)


def test_listen_prints_json_lines_only_on_stdout(config):
    greet = [make_message(1, "pizza?", subject="lunch"), make_message(2, "psst", to="me")]
    env = environment()
    console.listen(Node(OneShot(greet), config), chat(env, FrontEndOptions(json=True)))
    rows = [json.loads(line) for line in env.stdout.getvalue().splitlines()]
    assert rows == [m.to_json() for m in greet]


def test_human_form_of_incoming(config):
    env = environment()
    greet = [make_message(1, "pizza?", subject="lunch")]
    console.listen(Node(OneShot(greet), config), chat(env))
    assert "<alice> [lunch] pizza?" in env.stdout.getvalue()


def test_an_actor_that_cannot_start_is_a_clear_error(config):
    with pytest.raises(Lab93Error, match="port 5190 is taken"):
        Node(ScriptedActor(fail_on_start="port 5190 is taken"), config)


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


def interact(scripted, config, env, options=QUICK):
    """The interactive front end as run.py runs it, on the asyncio API."""
    run = chat(env, options, listening=True)

    async def session():
        node = aio.Node(scripted, config)
        await node.start()
        try:
            await run_prompt(node, run, "alice> ")
        finally:
            await node.close()

    try:
        asyncio.run(session())
    finally:
        run.report_outbox()


def test_interactive_prompt_sends_lines_and_quits(config):
    from prompt_toolkit.input import create_pipe_input

    scripted = ScriptedActor([make_message(1, "welcome back")])
    with create_pipe_input() as keyboard:
        env = prompt_environment(keyboard)
        keyboard.send_text("hello room\r/msg bob psst\r/bogus\r/quit\r")
        interact(scripted, config, env)
    assert [(p.content, p.to) for p in scripted.posts] == [("hello room", None), ("psst", "bob")]
    # While the prompt runs, everything is printed above it, on the front end's streams.
    assert "unknown command /bogus" in env.stderr.getvalue()
    assert "welcome back" in env.stdout.getvalue()


def test_ctrl_c_at_the_prompt_is_an_interrupt_that_names_the_unsent_line(config):
    from prompt_toolkit.input import create_pipe_input

    scripted = ScriptedActor()
    with create_pipe_input() as keyboard:
        keyboard.send_text("sent\rhalf a thou\x03")
        with pytest.raises(Interrupted) as caught:
            interact(scripted, config, prompt_environment(keyboard))
    assert caught.value.unsent == "half a thou"
    assert [p.content for p in scripted.posts] == ["sent"]
    assert scripted.requests[-1] is PipeKind.STOP


def test_quit_reports_what_waits_in_the_outbox_and_does_not_wait(config):
    from prompt_toolkit.input import create_pipe_input

    with create_pipe_input() as keyboard:
        env = prompt_environment(keyboard)
        keyboard.send_text("hold on\r/msg zed hold this\r/msg zed hold that\r/quit\r")
        interact(ScriptedActor(), config, env, FrontEndOptions(timeout=60))
    told = env.stderr.getvalue()
    assert "* 1 message waits in the outbox for the room (not confirmed yet)" in told
    # zed was said to be offline when the first line to zed was stored: said once, not
    # again for the second line nor when leaving.
    assert told.count("zed") == 1, told
    assert "* zed is not online; the message waits in the outbox" in told


def test_a_fatal_error_ends_the_prompt(config):
    from prompt_toolkit.input import create_pipe_input

    class FailingActor(ScriptedActor):
        def run(self, ctx, pipe):
            pipe_protocol.send(pipe, PipeKind.READY, node_id=NODE_A, detail="")
            pipe_protocol.send(pipe, PipeKind.FATAL, error="the server refused our key")
            while pipe_protocol.recv(pipe).kind is not PipeKind.STOP:
                pass
            pipe_protocol.send(pipe, PipeKind.STOPPED)

    with create_pipe_input() as keyboard:
        with pytest.raises(Lab93Error, match="the server refused our key"):
            interact(FailingActor(), config, prompt_environment(keyboard))


def test_history_of_more_than_it_shows_says_so_and_shows_the_most(config):
    scripted = ScriptedActor()
    env = environment("/history 99999999999999999999\n")
    pipe_lines(scripted, config, env)
    assert PipeKind.HISTORY in scripted.requests
    out = env.stdout.getvalue()
    assert "showing the last 10000, the most /history shows" in out
    assert "usage: /history" not in env.stderr.getvalue()


class StatusActor(ScriptedActor):
    """Tells the story of a server that dies and comes back, as a repeater client does."""

    STORY = [
        (PipeKind.STATUS, {"connected": True, "detail": "connected to repeater at tcp://pi:5190"}),
        (PipeKind.STATUS,
         {"connected": False, "detail": "no answer from pi for 3 s; reconnecting"}),
        (PipeKind.NOTICE, {"text": "the repeater of pi went away"}),
        (PipeKind.STATUS, {"connected": False, "detail": "no repeater known; listening for one"}),
        (PipeKind.STATUS, {"connected": False, "detail": "connecting to the repeater at pi"}),
        (PipeKind.STATUS, {"connected": True, "detail": "connected to repeater at tcp://pi:5190"}),
    ]

    def run(self, ctx, pipe):
        pipe_protocol.send(pipe, PipeKind.READY, node_id=NODE_A, detail="")
        for kind, body in self.STORY:
            pipe_protocol.send(pipe, kind, **body)
        pipe_protocol.send(pipe, PipeKind.STOPPED)


def test_a_lost_connection_is_one_line_until_it_is_back(config):
    env = environment()
    run = chat(env, listening=True)
    console.listen(Node(StatusActor(), config), run)
    assert env.stderr.getvalue().splitlines() == [
        "* connected to repeater at tcp://pi:5190",
        "* no answer from pi for 3 s; reconnecting",
        "* the repeater of pi went away",
        "* connected to repeater at tcp://pi:5190",
    ]
    # What a script is told at the end is still the latest state.
    assert run.status_detail == "connected to repeater at tcp://pi:5190"


class PeeredActor(ScriptedActor):
    """Connected to a peer (bob); accepts room posts, never a direct one to zed."""

    def after_ready(self, pipe):
        pipe_protocol.send(pipe, PipeKind.STATUS, connected=True, detail="1 peer: bob")

    def accepts(self, post):
        return post.to is None

    def holds(self, pipe, post):
        pass  # still connected: a direct message waits for its addressee


def test_undelivered_direct_messages_are_blamed_on_the_absent_addressee(config):
    env = environment("to the room\n/msg zed are you there?\n")
    with pytest.raises(UndeliveredError) as caught:
        pipe_lines(PeeredActor(), config, env, FrontEndOptions(timeout=0.3))
    assert str(caught.value) == (
        "1 of 2 messages was not delivered within 0.3 s (waiting for zed to come online);"
        " it is kept in the inbox and sent next time"
    )


def test_byte_bursts_reads_what_is_there_and_keeps_bytes_that_are_not_utf8(tmp_path):
    import os

    read, write = os.pipe()
    os.write(write, b"one\ntwo\n\xff\xfe\nunfinished")
    os.close(write)
    with os.fdopen(read) as stream:
        bursts = list(console.byte_bursts(stream))
    assert [line for burst in bursts for line in burst] == [
        b"one\n", b"two\n", b"\xff\xfe\n", b"unfinished"]
    assert list(console.byte_bursts(io.StringIO("a\nb\n"))) == [[b"a\n", b"b\n"]]


# -- rooms, actions and the outbox in a pipeline ----------------------------------------


def test_a_pipeline_takes_room_commands_in_order_with_its_lines(config):
    """A send-only run joins no room: /join and /part choose where the next lines go."""
    scripted = ScriptedActor()
    env = environment("in general\n/join #Ops\nin ops\n/me deploys\n/topic release day\n"
                      "/part\nback in general\n/part\nnowhere\n")
    with pytest.raises(UndeliveredError, match=r"1 of 5 messages was refused.*\(line 9\)"):
        pipe_lines(scripted, config, env)
    assert [(p.room, p.content, p.kind) for p in scripted.posts] == [
        ("general", "in general", None),
        ("ops", "in ops", None),
        ("ops", "deploys", "action"),
        ("general", "back in general", None),
    ]
    assert scripted.topics == [("ops", "release day")]
    assert PipeKind.JOIN not in scripted.requests and PipeKind.PART not in scripted.requests
    assert "you are in no room now; /join ROOM to talk in one" in env.stderr.getvalue()


def test_a_pipeline_answers_rooms_who_and_outbox_and_hints_at_a_bad_room(config):
    env = environment("/rooms\n/who\nhold this\n/outbox\n/join no way\n/part #elsewhere\n")
    with pytest.raises(UndeliveredError):
        pipe_lines(ScriptedActor(), config, env, FrontEndOptions(timeout=0.2))
    out = env.stdout.getvalue()
    assert "> #general    3 people  lunch" in out
    assert "in #general: bob, carol" in out
    assert "1 message waits to be delivered:\n  for #general:" in out and "'hold this'" in out
    err = env.stderr.getvalue()
    assert "/join: takes one room; usage: /join ROOM" in err
    assert "you are not in #elsewhere" in err


class Telling(OneShot):
    """Greets with what arrives, then stops by itself: events too."""

    def __init__(self, items):
        super().__init__()
        self.items = items

    def run(self, ctx, pipe):
        pipe_protocol.send(pipe, PipeKind.READY, node_id=NODE_A, detail="")
        for kind, body in self.items:
            pipe_protocol.send(pipe, kind, **body)
        pipe_protocol.send(pipe, PipeKind.STOPPED)


def listened(items, config, **env_fields):
    env = environment()
    env.utc_now = lambda: T0 + timedelta(hours=1)  # the run starts an hour after T0
    for name, value in env_fields.items():
        setattr(env, name, value)
    run = ChatRun(env, FrontEndOptions(user="alice"))
    console.listen(Node(Telling(items), config), run)
    return env


def incoming(*messages):
    return PipeKind.INCOMING, {"messages": [m.to_wire_dict() for m in messages]}


def test_the_backlog_ends_with_a_separator_before_the_first_live_line(config):
    old = [make_message(n, f"old {n}") for n in (1, 2)]
    live = replace(make_message(3, "new"), sent_at=T0 + timedelta(hours=1, seconds=5))
    env = listened([incoming(*old), incoming(live), incoming(make_message(4, "late old"))],
                   config)
    shown = env.stdout.getvalue().splitlines()
    assert len(shown) == 5, shown
    assert shown[0].endswith("<alice> old 1") and shown[1].endswith("<alice> old 2")
    assert shown[2] == "\u2014 2 messages while you were away \u2014"
    assert shown[3].endswith("<alice> new")
    assert shown[4].endswith("<alice> late old")  # after the separator: a line like any


def test_no_separator_without_a_backlog_nor_in_json(config):
    live = replace(make_message(3, "new"), sent_at=T0 + timedelta(hours=2))
    assert "while you were away" not in listened([incoming(live)], config).stdout.getvalue()
    env = environment()
    env.utc_now = lambda: T0 + timedelta(hours=1)
    run = ChatRun(env, FrontEndOptions(user="alice", json=True))
    console.listen(Node(Telling([incoming(make_message(1)), incoming(live)]), config), run)
    assert [json.loads(line)["content"] for line in env.stdout.getvalue().splitlines()] == [
        "message 1", "new"]


def test_joins_leaves_and_topics_are_lines_with_times(config):
    items = [
        (PipeKind.MEMBER, {"room": "ops", "user": "bob", "joined": True}),
        # ourselves: said by /join
        (PipeKind.MEMBER, {"room": "ops", "user": "alice", "joined": True}),
        (PipeKind.TOPIC, {"room": "ops", "text": "deploys", "by": "bob",
                      "at": "2026-11-24T20:01:02.123456+00:00"}),
        (PipeKind.TOPIC, {"room": "ops", "text": "deploys", "by": "bob",
                      "at": "2026-11-24T20:01:02.123456+00:00"}),  # the same again: once
        (PipeKind.MEMBER, {"room": "ops", "user": "bob", "joined": False}),
    ]
    shown = [line.split("] ", 1)[1] for line in listened(items, config).stdout.getvalue()
             .splitlines()]
    assert shown == ["* bob joined #ops", "* bob set the topic of #ops: deploys",
                     "* bob left #ops"]


def test_an_action_and_a_mention_in_a_listening_terminal(config):
    now = T0 + timedelta(hours=1, seconds=1)  # live
    items = [incoming(replace(make_message(1, "waves", author="bob", kind="action"), sent_at=now),
                      replace(make_message(2, "alice: ping", author="bob"), sent_at=now))]
    env = listened(items, config, stdout_isatty=True, environ={"NO_COLOR": "1"})
    out = env.stdout.getvalue()
    assert "* bob waves\n" in out
    assert "<bob> alice: ping\a\n" in out  # a live line naming you rings (no colour asked)


def test_the_prompt_echoes_own_lines_and_says_where_a_message_to_someone_away_waits(config):
    from prompt_toolkit.input import create_pipe_input

    with create_pipe_input() as keyboard:
        env = prompt_environment(keyboard)
        keyboard.send_text("/me waves\r/msg zed hi\r/msg zed again\r/quit\r")
        interact(ScriptedActor(), config, env,
                 FrontEndOptions(timeout=5, user="alice", mode="client"))
    out, err = env.stdout.getvalue(), env.stderr.getvalue()
    assert "* alice waves" in out and "<alice -> zed> hi" in out and "<alice -> zed> again" in out
    # Accepted by the repeater at once: it keeps it for zed; said once.
    assert err.count("zed is not online; the repeater keeps the message until zed comes") == 1


def test_lines_pasted_at_once_are_sent_one_by_one(config):
    from prompt_toolkit.input import create_pipe_input

    scripted = ScriptedActor()
    with create_pipe_input() as keyboard:
        keyboard.send_text("\x1b[200~one\ntwo\n\nthree\x1b[201~\r/quit\r")
        interact(scripted, config, prompt_environment(keyboard))
    assert [p.content for p in scripted.posts] == ["one", "two", "three"]


class RefusesAnEarlierRunsMessage(ScriptedActor):
    """Re-sends what an earlier run left in the outbox, and the repeater refuses it."""

    def after_ready(self, pipe):
        pipe_protocol.send(pipe, PipeKind.REJECTED, id="e" * 32,
                           reason="the repeater refused it: from 'bob' is not you")


def test_a_refused_message_of_an_earlier_run_is_named_as_such_not_as_this_runs(config):
    env = environment("delivered line\n")
    with pytest.raises(UndeliveredError) as raised:
        pipe_lines(RefusesAnEarlierRunsMessage(), config, env)
    # This run's one line was delivered: no "1 of 1 was refused ('')".
    assert str(raised.value) == (
        "1 message an earlier run left in the outbox was refused and not sent"
    )
    assert ("not sent: the repeater refused it: from 'bob' is not you (a message an earlier"
            " run left in the outbox)") in env.stderr.getvalue()
    assert "''" not in env.stderr.getvalue()


class HistoryOfTwoRooms(ScriptedActor):
    def answer(self, pipe, request):
        if request.kind is PipeKind.HISTORY:
            rows = [make_message(1, "lunch?").to_wire_dict(),
                    make_message(2, "deploy done", room="ops").to_wire_dict()]
            pipe_protocol.send(pipe, PipeKind.HISTORY_RESULT, messages=rows)
        else:
            super().answer(pipe, request)


def test_history_that_spans_rooms_names_the_room_of_each_line_even_in_one_room(config):
    env = environment("/history 2\n")
    pipe_lines(HistoryOfTwoRooms(), config, env)  # in #general only
    shown = [line for line in env.stdout.getvalue().splitlines() if "<alice>" in line]
    assert [line.split("] ", 1)[1] for line in shown] == [
        "#general <alice> lunch?", "#ops <alice> deploy done"]


def test_poll_many_takes_what_is_ready_in_order_both_faces(config):
    messages = [make_message(n, f"m {n}") for n in range(1, 6)]
    notice = (PipeKind.NOTICE, {"text": "between"})
    items = [incoming(*messages[:2]), notice, incoming(*messages[2:])]

    def contents(got):
        return [getattr(item, "content", getattr(item, "text", None)) for item in got]

    node = Node(Telling(items), config)
    try:
        got = []
        while batch := node.poll_many(timeout=5, limit=4):
            assert len(batch) <= 4
            got += batch
    finally:
        node.close()
    assert contents(got) == ["m 1", "m 2", "between", "m 3", "m 4", "m 5"]

    async def with_aio():
        async with await aio.Node(Telling(items), config).start() as node:
            got = []
            while batch := await node.poll_many(timeout=5):
                got += batch
            return got

    assert contents(asyncio.run(with_aio())) == contents(got)
