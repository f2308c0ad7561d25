"""The options a node, a server and a scan take, by the command line's names.

One set of checks for both faces: ``lab93-node --port x`` and
``Node.broadcast(port="x")`` fail with the same sentence (a UsageError, exit
status 2 on the command line). The command line hands its raw strings here;
a program hands Python values; both end in one ``NodeConfig``.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import MessageError, SecurityError, UsageError
from ..core.message import check_name
from ..core.rooms import DEFAULT_ROOM, RoomError, room_name
from ..io import interfaces as network
from ..io.config import (
    DEFAULT_ADDRESS,
    DEFAULT_BEACON_PORT,
    DEFAULT_PORT,
    IRCSettings,
    NodeConfig,
    SecureConfig,
)
from ..io.paths import config_dir, inbox_path

if TYPE_CHECKING:
    from ..io.actor import Actor

DEFAULT_SCAN_TIMEOUT = 2.0
DEFAULT_DELIVERY_TIMEOUT = 10.0
MAX_TIMEOUT = 86_400.0
MODES = ("broadcast", "server", "client", "scan", "history")


def whole_number(value: object, flag: str, low: int, high: int) -> int:
    """``value`` (an int, or its text) within [low, high]; UsageError names ``flag``."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value)
    if number is None or not low <= number <= high:
        raise UsageError(f"{flag} takes a whole number from {low:g} to {high:g}, not {value!r}")
    return number


def number(value: object, flag: str, low: float, high: float) -> float:
    """``value`` (a real number, or its text) within [low, high]; UsageError names ``flag``."""
    result: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value)
        except ValueError:
            result = None
    if result is None or not low <= result <= high:  # NaN fails both comparisons
        raise UsageError(f"{flag} takes a number from {low:g} to {high:g}, not {value!r}")
    return result


def user_name(value: object, flag: str = "--user", field: str = "user name") -> str:
    try:
        return check_name(value, field)
    except MessageError as error:
        raise UsageError(f"{flag} {value!r}: the {field} {error.problem}") from None


def default_user() -> str:
    """The login name, as DESIGN.md says; a name that is not valid here falls back to 'user'."""
    try:
        return check_name(getpass.getuser(), "from")
    except (MessageError, KeyError, OSError):
        return "user"


def _words(value: object, flag: str, noun: str, example: str) -> list[str]:
    """A list of names as given: several values, each maybe comma-separated."""
    if value is None:
        return []
    raw = [value] if isinstance(value, str) else value
    if not isinstance(raw, Iterable) or not all(isinstance(item, str) for item in raw):
        raise UsageError(f"{flag} takes names (text), not {value!r}")
    words: list[str] = []
    for item in raw:  # each value must name one: an empty one beside others is a mistake too
        named = [word.strip() for word in item.split(",") if word.strip()]
        if not named:
            raise UsageError(
                f"{flag} {item!r} names no {noun}; name one, e.g. {example}"
                f" (an empty {flag.split('/')[0]} \"$VARIABLE\" is often an unset one)"
            )
        words += named
    return words


def interface_names(value: object) -> tuple[str, ...] | None:
    """``-i lo -i eth0``, ``-i lo,eth0`` or ``interfaces=["lo"]``; None when not given.

    Each name must be an interface of this host: a typo (or an unset
    ``-i "$IFACE"``) is a wrong command line, whichever mode ends up using it.
    """
    names = tuple(_words(value, "-i/--interface", "interface", "-i lo"))
    for name in names:
        if not network.exists(name):
            raise UsageError(
                f"-i/--interface {name!r}: there is no network interface by that name here"
                f" (there are: {', '.join(network.names())})"
            )
    return names or None


def room_names(value: object) -> tuple[str, ...]:
    """``--room ops --room dev``, ``--room ops,dev`` or ``rooms=["#ops"]``: each once, in
    order (the first is the current room); ``general`` when none is given."""
    rooms: list[str] = []
    for word in _words(value, "--room", "room", "--room ops"):
        try:
            name = room_name(word)
        except RoomError as error:
            raise UsageError(f"--room {word!r}: {error}") from None
        if name not in rooms:
            rooms.append(name)
    return tuple(rooms) or (DEFAULT_ROOM,)


def bind_address(mode: str, address: str | None, names: tuple[str, ...] | None) -> str | None:
    """What a server or broadcast node binds: ``address``, else loopback when every chosen
    interface is a loopback one (so ``-i lo`` keeps everything on this machine), else
    every address. A client's address is its server's (None: find one by beacon)."""
    if address is not None or mode == "client":
        return address
    if names and all(network.is_loopback(name) for name in names):
        return network.LOOPBACK_ADDRESS
    return DEFAULT_ADDRESS


def port_number(mode: str, value: object) -> int:
    port = whole_number(value, "-p/--port", 0, 65_535)
    if port == 0 and mode == "client":
        raise UsageError(
            "-p/--port 0 (any free port) is for a server or broadcast node; a client"
            " needs the port its server listens on"
        )
    return port


def secure_config(
    authorized_keys: str | Path | None = None, server_key: str | None = None
) -> SecureConfig:
    """``secure=True``: our key pair (it must exist), whom we admit, how we pin a server."""
    from ..io.security import (
        AUTHORIZED_KEYS_DIRNAME,
        KNOWN_SERVERS_FILENAME,
        load_keypair,
        parse_key,
    )

    directory = config_dir()
    pinned = None
    if server_key is not None:
        try:
            pinned = parse_key(server_key, "--server-key")
        except SecurityError as error:
            raise UsageError(f"{error} (quote it: --server-key 'KEY')") from None
    return SecureConfig(
        keys=load_keypair(directory),
        authorized_keys=Path(authorized_keys).expanduser()
        if authorized_keys
        else directory / AUTHORIZED_KEYS_DIRNAME,
        known_servers=directory / KNOWN_SERVERS_FILENAME,
        server_key=pinned,
    )


def make_actor(mode: str, config: NodeConfig) -> Actor:
    """The actor of ``mode``: each is imported only when a node of that mode is made,
    so a program loads only what its mode needs."""
    if mode == "broadcast":
        from ..io.broadcast_actor import BroadcastActor

        return BroadcastActor(config)
    if mode == "server":
        from ..io.repeater_server import ServerActor

        return ServerActor(config)
    if mode == "client":
        from ..io.repeater_client import ClientActor

        return ClientActor(config)
    raise ValueError(f"no actor for the mode {mode!r}")  # our own mistake


POSTGRESQL_SCHEMES = ("postgresql://", "postgres://")


def store_option(mode: str, db: str | Path | None) -> tuple[Path, str | None]:
    """``--db``: an inbox file, or (a repeater server only) a PostgreSQL URL."""
    if isinstance(db, str) and db.startswith(POSTGRESQL_SCHEMES):
        if mode != "server":
            raise UsageError(
                "--db postgresql://... is a repeater server's store; clients and broadcast"
                " nodes keep an inbox file (--db PATH)"
            )
        return inbox_path(None), db
    return inbox_path(str(db) if db is not None else None), None


def server_list(mode: str, address: object, port: int) -> tuple[tuple[str, int], ...]:
    """A client's servers: ``-a h1,h2:5191`` or ``-a`` repeated (or a list); each
    ``HOST`` or ``HOST:PORT`` (``[V6]:PORT``), ``-p``'s port when it names none."""
    if mode != "client" or address is None:
        return ()
    servers: list[tuple[str, int]] = []
    for word in _words(address, "-a/--address", "server", "-a 192.168.1.10"):
        host, sep, tail = word.rpartition(":")
        if not sep or (host.count(":") and not host.endswith("]")):
            host, tail = word, ""  # no port (or a bare IPv6 address)
        host = host.strip("[]")
        number = whole_number(tail, f"-a/--address {word!r}: the port", 1, 65_535) if tail else port
        if (host, number) not in servers:
            servers.append((host, number))
    return tuple(servers)


def _readable_file(value: str | Path, flag: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_file():
        raise UsageError(f"{flag} {str(value)!r}: there is no file there")
    return path


def irc_password_from(path: Path, flag: str = "--irc-password-file") -> str:
    """The first line of a password file (without its line break)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{flag} {str(path)!r}: cannot read it ({error})") from None
    password = text.splitlines()[0] if text else ""
    if not password:
        raise UsageError(f"{flag} {str(path)!r}: its first line is empty; write the password there")
    return password


def irc_settings(
    mode: str,
    port: int | str | None,
    address: str | None,
    tls_cert: str | Path | None,
    tls_key: str | Path | None,
    password: str | None,
    password_file: str | Path | None,
    secure: bool,
) -> IRCSettings | None:
    """``--irc-port`` and its company, checked: None when the server has no IRC face."""
    given = {
        "--irc-address": address,
        "--irc-tls-cert": tls_cert,
        "--irc-tls-key": tls_key,
        "--irc-password-file": password_file,
        "irc_password": password,
    }
    if port is None:
        stray = next((flag for flag, value in given.items() if value is not None), None)
        if stray is not None:
            raise UsageError(f"{stray} goes with --irc-port")
        return None
    if mode != "server":
        raise UsageError("--irc-port is for a repeater server (-r -s)")
    number_ = whole_number(port, "--irc-port", 0, 65_535)
    if (tls_cert is None) != (tls_key is None):
        raise UsageError("--irc-tls-cert and --irc-tls-key go together: give both, or neither")
    if password is not None and password_file is not None:
        raise UsageError("give the IRC password once: irc_password or --irc-password-file")
    if password_file is not None:
        password = irc_password_from(_readable_file(password_file, "--irc-password-file"))
    if password is not None and (
        not isinstance(password, str) or not password or any(c in password for c in "\r\n\0")
    ):
        raise UsageError("the IRC password must be one line of text, not empty")
    cert = None if tls_cert is None else _readable_file(tls_cert, "--irc-tls-cert")
    key = None if tls_key is None else _readable_file(tls_key, "--irc-tls-key")
    if secure and (cert is None or password is None):
        raise UsageError(
            "--secure with --irc-port: IRC has no CurveZMQ, so its face needs TLS and a"
            " password (--irc-tls-cert, --irc-tls-key and --irc-password-file), or leave"
            " out --irc-port"
        )
    return IRCSettings(number_, address, cert, key, password)


def node_config(
    mode: str,
    *,
    user: str | None = None,
    address: str | Iterable[str] | None = None,
    port: int | str = DEFAULT_PORT,
    interfaces: str | Iterable[str] | None = None,
    beacon_port: int | str = DEFAULT_BEACON_PORT,
    db: str | Path | None = None,
    rooms: str | Iterable[str] | None = None,
    secure: bool = False,
    authorized_keys: str | Path | None = None,
    server_key: str | None = None,
    timeout: float | str | None = None,
    listen: bool = True,
    irc_port: int | str | None = None,
    irc_address: str | None = None,
    irc_tls_cert: str | Path | None = None,
    irc_tls_key: str | Path | None = None,
    irc_password: str | None = None,
    irc_password_file: str | Path | None = None,
) -> NodeConfig:
    """Every option checked, in the order the command line lists them; UsageError first."""
    if mode not in MODES:
        raise ValueError(f"no mode {mode!r}")  # our own mistake, not the user's
    if user is not None:
        user = user_name(user)
    names = interface_names(interfaces)
    chosen_rooms = room_names(rooms)
    if timeout is None:
        seconds = DEFAULT_SCAN_TIMEOUT if mode == "scan" else DEFAULT_DELIVERY_TIMEOUT
    else:
        seconds = number(timeout, "--timeout", 0.001, MAX_TIMEOUT)
    irc = irc_settings(
        mode, irc_port, irc_address, irc_tls_cert, irc_tls_key, irc_password,
        irc_password_file, bool(secure),
    )
    config_secure = secure_config(authorized_keys, server_key) if secure else None
    db_path, db_url = store_option(mode, db)
    if address is not None and not isinstance(address, str):  # -a repeated, or a list
        given = list(address)
        if mode != "client" and len(given) > 1:
            raise UsageError("-a/--address names several servers only for a client (-r -c)")
        address = (given[0] if mode != "client" else given) if given else None
    port = port_number(mode, port)
    servers = server_list(mode, address, port)
    if servers:
        address, port = servers[0]
    elif not isinstance(address, str):
        address = None
    # A secure node speaks as the name its key was made for; a repeater client may be
    # told another (the server says which name its key is authorized as), but a secure
    # broadcast node signs its messages as its key's, and its peers drop any other name.
    key_user = config_secure.keys.user if config_secure is not None else None
    if mode == "broadcast" and key_user is not None and user is not None and user != key_user:
        raise UsageError(
            f"-u {user}: a secure broadcast node speaks as the name its key was made for,"
            f" {key_user!r}; leave out -u, or run with -u {key_user}"
        )
    return NodeConfig(
        user=user or key_user or default_user(),
        db_path=db_path,
        db_url=db_url,
        servers=servers if len(servers) > 1 else (),
        address=bind_address(mode, address, names),
        port=port,
        interfaces=names,
        beacon_port=whole_number(beacon_port, "--beacon-port", 1, 65_535),
        timeout=seconds,
        secure=config_secure,
        rooms=chosen_rooms,
        listen=bool(listen),
        irc=irc,
    )
