"""The Message value type: fields, validation, wire form and JSON line form.

Pure: no sockets, no clock. The caller passes ``sent_at`` and the random bytes
of the id, so tests are exact.

Limits (documented in docs/PROTOCOL.rst and README.rst):

* ``content``: 1 to 65,536 bytes of UTF-8 (a line of a log, a paragraph of chat);
* ``subject``: at most 200 characters, no line breaks;
* user names (``from``, ``to``): 1 to 64 characters, no white space or control
  characters, so ``/msg USER text`` is never ambiguous;
* a whole encoded message: at most 80 KiB (``MAX_WIRE_BYTES``).
"""

from __future__ import annotations

import base64
import binascii
import json
import json.scanner
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .errors import MessageError
from .rooms import DEFAULT_ROOM, check_room

WIRE_VERSION = 2  # 2: rooms (the ``room`` field) and ``kind``
TOPIC = "topic"  # ``kind`` of a message that sets its room's topic (content = the topic)
ACTION = "action"  # ``kind`` of an action (/me, IRC's CTCP ACTION): "* alice waves"
KINDS = (TOPIC, ACTION)
MAX_TOPIC_CHARS = 390  # IRC's usual TOPICLEN
MAX_CONTENT_BYTES = 65_536
MAX_SUBJECT_CHARS = 200
MAX_NAME_CHARS = 64
MAX_WIRE_BYTES = 80 * 1024
# The highest origin number: SQLite's largest INTEGER, where it is stored.
MAX_SEQ = 2**63 - 1
SIGNATURE_BYTES = 64  # an Ed25519 signature (secure broadcast mode), see signing.py
SIGNATURE_CHARS = 88  # as base64

_HEX_ID = re.compile(r"[0-9a-f]{32}\Z")
_BAD_NAME = re.compile(r"[\s\x00-\x1f\x7f]")
_LINE_BREAK = re.compile(r"[\r\n\x00]")
_WIRE_FIELDS = ("id", "from", "to", "room", "subject", "content", "sent_at", "origin", "seq")
# json.loads without its per-call overhead: the scanner it ends in (see _loads).
_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # typeshed
# json.dumps(..., ensure_ascii=False, separators=(",", ":")) builds this encoder on each call.
_encode_wire = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# A string as that encoder writes it (quoted, escaped; non-ASCII kept).
_text = json.encoder.encode_basestring


def _text_or_null(value: str | None) -> str:
    return "null" if value is None else _text(value)




def make_id(sent_at: datetime, entropy: bytes) -> str:
    """A unique id that sorts by time: 48 bits of milliseconds, 80 random bits, as hex."""
    if len(entropy) != 10:
        raise ValueError("a message id needs exactly 10 bytes of entropy")
    millis = int(sent_at.timestamp() * 1000)
    return f"{millis:012x}{entropy.hex()}"


def check_name(value: object, field: str) -> str:
    """Validate a user name; return it or raise MessageError naming ``field``."""
    if not isinstance(value, str):
        raise MessageError(field, "must be a string")
    if not value:
        raise MessageError(field, "must not be empty")
    if len(value) > MAX_NAME_CHARS:
        raise MessageError(field, f"is longer than {MAX_NAME_CHARS} characters")
    if _BAD_NAME.search(value):
        raise MessageError(field, "must not contain spaces or control characters")
    if not value.isascii():
        _check_unicode(value, field)
    return value


def _check_unicode(value: str, field: str) -> None:
    """JSON's \\ud800 escapes decode to lone surrogates, which no UTF-8 encoder (the
    wire, the inbox, a terminal) takes: refuse them here rather than crash there."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MessageError(field, "is not valid Unicode text") from None


def check_node_id(value: object, field: str = "origin") -> str:
    """A node id is 32 lowercase hex digits (16 random bytes)."""
    if not isinstance(value, str) or not _HEX_ID.match(value):
        raise MessageError(field, "must be 32 lowercase hex digits")
    return value


@dataclass(frozen=True)
class Message:
    """One chat message, as authored; immutable and valid by construction.

    ``recipient`` None means a room message, and ``room`` names the room
    (``general`` when not given); a direct message has no room. ``origin`` is
    the id of the node that authored it and ``origin_seq`` that node's own
    counter, one per room and one for direct messages (1, 2, 3, ...), which is
    what catch-up between broadcast peers is based on. ``kind`` is None for
    chat, ``"topic"`` for a message that sets its room's topic, ``"action"``
    for an action (/me), in a room or direct. ``signature`` is its author's Ed25519
    signature of ``signing.signed_bytes(message)`` (secure broadcast mode), else None;
    it travels as ``sig`` and is no part of the JSON line form.
    """

    id: str
    author: str
    recipient: str | None
    subject: str | None
    content: str
    sent_at: datetime
    origin: str
    origin_seq: int
    room: str | None = None
    kind: str | None = None
    signature: bytes | None = None

    def __post_init__(self) -> None:
        if self.room is None and self.recipient is None:
            object.__setattr__(self, "room", DEFAULT_ROOM)
        sent_at = _checked(
            self.id,
            self.author,
            self.recipient,
            self.subject,
            self.content,
            self.sent_at,
            self.origin,
            self.origin_seq,
        )
        _check_room_kind(self.recipient, self.room, self.kind, self.content)
        if self.signature is not None and (
            type(self.signature) is not bytes or len(self.signature) != SIGNATURE_BYTES
        ):
            raise MessageError("sig", f"must be {SIGNATURE_BYTES} bytes")
        if sent_at is not self.sent_at:
            object.__setattr__(self, "sent_at", sent_at)

    @classmethod
    def trusted(
        cls,
        id: str,
        author: str,
        recipient: str | None,
        subject: str | None,
        content: str,
        sent_at: datetime,
        origin: str,
        origin_seq: int,
        room: str | None = None,
        kind: str | None = None,
        signature: bytes | None = None,
    ) -> Message:
        """Rebuild a message that was validated before it was stored, without checking again.

        Only the inbox uses this: a replay of ten thousand rows should not pay
        for validating what it validated on the way in.
        """
        message = object.__new__(cls)
        # Frozen: fill the instance dict directly, as dataclass __init__ would field by field.
        fields = message.__dict__
        fields["id"] = id
        fields["author"] = author
        fields["recipient"] = recipient
        fields["subject"] = subject
        fields["content"] = content
        fields["sent_at"] = sent_at
        fields["origin"] = origin
        fields["origin_seq"] = origin_seq
        fields["room"] = room
        fields["kind"] = kind
        fields["signature"] = signature
        return message

    @property
    def sender(self) -> str:
        """Who wrote it (the public name of ``author``)."""
        return self.author

    @property
    def to(self) -> str | None:
        """Its addressee, None for a room message (the public name of ``recipient``)."""
        return self.recipient

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` line's dict: id, from, to, room, subject, content, sent_at, origin."""
        return self.to_json_dict()

    @property
    def is_direct(self) -> bool:
        return self.recipient is not None

    @property
    def is_topic(self) -> bool:
        return self.kind == TOPIC

    @property
    def is_action(self) -> bool:
        return self.kind == ACTION

    # -- the JSON line form: exactly DESIGN.md's contract -----------------

    def sent_text(self) -> str:
        """``time_text(self.sent_at)``, worked out once: a message is stored, sent on and
        shown, and each wants its time as text (the one it arrived with, when that was
        already the canonical form)."""
        text: str | None = self.__dict__.get("_sent_text")
        if text is None:
            text = self.__dict__["_sent_text"] = time_text(self.sent_at)
        return text

    def to_json_dict(self) -> dict[str, Any]:
        fields = {
            "id": self.id,
            "from": self.author,
            "to": self.recipient,
            "room": self.room,
            "subject": self.subject,
            "content": self.content,
            "sent_at": self.sent_text(),
            "origin": self.origin,
        }
        if self.kind == ACTION:  # a topic message is never a line; an action says what it is
            fields["kind"] = ACTION
        return fields

    def to_json_line(self) -> str:
        """``json.dumps(self.to_json_dict(), ensure_ascii=False)``, written field by field
        as ``encode`` is (the same string; tests/test_fuzz.py holds them equal)."""
        action = ', "kind": "action"' if self.kind == ACTION else ""
        return (
            f'{{"id": {_text(self.id)}, "from": {_text(self.author)}, '
            f'"to": {_text_or_null(self.recipient)}, "room": {_text_or_null(self.room)}, '
            f'"subject": {_text_or_null(self.subject)}, "content": {_text(self.content)}, '
            f'"sent_at": {_text(self.sent_text())}, "origin": {_text(self.origin)}{action}}}'
        )

    # -- the wire form ----------------------------------------------------

    def to_wire_dict(self) -> dict[str, Any]:
        fields = self.to_json_dict()
        fields["seq"] = self.origin_seq
        fields["v"] = WIRE_VERSION
        if self.kind is not None:
            fields["kind"] = self.kind
        if self.signature is not None:
            fields["sig"] = base64.b64encode(self.signature).decode("ascii")
        return fields

    def encode(self) -> bytes:
        """The wire form: one UTF-8 JSON object, see docs/PROTOCOL.rst.

        Written field by field: byte for byte what the compact JSON encoder makes of
        ``to_wire_dict()`` (tests/test_message.py holds them equal), in a tenth of the
        time (0.35 us against 2.9 us), because a dict of ten fields costs the encoder
        more than its strings. Made once: our own post is published and told to the
        front end (POSTED) in the same form."""
        wire: bytes | None = self.__dict__.get("_wire")
        if wire is None:
            wire = self.__dict__["_wire"] = self._wire_form()
        return wire

    def _wire_form(self) -> bytes:
        kind = self.kind
        action = f',"kind":{_text(kind)}' if kind == ACTION else ""
        topic = f',"kind":{_text(kind)}' if kind is not None and kind != ACTION else ""
        if self.signature is not None:
            topic += f',"sig":"{base64.b64encode(self.signature).decode("ascii")}"'
        return (
            f'{{"id":{_text(self.id)},"from":{_text(self.author)},'
            f'"to":{_text_or_null(self.recipient)},"room":{_text_or_null(self.room)},'
            f'"subject":{_text_or_null(self.subject)},"content":{_text(self.content)},'
            f'"sent_at":{_text(self.sent_text())},"origin":{_text(self.origin)}{action},'
            f'"seq":{int(self.origin_seq)},"v":{WIRE_VERSION}{topic}}}'
        ).encode()

    @classmethod
    def from_wire_dict(cls, fields: object) -> Message:
        """Build a Message from a decoded wire object; MessageError names the bad field."""
        if not isinstance(fields, dict):
            raise MessageError("message", "must be a JSON object")
        version = fields.get("v")
        if version != WIRE_VERSION:
            raise MessageError("v", f"is {version!r}; this node speaks version {WIRE_VERSION}")
        try:
            id, author, recipient, room, subject, content, sent_at, origin, origin_seq = (
                fields["id"],
                fields["from"],
                fields["to"],
                fields["room"],
                fields["subject"],
                fields["content"],
                fields["sent_at"],
                fields["origin"],
                fields["seq"],
            )
        except KeyError:
            missing = next(name for name in _WIRE_FIELDS if name not in fields)
            raise MessageError(missing, "is missing") from None
        kind = fields.get("kind")
        signature = _signature(fields.get("sig"))
        text, parsed = sent_at, parse_time(sent_at)
        # The same rules as __post_init__, without a second pass through the dataclass.
        sent_at = _checked(id, author, recipient, subject, content, parsed, origin, origin_seq)
        _check_room_kind(recipient, room, kind, content)
        message = cls.trusted(
            id, author, recipient, subject, content, sent_at, origin, origin_seq, room, kind,
            signature,
        )
        if sent_at is parsed and _canonical(text):
            message.__dict__["_sent_text"] = text
        return message

    @classmethod
    def from_checked_dict(cls, fields: dict[str, Any]) -> Message:
        """Rebuild a message from ``to_wire_dict``'s form without checking it again: for
        the pipe from an actor, which validated every message before it sent it."""
        text = fields["sent_at"]
        message = cls.trusted(
            fields["id"], fields["from"], fields["to"], fields["subject"], fields["content"],
            parse_time(text), fields["origin"], fields["seq"], fields["room"],
            fields.get("kind"), _signature(fields.get("sig")),
        )
        if _canonical(text):
            message.__dict__["_sent_text"] = text
        return message

    @classmethod
    def decode(cls, data: bytes) -> Message:
        """Parse the wire form; raises MessageError, never returns None."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise MessageError("message", "must be bytes")
        if len(data) > MAX_WIRE_BYTES:
            raise MessageError("message", f"is larger than {MAX_WIRE_BYTES} bytes")
        raw = bytes(data)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MessageError("message", "is not valid UTF-8") from None
        try:
            fields = _loads(text)
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deep
            raise MessageError("message", "is not valid JSON") from None
        message = cls.from_wire_dict(fields)
        message.__dict__["_received"] = raw
        return message

    def received_json(self) -> bytes:
        """The JSON this message was decoded from (every field of it checked), else
        ``encode()``: what the actor tells its front end (INCOMING). The front end's
        JSON parser reads from it exactly the dict ``decode`` checked, so nothing is
        encoded again between a SUB and the front end; fields it does not know (a
        newer peer's) are passed on and ignored there, as ``decode`` ignored them."""
        raw: bytes | None = self.__dict__.get("_received")
        return raw if raw is not None else self.encode()


def _signature(value: object) -> bytes | None:
    """The ``sig`` field: absent (None), or the base64 of a 64-byte signature."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != SIGNATURE_CHARS:
        raise MessageError("sig", f"must be {SIGNATURE_CHARS} characters of base64")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MessageError("sig", "is not base64") from None
    if len(raw) != SIGNATURE_BYTES:
        raise MessageError("sig", f"must be {SIGNATURE_BYTES} bytes")
    return raw


def _loads(text: str) -> Any:
    """``json.loads(text)``, twice as fast for the common case of nothing around the value.

    json.loads skips white space, scans one value and checks what follows;
    here the scanner runs at once, and anything but a value that ends the
    text exactly (white space, a BOM, garbage) goes to json.loads to decide.
    """
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


def check_fields(
    id: object, author: object, recipient: object, subject: object, content: object,
    sent_at: object, origin: object, origin_seq: object, room: object, kind: object,
) -> None:
    """Every check ``Message(...)`` makes of these fields (MessageError names the bad
    one), without building a Message: for a draft checked before it is sent."""
    if room is None and recipient is None:
        room = DEFAULT_ROOM
    _checked(id, author, recipient, subject, content, sent_at, origin, origin_seq)
    _check_room_kind(recipient, room, kind, content)


def _check_room_kind(recipient: object, room: object, kind: object, content: object) -> None:
    """A room message names its room, a direct message none; a topic is a short line of a
    room; an action may be in a room or direct."""
    if recipient is None:
        check_room(room)
    elif room is not None:
        raise MessageError("room", "must be null for a direct message")
    if kind is None or kind == ACTION:
        return
    if kind not in KINDS:
        raise MessageError("kind", f"must be one of {', '.join(KINDS)} or absent")
    if recipient is not None:
        raise MessageError("kind", f"{kind} is for room messages only")
    if isinstance(content, str) and (
        len(content) > MAX_TOPIC_CHARS or _LINE_BREAK.search(content)
    ):
        raise MessageError(
            "content", f"of a topic is one line of at most {MAX_TOPIC_CHARS} characters"
        )


def _checked(
    id: object,
    author: object,
    recipient: object,
    subject: object,
    content: object,
    sent_at: object,
    origin: object,
    origin_seq: object,
) -> datetime:
    """Every rule a Message keeps, in field order; returns ``sent_at`` in UTC."""
    if not isinstance(id, str) or not _HEX_ID.match(id):
        raise MessageError("id", "must be 32 lowercase hex digits")
    check_name(author, "from")
    if recipient is not None:
        check_name(recipient, "to")
    if subject is not None:
        if not isinstance(subject, str):
            raise MessageError("subject", "must be a string or null")
        if len(subject) > MAX_SUBJECT_CHARS:
            raise MessageError("subject", f"is longer than {MAX_SUBJECT_CHARS} characters")
        if _LINE_BREAK.search(subject):
            raise MessageError("subject", "must not contain line breaks")
        if not subject.isascii():
            _check_unicode(subject, "subject")
    check_content(content)
    if not isinstance(sent_at, datetime):
        raise MessageError("sent_at", "must be a timezone-aware time")
    if sent_at.tzinfo is not timezone.utc:
        offset = sent_at.utcoffset()
        if offset is None:
            raise MessageError("sent_at", "must be a timezone-aware time")
        if offset.total_seconds() != 0:
            sent_at = _to_utc(sent_at, "sent_at")
    check_node_id(origin)
    if type(origin_seq) is not int or not 1 <= origin_seq <= MAX_SEQ:
        raise MessageError("seq", f"must be a whole number from 1 to {MAX_SEQ}")
    return sent_at


def check_content(content: object) -> None:
    """A message's content: non-empty text of at most MAX_CONTENT_BYTES in UTF-8."""
    if not isinstance(content, str):
        raise MessageError("content", "must be a string")
    if not content:
        raise MessageError("content", "must not be empty")
    # ASCII text is valid and one byte a character: only other text needs encoding to tell.
    if not (content.isascii() and len(content) <= MAX_CONTENT_BYTES):
        try:
            size = len(content.encode("utf-8"))
        except UnicodeEncodeError:
            raise MessageError("content", "is not valid Unicode text") from None
        if size > MAX_CONTENT_BYTES:
            raise MessageError("content", f"is longer than {MAX_CONTENT_BYTES} bytes")


def time_text(when: datetime) -> str:
    """``when.isoformat(timespec="microseconds")``: how messages carry times, and the inbox
    sorts them. A third quicker for a UTC time, which every validated message has."""
    if when.tzinfo is timezone.utc:
        return "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00" % (  # noqa: UP031 (quicker)
            when.year,
            when.month,
            when.day,
            when.hour,
            when.minute,
            when.second,
            when.microsecond,
        )
    return when.isoformat(timespec="microseconds")


def keep_time_text(value: Any, text: str) -> None:
    """Remember on ``value`` (a Message, or a Draft that passes it on when authored) that
    its ``sent_at``, just parsed from ``text``, is written ``text`` - when that is the
    form time_text writes, so ``sent_text`` need not write it again."""
    if _canonical(text):
        value.__dict__["_sent_text"] = text


def _canonical(text: str) -> bool:
    """Whether ``text``, which parse_time read as a UTC time, is exactly what time_text
    writes for it (``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``)."""
    return (
        len(text) == 32
        and text[10] == "T"
        and text[19] == "."
        and text[4] == text[7] == "-"
        and text[13] == text[16] == ":"
        and text.endswith("+00:00")
    )


def parse_time(value: object, field: str = "sent_at") -> datetime:
    """An ISO 8601 time with a UTC offset, as written by ``to_json_dict``."""
    if not isinstance(value, str):
        raise MessageError(field, "must be an ISO 8601 string")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise MessageError(field, "is not an ISO 8601 time") from None
    if when.tzinfo is timezone.utc:  # "+00:00", as to_json_dict writes it
        return when
    if when.utcoffset() is None:
        raise MessageError(field, "must carry a UTC offset")
    return _to_utc(when, field)


def _to_utc(when: datetime, field: str) -> datetime:
    # 0001-01-01T00:00+01:00 is a valid ISO time whose UTC form is before year 1.
    try:
        return when.astimezone(timezone.utc)
    except OverflowError:
        raise MessageError(field, "is out of the range of times") from None
