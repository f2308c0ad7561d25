"""Ed25519 for secure broadcast mode: the signing key in the key files, signing, checking.

CurveZMQ keys cannot sign, so a key pair made by ``lab93-node --keygen`` holds
a second key, an Ed25519 one (``cryptography``'s, nothing invented here), in a
``sign`` section of the same two certificate files::

    id.key          ...
                    curve
                        public-key = "<40 Z85 characters>"
                    sign
                        ed25519-public-key = "<40 Z85: the 32-byte public key>"
    id.key_secret   ... the same, plus
                        ed25519-secret-key = "<40 Z85: the 32-byte private seed>"

(ZeroMQ's own reader, ``zmq.auth.load_certificate``, only looks at lines that
start with ``public-key`` and ``secret-key``, so it reads these files as
before.) A copy of ``id.key`` in a peer's authorized-keys directory gives
that peer both the key it admits and the key it checks the signatures with.
What the signature covers is ``core.signing``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from zmq.utils import z85

from ..core.broadcast.trust import Author, Trust
from ..core.errors import SecurityError
from ..core.signing import node_id_of

if TYPE_CHECKING:
    from .config import SecureConfig
    from .security import AuthorizedKeys

SECTION = "sign"
PUBLIC_FIELD = "ed25519-public-key"
SECRET_FIELD = "ed25519-secret-key"
KEY_BYTES = 32


def new_seed() -> bytes:
    """A fresh Ed25519 private key, as its 32-byte seed."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().private_bytes_raw()


def public_of(seed: bytes) -> bytes:
    """The raw 32-byte public key of a seed."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def section(public: bytes, seed: bytes | None = None) -> str:
    """The ``sign`` section of a certificate file (the seed only in the secret one)."""
    text = f'{SECTION}\n    {PUBLIC_FIELD} = "{z85.encode(public).decode()}"\n'
    if seed is not None:
        text += f'    {SECRET_FIELD} = "{z85.encode(seed).decode()}"\n'
    return text


def append_section(path: Path, public: bytes, seed: bytes | None = None) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(section(public, seed))


def read_field(path: Path, field: str) -> bytes | None:
    """The 32-byte key of ``field`` in a certificate file, None when it has none;
    SecurityError when it is there but is not a key. OSError when the file cannot be read."""
    text = path.read_text(encoding="utf-8", errors="replace")
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name.strip() == field:
            raw = value.strip().strip("\"'").encode("ascii", "replace")
            try:
                key = z85.decode(raw) if len(raw) == 40 else b""
            except (ValueError, KeyError):
                key = b""
            if len(key) != KEY_BYTES:
                raise SecurityError(f"{field} in {path} is not 40 Z85 characters")
            return key
    return None


class Signer:
    """Signs bytes with one Ed25519 seed (``Trust.sign``)."""

    def __init__(self, seed: bytes) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self._key = Ed25519PrivateKey.from_private_bytes(seed)

    def __call__(self, data: bytes) -> bytes:
        return self._key.sign(data)


def verifier(public: bytes) -> Callable[[bytes, bytes], bool]:
    """``verify(data, signature)`` for one raw Ed25519 public key (``Author.verify``)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(public)

    def verify(data: bytes, signature: bytes) -> bool:
        try:
            key.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    return verify


def broadcast_trust(secure: SecureConfig, authorized: AuthorizedKeys, user: str) -> Trust:
    """Secure mode as the session sees it: our keys, the authorized ones, and the Ed25519
    that signs our messages and checks everyone's (``io.signing``)."""
    keys = secure.keys
    if keys.sign_seed is None or keys.sign_public is None:
        raise SecurityError(
            f"the key pair in {keys.path.parent} has no signing key (lab93-node 0.1 made it); "
            "run lab93-node --keygen to add one, and give your peers the new "
            f"{keys.path.name}"
        )
    own_id, own = node_id_of(keys.public_raw), (user, keys.sign_public)
    checks: dict[tuple[str, bytes], Author] = {}  # one verifier per key, made once
    make_check = verifier  # as it is now (a benchmark swaps in a no-op for a run)

    def author_of(node_id: str) -> Author | None:
        found = own if node_id == own_id else authorized.author_of(node_id)
        if found is None:
            return None
        author = checks.get(found)
        if author is None:
            if len(checks) >= 4096:
                checks.clear()
            author = checks[found] = Author(found[0], make_check(found[1]))
        return author

    return Trust(keys.public_raw, authorized.name_of, str(secure.authorized_keys),
                 Signer(keys.sign_seed), author_of)
