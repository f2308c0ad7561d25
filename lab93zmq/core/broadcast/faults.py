"""What was wrong with a frame list: verdicts a machine returns to the facade. Pure.

A machine never counts bad input in a field of its own: it returns a ``Fault``
for each problem, and the facade (``session.py``) counts it in ``stats``, logs
it, and holds it against the frames' source (``FloodGate.strike``) once per
frame list that had any fault that ``strikes``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import MessageError, ProtocolError
from ..message import Message

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fault:
    """One problem: the ``stats`` key that counts it and the log line that says it."""

    stat: str  # "bad_frames", "bad_messages", "spoofed" or "misaddressed"
    text: str
    strike: bool = True  # held against the source (a misaddressed message is not)

    @property
    def level(self) -> int:
        return logging.WARNING if self.stat == "spoofed" else logging.INFO


class SpoofedSender(ProtocolError):
    """A whole command is dropped because its sender is not who it says it is.

    Counted as spoofed *and* as a bad frame list: ``str`` is the detail for the log.
    """


def spoofed(why: str) -> Fault:
    return Fault("spoofed", f"dropped: spoofed sender: {why}")


def bad_message(sender: str, what: str, error: object) -> Fault:
    return Fault("bad_messages", f"dropped {what} from {sender[:8]}: {error}")


def decode_each(sender: str, payloads: Sequence[bytes], what: str) -> tuple[list[Message],
                                                                             list[Fault]]:
    """The payloads that decode as messages, and a fault for each one that does not."""
    messages: list[Message] = []
    faults: list[Fault] = []
    for payload in payloads:
        try:
            messages.append(Message.decode(payload))
        except MessageError as error:
            faults.append(bad_message(sender, what, error))
    return messages, faults


def log_conflicts(conflicts: list[tuple[Message, str]]) -> list[tuple[Message, str]]:
    """Messages the inbox refused (another holds their origin and number), logged; the
    facade counts them (they are no fault of the sender's: nothing strikes)."""
    for message, why in conflicts:
        log.warning("kept the stored message over %s: %s", message.id, why)
    return conflicts


def rejected(via: str | None, error: ProtocolError) -> list[Fault]:
    """The faults of a whole frame list refused with ``error`` (from a SUB, or the ROUTER)."""
    where = via[:8] if via else "the ROUTER"
    if isinstance(error, SpoofedSender):
        return [spoofed(str(error)), Fault("bad_frames", f"dropped frames from {where}: "
                                                         "spoofed sender")]
    return [Fault("bad_frames", f"dropped frames from {where}: {error}")]
