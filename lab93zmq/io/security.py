"""Secure mode: key files, whom to trust, pinned server keys, CURVE sockets.

Everything cryptographic is CurveZMQ as libzmq does it, driven through
pyzmq's own helpers (``zmq.auth`` certificates and its ZAP authenticator);
nothing here invents crypto. What lives here is the policy:

* **Own key pair** - ``$XDG_CONFIG_HOME/lab93/id.key`` (public certificate)
  and ``id.key_secret`` (mode 0600), written by ``lab93-node --keygen``.
  The secret certificate's metadata records the user name it was made for.
  Both also hold an Ed25519 signing key (``signing.py``), which secure
  broadcast mode signs every message with.
* **Authorized keys** - a directory of public certificates, one per person,
  ``NAME.key``. The file name is the name that key speaks as: a server takes
  a client's name from its key, never from what the client says, so the
  operator, who names the files, decides who is who.
* **Known servers** - ``known_servers``: one ``host:port KEY`` line per
  repeater a client has trusted, like SSH's known_hosts. A server that
  later shows another key is refused until the line is removed.
* **Admission** - ``KeyAuthenticator`` (in ``zap.py``, which only a secure node's shell imports)
  is pyzmq's ZAP handler admitting exactly the authorized keys.
* **Handshake reports** - libzmq tells a socket monitor why a handshake
  failed; ``handshake_problem`` turns that into the sentence a user sees
  (plain meets secure, wrong server key, key not authorized).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.utils import z85

from ..core.errors import MessageError, SecurityError
from ..core.message import check_name
from ..core.signing import node_id_of
from . import signing

log = logging.getLogger(__name__)


KEY_BASENAME = "id"  # id.key and id.key_secret, like SSH's id_ed25519
AUTHORIZED_KEYS_DIRNAME = "authorized_keys"
KNOWN_SERVERS_FILENAME = "known_servers"
KEY_TEXT_CHARS = 40  # a 32-byte key in Z85
RECHECK = 1.0  # seconds an edit in place may go unseen (the directory time did not move)
KEY_BYTES = 32


def key_text(key: bytes) -> str:
    """A raw 32-byte public key as the 40 Z85 characters people copy around."""
    return z85.encode(key).decode("ascii")


def parse_key(text: str, what: str = "key") -> bytes:
    """40 Z85 characters -> the raw 32-byte key; SecurityError says what is wrong."""
    if not isinstance(text, str) or len(text.strip()) != KEY_TEXT_CHARS:
        raise SecurityError(f"{what} must be {KEY_TEXT_CHARS} Z85 characters (as --keygen prints)")
    try:
        raw = z85.decode(text.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError, KeyError):
        raise SecurityError(f"{what} {text.strip()!r} is not Z85 text") from None
    if len(raw) != KEY_BYTES:  # pragma: no cover - 40 Z85 characters are always 32 bytes
        raise SecurityError(f"{what} is not a {KEY_BYTES}-byte key")
    return raw


# -- own key pair ---------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    """This user's CurveZMQ key pair; the keys are Z85 text (bytes), as zmq wants them."""

    public: bytes
    secret: bytes
    user: str | None  # the name it was made for (the secret file's metadata), if any
    path: Path  # the public certificate
    sign_seed: bytes | None = None  # the Ed25519 private key (None: made by lab93-node 0.1)
    sign_public: bytes | None = None  # its raw public key

    @property
    def public_raw(self) -> bytes:
        return z85.decode(self.public)


def key_paths(directory: Path) -> tuple[Path, Path]:
    """(public certificate, secret certificate) in ``directory``."""
    return directory / f"{KEY_BASENAME}.key", directory / f"{KEY_BASENAME}.key_secret"


def _make_private_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise SecurityError(f"cannot create {directory}: {error.strerror}") from None


def generate_keypair(directory: Path, user: str, force: bool = False) -> KeyPair:
    """Write a new key pair for ``user`` into ``directory``; never replaces one unless ``force``.

    An existing pair without a signing key (lab93-node 0.1 made it) gets one
    added instead, its CurveZMQ keys kept. The secret certificate is created
    under umask 077, so it is never readable by others, not even for a moment.
    """
    public_path, secret_path = key_paths(directory)
    if not force and (public_path.exists() or secret_path.exists()):
        existing = load_keypair(directory)
        if existing.sign_seed is None:
            return add_signing_key(directory)
        raise SecurityError(
            f"a key pair already exists in {directory} (public key "
            f"{existing.public.decode()}); use --keygen --force to replace it"
        )
    _make_private_dir(directory)
    old_umask = os.umask(0o077)
    try:
        import zmq.auth  # only --keygen and secure nodes need it

        zmq.auth.create_certificates(directory, KEY_BASENAME, metadata={"user": user})
        seed = signing.new_seed()
        signing.append_section(public_path, signing.public_of(seed))
        signing.append_section(secret_path, signing.public_of(seed), seed)
    except OSError as error:
        raise SecurityError(f"cannot write the key pair in {directory}: {error}") from None
    finally:
        os.umask(old_umask)
    os.chmod(secret_path, 0o600)
    os.chmod(public_path, 0o644)  # the public half is meant to be handed out
    return load_keypair(directory)


def add_signing_key(directory: Path) -> KeyPair:
    """Give an existing key pair (lab93-node 0.1's) the Ed25519 key it lacks."""
    public_path, secret_path = key_paths(directory)
    seed = signing.new_seed()
    old_umask = os.umask(0o077)
    try:
        signing.append_section(secret_path, signing.public_of(seed), seed)
        signing.append_section(public_path, signing.public_of(seed))
    except OSError as error:
        raise SecurityError(f"cannot write the signing key in {directory}: {error}") from None
    finally:
        os.umask(old_umask)
    return load_keypair(directory)


def _metadata_user(path: Path) -> str | None:
    """The ``user = NAME`` line of a certificate's metadata section, if any."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for line in lines:
        name, sep, value = line.strip().partition("=")
        if sep and name.strip() == "user":
            return value.strip().strip("\"'") or None
    return None


def load_keypair(directory: Path) -> KeyPair:
    """This user's key pair; SecurityError tells how to make one when there is none."""
    public_path, secret_path = key_paths(directory)
    if not secret_path.exists():
        raise SecurityError(f"no key pair in {directory}; make one with: lab93-node --keygen")
    mode = secret_path.stat().st_mode & 0o777
    if mode & 0o077:
        raise SecurityError(
            f"{secret_path} is readable by others (mode {mode:o}); run: chmod 600 {secret_path}"
        )
    import zmq.auth  # only secure nodes need it

    try:
        public, secret = zmq.auth.load_certificate(secret_path)
    except (OSError, ValueError) as error:
        raise SecurityError(f"cannot read the key pair {secret_path}: {error}") from None
    if secret is None:
        raise SecurityError(f"{secret_path} holds no secret key")
    for text, what in ((public, "public key"), (secret, "secret key")):
        parse_key(text.decode("ascii", "replace"), f"the {what} in {secret_path}")
    try:
        seed = signing.read_field(secret_path, signing.SECRET_FIELD)
    except OSError as error:
        raise SecurityError(f"cannot read the key pair {secret_path}: {error}") from None
    sign_public = signing.public_of(seed) if seed is not None else None
    return KeyPair(public, secret, _metadata_user(secret_path), public_path, seed, sign_public)


# -- authorized keys --------------------------------------------------------------------


class AuthorizedKeys:
    """A directory of ``NAME.key`` public certificates: who may connect, and as whom.

    Re-read when the directory changes, so an operator can authorize someone
    without restarting: a file added, removed or renamed counts at once (the
    directory's own time changes), one edited in place within ``recheck``
    seconds. Asked on every handshake and every beacon, it costs one stat while
    nothing changed. Safe to call from the ZAP thread and the actor thread: a
    reload swaps in a whole new table. When the directory cannot be read (out
    of file descriptors, permissions), the last table read stays in force and
    that is logged once, until a read succeeds again.
    """

    def __init__(
        self,
        directory: Path,
        clock: Callable[[], float] = time.monotonic,
        recheck: float = RECHECK,
    ) -> None:
        self.directory = Path(directory)
        self._clock = clock
        self._recheck = recheck
        self._lock = threading.Lock()
        self._dir_stamp: int | None = None  # the directory's mtime at the last listing
        self._listed_at: float | None = None
        self._stamp: tuple | None = None
        self._names: dict[bytes, str] = {}  # raw key -> name
        self._authors: dict[str, tuple[str, bytes]] = {}  # node id -> (name, signing key)
        self.failing = False  # the last read failed: the table before it is in force

    def name_of(self, key: bytes) -> str | None:
        """The name a raw 32-byte public key speaks as, or None when it is not authorized."""
        self._refresh()
        return self._names.get(key)

    def author_of(self, node_id: str) -> tuple[str, bytes] | None:
        """The name and raw Ed25519 public key of the authorized key whose node id
        (``signing.node_id_of``) is ``node_id``; None when none is, or it has no signing key."""
        self._refresh()
        return self._authors.get(node_id)

    def names(self) -> dict[bytes, str]:
        """Every authorized raw key and its name (a snapshot)."""
        self._refresh()
        return dict(self._names)

    def _refresh(self) -> None:
        now = self._clock()
        try:
            dir_stamp: int | None = self.directory.stat().st_mtime_ns
        except OSError:
            dir_stamp = None
        if self._fresh(dir_stamp, now):
            return
        # One thread reloads; another asking meanwhile waits for the new table
        # rather than answering from the old one (the ZAP thread and the actor
        # both ask, and a first answer from an empty table would refuse a friend).
        with self._lock:
            if self._fresh(dir_stamp, now):
                return
            # Each file's name, size and time: unlike the directory's own time, this
            # also sees a file edited in place, or two changes within one clock tick.
            try:
                if dir_stamp is None and not self.directory.exists():
                    stamp: tuple | None = None  # no directory: nobody is authorized
                else:
                    stamp = tuple(
                        (entry.name, entry.stat().st_mtime_ns, entry.stat().st_size)
                        for entry in sorted(os.scandir(self.directory), key=lambda e: e.name)
                        if entry.name.endswith(".key")
                    )
                if stamp != self._stamp:
                    self._names, self._authors = self._load() if stamp is not None else ({}, {})
                    self._stamp = stamp
            except OSError as error:
                # Out of descriptors, or unreadable for now: an empty table would
                # refuse every friend. Keep the last one; try again at the next recheck.
                if not self.failing:
                    log.warning("cannot read %s (%s); keeping the %d authorized key(s) read "
                                "before", self.directory, error.strerror or error,
                                len(self._names))
                self.failing = True
                self._listed_at = now
                return
            if self.failing:
                log.warning("%s can be read again", self.directory)
                self.failing = False
            self._dir_stamp, self._listed_at = dir_stamp, now

    def _fresh(self, dir_stamp: int | None, now: float) -> bool:
        """The table answers for the directory as it is: its time has not moved
        since the last listing, and that listing is less than ``recheck`` old."""
        if self.failing:
            return self._listed_at is not None and now - self._listed_at < self._recheck
        return (
            self._listed_at is not None
            and dir_stamp == self._dir_stamp
            and now - self._listed_at < self._recheck
        )

    def _load(self) -> tuple[dict[bytes, str], dict[str, tuple[str, bytes]]]:
        """The names and authors of the directory; OSError when a file cannot be read
        (the caller keeps the last table), a bad file is skipped and named."""
        import zmq.auth  # only secure nodes need it

        names: dict[bytes, str] = {}
        signers: dict[bytes, bytes] = {}
        ambiguous: set[bytes] = set()
        for path in sorted(self.directory.glob("*.key")):
            if not path.exists():
                continue  # removed meanwhile
            try:
                name = check_name(path.stem, "user")
                public, _ = zmq.auth.load_certificate(path)
                key = parse_key(public.decode("ascii", "replace"), f"the key in {path}")
                sign = signing.read_field(path, signing.PUBLIC_FIELD)
            except (MessageError, SecurityError, ValueError) as error:
                log.warning("ignoring authorized key %s: %s", path, error)
                continue
            if key in names or key in ambiguous:
                # Which name would it speak as? Refuse it rather than guess.
                log.warning(
                    "refusing the key in %s: it is also in %s.key; keep one file per key",
                    path,
                    names.get(key, "another file"),
                )
                names.pop(key, None)
                ambiguous.add(key)
                continue
            names[key] = name
            if sign is not None:
                signers[key] = sign
        authors = {node_id_of(key): (name, signers[key]) for key, name in names.items()
                   if key in signers}
        log.info("%d authorized key(s) in %s", len(names), self.directory)
        return names, authors


# -- known servers ------------------------------------------------------------------------


class KnownServers:
    """``host:port KEY`` lines: the repeater keys a client has trusted (trust on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # Read again only when the file changes: a client looking for its server
        # asks on every turn of its loop.
        self._stamp: tuple[int, int] | None = None
        self._entries: list[tuple[str, str]] = []
        self._keys: frozenset[bytes] | None = None  # parsed from _entries when first asked

    def _lines(self) -> list[tuple[str, str]]:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._entries, self._keys = None, [], None
            return []
        except OSError as error:
            raise SecurityError(f"cannot read {self.path}: {error.strerror}") from None
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp == self._stamp:
            return self._entries
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as error:
            raise SecurityError(f"cannot read {self.path}: {error.strerror}") from None
        entries = []
        for line in text.splitlines():
            where, _, key = line.strip().partition(" ")
            if where and not where.startswith("#"):
                entries.append((where, key.strip()))
        self._stamp, self._entries, self._keys = stamp, entries, None
        return entries

    def keys(self) -> frozenset[bytes]:
        """Every raw key trusted for some server."""
        entries = self._lines()
        if self._keys is None:
            self._keys = frozenset(parse_key(text, f"a key in {self.path}") for _, text in entries)
        return self._keys

    def get(self, where: str) -> bytes | None:
        """The raw key trusted for ``host:port``, or None when there is none yet."""
        for known, text in self._lines():
            if known == where:
                return parse_key(text, f"the key for {where} in {self.path}")
        return None

    def remember(self, where: str, key: bytes) -> None:
        """Trust ``key`` for ``host:port`` from now on (appends one line)."""
        _make_private_dir(self.path.parent)
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(f"{where} {key_text(key)}\n")

    def check(self, where: str, key: bytes) -> bool:
        """True when ``key`` is the one trusted for ``where``; a new server is trusted
        and remembered (True); a different key raises SecurityError."""
        known = self.get(where)
        if known is None:
            self.remember(where, key)
            log.warning("trusting the repeater at %s, key %s (first use)", where, key_text(key))
            return True
        if known != key:
            raise SecurityError(
                f"the repeater at {where} now shows the key {key_text(key)}, but you trusted "
                f"{key_text(known)}; if its key really changed, remove the line for {where} "
                f"from {self.path}"
            )
        return True


# -- sockets ------------------------------------------------------------------------------


def make_server(sock: zmq.Socket, keys: KeyPair) -> None:
    """Make ``sock`` a CURVE server with our key pair (before bind)."""
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True


def make_client(sock: zmq.Socket, keys: KeyPair, server_key: bytes) -> None:
    """Make ``sock`` a CURVE client of the server with raw key ``server_key`` (before connect)."""
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_serverkey = z85.encode(server_key)


_MONITOR_HEAD = struct.Struct("=Hi")  # libzmq's monitor frame: event, value (native order)


def monitor_event(frames: list[bytes]) -> tuple[int, int] | None:
    """(event, value) of a socket monitor message (libzmq's 6-byte frame, then the
    endpoint), or None. ``zmq.utils.monitor`` does this too, but it imports asyncio,
    which costs every node 2.5 MiB."""
    if len(frames) != 2 or len(frames[0]) != _MONITOR_HEAD.size:
        return None
    event, value = _MONITOR_HEAD.unpack(frames[0])
    return event, value


# Monitor events that say how a handshake ended.
HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


def handshake_problem(event: int, value: int, *, we_are_secure: bool, side: str) -> str | None:
    """The sentence for a failed handshake seen by a socket monitor; None for a success.

    ``side`` is "client" (we connected) or "server" (we accepted). Pure: the
    I/O shells read the monitor socket and pass the event and its value.
    """
    if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
        return None
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            if we_are_secure:
                return (
                    "the other side runs without --secure; both sides need --secure"
                    if side == "client"
                    else "a node without --secure tried to connect; this node runs --secure"
                )
            return (
                "the other side runs with --secure; run lab93-node with --secure too"
                if side == "client"
                else "a node with --secure tried to connect; this node runs without --secure"
            )
        if value == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
            return "a peer used another server key than ours (a wrong --server-key?)"
        return f"the handshake failed (protocol error {value:#x})"
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        if side == "client":
            return "the other side does not know our key; ask its operator to authorize it"
        return "refused a peer whose key is not authorized"
    if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        if side == "client" and not we_are_secure:
            return (
                "the other side refused the handshake; it probably runs with --secure:"
                " run lab93-node with --secure too"
            )
        if side == "client":
            # libzmq cannot tell these apart here: both just close the connection.
            return (
                "the other side did not complete the secure handshake: it holds another key"
                " than the one we expect, or it runs without --secure"
            )
        # The other side gave up first (it saw the mismatch and closed): a guess.
        if we_are_secure:
            return (
                "a handshake failed; probably a node without --secure tried to connect,"
                " or one expecting another key for this node"
            )
        return (
            "a handshake failed; probably a node with --secure tried to connect"
            " (this node runs without --secure)"
        )
    return None


# A handshake that fails without detail happens once when the server we connect to
# stops or restarts mid-handshake; a real mismatch repeats at every reconnect
# (ZeroMQ retries within 100 ms). For a client, only this many in a row, with no
# success between, count. A server sees a mismatched client fail once and give
# up, so it reports the first.
NO_DETAIL_REPEATS = 3


class HandshakeWatch:
    """One socket monitor's handshake events -> the problems worth reporting. Pure.

    A mismatch of mechanisms, a cryptographic error or a refused key is
    reported at once; on the client side a failure without detail only on its
    NO_DETAIL_REPEATS-th time in a row, so a server that restarts is not taken
    for a mismatch.
    """

    def __init__(self, *, we_are_secure: bool, side: str) -> None:
        self.we_are_secure = we_are_secure
        self.side = side
        self.repeats = NO_DETAIL_REPEATS if side == "client" else 1
        self.undetailed = 0  # failures without detail since the last success

    def feed(self, event: int, value: int) -> str | None:
        """The sentence for this event when it is worth reporting, else None."""
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.undetailed = 0
            return None
        if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            self.undetailed += 1
            if self.undetailed < self.repeats:
                return None
        return handshake_problem(event, value, we_are_secure=self.we_are_secure, side=self.side)
