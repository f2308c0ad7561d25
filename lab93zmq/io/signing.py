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

from zmq.utils import z85

from ..core.errors import SecurityError

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
