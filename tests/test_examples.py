"""The programs in examples/, each run as a real process against a real server on
loopback, and checked by a node of the Python API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import lab93zmq

pytestmark = pytest.mark.timeout(90)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
WAIT = 30


def where(server, tmp_path, name):
    return ["--address", "127.0.0.1", "--port", str(server.router_port), "--interface", "lo",
            "--beacon-port", str(server.config.beacon_port), "--db", str(tmp_path / f"{name}.db")]


def example(name, *args, **popen):
    return subprocess.Popen([sys.executable, str(EXAMPLES / name), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def reader(server, tmp_path, room):
    return lab93zmq.Node.repeater(
        address="127.0.0.1", port=server.router_port, user="reader", interfaces=["lo"],
        beacon_port=server.config.beacon_port, db=tmp_path / "reader.db", rooms=[room],
    )


def read(node, count):
    got = []
    while len(got) < count:
        message = node.receive(timeout=WAIT)
        assert message is not None, f"{len(got)} of {count} arrived"
        got.append(message)
    return got


def test_the_log_shipper_ships_each_line_once_also_after_a_crash(server, tmp_path):
    log = tmp_path / "app.log"
    log.write_text("".join(f"line {n}\n" for n in range(1, 6)))
    shipper = ["log_shipper.py", str(log), "--room", "ops", *where(server, tmp_path, "shipper")]
    first = example(*shipper)
    out, err = first.communicate(timeout=WAIT)
    assert first.returncode == 0, err
    assert "shipped 5 lines" in err
    with reader(server, tmp_path, "ops") as node:
        got = read(node, 5)
        assert [m.content for m in got] == [f"line {n}" for n in range(1, 6)]
        assert {m.subject for m in got} == {"app.log"} and {m.room for m in got} == {"ops"}
        # As if killed after sending line 5 and before writing down that it had: the
        # state still names line 5 as on its way, under the id it was sent with.
        state = tmp_path / "app.log.shipped"
        fifth = log.read_bytes().index(b"line 5")
        state.write_text(json.dumps({"offset": fifth,
                                     "pending": {"id": got[-1].id, "offset": fifth}}))
        with open(log, "a") as more:
            more.write("line 6\nline 7\n")
        again = example(*shipper)
        out, err = again.communicate(timeout=WAIT)
        assert again.returncode == 0, err
        assert [m.content for m in read(node, 2)] == ["line 6", "line 7"]
        assert node.receive(timeout=1.0) is None  # line 5 did not come twice
        held = [m.content for m in node.history(limit=None)]
        assert held.count("line 5") == 1 and len(held) == 7


def test_the_alert_listener_reacts_to_its_room_only(server, tmp_path):
    listener = example("alert_listener.py", "--room", "alerts", "--count", "2",
                       *where(server, tmp_path, "alerts"))
    with lab93zmq.Node.repeater(
        address="127.0.0.1", port=server.router_port, user="sensor", interfaces=["lo"],
        beacon_port=server.config.beacon_port, db=tmp_path / "sensor.db",
        rooms=["alerts", "general"],
    ) as sensor:
        sensor.send("lunch is served", room="general")
        sensor.send("disk full", subject="host3", room="alerts")
        sensor.send("disk full again", subject="host3", room="alerts")
        assert sensor.flush(timeout=WAIT) == []
        out, err = listener.communicate(timeout=WAIT)
    assert listener.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and all("ALERT #alerts from sensor [host3]" in x for x in lines)
    assert "disk full (#1 of its kind)" in lines[0] and "(#2 of its kind)" in lines[1]
    assert "lunch" not in out


def test_the_ping_bot_answers_in_its_room(server, tmp_path):
    bot = example("ping_bot.py", "--room", "bots", "--answers", "1",
                  *where(server, tmp_path, "bot"))
    with lab93zmq.Node.repeater(
        address="127.0.0.1", port=server.router_port, user="alice", interfaces=["lo"],
        beacon_port=server.config.beacon_port, db=tmp_path / "alice.db", rooms=["bots"],
    ) as alice:
        # The bot hears what was said before it came, too: !ping may go first.
        alice.send("!ping")
        answer = None
        while answer is None:
            message = alice.receive(timeout=WAIT)
            assert message is not None, "no answer from the bot"
            if message.sender == "pingbot":
                answer = message
        out, err = bot.communicate(timeout=WAIT)
    assert bot.returncode == 0, err
    assert (answer.content, answer.room) == ("pong alice", "bots")


def test_the_examples_are_strictly_typed():
    """mypy --strict on examples/: the public API is fully typed."""
    mypy = Path(sys.executable).parent / "mypy"
    if not mypy.exists():
        pytest.skip("mypy is not installed (pip install -e '.[test]')")
    done = subprocess.run([str(mypy), "--strict", str(EXAMPLES)], capture_output=True,
                          text=True, cwd=EXAMPLES.parent, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_readmes_python_quick_start_runs(server, tmp_path):
    """The README's code block, as a newcomer saves and runs it (pointed at this test's
    server and inbox instead of the default port and ~/.local/share)."""
    readme = (EXAMPLES.parent / "README.rst").read_text()
    start = readme.index("From Python\n=====")
    block = readme[readme.index(".. code-block:: python\n", start):]
    lines = block.split("\n")[2:]
    code = "\n".join(line[4:] for line in lines[: lines.index("It prints::") - 1])
    ours = (f'address="127.0.0.1", port={server.router_port}, '
            f'beacon_port={server.config.beacon_port}, db={str(tmp_path / "s7.db")!r}, ')
    assert 'address="127.0.0.1", ' in code
    script = tmp_path / "sensor.py"
    script.write_text(code.replace('address="127.0.0.1", ', ours))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=WAIT)
    assert done.returncode == 0, done.stderr
    expected = readme[readme.index("It prints::", start):].split("\n")[2:4]
    assert done.stdout.splitlines() == [line.strip() for line in expected]
