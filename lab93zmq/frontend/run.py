"""Turn parsed options into a node of the Python API and run the chosen front end."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from ..api.node import Node, Server
from ..api.options import default_user, make_actor
from ..core.errors import StoreError
from ..io.config import NodeConfig
from ..io.paths import config_dir
from ..io.store import Inbox
from . import startup
from .chat import ChatRun, FrontEndOptions
from .environment import Environment
from .options import ExitStatus, build_config, since_time


def run_mode(mode: str, args: dict[str, Any], env: Environment) -> int:
    if mode == "keygen":
        return run_keygen(args, env)
    config = build_config(mode, args)
    if mode == "history":
        rooms = config.rooms if args.get("--room") else None
        last = int(args["N"]) if args.get("N") else None
        since = since_time(args["--since"], env.utc_now()) if args.get("--since") else None
        return show_history(config, env, args["--json"], args["--db"] is not None, rooms,
                            last, since)
    if mode == "scan":
        return run_scan(config, env, args["--json"])
    send = args["--send"]
    # A server has no user to read from: it shows what its actor says, like --listen.
    listening = bool(args["--listen"]) or mode == "server"
    interactive = send is None and not listening and bool(env.stdin_isatty)
    # --send and piped input only send: they neither fetch nor show the room, and
    # are not announced to others as someone joining.
    send_only = not (listening or interactive)
    config = replace(config, listen=not send_only)
    options = FrontEndOptions(
        subject=args["--subject"], to=args["--to"], json=args["--json"], timeout=config.timeout,
        user=config.user, mode=mode,
    )
    run = ChatRun(env, options, show_messages=not send_only,
                  show_room=lambda: len(config.rooms) > 1)
    # --send and pipelines are scripts: their stderr is for what went wrong.
    run.printer.show_info = listening or interactive
    if interactive:
        startup.release()
        return run_interactive(mode, config, run)
    actor = None if mode == "server" else make_actor(mode, config)  # imports the mode
    from . import console

    startup.release()  # every module of the mode is in (see startup.py)
    node: Node | Server = Server.with_config(config) if actor is None else Node(actor, config)

    if isinstance(node, Node):
        run.show_room = lambda: len(node.rooms) > 1
    if node.ready_detail:
        run.printer.info(node.ready_detail)
    if send is not None:
        console.send_one(node, run, send)  # type: ignore[arg-type]
    elif listening:
        console.listen(node, run)
    else:
        console.pipeline(node, run, env)  # type: ignore[arg-type]
    return ExitStatus.OK


def run_interactive(mode: str, config: NodeConfig, run: ChatRun) -> int:
    """A terminal: the prompt, on the asyncio API (prompt_toolkit is asyncio)."""
    import asyncio

    from .. import aio
    from .prompt import run_prompt

    async def session() -> None:
        node = aio.Node(make_actor(mode, config), config)
        await node.start()
        run.show_room = lambda: len(node.rooms) > 1
        try:
            if node.ready_detail:
                run.printer.info(node.ready_detail)
            await run_prompt(node, run)
        finally:
            await node.close()

    try:
        asyncio.run(session())
    finally:
        run.report_outbox()
    return ExitStatus.OK


def show_history(
    config: NodeConfig,
    env: Environment,
    json_mode: bool,
    named: bool,
    rooms: tuple[str, ...] | None = None,
    last: int | None = None,
    since: datetime | None = None,
) -> int:
    """``--history``: the whole inbox (with ``--room``: those rooms; ``last``: the
    newest N of them; ``since``: those written since), oldest first. Reading never
    makes an inbox: a ``--db`` that names no file is a mistake (exit 1); the default
    one not there yet just has nothing to show."""
    from .lines import View
    from .printer import Printer

    printer = Printer(env, json_mode)
    if not config.db_path.exists():
        if named:
            raise StoreError(f"there is no inbox at {config.db_path}; check the --db path")
        printer.note(f"there is no inbox at {config.db_path} yet (a node makes it when it"
                     " first runs): nothing to show")
        return ExitStatus.OK
    with Inbox(config.db_path) as inbox:
        messages = inbox.history(limit=last if since is None else None, room=rooms,
                                 chat_only=True)
    if since is not None:
        messages = [m for m in messages if m.sent_at >= since][-last if last else 0 :]
    if not messages:
        where = f" of {', '.join('#' + r for r in rooms)}" if rooms else ""
        when = f" written since {since.astimezone():%Y-%m-%d %H:%M:%S}" if since else ""
        printer.note(f"the inbox {config.db_path} holds no messages{where}{when}"
                     f"{'' if since else ' yet'}")
    several = len({m.room for m in messages if m.room is not None}) > 1
    view = View(today=None, show_room=several, style=printer.style)  # every line dated
    for message in messages:
        printer.message(message, view)
    return ExitStatus.OK


def run_scan(config: NodeConfig, env: Environment, json_mode: bool) -> int:
    """``--scan``: one probe, every live node and repeater heard within the timeout."""
    from ..io.interfaces import resolve
    from ..io.scan import scan
    from .printer import Printer

    targets = resolve(config.interfaces)
    sightings = scan(targets, config.beacon_port, config.timeout, user=config.user)
    Printer(env, json_mode).beacons([s.to_json() for s in sightings])
    return ExitStatus.OK


def run_keygen(args: dict[str, Any], env: Environment) -> int:
    """``--keygen``: make the user's key pair and say what to do with it."""
    import json

    from ..io.security import AUTHORIZED_KEYS_DIRNAME, generate_keypair, key_paths

    user = args["--user"] or default_user()
    directory = config_dir()
    existed = key_paths(directory)[1].exists() and not args["--force"]
    keys = generate_keypair(directory, user, force=args["--force"])
    if args["--json"]:
        line = {"user": user, "key": keys.public.decode(), "public_file": str(keys.path)}
        print(json.dumps(line), file=env.stdout)
        return ExitStatus.OK
    if existed:  # a 0.1 pair: it got its signing key, nothing else changed
        print(
            f"Added a signing key to your key pair in {directory} (your public key is still "
            f"{keys.public.decode()}).\n"
            f"Secure broadcast nodes check every message with it: give the new {keys.path} "
            f"to each of them again ({AUTHORIZED_KEYS_DIRNAME}/{keys.user or user}.key).",
            file=env.stdout,
        )
        return ExitStatus.OK
    print(
        f"Made a key pair for {user} in {directory} (the secret half is {keys.path.name}_secret,"
        " readable only by you).\n"
        f"Your public key: {keys.public.decode()}\n"
        f"To join a secure room, give {keys.path} to the operator of each server or node"
        f" you talk to; they save it as {AUTHORIZED_KEYS_DIRNAME}/{user}.key in their config"
        " directory. Then run lab93-node with --secure.",
        file=env.stdout,
    )
    return ExitStatus.OK
