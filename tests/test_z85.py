"""The core's own Z85 codec agrees with the RFC and with pyzmq's."""

from __future__ import annotations

import os

import pytest
from zmq.utils import z85 as pyzmq_z85

from lab93zmq.core import z85


def test_the_rfc_test_vector():
    data = bytes([0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B])
    assert z85.encode(data) == b"HelloWorld"
    assert z85.decode("HelloWorld") == data


def test_it_agrees_with_pyzmq_on_random_keys():
    for _ in range(200):
        key = os.urandom(32)
        assert z85.encode(key) == pyzmq_z85.encode(key)
        assert z85.decode(pyzmq_z85.encode(key)) == key
    assert z85.encode(b"\xff" * 4) == pyzmq_z85.encode(b"\xff" * 4)


@pytest.mark.parametrize("text", ["abcd", "abcd~", "%%%%%"])
def test_text_that_is_not_z85_is_refused(text):
    with pytest.raises(ValueError):
        z85.decode(text)


def test_a_length_that_is_not_a_multiple_of_four_is_refused():
    with pytest.raises(ValueError):
        z85.encode(b"abc")
