"""What a command-line run imports: only what its mode needs (issue 14, target 7).

Each check runs in a fresh interpreter, the way the command starts.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parent.parent
HAS_PSYCOPG = importlib.util.find_spec("psycopg") is not None


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=TOP, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.skipif(not HAS_PSYCOPG, reason="psycopg is not installed: nothing to hide")
def test_peewee_for_sqlite_is_imported_without_psycopg_which_stays_importable():
    out = run_python(
        "import sys\n"
        "from lab93zmq.io.sqlite_only import import_peewee\n"
        "import_peewee()\n"
        "import peewee\n"
        "print('psycopg' in sys.modules, peewee.psycopg is None)\n"
        "import psycopg\n"
        "print(psycopg.__name__)\n"
    )
    assert out.splitlines() == ["False True", "psycopg"]


@pytest.mark.skipif(not HAS_PSYCOPG, reason="psycopg is not installed: nothing to hide")
def test_peewee_imported_plainly_still_knows_psycopg():
    """The check above can fail: without import_peewee, peewee loads psycopg."""
    out = run_python("import sys, peewee\nprint('psycopg' in sys.modules)")
    assert out == "True"


def test_the_command_line_opens_an_inbox_without_loading_psycopg(tmp_path):
    db = tmp_path / "inbox.db"
    out = run_python(
        "import sys\n"
        f"sys.argv = ['lab93-node', '--history', '--db', {str(db)!r}]\n"
        "from lab93zmq.frontend.cli import main\n"
        "status = main()\n"
        "print(status, 'peewee' in sys.modules, 'psycopg' in sys.modules)\n"
    )
    # --history of a --db that names no file is a mistake (status 1), found after
    # the store's modules were imported.
    assert out == "1 True False"


def test_a_server_on_postgresql_is_not_refused_its_driver():
    from lab93zmq.io.sqlite_only import opens_postgresql

    assert opens_postgresql("server", "postgresql://me@127.0.0.1:5432/chat")
    assert opens_postgresql("server", "postgres://me@127.0.0.1:5432/chat")
    assert not opens_postgresql("server", "/tmp/server.db")
    assert not opens_postgresql("server", None)
    assert not opens_postgresql("client", "postgresql://me@127.0.0.1:5432/chat")


def test_peewee_gets_stand_ins_for_hashlib_and_calendar_which_work_when_used():
    out = run_python(
        "import sys\n"
        "from lab93zmq.io.sqlite_only import import_peewee\n"
        "import_peewee()\n"
        "import peewee\n"
        "print('hashlib' in sys.modules, '_hashlib' in sys.modules, 'calendar' in sys.modules)\n"
        "day = peewee.calendar.timegm((1970, 1, 2, 0, 0, 0))\n"
        "print(peewee.hashlib.md5(b'lab93').hexdigest(), day)\n"
        "import hashlib\n"
        "print(hashlib is sys.modules['hashlib'], hashlib.sha256 is peewee.hashlib.sha256)\n"
    )
    import hashlib

    assert out.splitlines() == [
        "False False False",
        f"{hashlib.md5(b'lab93').hexdigest()} 86400",
        "True True",
    ]


def test_plain_servers_clients_and_nodes_load_neither_openssl_nor_the_irc_face():
    """libcrypto (hashlib) and libssl (the IRC face's TLS) are 5 MiB of an idle node's
    RSS (issue 14, target 8): a plain server, client or broadcast node needs neither."""
    out = run_python(
        "import sys\n"
        "from lab93zmq.io.sqlite_only import import_peewee\n"
        "import_peewee()\n"
        "import lab93zmq.frontend.run, lab93zmq.frontend.console\n"
        "import lab93zmq.io.repeater_server, lab93zmq.io.repeater_client\n"
        "import lab93zmq.io.broadcast_actor\n"
        "heavy = ('_hashlib', 'ssl', 'lab93zmq.io.irc_face')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    assert out == "[]"


def test_the_digest_of_a_vector_is_sha256_whichever_implementation_computes_it():
    import hashlib

    from lab93zmq.core.sync import digest

    vector = {"a" * 32: 3, "b" * 32: 0, "c" * 32: 12}
    text = f"{'a' * 32}:3\n{'c' * 32}:12\n"
    assert digest(vector) == hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


def test_the_command_collects_nothing_while_it_starts_and_collects_again_after():
    out = run_python(
        "import gc, sys\n"
        "from lab93zmq.frontend import cli, startup\n"
        "status = cli.main(['--version'])  # called, not run: the collector is left alone\n"
        "print(gc.isenabled(), gc.get_freeze_count())\n"
        "startup.hold()\n"
        "print(gc.isenabled())\n"
        "import lab93zmq.io.repeater_client\n"
        "startup.release()\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 1000)\n"
        "startup.release()  # once only\n"
        "sys.argv = ['lab93-node', '--version']\n"
        "gc.unfreeze()\n"
        "cli.main()  # the command itself: held and released around the run\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 1000)\n"
    )
    lines = [line for line in out.splitlines() if not line.startswith("lab93-node ")]
    assert lines == ["True 0", "False", "True True", "True True"]


def test_a_secure_node_id_is_sha256_whichever_implementation_computes_it():
    import hashlib

    from lab93zmq.core.signing import NODE_ID_PREFIX, node_id_of

    key = bytes(range(32))
    assert node_id_of(key) == hashlib.sha256(NODE_ID_PREFIX + key).digest()[:16].hex()


def test_a_send_only_client_imports_no_command_table_or_beacon_code_until_a_command():
    """What a --send or a pipeline imports (its mode's modules, the front end, a client
    given its server) holds no chat command table, no beacon code; the first command
    line brings the table."""
    out = run_python(
        "import sys, io\n"
        "from lab93zmq.frontend import run, console\n"
        "from lab93zmq.io.repeater_client import ClientActor\n"
        "from lab93zmq.frontend.chat import ChatRun, FrontEndOptions\n"
        "from lab93zmq.frontend.environment import Environment\n"
        "env = Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO())\n"
        "chat = ChatRun(env, FrontEndOptions())\n"
        "said = chat.parse('hello //there\\n'), chat.parse('//who\\n')\n"
        "loaded = lambda: [m for m in ('lab93zmq.core.commands', 'lab93zmq.frontend.actions',"
        " 'lab93zmq.core.presence', 'lab93zmq.io.beacon') if m in sys.modules]\n"
        "print([s.text for s in said], loaded())\n"
        "print(type(chat.parse('/who')).__name__, loaded()[:1])\n"
    )
    assert out.splitlines() == [
        "['hello //there', '/who'] []",
        "Who ['lab93zmq.core.commands']",
    ]
