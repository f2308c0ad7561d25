"""SHA-256 without OpenSSL, for the core's short fingerprints. Pure.

hashlib loads OpenSSL's libcrypto: 3.5 MiB of an idle node's RSS of about 27,
for a digest of a few hundred bytes a beat (``sync.digest``) and a node id
from a key (``signing.node_id_of``). CPython has its own SHA-256 (``_sha256``;
``_sha2`` from 3.12): the same bits. hashlib's is the fallback.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def _sha256_of_python() -> Callable[[bytes], Any]:
    for name in ("_sha256", "_sha2"):
        try:
            return importlib.import_module(name).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    import hashlib

    return hashlib.sha256


#: ``sha256(data)`` -> an object with ``digest()`` and ``hexdigest()``, as hashlib's.
sha256 = _sha256_of_python()
