"""The beacon datagram, sans-IO: its codec, one valid ``Beacon`` by construction. Pure.

The I/O edge (``io/beacon.py``) sends and receives the datagrams;
``presence.Discovery.read`` is the one place they are decoded. The beacon
datagram (all integers big-endian; see docs/PROTOCOL.rst)::

    offset size  field
         0    4  magic        b"L93B" (never ZRE's b"ZRE", so no cross-talk with Zyre)
         4    1  version      2 (1 was 0.1's: no rooms, no service field)
         5    1  kind         1 ANNOUNCE, 2 LEAVING, 3 PROBE
         6    1  mode         0 none (PROBE only), 1 broadcast, 2 repeater
         7   16  node id      16 raw bytes (32 lowercase hex digits elsewhere)
        23    2  router port  u16; 1..65535 in ANNOUNCE and LEAVING
        25    2  pub port     u16; 1..65535 in ANNOUNCE and LEAVING
        27    2  user length  u16, 0..256 (bytes)
        29    n  user         UTF-8; a valid user name (empty only in PROBE)
    29 + n   32  key          optional: the node's CurveZMQ public key (secure mode)
    last     16  service      optional: the service id of a repeater sharing its store

The datagram is ``29 + n`` bytes, ``+ 32`` (secure), ``+ 16`` (a server of a
service) or ``+ 48`` (both); anything else is a ``BeaconError``. The key is a claim, not a
proof: a node trusts it only when it is in its authorized keys, and then only
a peer holding the matching secret key can complete the CURVE handshake.

A node of another version cannot talk with this one (its frames carry another
signature): a version 1 beacon (0.1's layout: this one without the service
field) is read as an ``OldBeacon`` so its node can be told once, by name, to
upgrade.
"""

from __future__ import annotations

import enum
import logging
import re
import struct
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from . import z85
from .errors import MessageError, ProtocolError
from .message import MAX_NAME_CHARS, check_name
from .sighting import Sighting

log = logging.getLogger(__name__)
MAGIC = b"L93B"
VERSION = 2  # 2: rooms (1's layout, with an optional service id; the frames say 2 too)
# The lab93-node releases that spoke each older beacon version, for the upgrade sentence.
SPOKEN_BY = {1: "lab93-node 0.1"}
HEADER = struct.Struct(">4sBBB16sHHH")
HEADER_SIZE = HEADER.size  # 29
# A user name is at most MAX_NAME_CHARS characters of at most 4 UTF-8 bytes each.
MAX_USER_BYTES = 4 * MAX_NAME_CHARS
KEY_SIZE = 32  # a raw CurveZMQ public key
SERVICE_SIZE = 16  # a service id, raw
MAX_BEACON_SIZE = HEADER_SIZE + MAX_USER_BYTES + KEY_SIZE + SERVICE_SIZE

MODES = {0: "none", 1: "broadcast", 2: "repeater"}
_MODE_CODES = {name: code for code, name in MODES.items()}
_NODE_ID = re.compile(r"[0-9a-f]{32}\Z")


class BeaconError(ProtocolError):
    """A beacon datagram is not valid."""


@dataclass(frozen=True)
class OldBeacon:
    """A beacon of an older version (same layout): who sent it, to be told to upgrade."""

    version: int
    node_id: str
    mode: str
    user: str
    kind: int

    def sentence(self, address: str) -> str:
        """What a user hears, once per node: both versions, and what to do."""
        who = f"{self.user}'s node" if self.user else "a node"
        release = SPOKEN_BY.get(self.version)
        speaks = f"lab93 protocol {self.version}" + (f" ({release})" if release else "")
        return f"{who} at {address} speaks {speaks}; this node speaks {VERSION} — upgrade it"


class OldVersion(BeaconError):
    """A beacon of an older version; ``old`` says who sent it."""

    def __init__(self, old: OldBeacon) -> None:
        super().__init__(f"beacon version {old.version} (this node speaks {VERSION})")
        self.old = old


class BeaconKind(enum.IntEnum):
    """What a beacon says; the value is the wire byte."""

    ANNOUNCE = 1  # "I am here, reach me at these ports"
    LEAVING = 2  # "I am going away now; drop me"
    PROBE = 3  # "whoever is alive, announce yourself now" (--scan); never a peer


def is_node_id(value: object) -> bool:
    """True for a node id in its text form: 32 lowercase hex digits."""
    return isinstance(value, str) and _NODE_ID.match(value) is not None


@dataclass(frozen=True)
class Beacon:
    """One beacon, valid by construction: a bad field raises BeaconError."""

    kind: BeaconKind
    node_id: str
    mode: str
    router_port: int
    pub_port: int
    user: str
    key: bytes = b""  # raw 32-byte CurveZMQ public key of a secure node, else empty
    service: str = ""  # the service id of a repeater that is one of several, else empty

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) not in (0, KEY_SIZE):
            raise BeaconError(f"a beacon key is {KEY_SIZE} raw bytes or nothing")
        if self.service and not (is_node_id(self.service) and self.mode == "repeater"):
            raise BeaconError("a beacon's service id is a repeater's 32 lowercase hex digits")
        if not isinstance(self.kind, BeaconKind):
            raise BeaconError(f"unknown beacon kind {self.kind!r}")
        if not is_node_id(self.node_id):
            raise BeaconError("beacon node id must be 32 lowercase hex digits")
        if not isinstance(self.mode, str) or self.mode not in _MODE_CODES:
            raise BeaconError(f"unknown beacon mode {self.mode!r}")
        for name in ("router_port", "pub_port"):
            port = getattr(self, name)
            if type(port) is not int or not 0 <= port <= 0xFFFF:
                raise BeaconError(f"beacon {name} {port!r} is not a port number")
        if self.kind is BeaconKind.PROBE:
            # A prober is not reachable and not listed, so it needs no name
            # and no ports; whatever it carries is ignored.
            if not isinstance(self.user, str):
                raise BeaconError("beacon user name must be a string")
            if self.user:
                self._check_user()
            return
        if self.mode == "none":
            raise BeaconError(f"a {self.kind.name} beacon needs mode broadcast or repeater")
        if self.router_port == 0 or self.pub_port == 0:
            raise BeaconError(f"a {self.kind.name} beacon needs both ports (got port 0)")
        self._check_user()

    def _check_user(self) -> None:
        # The message name rule (at most MAX_NAME_CHARS characters) keeps the
        # encoded name within MAX_USER_BYTES.
        try:
            check_name(self.user, "user")
            self.user.encode("utf-8")
        except MessageError as exc:
            raise BeaconError(f"bad beacon user name: {exc.problem}") from None
        except UnicodeEncodeError:
            raise BeaconError("bad beacon user name: not valid Unicode text") from None

    @property
    def secure(self) -> bool:
        """True when the node runs in secure mode (its beacon carries its public key)."""
        return bool(self.key)

    def leaving(self) -> Beacon:
        """The LEAVING beacon that matches this ANNOUNCE (same node, ports, user and key)."""
        return replace(self, kind=BeaconKind.LEAVING)

    @classmethod
    def probe(cls, node_id: str, user: str = "") -> Beacon:
        """The one datagram ``--scan`` sends so live instances answer at once."""
        return cls(BeaconKind.PROBE, node_id, "none", 0, 0, user)

    def encode(self) -> bytes:
        user = self.user.encode("utf-8")
        head = HEADER.pack(
            MAGIC,
            VERSION,
            int(self.kind),
            _MODE_CODES[self.mode],
            bytes.fromhex(self.node_id),
            self.router_port,
            self.pub_port,
            len(user),
        )
        service = bytes.fromhex(self.service) if self.service else b""
        return head + user + self.key + service

    @classmethod
    def decode(cls, data: bytes) -> Beacon:
        """Parse one datagram; raises BeaconError saying what is wrong, never returns None."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BeaconError("beacon must be bytes")
        data = bytes(data)
        if len(data) < HEADER_SIZE:
            raise BeaconError(f"beacon too short ({len(data)} bytes, need at least {HEADER_SIZE})")
        magic, version, kind, mode, raw_id, router, pub, user_len = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise BeaconError(f"bad beacon magic {magic!r}")
        if version in SPOKEN_BY:
            raise OldVersion(_old(data, version, kind, mode, raw_id, user_len))
        if version != VERSION:
            raise BeaconError(f"unknown beacon version {version} (this node speaks {VERSION})")
        try:
            kind = BeaconKind(kind)
        except ValueError:
            raise BeaconError(f"unknown beacon kind {kind}") from None
        if mode not in MODES:
            raise BeaconError(f"unknown beacon mode {mode}")
        if user_len > MAX_USER_BYTES:
            raise BeaconError(f"beacon user length {user_len} is over {MAX_USER_BYTES} bytes")
        end = HEADER_SIZE + user_len
        extra = len(data) - end
        if extra not in (0, KEY_SIZE, SERVICE_SIZE, KEY_SIZE + SERVICE_SIZE):
            raise BeaconError(f"beacon is {len(data)} bytes but its header says {end} (+32, +16)")
        try:
            user = data[HEADER_SIZE:end].decode("utf-8")
        except UnicodeDecodeError:
            raise BeaconError("beacon user name is not valid UTF-8") from None
        key = data[end : end + KEY_SIZE] if extra >= KEY_SIZE else b""
        service = data[len(data) - SERVICE_SIZE :].hex() if extra % KEY_SIZE else ""
        return cls(kind, raw_id.hex(), MODES[mode], router, pub, user, key, service)


def _old(data: bytes, version: int, kind: int, mode: int, raw_id: bytes,
         user_len: int) -> OldBeacon:
    """What an older beacon says of its sender, as far as it can be read (a name that is
    not valid UTF-8 is left out); BeaconError when not even that."""
    end = HEADER_SIZE + user_len
    if mode not in MODES or user_len > MAX_USER_BYTES or len(data) not in (end, end + KEY_SIZE):
        raise BeaconError(f"a malformed beacon of version {version}")
    user = data[HEADER_SIZE:end].decode("utf-8", errors="replace")
    try:
        check_name(user, "user")
    except MessageError:
        user = ""
    return OldBeacon(version, raw_id.hex(), MODES[mode], user, kind)


def sighting(beacon: Beacon, address: str, last_seen: datetime) -> Sighting:
    """One live instance as ``--scan`` lists it."""
    key = z85.encode(beacon.key).decode("ascii") if beacon.key else None
    return Sighting(
        beacon.node_id, beacon.user, beacon.mode, address, beacon.router_port,
        beacon.pub_port, last_seen, key, beacon.service or None,
    )


def scan_json(beacon: Beacon, address: str, last_seen: datetime) -> dict[str, Any]:
    """One live instance as a ``--scan --json`` line: exactly DESIGN.md's contract,
    plus ``"key"`` (Z85 text) for a secure instance, so scripts can pin it."""
    return sighting(beacon, address, last_seen).to_json()
