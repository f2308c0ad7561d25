"""The command line through main(argv) with injected streams, and through the installed script."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from factories import make_message

from lab93zmq import __version__
from lab93zmq.frontend.cli import HELP, main
from lab93zmq.frontend.environment import Environment
from lab93zmq.io.store import Inbox


def run(*argv, stdin=""):
    env = Environment(stdin=io.StringIO(stdin), stdout=io.StringIO(), stderr=io.StringIO())
    status = main(list(argv), env)
    return status, env.stdout.getvalue(), env.stderr.getvalue()


@pytest.mark.parametrize(
    "argv, sentence",
    [
        (["-b", "-r"], "-b/--broadcast and -r/--repeater cannot be used together"),
        (
            ["--broadcast", "--repeater", "-c"],
            "-b/--broadcast and -r/--repeater cannot be used together",
        ),
        (["-r", "-s", "-c"], "-s/--server and -c/--client cannot be used together"),
        (["-r"], "-r/--repeater needs -s/--server or -c/--client"),
        (["-m", "repeater"], "-r/--repeater needs -s/--server or -c/--client"),
        (["-m", "chat"], "unknown mode 'chat' for -m/--mode; use broadcast or repeater"),
        (["-m", "repeater", "-b"], "-b/--broadcast and -m repeater cannot be used together"),
        (["-r", "-m", "broadcast", "-s"], "-r/--repeater and -m broadcast cannot be used together"),
        (["-s"], "-s/--server goes with -r/--repeater"),
        (["-b", "-c"], "-c/--client goes with -r/--repeater"),
        ([], "choose a mode"),
        (["--bogus"], "unknown option --bogus"),
        (["-b", "stray"], "unexpected argument 'stray'"),
        (["-b", "-a"], "-a/--address needs a value"),
        (["-b", "--timeout", "1", "--timeout", "2"], "--timeout given more than once"),
        (["--scan", "-b"], "--scan runs on its own"),
        (["--scan", "--history"], "--scan and --history cannot be used together"),
        (["-b", "--send", "x", "--listen"], "--send and --listen cannot be used together"),
        (["-r", "-s", "--to", "bob"], "--to is for a client or broadcast node, not -s/--server"),
        (["-b", "-p", "70000"], "--port takes a whole number from 0 to 65535, not '70000'"),
        (["-b", "--beacon-port", "x"], "--beacon-port takes a whole number"),
        (["-b", "--timeout", "-1"], "--timeout takes a number"),
        (["-b", "-u", "two words"], "--user 'two words': the user name must not contain spaces"),
    ],
)
def test_wrong_combinations_exit_2_with_one_sentence(argv, sentence):
    status, out, err = run(*argv)
    assert status == 2
    assert out == ""
    assert sentence in err
    assert "Traceback" not in err
    assert err.startswith("lab93-node: ")


def test_help_documents_every_contract_option():
    status, out, _ = run("--help")
    assert status == 0 and out == HELP
    for option in [
        "-b, --broadcast",
        "-r, --repeater",
        "-s, --server",
        "-c, --client",
        "-m MODE, --mode MODE",
        "--scan",
        "--history",
        "-a ADDR, --address ADDR",
        "-p PORT, --port PORT",
        "-u NAME, --user NAME",
        "-i IFACE, --interface IFACE",
        "--beacon-port PORT",
        "--db PATH",
        "--send TEXT",
        "--subject TEXT",
        "--to USER",
        "--listen",
        "--json",
        "--timeout SEC",
        "-v, --verbose",
        "--version",
        "[default: 5190]",
    ]:
        assert option in out, option


def test_version():
    assert run("--version")[:2] == (0, f"lab93-node {__version__}\n")


def test_history_of_a_new_inbox_says_so(tmp_path):
    status, out, err = run("--history", "--db", str(tmp_path / "new.db"))
    assert status == 0 and out == ""
    assert "holds no messages yet" in err


def test_history_prints_oldest_first_in_both_forms(tmp_path):
    db = tmp_path / "inbox.db"
    with Inbox(db) as inbox:
        inbox.save(make_message(1, "first", subject="lunch"))
        inbox.save(make_message(2, "second", to="bob"))
    status, out, _ = run("--history", "--db", str(db))
    lines = out.splitlines()
    assert status == 0 and len(lines) == 2
    assert "<alice> [lunch] first" in lines[0] and lines[0].startswith("[2026-11-2")
    assert "<alice -> bob> second" in lines[1]
    status, out, _ = run("--history", "--json", "--db", str(db))
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["content"] for r in rows] == ["first", "second"]
    assert rows[0] == make_message(1, "first", subject="lunch").to_json_dict()


def test_history_uses_xdg_data_home_by_default(isolated_data_home):
    status, _, err = run("--history")
    assert status == 0
    assert str(isolated_data_home / "lab93" / "inbox.db") in err
    assert (isolated_data_home / "lab93").is_dir()


def test_unreadable_inbox_is_exit_1_with_a_sentence(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all" * 50)
    status, _, err = run("--history", "--db", str(bad))
    assert status == 1
    assert "cannot open the inbox" in err and "Traceback" not in err


def test_installed_console_script(tmp_path):
    # The script pip installed next to this interpreter: the README's install step must make it.
    script = Path(sys.executable).parent / "lab93-node"
    assert script.exists(), "lab93-node is not installed: pip install -e '.[test]'"
    SCRIPT = str(script)
    done = subprocess.run([SCRIPT, "-b", "-r"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "lab93-node: -b/--broadcast and -r/--repeater cannot be used together"
    )
    done = subprocess.run([SCRIPT, "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "--beacon-port PORT" in done.stdout
    done = subprocess.run(
        [SCRIPT, "--history", "--db", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0


def test_python_dash_m_and_checkout_shim(tmp_path):
    import lab93zmq

    root = Path(lab93zmq.__file__).parent.parent
    shim = [sys.executable, str(root / "bin" / "lab93-node"), "--version"]
    for command in ([sys.executable, "-m", "lab93zmq", "--version"], shim):
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"lab93-node {__version__}\n"
