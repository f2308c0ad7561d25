"""Z85, ZeroMQ's text form of binary keys (https://rfc.zeromq.org/spec/32/). Pure.

The cores show and compare CurveZMQ public keys as text; importing
``zmq.utils.z85`` for that would load libzmq into every pure module. The
codec is forty lines and the RFC's test vector pins it (tests/test_z85.py
checks it against pyzmq's too).
"""

from __future__ import annotations

ALPHABET = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_INDEX = {char: value for value, char in enumerate(ALPHABET)}
_POWERS = (85**4, 85**3, 85**2, 85, 1)


def encode(data: bytes) -> bytes:
    """Z85 text of ``data``, whose length must be a multiple of 4."""
    if len(data) % 4:
        raise ValueError("Z85 encodes a multiple of 4 bytes")
    out = bytearray()
    for start in range(0, len(data), 4):
        value = int.from_bytes(data[start : start + 4], "big")
        out += bytes(ALPHABET[value // power % 85] for power in _POWERS)
    return bytes(out)


def decode(text: bytes | str) -> bytes:
    """The bytes of Z85 ``text`` (a multiple of 5 characters); ValueError if it is not Z85."""
    raw = text.encode("ascii") if isinstance(text, str) else bytes(text)
    if len(raw) % 5:
        raise ValueError("Z85 text is a multiple of 5 characters")
    out = bytearray()
    for start in range(0, len(raw), 5):
        value = 0
        for char in raw[start : start + 5]:
            digit = _INDEX.get(char)
            if digit is None:
                raise ValueError(f"{chr(char)!r} is not a Z85 character")
            value = value * 85 + digit
        if value >= 1 << 32:
            raise ValueError("Z85 group out of range")
        out += value.to_bytes(4, "big")
    return bytes(out)
