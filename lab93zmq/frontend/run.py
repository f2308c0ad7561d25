"""Turn parsed options into a NodeConfig and run the chosen mode."""

from __future__ import annotations

from typing import Any

from ..api.options import default_user
from ..core.errors import StoreError
from ..io.actor import Actor, ActorHandle
from ..io.config import NodeConfig
from ..io.inbox_lock import InboxLock
from ..io.paths import config_dir
from ..io.store import Inbox
from .console import FrontEndOptions
from .console import run as run_front_end
from .environment import Environment
from .options import ExitStatus, build_config


def run_mode(mode: str, args: dict[str, Any], env: Environment) -> int:
    if mode == "keygen":
        return run_keygen(args, env)
    config = build_config(mode, args)
    if mode == "history":
        return show_history(config, env, args["--json"], named=args["--db"] is not None)
    if mode == "scan":
        return run_scan(config, env, args["--json"])
    options = FrontEndOptions(
        subject=args["--subject"], to=args["--to"], json=args["--json"], timeout=config.timeout
    )
    with InboxLock(config.db_path):
        handle = ActorHandle(make_actor(mode, config))
        handle.start(timeout=max(config.timeout, 10.0))
        # A server has no user to read from: it shows what its actor says, like --listen.
        run_front_end(
            handle,
            env,
            options,
            send=args["--send"],
            listen=args["--listen"] or mode == "server",
            prompt=f"{config.user}> ",
        )
    return ExitStatus.OK


def make_actor(mode: str, config: NodeConfig) -> Actor:
    if mode == "broadcast":
        from ..io.broadcast_actor import BroadcastActor

        return BroadcastActor(config)
    if mode == "server":
        from ..io.repeater_server import ServerActor

        return ServerActor(config)
    from ..io.repeater_client import ClientActor

    return ClientActor(config)


def show_history(config: NodeConfig, env: Environment, json_mode: bool, named: bool) -> int:
    """``--history``: the whole inbox, oldest first. Reading never makes an inbox: a
    ``--db`` that names no file is a mistake (exit 1); the default one not there
    yet just has nothing to show."""
    from .console import Printer

    printer = Printer(env, json_mode)
    if not config.db_path.exists():
        if named:
            raise StoreError(f"there is no inbox at {config.db_path}; check the --db path")
        printer.note(f"there is no inbox at {config.db_path} yet (a node makes it when it"
                     " first runs): nothing to show")
        return ExitStatus.OK
    with Inbox(config.db_path) as inbox:
        messages = inbox.history()
    if not messages:
        printer.note(f"the inbox {config.db_path} holds no messages yet")
    for message in messages:
        printer.message(message, with_date=True)
    return ExitStatus.OK


def run_scan(config: NodeConfig, env: Environment, json_mode: bool) -> int:
    """``--scan``: one probe, every live node and repeater heard within the timeout."""
    from ..io.interfaces import resolve
    from ..io.scan import scan
    from .console import Printer

    targets = resolve(config.interfaces)
    sightings = scan(targets, config.beacon_port, config.timeout, user=config.user)
    Printer(env, json_mode).beacons([s.to_json() for s in sightings])
    return ExitStatus.OK


def run_keygen(args: dict[str, Any], env: Environment) -> int:
    """``--keygen``: make the user's key pair and say what to do with it."""
    import json

    from ..io.security import AUTHORIZED_KEYS_DIRNAME, generate_keypair

    user = args["--user"] or default_user()
    directory = config_dir()
    keys = generate_keypair(directory, user, force=args["--force"])
    if args["--json"]:
        line = {"user": user, "key": keys.public.decode(), "public_file": str(keys.path)}
        print(json.dumps(line), file=env.stdout)
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
