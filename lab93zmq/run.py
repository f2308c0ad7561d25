"""Turn parsed options into a NodeConfig and run the chosen mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import cli
from .actor import Actor, ActorHandle
from .config import DEFAULT_ADDRESS, NodeConfig, SecureConfig
from .console import Environment, FrontEndOptions
from .console import run as run_front_end
from .errors import UsageError
from .paths import config_dir, inbox_path
from .store import Inbox


def interface_names(raw: list[str]) -> tuple[str, ...] | None:
    """``-i lo -i eth0`` and ``-i lo,eth0`` alike; None when not given."""
    names = tuple(name.strip() for value in raw for name in value.split(",") if name.strip())
    return names or None


def build_config(mode: str, args: dict[str, Any]) -> NodeConfig:
    address = args["--address"]
    if address is None and mode != "client":
        address = DEFAULT_ADDRESS
    scan_default = cli.DEFAULT_SCAN_TIMEOUT if mode == "scan" else cli.DEFAULT_DELIVERY_TIMEOUT
    timeout = scan_default
    if args["--timeout"] is not None:
        timeout = cli.number_option(args, "--timeout", 0.001, 86_400, float)
    secure = secure_config(args) if args["--secure"] else None
    # A secure node speaks as the name its key was made for, unless told otherwise.
    key_user = secure.keys.user if secure is not None else None
    return NodeConfig(
        user=args["--user"] or key_user or cli.default_user(),
        db_path=inbox_path(args["--db"]),
        address=address,
        port=cli.number_option(args, "--port", 0, 65_535),
        interfaces=interface_names(args["--interface"]),
        beacon_port=cli.number_option(args, "--beacon-port", 1, 65_535),
        timeout=timeout,
        secure=secure,
    )


def secure_config(args: dict[str, Any]) -> SecureConfig:
    """``--secure``: our key pair (it must exist), whom we admit, how we pin a server."""
    from .security import (
        AUTHORIZED_KEYS_DIRNAME,
        KNOWN_SERVERS_FILENAME,
        SecurityError,
        load_keypair,
        parse_key,
    )

    directory = config_dir()
    server_key = None
    if args["--server-key"] is not None:
        try:
            server_key = parse_key(args["--server-key"], "--server-key")
        except SecurityError as error:
            raise UsageError(f"{error} (quote it: --server-key 'KEY')") from None
    authorized = args["--authorized-keys"]
    return SecureConfig(
        keys=load_keypair(directory),
        authorized_keys=Path(authorized).expanduser()
        if authorized
        else directory / AUTHORIZED_KEYS_DIRNAME,
        known_servers=directory / KNOWN_SERVERS_FILENAME,
        server_key=server_key,
    )


def run_mode(mode: str, args: dict[str, Any], env: Environment) -> int:
    if mode == "keygen":
        return run_keygen(args, env)
    config = build_config(mode, args)
    if mode == "history":
        return show_history(config, env, args["--json"])
    if mode == "scan":
        return run_scan(config, env, args["--json"])
    actor = make_actor(mode, config)
    handle = ActorHandle(actor)
    handle.start(timeout=max(config.timeout, 10.0))
    options = FrontEndOptions(
        subject=args["--subject"], to=args["--to"], json=args["--json"], timeout=config.timeout
    )
    # A server has no user to read from: it shows what its actor says, like --listen.
    run_front_end(
        handle,
        env,
        options,
        send=args["--send"],
        listen=args["--listen"] or mode == "server",
        prompt=f"{config.user}> ",
    )
    return cli.ExitStatus.OK


def make_actor(mode: str, config: NodeConfig) -> Actor:
    if mode == "broadcast":
        from .node import BroadcastNode

        return BroadcastNode(config)
    from .repeater import RepeaterClient, RepeaterServer

    return RepeaterServer(config) if mode == "server" else RepeaterClient(config)


def show_history(config: NodeConfig, env: Environment, json_mode: bool) -> int:
    """``--history``: the whole inbox, oldest first."""
    from .console import Printer

    printer = Printer(env, json_mode)
    with Inbox(config.db_path) as inbox:
        messages = inbox.history()
    if not messages:
        printer.note(f"the inbox {config.db_path} holds no messages yet")
    for message in messages:
        printer.message(message, with_date=True)
    return cli.ExitStatus.OK


def run_scan(config: NodeConfig, env: Environment, json_mode: bool) -> int:
    """``--scan``: one probe, every live node and repeater heard within the timeout."""
    from .console import Printer
    from .interfaces import resolve
    from .scan import scan

    targets = resolve(config.interfaces)
    sightings = scan(targets, config.beacon_port, config.timeout, user=config.user)
    Printer(env, json_mode).beacons([s.to_json_dict() for s in sightings])
    return cli.ExitStatus.OK


def run_keygen(args: dict[str, Any], env: Environment) -> int:
    """``--keygen``: make the user's key pair and say what to do with it."""
    import json

    from .security import AUTHORIZED_KEYS_DIRNAME, generate_keypair

    user = args["--user"] or cli.default_user()
    directory = config_dir()
    keys = generate_keypair(directory, user, force=args["--force"])
    if args["--json"]:
        line = {"user": user, "key": keys.public.decode(), "public_file": str(keys.path)}
        print(json.dumps(line), file=env.stdout)
        return cli.ExitStatus.OK
    print(
        f"Made a key pair for {user} in {directory} (the secret half is {keys.path.name}_secret,"
        " readable only by you).\n"
        f"Your public key: {keys.public.decode()}\n"
        f"To join a secure room, give {keys.path} to the operator of each server or node"
        f" you talk to; they save it as {AUTHORIZED_KEYS_DIRNAME}/{user}.key in their config"
        " directory. Then run lab93-node with --secure.",
        file=env.stdout,
    )
    return cli.ExitStatus.OK
