"""Secure broadcast mode as the session sees it: the ``Trust`` a broadcast shell injects.

Our keys, the authorized ones (``security.AuthorizedKeys``) and the Ed25519 that
signs our messages and checks everyone's (``signing``), put together for
``core.broadcast.trust``.
"""

from __future__ import annotations

from ..core.broadcast.trust import Author, Trust
from ..core.errors import SecurityError
from ..core.signing import node_id_of
from . import signing
from .config import SecureConfig
from .security import AuthorizedKeys


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
    make_check = signing.verifier  # as it is now (a benchmark swaps in a no-op for a run)

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
                 signing.Signer(keys.sign_seed), author_of)
