"""IRC lines: parsed from a client's bytes, written for it, with IRCv3 message tags. Pure.

The grammar is the one modern clients speak (https://modern.ircdocs.horse, and
the IRCv3 message-tags specification)::

    line    = ['@' tags SPACE] [':' source SPACE] command *(SPACE middle) [SPACE ':' trailing]
    tags    = tag *(';' tag);   tag = key ['=' escaped value]

Limits (a line is the bytes before its line ending):

* the part after the tags: at most 510 bytes (512 with CR LF); longer is refused
  with ERR_INPUTTOOLONG (417), never truncated;
* the tag data from a client (between '@' and the space): at most 4094 bytes,
  likewise 417; the tags we add are as bounded;
* the whole line must be UTF-8 and hold no NUL byte; anything else is refused
  with a sentence (``LineError``), never an exception escaping the machine.

``LineSplitter`` cuts a TCP byte stream into lines at LF (a CR before it is
dropped, so CR LF and a bare LF both end a line), in a bounded buffer: a line
longer than the longest a client may send is dropped as it arrives and marked,
so an endless line costs at most one line of memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

MAX_BODY_BYTES = 510  # the line without tags and without CR LF (512 with them)
MAX_TAG_DATA_BYTES = 4094  # between '@' and the space, from a client and from us
# The last parameter keeps at least this much when a line is cut: only a source
# over ~440 bytes (a 64-character lab93 name of rare characters, mapped) can then
# make a line longer than 512 bytes - clients read those; losing the text is worse.
MIN_LAST_PARAM_BYTES = 64
# The longest line a client may send: '@' + tag data + ' ' + body + CR.
MAX_CLIENT_LINE_BYTES = 1 + MAX_TAG_DATA_BYTES + 1 + MAX_BODY_BYTES + 1

_COMMAND = re.compile(r"(?:[A-Za-z]+|[0-9]{3})\Z")
_TAG_ESCAPES = str.maketrans({";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"})
_TAG_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_FORBIDDEN = re.compile(r"[\r\n\x00]")
_ONE_LINE = str.maketrans({"\r": " ", "\n": " ", "\x00": None})


class LineError(ValueError):
    """A client's line that cannot be taken; ``kind`` says which reply it gets.

    ``kind`` is ``"too-long"`` (417), ``"utf8"`` (FAIL <command> INVALID_UTF8),
    ``"command"`` (no IRC command: 421) or ``"malformed"`` (400); ``command`` is
    the line's command as far as it could be read (``"*"`` when none), for the reply.
    """

    def __init__(self, kind: str, command: str, sentence: str) -> None:
        super().__init__(sentence)
        self.kind = kind
        self.command = command
        self.sentence = sentence


@dataclass(frozen=True)
class Line:
    """One IRC line: its command (upper case), parameters, source and tags.

    ``trailing`` asks ``to_bytes`` to write the last parameter after ':' even
    where the grammar does not need it (text, so that naive clients read it
    whole); ``tags`` keep their order, ours first.
    """

    command: str
    params: tuple[str, ...] = ()
    source: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    trailing: bool = False

    def tag(self, key: str) -> str | None:
        """The value of tag ``key`` ("" for a tag without one), None when absent."""
        for name, value in self.tags:
            if name == key:
                return value
        return None

    def to_bytes(self) -> bytes:
        """The line on the wire, CR LF included.

        Raises ValueError for a line the grammar cannot carry (a CR, LF or NUL
        outside the last parameter, where they become spaces; a middle parameter
        with a space) - our own bug, never a client's. A body
        over 510 bytes has its last parameter cut at a character boundary (to no
        less than MIN_LAST_PARAM_BYTES); the renderers split text before that, so
        this is a last defence only.
        """
        head = ""
        if self.tags:
            data = ";".join(
                f"{key}={value.translate(_TAG_ESCAPES)}" if value else key
                for key, value in self.tags
            )
            if len(data.encode("utf-8")) > MAX_TAG_DATA_BYTES or "\x00" in data:
                raise ValueError("the tags of a line we send are too long or hold NUL")
            head = f"@{data} "
        words = [self.command] if self.source is None else [f":{self.source}", self.command]
        if not self.command or " " in self.command or _FORBIDDEN.search(self.command):
            raise ValueError(f"not a command: {self.command!r}")
        if self.source is not None and (" " in self.source or _FORBIDDEN.search(self.source)):
            raise ValueError(f"not a source: {self.source!r}")
        for param in self.params[:-1]:
            if not param or " " in param or param[0] == ":" or _FORBIDDEN.search(param):
                raise ValueError(f"not a middle parameter: {param!r}")
            words.append(param)
        body = " ".join(words)
        if self.params:
            # The last parameter is text (a topic, a reason, a message line): what a
            # line cannot carry is made a space rather than refused, so a stray line
            # break in the service's data can never stop the machine.
            last = self.params[-1]
            if _FORBIDDEN.search(last):
                last = last.translate(_ONE_LINE)
            colon = self.trailing or not last or " " in last or last[0] == ":"
            body += " :" if colon else " "
            room = MAX_BODY_BYTES - len(body.encode("utf-8"))
            body += fit_utf8(last, max(room, MIN_LAST_PARAM_BYTES))
        return f"{head}{body}\r\n".encode()


def parse(raw: bytes, max_body: int = MAX_BODY_BYTES) -> Line | None:
    """The line in ``raw`` (its line ending, if any, is ignored); None for an empty line.

    Raises LineError for a line that is too long, not UTF-8, holds NUL or has
    no valid command. A source prefix from a client is read and kept (a server
    ignores it). Repeated tag keys: the last one counts. ``max_body``: what a
    client may send; a reader of server lines may allow more.
    """
    raw = raw.rstrip(b"\r\n")
    tag_data = b""
    body = raw
    if raw.startswith(b"@"):
        space = raw.find(b" ")
        tag_data, body = (raw[1:], b"") if space < 0 else (raw[1:space], raw[space + 1 :])
        if len(tag_data) > MAX_TAG_DATA_BYTES:
            raise LineError("too-long", _guess_command(body), "Input line was too long")
    body = body.lstrip(b" ")
    if len(body) > max_body:
        raise LineError("too-long", _guess_command(body), "Input line was too long")
    if b"\x00" in raw:
        raise LineError("malformed", _guess_command(body), "A line must not hold a NUL byte")
    try:
        text = body.decode("utf-8")
        tags_text = tag_data.decode("utf-8")
    except UnicodeDecodeError:
        raise LineError(
            "utf8",
            _guess_command(body),
            "Message rejected: this server takes UTF-8 only; set your client's encoding to UTF-8",
        ) from None
    if not text.strip(" "):
        return None
    source = None
    if text.startswith(":"):
        source, _, text = text[1:].partition(" ")
        text = text.lstrip(" ")
        if not text:
            raise LineError("malformed", "*", "A line needs a command after its source")
    command, _, rest = text.partition(" ")
    if not _COMMAND.match(command):
        raise LineError("command", _printable(command), "Unknown command")
    return Line(command.upper(), _params(rest), source, _tags(tags_text))


def _params(rest: str) -> tuple[str, ...]:
    params = []
    while True:
        rest = rest.lstrip(" ")
        if not rest:
            break
        if rest[0] == ":":
            params.append(rest[1:])
            break
        word, _, rest = rest.partition(" ")
        params.append(word)
    return tuple(params)


def _tags(text: str) -> tuple[tuple[str, str], ...]:
    if not text:
        return ()
    found: dict[str, str] = {}
    for item in text.split(";"):
        key, _, value = item.partition("=")
        if key:
            found.pop(key, None)  # the last occurrence counts, in its place
            found[key] = unescape_tag_value(value)
    return tuple(found.items())


def _guess_command(body: bytes) -> str:
    """The command of a line we refuse, for the reply: ASCII letters or digits, else '*'."""
    words = body.split(b" ")
    if words and words[0].startswith(b":") and len(words) > 1:
        words = words[1:]
    word = words[0][:32] if words else b""
    text = word.decode("ascii", "replace")
    return text.upper() if _COMMAND.match(text) else "*"


def _printable(word: str) -> str:
    """A refused command as a reply may carry it: one parameter, printable, short."""
    cleaned = "".join(ch for ch in word[:32] if ch.isprintable() and ch != ":")
    return cleaned or "*"


def escape_tag_value(value: str) -> str:
    """A tag value as the wire carries it (; space \\ CR LF escaped)."""
    return value.translate(_TAG_ESCAPES)


def unescape_tag_value(value: str) -> str:
    """The value a tag carries: a lone '\\' at the end is dropped, '\\x' unknown is 'x'."""
    if "\\" not in value:
        return value
    out = []
    chars = iter(value)
    for ch in chars:
        if ch != "\\":
            out.append(ch)
            continue
        following = next(chars, None)
        if following is not None:
            out.append(_TAG_UNESCAPES.get(following, following))
    return "".join(out)


def fit_utf8(text: str, max_bytes: int) -> str:
    """The longest start of ``text`` whose UTF-8 form fits ``max_bytes`` (whole characters)."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", "ignore")


class LineSplitter:
    """Cuts a byte stream into lines; ``feed`` returns them, None for each line too long.

    The buffer never holds more than ``max_line`` bytes: a line growing past it
    is marked (one None) and its bytes are dropped until its end arrives.
    Empty lines (and lines of spaces) are skipped, as the grammar says.
    """

    def __init__(self, max_line: int = MAX_CLIENT_LINE_BYTES) -> None:
        if max_line < 1:
            raise ValueError("a line needs room for at least one byte")
        self.max_line = max_line
        self._buffer = bytearray()
        self._dropping = False  # inside a line already marked too long

    @property
    def buffered(self) -> int:
        """Bytes held for a line not yet ended."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes | None]:
        lines: list[bytes | None] = []
        self._buffer += data
        start = 0
        while True:
            end = self._buffer.find(b"\n", start)
            if end < 0:
                break
            line = bytes(self._buffer[start:end])
            start = end + 1
            if self._dropping:
                self._dropping = False  # the end of the line we already refused
                continue
            if len(line) > self.max_line:
                lines.append(None)
                continue
            if line.strip(b" \r"):
                lines.append(line[:-1] if line.endswith(b"\r") else line)
        del self._buffer[:start]
        if len(self._buffer) > self.max_line:
            if not self._dropping:
                lines.append(None)
                self._dropping = True
            self._buffer.clear()
        return lines


def format_time(when: datetime) -> str:
    """``when`` as server-time writes it: YYYY-MM-DDThh:mm:ss.sssZ, UTC, milliseconds."""
    utc = when.astimezone(timezone.utc) if when.utcoffset() else when
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2}):?(\d{2}))\Z"
)


def parse_time(text: str) -> datetime | None:
    """A server-time timestamp (a UTC offset instead of Z is taken too); None if not one."""
    match = _TIME.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        offset = timedelta(0)
        if not zulu:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            offset = -offset if sign == "-" else offset
        zone = timezone(offset)
        when = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, zone
        )
        return when.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None
