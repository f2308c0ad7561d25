"""The asyncio API on real sockets (loopback): the same names, awaitable, never
blocking the event loop, cancellation clean."""

from __future__ import annotations

import asyncio
import time

import pytest

import lab93zmq
from lab93zmq import aio

pytestmark = pytest.mark.timeout(60)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 45))


def repeater(server, tmp_path, user, **options):
    return aio.Node.repeater(
        address="127.0.0.1", port=server.router_port, user=user, interfaces=["lo"],
        beacon_port=server.config.beacon_port, db=tmp_path / f"{user}.db", **options,
    )


def test_send_receive_flush_and_ask(tmp_path, beacon_port):
    async def main():
        async with aio.Server(address="127.0.0.1", port=0, interfaces=["lo"],
                              beacon_port=beacon_port, db=tmp_path / "s.db") as server:
            assert server.router_port > 0
            async with repeater(server, tmp_path, "alice") as alice, \
                    repeater(server, tmp_path, "bob") as bob:
                sent = await alice.send("pizza?", subject="lunch")
                assert isinstance(sent, lab93zmq.Message) and sent.sender == "alice"
                assert await alice.flush(timeout=10) == []
                assert await bob.receive(timeout=10) == sent
                assert await bob.who() == ["alice", "bob"]
                assert [m.content for m in await bob.history(limit=3)] == ["pizza?"]
                assert [s.mode for s in await bob.peers()] == ["repeater"]
                found = await aio.scan(interfaces=["lo"], beacon_port=beacon_port, timeout=0.5)
                assert [s.node for s in found] == [server.node_id]

    run(main())


def test_the_loop_keeps_running_while_a_node_waits(tmp_path, beacon_port):
    """A ticker task keeps its pace while receive() waits: nothing blocks the loop."""

    async def main():
        async with aio.Server(address="127.0.0.1", port=0, interfaces=["lo"],
                              beacon_port=beacon_port, db=tmp_path / "s.db") as server:
            async with repeater(server, tmp_path, "alice") as alice:
                ticks = []

                async def ticker():
                    for _ in range(20):
                        ticks.append(time.monotonic())
                        await asyncio.sleep(0.01)

                task = asyncio.ensure_future(ticker())
                assert await alice.receive(timeout=0.3) is None
                await task
                gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
                assert len(ticks) == 20 and max(gaps) < 0.25

    run(main())


def test_cancelling_a_receive_loses_no_message(tmp_path, beacon_port):
    async def main():
        async with aio.Server(address="127.0.0.1", port=0, interfaces=["lo"],
                              beacon_port=beacon_port, db=tmp_path / "s.db") as server:
            async with repeater(server, tmp_path, "alice") as alice, \
                    repeater(server, tmp_path, "bob") as bob:
                waiting = asyncio.ensure_future(bob.receive())
                await asyncio.sleep(0.05)
                waiting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiting
                sent = await alice.send("after the cancel")
                assert await bob.receive(timeout=10) == sent

    run(main())


def test_async_iteration_ends_when_the_node_closes(tmp_path, beacon_port):
    async def main():
        async with aio.Server(address="127.0.0.1", port=0, interfaces=["lo"],
                              beacon_port=beacon_port, db=tmp_path / "s.db") as server:
            alice = await repeater(server, tmp_path, "alice")
            bob = await repeater(server, tmp_path, "bob")
            seen = []

            async def read():
                async for message in bob:
                    seen.append(message.content)
                    if len(seen) == 3:
                        await bob.close()

            reader = asyncio.ensure_future(read())
            for n in range(3):
                await alice.send(f"n{n}")
            await asyncio.wait_for(reader, 10)
            assert seen == ["n0", "n1", "n2"]
            await alice.close()
            with pytest.raises(lab93zmq.ClosedError):
                await alice.send("late")
            await alice.close()  # twice is harmless

    run(main())


def test_a_start_that_fails_raises_the_sentence(tmp_path, beacon_port):
    async def main():
        async with aio.Server(address="127.0.0.1", port=0, interfaces=["lo"],
                              beacon_port=beacon_port, db=tmp_path / "s.db") as server:
            with pytest.raises(lab93zmq.ConfigError, match=str(server.router_port)):
                await aio.Server(address="127.0.0.1", port=server.router_port,
                                 interfaces=["lo"], beacon_port=beacon_port,
                                 db=tmp_path / "t.db")
            with pytest.raises(lab93zmq.UsageError, match="timeout takes a number"):
                async with repeater(server, tmp_path, "carol") as carol:
                    await carol.receive(timeout="never")

    run(main())


def test_part_of_a_room_the_node_is_not_in_raises_room_error(tmp_path, beacon_port):
    async def main():
        async with aio.Server(address="127.0.0.1", port=0, interfaces=["lo"],
                              beacon_port=beacon_port, db=tmp_path / "s.db") as server:
            async with repeater(server, tmp_path, "alice", rooms=["ops"]) as alice:
                with pytest.raises(lab93zmq.RoomError, match="not in #nowhere"):
                    await alice.part("nowhere")
                assert await alice.part() == lab93zmq.Parted("ops")
                with pytest.raises(lab93zmq.RoomError, match="in no room"):
                    await alice.part()

    run(main())
