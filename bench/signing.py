"""Item: what signing costs in secure broadcast mode, beside secure mode without it.

Two secure broadcast nodes (CurveZMQ, authorized keys: ``--secure`` as users
run it) in this process, on loopback, in two set-ups interleaved in the same
run:

* **signed** (ours): every message Ed25519-signed by its author and checked
  by the receiver, as lab93-node does (``io.signing``);
* **unsigned** (baseline): the very same nodes and sockets with the signature
  made and checked by no-ops (64 zero bytes, every check passes) - plain
  secure mode, as it was before signatures: the ratio is signing alone.

Rows: live room throughput (alice posts N in bursts; until bob has shown all
of them), catch-up (bob away while alice posts N; from bob's restart until he
holds them all: every one checked in BATCHes), and per message the time to
sign and to check one of 100 bytes (ours only).
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common import BenchError, Figure, Settings, held_beacon_port, interleave, log

from lab93zmq.core.authoring import Draft
from lab93zmq.core.message import Message, make_id
from lab93zmq.core.signing import signed_bytes
from lab93zmq.io import security, signing
from lab93zmq.io.actor import ActorHandle, PipeKind
from lab93zmq.io.broadcast_actor import BroadcastActor
from lab93zmq.io.config import NodeConfig, SecureConfig

INTERVAL = 0.2
WAIT = 120.0


@contextmanager
def unsigned():
    """Secure mode with signing made a no-op, for the nodes started inside."""
    signer, verifier = signing.Signer, signing.verifier
    signing.Signer = lambda seed: (lambda data: bytes(64))  # type: ignore[assignment,misc]
    signing.verifier = lambda public: (lambda data, sig: True)  # type: ignore[assignment]
    try:
        yield
    finally:
        signing.Signer, signing.verifier = signer, verifier  # type: ignore[misc]


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.handle = ActorHandle(BroadcastActor(config))
        self.incoming = 0
        self.peers = False

    def start(self) -> Node:
        self.handle.start()
        return self

    def pump(self, timeout: float) -> None:
        event = self.handle.poll(timeout)
        while event is not None:
            if event.kind is PipeKind.INCOMING:
                self.incoming += len(event.body["messages"])
            elif event.kind is PipeKind.STATUS:
                self.peers = bool(event.body["connected"])
            event = self.handle.poll(0)

    def wait(self, done, what: str) -> float:
        start = time.monotonic()
        while not done():  # bounded by WAIT
            if time.monotonic() - start > WAIT:
                raise BenchError(f"timed out waiting for {what}")
            self.pump(0.05)
        return time.monotonic() - start

    def post_many(self, count: int, tag: str) -> None:
        for n in range(count):
            sent_at = datetime.now(timezone.utc)
            draft = Draft(make_id(sent_at, os.urandom(10)), f"{tag} {n} " + "x" * 60, None,
                          None, sent_at)
            self.handle.request(PipeKind.POST, **draft.body())

    def stop(self) -> None:
        self.handle.stop(on_event=lambda event: None)


def one_round(workdir: Path, count: int, number: int, signed: bool) -> dict[str, Any]:
    base = workdir / f"{'signed' if signed else 'unsigned'}{number}"
    keys = {name: security.generate_keypair(base / "keys" / name, name) for name in ("a", "b")}
    holder = held_beacon_port()  # closed with the nodes
    port = holder.getsockname()[1]

    def config(me: str, other: str) -> NodeConfig:
        trusted = base / f"{me}-authorized"
        trusted.mkdir(parents=True, exist_ok=True)
        (trusted / f"{other}.key").write_bytes(keys[other].path.read_bytes())
        return NodeConfig(user=me, db_path=base / f"{me}.db", address="127.0.0.1", port=0,
                          interfaces=("lo",), beacon_port=port, beacon_interval=INTERVAL,
                          secure=SecureConfig(keys[me], trusted, base / f"{me}-known"))

    def mode():
        return nullcontext() if signed else unsigned()

    with mode():
        alice, bob = Node(config("a", "b")).start(), Node(config("b", "a")).start()
    try:
        # alice.pump keeps her pipe drained while bob is waited for.
        bob.wait(lambda: bob.peers and alice.pump(0) is None and alice.peers, "linking")
        began = time.monotonic()
        alice.post_many(count, "live")
        bob.wait(lambda: alice.pump(0) is None and bob.incoming >= count, "live posts")
        live = count / (time.monotonic() - began)
        bob.stop()
        alice.post_many(count, "missed")
        with mode():
            bob = Node(config("b", "a")).start()
        took = bob.wait(lambda: alice.pump(0) is None and bob.incoming >= count, "catch-up")
    finally:
        for node in (alice, bob):
            node.stop()
        holder.close()
    return {"live_per_s": live, "catchup_s": took, "signed": signed}


def per_message(rounds: int) -> tuple[list[float], list[float]]:
    """Microseconds to sign and to check one message of 100 bytes (medians of 2,000)."""
    seed = signing.new_seed()
    sign, check = signing.Signer(seed), signing.verifier(signing.public_of(seed))
    message = Message("0" * 32, "alice", None, None, "x" * 100, datetime.now(timezone.utc),
                      "a" * 32, 1)
    signs, checks = [], []
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(2000):
            sig = sign(signed_bytes(message))
        middle = time.perf_counter()
        for _ in range(2000):
            check(signed_bytes(message), sig)
        signs.append((middle - began) / 2000 * 1e6)
        checks.append((time.perf_counter() - middle) / 2000 * 1e6)
    return signs, checks


def run(settings: Settings, workdir: Path) -> list[Figure]:
    count = settings.pick(500, 2000)
    with tempfile.TemporaryDirectory(dir=workdir) as where:
        ours, base = interleave(
            settings.rounds,
            lambda n: one_round(Path(where), count, n, signed=True),
            lambda n: one_round(Path(where), count, n, signed=False),
        )
    log(f"signing: {ours} vs {base}")
    signs, checks = per_message(settings.rounds)
    item = "--secure broadcast: Ed25519 signatures"
    name = "secure, unsigned"
    return [
        Figure(item, f"room posts shown at the peer ({count})", "msg/s", "higher",
               [r["live_per_s"] for r in ours], [r["live_per_s"] for r in base], name,
               details=ours + base),
        Figure(item, f"catch-up of {count} missed", "s", "lower",
               [r["catchup_s"] for r in ours], [r["catchup_s"] for r in base], name),
        Figure(item, "sign one message (100 B)", "us", "lower", signs),
        Figure(item, "check one signature", "us", "lower", checks),
    ]  # fmt: skip
