"""A repeater client the server refuses for good, through the API: flush and receive
stop waiting and say why (the command line's "exit 1 at once"), and the post is kept.

Real CurveZMQ on loopback: a secure server in this process that authorizes nobody, and
mallory's node with a key pair of its own (each read from XDG_CONFIG_HOME at start).
"""

from __future__ import annotations

import asyncio
import time

import pytest

import lab93zmq
from lab93zmq import aio
from lab93zmq.io.security import generate_keypair

pytestmark = pytest.mark.timeout(60)

PATIENCE = 30.0  # what flush is allowed; a refusal must end it long before


@pytest.fixture
def refusing_server(tmp_path, monkeypatch, beacon_port):
    hub = tmp_path / "hub"
    key = generate_keypair(hub / "lab93", "hub").public.decode()
    (hub / "lab93" / "authorized_keys").mkdir()  # nobody is authorized
    monkeypatch.setenv("XDG_CONFIG_HOME", str(hub))
    server = lab93zmq.Server(address="127.0.0.1", port=0, interfaces=["lo"],
                             beacon_port=beacon_port, db=tmp_path / "hub.db", secure=True)
    mallory = tmp_path / "mallory"
    generate_keypair(mallory / "lab93", "mallory")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(mallory))
    try:
        yield server, key
    finally:
        server.close()


def mallory_options(server, key, tmp_path):
    return dict(address="127.0.0.1", port=server.router_port, interfaces=["lo"],
                beacon_port=server.config.beacon_port, db=tmp_path / "mallory.db",
                secure=True, server_key=key)


def test_flush_raises_the_refusal_at_once_and_the_post_stays_in_the_outbox(
    refusing_server, tmp_path
):
    server, key = refusing_server
    with lab93zmq.Node.repeater(**mallory_options(server, key, tmp_path)) as node:
        node.send("let me in")
        started = time.monotonic()
        with pytest.raises(lab93zmq.SecurityError, match="does not know our key"):
            node.flush(timeout=PATIENCE)
        assert time.monotonic() - started < PATIENCE / 2
        with pytest.raises(lab93zmq.SecurityError):
            node.receive(timeout=PATIENCE)
        assert [m.content for m in node.outbox()] == ["let me in"]  # kept for later


def test_the_asyncio_flush_does_the_same(refusing_server, tmp_path):
    server, key = refusing_server

    async def main() -> None:
        async with await aio.Node.repeater(**mallory_options(server, key, tmp_path)) as node:
            await node.send("let me in")
            started = time.monotonic()
            with pytest.raises(lab93zmq.SecurityError, match="does not know our key"):
                await node.flush(timeout=PATIENCE)
            assert time.monotonic() - started < PATIENCE / 2

    asyncio.run(main())
