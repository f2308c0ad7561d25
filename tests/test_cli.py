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
        (["-r", "-s", "--room", "ops"], "--history, not -s/--server"),
        (["--scan", "--room", "ops"], "--history, not --scan"),
        (["--keygen", "--room", "ops"], "--history, not --keygen"),
        (["-b", "-p", "70000"], "--port takes a whole number from 0 to 65535, not '70000'"),
        (["-b", "--beacon-port", "x"], "--beacon-port takes a whole number"),
        (["-b", "--timeout", "-1"], "--timeout takes a number"),
        (["-b", "-u", "two words"], "--user 'two words': the user name must not contain spaces"),
        # What could never be sent is found before anything starts (-i lo: should a check
        # fail, the node that starts stays on this machine).
        (["-b", "-i", "lo", "--send", ""], "--send needs a message to send; its text is empty"),
        (["-b", "-i", "lo", "--send", "   "], "its text is only white space"),
        (["-b", "-i", "lo", "--send", "x" * 65_537], "--send: the text is longer than 65536 bytes"),
        (["-b", "-i", "lo", "--send", "x", "--subject", "s" * 201], "longer than 200 characters"),
        (["-b", "-i", "lo", "--subject", "two\nlines"], "--subject: the subject must not contain"),
        (["-b", "-i", "lo", "--subject", ""], "--subject is empty; leave it out"),
        (["-r", "-c", "-i", "lo", "--send", "hi", "--subject", "  "], "--subject is empty"),
        # An unset -i "$IFACE", or an interface this host does not have.
        (["-b", "-i", ""], "-i/--interface '' names no interface; name one, e.g. -i lo"),
        (["-b", "-i", " , "], "names no interface"),
        (["-b", "-i", "", "-i", "lo"], "-i/--interface '' names no interface"),  # one of two
        (["-b", "-i", "lo", "--room", "", "--room", "ops"], "--room '' names no room"),
        (["-r", "-c", "-i", "lo", "-a", "127.0.0.1:x"], "-a/--address '127.0.0.1:x': the port"),
        (["-r", "-c", "-i", "lo", "-a", "h1,h2:70000"], "-a/--address 'h2:70000': the port"),
        (["-b", "-i", "nosuch0"], "-i/--interface 'nosuch0': there is no network interface"),
        (["-b", "-i", "lo,nosuch0"], "'nosuch0': there is no network interface"),
        (["-r", "-c", "-a", "127.0.0.1", "-i", "nosuch0"], "'nosuch0': there is no network"),
        (["--scan", "-i", "nosuch0"], "'nosuch0': there is no network interface"),
        (["-r", "-c", "-i", "lo", "-p", "0"], "-p/--port 0 (any free port) is for a server"),
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
    Inbox(tmp_path / "new.db").close()
    status, out, err = run("--history", "--db", str(tmp_path / "new.db"))
    assert status == 0 and out == ""
    assert "holds no messages yet" in err


def test_history_of_a_file_that_is_not_there_makes_none(tmp_path):
    status, out, err = run("--history", "--db", str(tmp_path / "typo" / "typo.db"))
    assert (status, out) == (1, "")
    assert err == f"lab93-node: there is no inbox at {tmp_path / 'typo' / 'typo.db'}; check" \
        " the --db path\n"
    assert list(tmp_path.iterdir()) == []  # neither the file nor its directory


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
    assert status == 0  # the default inbox not made yet: nothing to show, not a mistake
    assert f"there is no inbox at {isolated_data_home / 'lab93' / 'inbox.db'} yet" in err
    assert not (isolated_data_home / "lab93").exists()
    Inbox(isolated_data_home / "lab93" / "inbox.db").close()
    status, _, err = run("--history")
    assert status == 0
    assert f"the inbox {isolated_data_home / 'lab93' / 'inbox.db'} holds no messages" in err


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
    Inbox(tmp_path / "x.db").close()
    done = subprocess.run(
        [SCRIPT, "--history", "--db", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0 and "holds no messages yet" in done.stderr


def test_python_dash_m_and_checkout_shim(tmp_path):
    import lab93zmq

    root = Path(lab93zmq.__file__).parent.parent
    shim = [sys.executable, str(root / "bin" / "lab93-node"), "--version"]
    for command in ([sys.executable, "-m", "lab93zmq", "--version"], shim):
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"lab93-node {__version__}\n"


def config_of(*argv):
    from lab93zmq.frontend.cli import choose_mode, parse_args
    from lab93zmq.frontend.options import build_config

    args = parse_args(list(argv))
    return build_config(choose_mode(args), args)


def test_loopback_interfaces_bind_loopback_unless_told_otherwise():
    assert config_of("-b", "-i", "lo").address == "127.0.0.1"
    assert config_of("-r", "-s", "-i", "lo").address == "127.0.0.1"
    assert config_of("-b", "-i", "lo", "-a", "0.0.0.0").address == "0.0.0.0"
    assert config_of("-r", "-c", "-i", "lo").address is None  # a client finds its server


def _sockets_of(pid: int) -> tuple[list[str], list[str]]:
    """The local addresses of the TCP sockets ``pid`` listens on and of its UDP sockets."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found: dict[str, list[str]] = {"tcp": [], "udp": []}
    for kind in found:
        for table in (f"/proc/{pid}/net/{kind}", f"/proc/{pid}/net/{kind}6"):
            for row in Path(table).read_text().splitlines()[1:]:
                fields = row.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if inode in inodes and (kind == "udp" or state == "0A"):  # 0A: LISTEN
                    found[kind].append(local)
    return found["tcp"], found["udp"]


@pytest.mark.parametrize("mode", [["-b"], ["-r", "-s"]])
def test_with_only_lo_nothing_listens_beyond_this_machine(tmp_path, mode, beacon_port):
    from procs import NodeProcess

    node = NodeProcess(
        [*mode, "-i", "lo", "-p", "0", "--beacon-port", str(beacon_port),
         "--db", str(tmp_path / "node.db"), "--listen" if mode == ["-b"] else "-v"]
    )
    try:
        node.wait_err("127.0.0.1:")  # its ready line names where it listens
        tcp, udp = _sockets_of(node.proc.pid)
    finally:
        node.kill()
    assert len(tcp) == 2, tcp  # the ROUTER and the PUB
    everywhere = ("00000000:", "00000000000000000000000000000000:")
    for local in tcp + udp:
        assert not local.startswith(everywhere), (tcp, udp)
    assert all(local.startswith("0100007F:") for local in tcp), tcp  # 127.0.0.1
