"""The lab93-node command line: docopt usage, option checks, ``main(argv) -> status``.

This is the only place that turns exceptions into stderr text and an exit
status (0 ok, 1 failure, 2 usage, 130 Ctrl-C, 141 stdout closed, 143 SIGTERM).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import docopt

from .. import __version__
from ..core.errors import Lab93Error, MessageError, UsageError
from ..core.message import check_name
from . import startup
from .options import ExitStatus, OutputClosed, Terminated, check_message_options, since_time

USAGE = """\
Usage:
  lab93-node (-b | --broadcast | -m broadcast) [options]
  lab93-node (-r | --repeater | -m repeater) (-s | --server | -c | --client) [options]
  lab93-node --scan [options]
  lab93-node --history [N] [options]
  lab93-node --keygen [--force] [options]
  lab93-node -h | --help | --version
"""

OPTIONS = """\
Modes:
  -b, --broadcast          Serverless chat with every node on the subnet.
  -r, --repeater           Chat through a self-hosted repeater server.
  -s, --server             With -r: run the repeater server.
  -c, --client             With -r: connect to a repeater server.
  -m MODE, --mode MODE     The mode by name: broadcast or repeater.
  --scan                   List the nodes and repeaters on the network, then exit.
  --history                Print the inbox (with N: its last N messages), oldest
                           first by when each message was written, then exit.

Options:
  -a ADDR, --address ADDR  Bind address of a server or broadcast node
                           (default 0.0.0.0, or 127.0.0.1 when every -i
                           interface is loopback); for a client, the server's
                           address (default: the first repeater heard), or
                           several to move between (h1,h2:5191, or -a repeated).
  -p PORT, --port PORT     TCP port: a server's or node's ROUTER (0: any free
                           port), a client's server [default: 5190].
  -u NAME, --user NAME     Display name (default: your login name).
  -i IFACE, --interface IFACE
                           Interface to beacon on; repeat or comma-separate for
                           several; lo beacons to 127.255.255.255 (default:
                           every interface that is up, not loopback, with a
                           broadcast address).
  --beacon-port PORT       UDP beacon port [default: 5190].
  --room ROOM              A room to be in (#ops or ops); repeat or
                           comma-separate for several; the first is the
                           current room, where typed and piped lines and
                           --send go (default: general). With --history:
                           show only that room.
  --db PATH                Inbox file (default:
                           $XDG_DATA_HOME/lab93/inbox.db, else
                           ~/.local/share/lab93/inbox.db); a repeater server
                           may use postgresql://USER@HOST:PORT/DBNAME instead.
  --send TEXT              Send one message, wait until it is accepted, exit
                           (0 when it was, 1 when not).
  --subject TEXT           Subject for --send and for piped lines (at most 200
                           characters, one line).
  --to USER                Send direct messages to USER instead of the room.
  --listen                 Do not read stdin; print incoming messages until
                           interrupted.
  --json                   Machine output: one JSON object per line on stdout.
  --timeout SEC            How long --scan (default 2), --send and the end of
                           piped input (default 10) may wait.
  --since TIME             With --history: only what was written since TIME,
                           an ISO 8601 date or time (2026-11-24, 2026-11-24T09:00;
                           local time unless it has an offset) or a time ago
                           (90s, 15m, 2h, 1h30m, 3d, 1w).

Secure mode (see README.rst, "Secure mode"):
  --secure                 Encrypt and authenticate every connection with
                           CurveZMQ, using your key pair from --keygen.
  --keygen                 Make your key pair in $XDG_CONFIG_HOME/lab93 (else
                           ~/.config/lab93), print the public key, then exit.
  --force                  With --keygen: replace an existing key pair.
  --authorized-keys DIR    With --secure: public keys allowed to connect, one
                           NAME.key file each, speaking as NAME (default:
                           authorized_keys in that directory).
  --server-key KEY         With -r -c --secure: the server's public key
                           (default: learned from its beacon on first use
                           and pinned in known_servers there).

IRC face of a repeater server (with -r -s; see README.rst, "IRC clients"):
  --irc-port PORT          Also speak IRC on this TCP port (0: any free port;
                           the ready line names it): every room is a channel.
  --irc-address ADDR       The IRC face's bind address (default: the -a of the
                           server).
  --irc-tls-cert FILE      Speak IRC over TLS: the server's PEM certificate
                           (with its chain); goes with --irc-tls-key.
  --irc-tls-key FILE       The PEM private key of --irc-tls-cert.
  --irc-password-file FILE
                           IRC clients must send the first line of FILE as
                           their server password (PASS). With --secure, TLS
                           and a password are required: IRC has no CurveZMQ.

Output:
  -v, --verbose            Status lines on stderr too (-vv: debugging, with
                           the module of each line).
  --traceback              Show the Python traceback of an error (debugging).
  -h, --help               Show this help.
  --version                Show the version.
"""

DESCRIPTION = "lab93-node: a ZeroMQ messaging node for local networks.\n\n"

EPILOG = """
Chat commands (interactive or piped): /msg USER TEXT, /me ACTION, /subject
SUBJECT TEXT, /join ROOM, /part [ROOM], /rooms, /topic [TEXT], /who [ROOM],
/away [TEXT], /scan, /history [N], /outbox, /clear, /help [COMMAND], /quit.
/away TEXT marks you away: /who shows "zed (away: TEXT)" and whoever sends you
a direct message is told "zed is away: TEXT" (/away alone: back). /quit and
Ctrl-D leave at once and name what waits in the outbox; Ctrl-C leaves the same
way (exit 130). At the prompt, Tab completes commands, names and rooms; Up
recalls earlier lines, also of earlier runs ($XDG_STATE_HOME/lab93/history,
else ~/.local/state/lab93/history). Colour only on a terminal, never with
NO_COLOR set.

Exit status: 0 ok, 1 failure (e.g. a message refused, or not delivered and kept
for next time), 2 bad command line, 130 interrupted (Ctrl-C), 141 whoever read
the output stopped reading (e.g. | head -1), 143 terminated (SIGTERM).
"""

HELP = DESCRIPTION + USAGE + "\n" + OPTIONS + EPILOG

# docopt parses with one permissive pattern; the checks below give each wrong
# combination its own sentence instead of a usage dump.
_PARSE_DOC = (
    "Usage: lab93-node [options] [-a ADDR]... [-i IFACE]... [--room ROOM]... [-v]... [N]\n\n"
    + OPTIONS
)

IRC_FLAGS = (
    "--irc-port", "--irc-address", "--irc-tls-cert", "--irc-tls-key", "--irc-password-file"
)


def _option_name(option: docopt.Option) -> str:
    return "/".join(name for name in (option.short, option.longer) if name)


def parse_args(argv: Sequence[str]) -> dict[str, Any]:
    """docopt's parse, with unknown or stray words named in one sentence."""
    known = docopt.parse_options(_PARSE_DOC)
    known_names = {name for o in known for name in (o.short, o.longer) if name}
    try:
        items = docopt.parse_argv(docopt.Tokens(list(argv)), list(known))
    except docopt.DocoptExit as error:
        # e.g. "-a requires argument", "--to is not a unique prefix: ..."
        first = str(error).splitlines()[0]
        flag, _, problem = first.partition(" ")
        if problem == "requires argument":
            named = next((o for o in known if flag in (o.short, o.longer)), None)
            first = f"{_option_name(named) if named else flag} needs a value"
        raise UsageError(f"{first}; see lab93-node --help") from None
    for item in items:
        if isinstance(item, docopt.Option) and not (
            item.short in known_names or item.longer in known_names
        ):
            raise UsageError(f"unknown option {item.longer or item.short}; see lab93-node --help")
    words = [item.value for item in items if isinstance(item, docopt.Argument)]
    history = any(isinstance(item, docopt.Option) and item.longer == "--history"
                  for item in items)
    if words[1 if history else 0 :]:  # only --history takes a word: how many to print
        stray = words[1 if history else 0]
        raise UsageError(f"unexpected argument {stray!r}; see lab93-node --help")
    try:
        return dict(docopt.docopt(_PARSE_DOC, list(argv), default_help=False))
    except docopt.DocoptExit:
        repeated = [o for o in items if isinstance(o, docopt.Option)]
        names = [_option_name(o) for o in repeated]
        twice = sorted({n for n in names if names.count(n) > 1})
        detail = (
            f"{', '.join(twice)} given more than once"
            if twice
            else "the options do not fit together"
        )
        raise UsageError(f"{detail}; see lab93-node --help") from None


def choose_mode(args: dict[str, Any]) -> str:
    """broadcast, server, client, scan or history; UsageError names the flags at fault."""
    mode_name = args["--mode"]
    if mode_name is not None and mode_name not in ("broadcast", "repeater"):
        raise UsageError(f"unknown mode {mode_name!r} for -m/--mode; use broadcast or repeater")
    broadcast = args["--broadcast"] or mode_name == "broadcast"
    repeater = args["--repeater"] or mode_name == "repeater"
    if args["--broadcast"] and mode_name == "repeater":
        raise UsageError("-b/--broadcast and -m repeater cannot be used together")
    if args["--repeater"] and mode_name == "broadcast":
        raise UsageError("-r/--repeater and -m broadcast cannot be used together")
    if broadcast and repeater:
        raise UsageError("-b/--broadcast and -r/--repeater cannot be used together")
    if args["--server"] and args["--client"]:
        raise UsageError("-s/--server and -c/--client cannot be used together")
    one_shot = [flag for flag in ("--scan", "--history", "--keygen") if args[flag]]
    if len(one_shot) >= 2:
        raise UsageError(f"{one_shot[0]} and {one_shot[1]} cannot be used together")
    if one_shot and (broadcast or repeater or args["--server"] or args["--client"]):
        raise UsageError(f"{one_shot[0]} runs on its own; leave out -b, -r, -m, -s and -c")
    if one_shot:
        return one_shot[0][2:]
    if (args["--server"] or args["--client"]) and not repeater:
        flag = "-s/--server" if args["--server"] else "-c/--client"
        raise UsageError(f"{flag} goes with -r/--repeater")
    if repeater and not (args["--server"] or args["--client"]):
        raise UsageError("-r/--repeater needs -s/--server or -c/--client")
    if broadcast:
        return "broadcast"
    if repeater:
        return "server" if args["--server"] else "client"
    raise UsageError("choose a mode: -b (broadcast) or -r with -s or -c (repeater)\n" + USAGE)


def check_options(args: dict[str, Any], mode: str) -> None:
    """Option values and the options that make no sense in ``mode``."""
    if args["N"] is not None and not (args["N"].isascii() and args["N"].isdigit()
                                      and int(args["N"]) > 0):
        raise UsageError(f"--history N: N is a whole number from 1 up, not {args['N']!r}")
    if args["--since"] is not None:
        if mode != "history":
            raise UsageError("--since goes with --history")
        since_time(args["--since"], datetime.now(timezone.utc))
    if args["--send"] is not None and args["--listen"]:
        raise UsageError("--send and --listen cannot be used together")
    talk = [flag for flag in ("--send", "--subject", "--to", "--listen") if args[flag]]
    if talk and mode in ("server", "scan", "history", "keygen"):
        where = "-s/--server" if mode == "server" else f"--{mode}"
        raise UsageError(f"{talk[0]} is for a client or broadcast node, not {where}")
    if args["--room"] and mode in ("server", "scan", "keygen"):
        # A server keeps every room; --scan lists nodes, whatever their rooms.
        where = "-s/--server" if mode == "server" else f"--{mode}"
        raise UsageError(f"--room is for a client, a broadcast node or --history, not {where}")
    _check_secure_options(args, mode)
    irc = [flag for flag in IRC_FLAGS if args[flag] is not None]
    if irc and mode != "server":
        raise UsageError(f"{irc[0]} is for a repeater server (-r -s)")
    check_message_options(args)
    for flag, field in (("--user", "user name"), ("--to", "recipient")):
        if args[flag] is not None:
            try:
                check_name(args[flag], field)
            except MessageError as error:
                raise UsageError(f"{flag} {args[flag]!r}: the {field} {error.problem}") from None


def _check_secure_options(args: dict[str, Any], mode: str) -> None:
    if args["--force"] and mode != "keygen":
        raise UsageError("--force goes with --keygen")
    if args["--secure"] and mode in ("scan", "history", "keygen"):
        raise UsageError(f"--secure is for a node, server or client, not --{mode}")
    for flag in ("--authorized-keys", "--server-key"):
        if args[flag] is not None and not args["--secure"]:
            raise UsageError(f"{flag} goes with --secure")
    if args["--server-key"] is not None and mode != "client":
        raise UsageError("--server-key is for a repeater client (-r -c)")
    if args["--authorized-keys"] is not None and mode == "client":
        raise UsageError(
            "--authorized-keys is for a server or broadcast node; a client pins its server's"
            " key instead (--server-key)"
        )


class _LogFormat(logging.Formatter):
    """``lab93-node: text`` for -v's status lines, ``lab93-node: warning: text`` for
    problems; only -vv (debugging) names the module each line comes from."""

    def __init__(self, debugging: bool) -> None:
        super().__init__()
        self.debugging = debugging

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        where = f"{record.name}: " if self.debugging else ""
        text = super().format(record)
        return f"lab93-node: {level}{where}{text}"


def _logging(verbosity: int, stderr: Any) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(_LogFormat(debugging=verbosity >= 2))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None, env: Any = None) -> int:
    """Run lab93-node; returns the exit status (the console script exits with it)."""
    whole_process = argv is None  # the command itself, not a test or program calling main
    if whole_process:
        startup.hold()  # released by run_mode once the mode's modules are in (startup.py)
    try:
        return _main(sys.argv[1:] if argv is None else list(argv), env, whole_process)
    finally:
        startup.release()


def _main(argv: list[str], env: Any, whole_process: bool) -> int:
    from .environment import Environment

    env = env or Environment()
    traceback = "--traceback" in argv
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        args = parse_args(argv)
        if args["--help"]:
            print(HELP, file=env.stdout, end="")
            return ExitStatus.OK
        if args["--version"]:
            print(f"lab93-node {__version__}", file=env.stdout)
            return ExitStatus.OK
        mode = choose_mode(args)
        check_options(args, mode)
        _logging(args["--verbose"], env.stderr)
        if whole_process:
            from ..io import sqlite_only

            if not sqlite_only.opens_postgresql(mode, args["--db"]):
                sqlite_only.import_peewee()  # without psycopg: 60 ms of a --send's start-up
        from . import run

        return run.run_mode(mode, args, env)
    except KeyboardInterrupt as interrupt:
        _say(env, "interrupted" + _unsent(interrupt))
        return ExitStatus.INTERRUPTED
    except Terminated as terminated:
        if terminated.unsent:
            _say(env, "terminated" + _unsent(terminated))
        return ExitStatus.TERMINATED
    except (OutputClosed, BrokenPipeError):
        # Like `git log | head -1`: the reader has what it wanted; say nothing.
        _silence(env.stdout)
        return ExitStatus.OUTPUT_CLOSED
    except Lab93Error as error:
        if traceback:
            raise
        _say(env, str(error))
        return ExitStatus(error.exit_status)


def _unsent(stop: BaseException) -> str:
    unsent = getattr(stop, "unsent", "")
    return f"; the line you were typing was not sent: {unsent!r}" if unsent else ""


def _say(env: Any, text: str) -> None:
    try:
        print(f"lab93-node: {text}", file=env.stderr, flush=True)
    except (BrokenPipeError, ValueError):
        pass  # nobody reads our stderr: the exit status is all that is left


def _silence(stream: Any) -> None:
    """Point a closed stdout at /dev/null, so the interpreter's last flush of what
    is still buffered does not print a BrokenPipeError of its own at exit."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's StringIO): nothing is flushed at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


