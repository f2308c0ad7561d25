"""A node's store failing under it, on real disks: a sentence, never a lie, nothing lost.

A full disk is a tiny tmpfs the test mounts; a disk that turns read-only is an
ext4 image on a loop device whose file system the test shuts down
(EXT4_IOC_SHUTDOWN, as ``xfs_io -c shutdown`` does); both need root and are
skipped otherwise, in one line. A deleted inbox and a damaged one need
nothing. Each ends with every acknowledged message held, once.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import struct
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from broadcast_live import Cluster
from live import wait_for
from procs import NodeProcess
from repeater_nodes import all_accepted, connected, start_client, start_server

from lab93zmq.io.actor import PipeKind
from lab93zmq.io.store import Inbox

pytestmark = pytest.mark.timeout(90)
EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
GOING_DEFAULT = 0  # sync everything first, then shut down: what was committed is on the disk


def mount(args: list[str], where: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small disk of the test's own needs root")
    done = subprocess.run(["mount", *args, str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a disk here: {done.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path):
    where = tmp_path / "disk"
    where.mkdir()
    mount(["-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs"], where)
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """A file that takes every free byte of ``disk``."""
    filler = disk / "filler"
    # Unbuffered: a buffered file would flush a last partial block at close, and fail
    # there with ENOSPC, depending on how the free space happens to divide.
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


def held(path) -> Counter:
    with Inbox(path) as inbox:
        return Counter(m.content for m in inbox.history() if not m.is_topic)


def fatal(node) -> str:
    node.wait_kind(PipeKind.FATAL)
    return node.of(PipeKind.FATAL)[-1]["error"]


def told(node, text: str) -> None:
    node.wait(lambda n: any(text in t for t in n.notices()), what=f"a notice: {text}")


def stays_connected(node) -> bool:
    statuses = node.statuses()
    return True in statuses and False not in statuses[statuses.index(True):]


def test_a_full_disk_under_the_server(nodes, tmp_path, small_disk):
    server = start_server(nodes, small_disk, db="server.db")
    port = server.actor.router_port
    alice = connected(start_client(nodes, tmp_path, "alice", port))
    bob = connected(start_client(nodes, tmp_path, "bob", port))
    first = [alice.post(f"first{n}") for n in range(20)]
    all_accepted(alice, first)
    filler = fill(small_disk)
    during = [alice.post(f"full{n} " + "x" * 3000) for n in range(20)]
    told(alice, "is full")  # the ERROR's reason, once; the posts wait in the outbox
    told(server, "store fails")
    assert not set(during) & alice.accepted()
    # Catch-up goes on: a newcomer gets what is stored, the feed stays up.
    carol = connected(start_client(nodes, tmp_path, "carol", port))
    carol.wait(lambda n: len(n.incoming()) >= 20, what="carol's catch-up")
    filler.unlink()
    all_accepted(alice, during)  # by itself, no restart
    bob.wait(lambda n: len(n.incoming()) >= 40, what="every line at bob")
    assert stays_connected(bob) and stays_connected(alice)
    assert len([t for t in alice.notices() if "is full" in t]) == 1
    for node in (alice, bob, carol):
        node.stop()
    server.stop()
    expected = Counter(c for c in held(tmp_path / "alice.db"))
    assert len(expected) == 40 and held(small_disk / "server.db") == expected
    assert held(tmp_path / "bob.db") == expected


def test_a_full_disk_under_a_client(nodes, tmp_path, small_disk):
    server = start_server(nodes, tmp_path)
    port = server.actor.router_port
    alice = connected(start_client(nodes, small_disk, "alice", port))
    bob = connected(start_client(nodes, tmp_path, "bob", port))
    filler = fill(small_disk)
    sent = [bob.post(f"line{n} " + "y" * 3000) for n in range(30)]
    all_accepted(bob, sent)
    told(alice, "is full")
    refused = alice.post("while full")
    alice.wait(lambda n: any(r["id"] == refused for r in n.of(PipeKind.REJECTED)), what="a refusal")
    filler.unlink()
    alice.wait(lambda n: len(n.incoming()) >= 30, what="alice catching up")
    told(alice, "can be written again")
    alice.stop()
    assert held(small_disk / "alice.db") == Counter(f"line{n} " + "y" * 3000 for n in range(30))
    assert Counter(alice.incoming()) == Counter(f"line{n} " + "y" * 3000 for n in range(30))


def test_a_read_only_disk_under_the_server(nodes, tmp_path):
    image, disk = tmp_path / "disk.img", tmp_path / "disk"
    disk.mkdir()
    with open(image, "wb") as out:
        out.truncate(16 * 1024 * 1024)
    if os.geteuid() != 0:
        pytest.skip("mounting a small disk of the test's own needs root")
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    mount(["-o", "loop", str(image)], disk)
    try:
        server = start_server(nodes, disk, db="server.db")
        port = server.actor.router_port
        alice = connected(start_client(nodes, tmp_path, "alice", port))
        bob = connected(start_client(nodes, tmp_path, "bob", port))
        first = [alice.post(f"first{n}") for n in range(20)]
        all_accepted(alice, first)
        fd = os.open(disk, os.O_RDONLY)
        try:
            fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", GOING_DEFAULT))
        finally:
            os.close(fd)
        during = [alice.post(f"after{n}") for n in range(10)]
        told(server, "store fails")
        reason = next(t for t in server.notices() if "store fails" in t)
        # The cause, not a lie: neither "damaged" nor "cannot rollback".
        assert "fails" in reason and "damaged" not in reason and "rollback" not in reason
        told(alice, "cannot store posts now")
        assert not set(during) & alice.accepted() and stays_connected(bob)
        for node in (alice, bob):
            node.stop()
        server.stop()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    mount(["-o", "loop", str(image)], disk)  # the disk mended: fsck'd and mounted again
    try:
        assert held(disk / "server.db") == Counter(f"first{n}" for n in range(20))
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_the_servers_inbox_deleted_under_it(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    alice = connected(start_client(nodes, tmp_path, "alice", server.actor.router_port))
    sent = [alice.post(f"kept{n}") for n in range(10)]
    all_accepted(alice, sent)
    (tmp_path / "server.db").unlink()
    late = [alice.post(f"late{n}") for n in range(5)]
    error = fatal(server)
    assert "server.db was deleted" in error and "internal error" not in error
    alice.wait(lambda n: False in n.statuses()[1:], what="alice seeing the server gone")
    assert not set(late) & alice.accepted()  # nothing acknowledged into the deleted file
    alice.stop()
    assert held(tmp_path / "alice.db") == Counter(
        [f"kept{n}" for n in range(10)] + [f"late{n}" for n in range(5)]
    )  # what was acknowledged is held; the rest waits in the outbox
    with Inbox(tmp_path / "alice.db") as inbox:
        assert sorted(m.content for m in inbox.outbox()) == sorted(f"late{n}" for n in range(5))


def test_a_clients_inbox_replaced_under_it(nodes, tmp_path):
    server = start_server(nodes, tmp_path)
    alice = connected(start_client(nodes, tmp_path, "alice", server.actor.router_port))
    path = tmp_path / "alice.db"
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    os.replace(other, path)
    error = fatal(alice)
    assert "alice.db was replaced" in error


def damage(path: Path) -> None:
    """Overwrite every page but the first, then change the file through another
    connection, so the node's cache of the pages is stale and the next read meets them."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    with open(path, "r+b") as out:
        for offset in range(4096, size, 4096):
            out.seek(offset + 100)
            out.write(b"\xff" * 200)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")


@pytest.mark.parametrize("whose", ["server", "client"])
def test_an_inbox_damaged_mid_run_is_named_with_how_to_recover(nodes, tmp_path, whose):
    server = start_server(nodes, tmp_path)
    port = server.actor.router_port
    alice = connected(start_client(nodes, tmp_path, "alice", port))
    bob = connected(start_client(nodes, tmp_path, "bob", port))
    all_accepted(alice, [alice.post(f"line{n} " + "z" * 500) for n in range(200)])
    bob.wait(lambda n: len(n.incoming()) >= 200, what="bob's lines")
    victim = server if whose == "server" else bob
    damage(tmp_path / ("server.db" if whose == "server" else "bob.db"))
    alice.post("one more")
    error = fatal(victim)
    assert "is damaged" in error and ".recover" in error and "internal error" not in error


# -- a broadcast node's own inbox ----------------------------------------------------------


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_broadcast_nodes_inbox_deleted_or_replaced_under_it(tmp_path, how, beacon_port):
    cluster = Cluster(tmp_path, beacon_port)
    try:
        alice, bob = cluster.start("alice"), cluster.start("bob")
        wait_for([alice, bob], lambda: alice.connected_to(1) and bob.connected_to(1),
                 "alice and bob see each other")
        kept = [bob.post(f"kept{n}") for n in range(5)]
        wait_for([alice, bob], lambda: set(kept) <= bob.accepted(), "alice holding bob's lines")
        path = tmp_path / "alice.db"
        if how == "deleted":
            path.unlink()
        else:
            other = tmp_path / "other.db"
            sqlite3.connect(other).close()
            os.replace(other, path)
        # Noticed with nothing written meanwhile (its file is checked every second).
        started = time.monotonic()
        wait_for([alice], lambda: bool(alice.of(PipeKind.FATAL)), "alice stopping", timeout=10)
        took = time.monotonic() - started
        alice.running = False  # its thread has ended (FATAL was its last word)
        [error] = [body["error"] for body in alice.of(PipeKind.FATAL)]
        assert f"alice.db was {how}" in error and "internal error" not in error
        assert took < 5  # within a few seconds
        # Nothing more acknowledged: bob's direct message waits in his outbox.
        direct = bob.post("for alice", to="alice")
        wait_for([bob], lambda: not bob.connected_to(1), "bob seeing alice gone")
        assert direct not in bob.accepted()
    finally:
        cluster.close()
    with Inbox(tmp_path / "bob.db") as inbox:
        assert [m.content for m in inbox.outbox()] == ["for alice"]


def test_a_listening_broadcast_node_whose_inbox_is_deleted_exits_1_in_one_sentence(
    tmp_path, beacon_port
):
    db = tmp_path / "lis.db"
    node = NodeProcess(["-b", "-i", "lo", "--beacon-port", str(beacon_port), "-p", "0",
                        "--db", str(db), "-u", "lis", "--listen"])
    try:
        node.wait_err("broadcast node")
        db.unlink()
        assert node.finish() == 1  # as a server's or a client's: a failure, said once
        said = [line for line in node.err if "lis.db" in line]
        assert said == [f"lab93-node: the inbox {db} was deleted while this node ran; it stops,"
                        " so that nothing more is acknowledged into a file no one will read"
                        " (what it stored since is lost with that file; restart it on the"
                        " inbox to use)"]
        assert not any("Traceback" in line for line in node.err)
    finally:
        node.kill()
