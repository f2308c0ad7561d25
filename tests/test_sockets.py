"""The socket helpers both shells use, on real ZeroMQ sockets bound to loopback."""

from __future__ import annotations

import errno
import socket

import pytest
import zmq

from lab93zmq.core.errors import ConfigError
from lab93zmq.io.sockets import bind, connect, port_of, tcp


def test_tcp_brackets_ipv6_and_port_of_reads_it_back():
    assert tcp("127.0.0.1", 5190) == "tcp://127.0.0.1:5190"
    assert tcp("::1", "*") == "tcp://[::1]:*"
    assert port_of("tcp://[::1]:40123") == 40123


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def test_bind_returns_the_real_port_and_names_a_busy_one(ctx):
    first, second = ctx.socket(zmq.ROUTER), ctx.socket(zmq.ROUTER)
    port = bind(first, "127.0.0.1", 0)
    assert port > 0 and first.getsockopt_string(zmq.LAST_ENDPOINT).endswith(f":{port}")
    with pytest.raises(ConfigError, match=f"cannot open the feed on 127.0.0.1:{port}") as caught:
        bind(second, "127.0.0.1", port, "open the feed")
    assert caught.value.__cause__.errno == errno.EADDRINUSE  # what node.py falls back on


def test_ipv6_loopback_binds_and_connects_when_the_machine_has_it(ctx):
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    server, client = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    port = bind(server, "::1", 0)
    connect(client, tcp("::1", port))
    client.send(b"over ::1")
    assert server.poll(5000) and server.recv() == b"over ::1"
