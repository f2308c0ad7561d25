"""The pipe bookkeeping both API faces share (api/pipe.py), without an actor."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future

import pytest
from factories import make_message

from lab93zmq.api.pipe import (
    EVENTS,
    EVERYTHING,
    MESSAGES,
    Arrivals,
    Arrived,
    Happened,
    Settled,
    settle,
)
from lab93zmq.core.errors import ClosedError, RefusedError
from lab93zmq.core.events import Notice


def test_settle_gives_a_value_or_an_error_to_either_kind_of_future():
    value: Future = Future()
    settle(value, Settled("t", value=3))
    assert value.result() == 3
    failed: Future = Future()
    settle(failed, Settled("t", error=RefusedError("no")))
    with pytest.raises(RefusedError):
        failed.result()

    async def on_a_loop() -> None:
        waiting = asyncio.get_running_loop().create_future()
        settle(waiting, Settled("t", value="yes"))
        assert await waiting == "yes"

    asyncio.run(on_a_loop())


def test_settle_leaves_a_future_its_caller_gave_up_on():
    gave_up: Future = Future()
    assert gave_up.cancel()
    settle(gave_up, Settled("t", value=1))  # no InvalidStateError
    assert gave_up.cancelled()


def test_after_waiting_takes_the_next_item_else_raises_the_error_else_none():
    arrivals = Arrivals()
    message = make_message()
    arrivals.add(Arrived(message))
    arrivals.add(Happened(Notice("hello")))
    assert arrivals.after_waiting(EVENTS, ClosedError("closed")) == Notice("hello")
    assert arrivals.after_waiting(EVERYTHING, None) == message
    assert arrivals.after_waiting(MESSAGES, None) is None
    with pytest.raises(ClosedError):
        arrivals.after_waiting(MESSAGES, ClosedError("closed"))
