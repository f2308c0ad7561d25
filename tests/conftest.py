"""Shared fixtures: every test gets its own inbox directory, XDG_DATA_HOME and
XDG_CONFIG_HOME; hypothesis runs a fixed set of examples unless told to explore."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest
from hypothesis import settings

from lab93zmq.core.message import Message, make_id

# The suite must pass or fail the same way on every run: by default hypothesis
# draws its examples from a fixed seed and keeps no database. To hunt for new
# failures, run with HYPOTHESIS_PROFILE=explore (random examples, remembered).
settings.register_profile("fixed", derandomize=True, database=None)
settings.register_profile("explore", max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fixed"))

NODE_A = "a" * 32
NODE_B = "b" * 32
T0 = datetime(2026, 11, 24, 20, 1, 2, 123456, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def isolated_data_home(tmp_path, monkeypatch):
    """No test may touch the real ~/.local/share/lab93 or ~/.config/lab93."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "xdg"


@pytest.fixture
def nodes():
    """The actors a test starts (anything with ``stop()``), stopped last first afterwards."""
    started: list = []
    yield started
    for node in reversed(started):
        node.stop()


def make_message(
    seq: int = 1,
    content: str | None = None,
    *,
    origin: str = NODE_A,
    author: str = "alice",
    to: str | None = None,
    subject: str | None = None,
) -> Message:
    """A valid message whose id is fixed by (origin, seq, to)."""
    entropy = bytes.fromhex(origin[:8]) + seq.to_bytes(4, "big") + (b"dm" if to else b"rm")
    return Message(
        id=make_id(T0, entropy),
        author=author,
        recipient=to,
        subject=subject,
        content=content if content is not None else f"message {seq}",
        sent_at=T0,
        origin=origin,
        origin_seq=seq,
    )
