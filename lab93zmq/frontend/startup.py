"""The command's start-up, without the cyclic garbage collector.

Starting, lab93-node imports some 240 modules and makes tens of thousands of
objects that live as long as the process: its classes, functions and tables.
Python's collector, triggered by every 700 new objects, walks all of them
again and again while they are being made, and once more at exit; that is
about 15 ms of a ``--send``'s 115 ms of CPU. So the command holds the
collector off while it imports what its mode needs (``hold``), then freezes
what start-up made (``gc.freeze``: kept for good, never walked again, at exit
neither) and turns the collector back on (``release``), before any message
is handled. Only the command does this (``lab93zmq.__main__.command``, the
console script's entry, from its first import on; and ``cli.main`` of the whole
process): a program on the API, or a test calling ``main``, keeps its
collector as it is.
"""

from __future__ import annotations

import gc

_held = False


def hold() -> None:
    """Start-up begins: no collection until ``release``."""
    global _held
    if gc.isenabled():
        gc.disable()
        _held = True


def release() -> None:
    """Start-up is over: freeze what it made and collect again; nothing when ``hold``
    did not hold the collector off (or it was released already)."""
    global _held
    if _held:
        _held = False
        gc.freeze()
        gc.enable()
