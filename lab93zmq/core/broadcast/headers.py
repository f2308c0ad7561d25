"""Broadcast commands, checked: ``parse`` reads a frame list (who sent it, which
command, on which topic), and each reader below returns a command's fields or
raises ProtocolError naming what is wrong (the whole command is then dropped).
Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .. import wire
from ..away import AwayTextError, away_text
from ..errors import ProtocolError
from ..message import MAX_TOPIC_CHARS, Message
from ..presence import is_node_id
from ..rooms import RoomError, check_room
from ..sync import DIGEST_CHARS, SyncError, Vector, decode_vector
from .actions import BATCH_MESSAGES, ROOM_TOPIC_VERBS, Channel, Verb, verb_on
from .faults import Fault, bad_message, decode_each
from .roomsync import MAX_TAIL, SyncRequest

MAX_ROOMS = 1000  # rooms one node may announce (the header limit allows about that many)
_DIGEST = re.compile(f"[0-9a-f]{{{DIGEST_CHARS}}}\\Z")


def vector_of(header: Mapping[str, Any], name: str = "vector") -> Vector:
    """A vector field (``vector``, ``floors``) of a header; ProtocolError when it is not one."""
    if name not in header:
        raise ProtocolError(f"header field {name!r} is missing")
    try:
        return decode_vector(header[name])
    except SyncError as error:
        raise ProtocolError(f"bad {name}: {error}") from None


def room_of(header: Mapping[str, Any]) -> str:
    """The ``room`` a command is about; ProtocolError when it names none."""
    try:
        return check_room(header.get("room"))
    except RoomError:
        raise ProtocolError("header field 'room' must be a room name") from None


def sync_request(header: Mapping[str, Any]) -> SyncRequest:
    """A SYNC's room, vector, and ``tail`` (1..MAX_TAIL) or ``peek`` (true), if any."""
    room, vector = room_of(header), vector_of(header)
    tail = header.get("tail")
    if tail is not None and (type(tail) is not int or not 1 <= tail <= MAX_TAIL):
        raise ProtocolError(f"header field 'tail' must be a whole number from 1 to {MAX_TAIL}")
    peek = header.get("peek", False)
    if type(peek) is not bool:
        raise ProtocolError("header field 'peek' must be true or false")
    return SyncRequest(room, vector, tail, peek)


def floors_of(header: Mapping[str, Any]) -> Vector | None:
    """A BATCH's ``floors`` (an answer to a SYNC with a tail), None when absent."""
    return vector_of(header, "floors") if "floors" in header else None


def beat_rooms(header: Mapping[str, Any]) -> dict[str, str]:
    """A BEAT's ``rooms``: each room the sender is in, with its vector's digest."""
    rooms = header.get("rooms")
    if not isinstance(rooms, dict) or len(rooms) > MAX_ROOMS:
        raise ProtocolError(f"header field 'rooms' must be an object of at most {MAX_ROOMS}")
    for room, digest in rooms.items():
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise ProtocolError(f"the digest of a room must be {DIGEST_CHARS} hex digits")
        _room(room)
    return rooms


def announced_rooms(header: Mapping[str, Any]) -> dict[str, str | None]:
    """A ROOMS command's ``rooms``: each room the sender is in, with its topic (or None)."""
    rooms = header.get("rooms")
    if not isinstance(rooms, list) or len(rooms) > MAX_ROOMS:
        raise ProtocolError(f"header field 'rooms' must be a list of at most {MAX_ROOMS}")
    found: dict[str, str | None] = {}
    for entry in rooms:
        if not isinstance(entry, dict):
            raise ProtocolError("each of 'rooms' must be an object {name, topic}")
        topic = entry.get("topic")
        if topic is not None and (not isinstance(topic, str) or len(topic) > MAX_TOPIC_CHARS):
            raise ProtocolError(f"a room's topic must be text of at most {MAX_TOPIC_CHARS}")
        found[_room(entry.get("name"))] = topic
    return found


def announced_away(header: Mapping[str, Any]) -> str | None:
    """A ROOMS command's ``away``: the sender's away text; None (here) when absent or null."""
    try:
        return away_text(header.get("away"))
    except AwayTextError as error:
        raise ProtocolError(f"header field 'away': {error}") from None


def _room(value: object) -> str:
    try:
        return check_room(value)
    except RoomError:
        raise ProtocolError(f"{value!r} is not a room name") from None


def published_messages(payloads: Sequence[bytes], room: str) -> list[Message]:
    """The messages of a MSG on ``room``'s topic; ProtocolError (the whole MSG is dropped)
    when one is bad, direct, or of another room."""
    if not 1 <= len(payloads) <= BATCH_MESSAGES:
        raise ProtocolError(f"MSG carries {len(payloads)} messages, not 1 to {BATCH_MESSAGES}")
    messages = [Message.decode(payload) for payload in payloads]  # MessageError: dropped
    for message in messages:
        if message.is_direct:
            raise ProtocolError("a direct message was published to a room")
        if message.room != room:
            raise ProtocolError(f"a message of #{message.room} was published on #{room}")
    return messages


def room_messages(sender: str, payloads: Sequence[bytes], room: str,
                  what: str) -> tuple[list[Message], list[Fault]]:
    """The valid messages of ``room`` among ``payloads``, and a fault for each other one."""
    decoded, faults = decode_each(sender, payloads, what)
    kept: list[Message] = []
    for message in decoded:
        if message.is_direct:
            faults.append(bad_message(sender, what, "a direct message"))
        elif message.room != room:
            faults.append(bad_message(sender, what, f"a message of #{message.room}"))
        else:
            kept.append(message)
    return kept, faults


def parse(frames: Sequence[bytes], via: str | None,
          own_id: str) -> tuple[str, Verb, wire.Command, str | None]:
    """The sender, verb, command and topic room of one frame list from the ROUTER (``via``
    None) or from ``via``'s SUB, checked; ProtocolError otherwise. On a SUB, MSG and HAVE
    come on their room's topic and name that room; the others on the node topic."""
    if via is None:
        channel, room, command = Channel.ROUTER, None, wire.decode(frames)
    else:
        channel = Channel.PUB
        room, command = wire.decode_published(frames)
    sender = command.header.get("node")
    if not is_node_id(sender):
        raise ProtocolError("header field 'node' must be 32 lowercase hex digits")
    if via is not None and sender != via:
        raise ProtocolError(f"{command.name} on {via[:8]}'s PUB claims node {sender[:8]}")
    verb = verb_on(command.name, channel)
    if verb is None:
        raise ProtocolError(f"unexpected {command.name} on the {channel.value} socket")
    if sender == own_id:
        raise ProtocolError("a command carrying our own node id")
    if via is not None:
        if (verb in ROOM_TOPIC_VERBS) != (room is not None):
            raise ProtocolError(f"{verb.value} on the wrong topic")
        if room is not None and room_of(command.header) != room:
            raise ProtocolError(f"{verb.value} on #{room}'s topic names another room")
    return sender, verb, command, room
