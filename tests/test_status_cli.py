"""Status lines as a person (and -v) sees them from the real command."""

from __future__ import annotations

import signal

import pytest
from procs import NodeProcess

pytestmark = pytest.mark.timeout(60)


def test_a_server_that_goes_away_is_one_status_line(tmp_path, beacon_port):
    beacon = str(beacon_port)
    net = ["-i", "lo", "--beacon-port", beacon]
    server = NodeProcess(["-r", "-s", "-p", "0", *net, "--db", str(tmp_path / "s.db")])
    client = None
    try:
        server.wait_err("repeater at tcp://127.0.0.1:")
        client = NodeProcess(
            ["-r", "-c", *net, "--db", str(tmp_path / "c.db"), "--listen", "-v", "-u", "bob"]
        )
        client.wait_err("* connected to repeater")
        connected = len(client.err)
        assert server.signal(signal.SIGTERM) == 143
        # The client drops the connection and looks for a server again: shown (or,
        # when it was not the first word of the loss, logged by -v) as it goes.
        client.wait_for(
            lambda p: any("no repeater known" in line for line in p.err[connected:]),
            "the client looking for a repeater again",
        )
        shown = [line for line in client.err[connected:] if line.startswith("* ")]
        lost = [line for line in shown if "went away" not in line]
        assert len(lost) == 1, client.err  # one line for the loss, not one per step
    finally:
        server.kill()
        if client is not None:
            client.kill()


def test_verbose_lines_have_no_module_names(tmp_path, beacon_port):
    node = NodeProcess(
        ["-b", "-i", "lo", "--beacon-port", str(beacon_port), "-p", "0",
         "--db", str(tmp_path / "a.db"), "--send", "hello", "--timeout", "0.5", "-v"]
    )
    assert node.finish() == 1  # nobody there to take it
    assert any(line.startswith("lab93-node: broadcast node ") for line in node.err), node.err
    assert "lab93-node: no broadcast peers heard yet on lo" in node.err
    for line in node.err:
        assert line.startswith("lab93-node: ")
        assert "lab93zmq." not in line and "INFO" not in line, line
