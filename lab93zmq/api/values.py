"""Small public helpers of the API."""

from __future__ import annotations

import os
from datetime import datetime, timezone

from ..core.message import make_id


def message_id(at: datetime | None = None) -> str:
    """A new message id (32 hex digits that sort by time): give it to ``send(id=...)``
    and keep it, to be able to send the same message again without a duplicate."""
    return make_id(at or datetime.now(timezone.utc), os.urandom(10))
