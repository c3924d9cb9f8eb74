"""The NATS client protocol, bytes in and bytes out. No I/O.

What the cluster's own NATS connection (``relay.cluster.natsclient``) speaks
(https://docs.nats.io/reference/reference-protocols/nats-protocol)::

    server: INFO {json}  MSG <subject> <sid> [reply] <#bytes>\\r\\n<payload>
            HMSG <subject> <sid> [reply] <#header bytes> <#total bytes>\\r\\n<headers><payload>
            PING  PONG  +OK  -ERR <text>
    client: CONNECT {json}  SUB <subject> [queue] <sid>  UNSUB <sid>
            PUB <subject> [reply] <#bytes>\\r\\n<payload>  PING  PONG

Every line ends in CRLF, and so does every payload.  :class:`Parser` turns what the
server sent into events (:class:`Msg`, :class:`Info`, :data:`PING`, ...), holding an
incomplete one: at most a control line of :data:`MAX_CONTROL` bytes or a message of
the server's ``max_payload`` plus :data:`HEADER_ROOM`.  Anything else (an unknown
verb, a size that is not a number, a payload not ended by CRLF, more than the bound)
is :class:`WireError`: the stream cannot be trusted past it, so the connection goes.
A message whose *headers* are malformed is still framed right: it comes out as
:class:`Malformed`, to be dropped and logged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HEADER_ROOM",
    "MAX_CONTROL",
    "OK",
    "PING",
    "PONG",
    "Err",
    "Event",
    "Info",
    "Malformed",
    "Msg",
    "Parser",
    "WireError",
    "connect",
    "ping",
    "pong",
    "pub",
    "sub",
    "unsub",
]

#: The longest control line held while incomplete (an INFO with many cluster URLs fits).
MAX_CONTROL = 64 * 1024
#: Room over ``max_payload`` for a message's control line and headers.
HEADER_ROOM = 64 * 1024
#: ``max_payload`` until the server's INFO says it (the server's default).
DEFAULT_MAX_PAYLOAD = 1024 * 1024
_CRLF = b"\r\n"
_HEADER_LINE = "NATS/1.0"


class WireError(ValueError):
    """The server broke the protocol (or a bound): the connection cannot go on."""


@dataclass(frozen=True, slots=True)
class Info:
    """The server's INFO: its ``max_payload``, nonce, TLS wishes, cluster URLs..."""

    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Err:
    """``-ERR 'text'``: the server's complaint (authorization, a bad subject...)."""

    text: str


@dataclass(frozen=True, slots=True)
class Malformed:
    """A message framed right whose headers are not NATS headers: dropped and logged."""

    subject: str
    why: str


class _Control:
    """PING, PONG and +OK: one each."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


PING, PONG, OK = _Control("PING"), _Control("PONG"), _Control("+OK")


class Msg:
    """One message delivered to subscription ``sid``.

    ``headers`` is None without headers; NATS's status line (``NATS/1.0 503``) is
    there as ``Status`` (and ``Description``), as nats-py has it.
    """

    __slots__ = ("data", "headers", "reply", "sid", "subject")

    def __init__(self, subject: str, sid: int, reply: str, data: bytes,
                 headers: dict[str, str] | None = None) -> None:
        self.subject, self.sid, self.reply, self.data, self.headers = subject, sid, reply, data, headers

    def __repr__(self) -> str:
        return f"<Msg {self.subject} sid={self.sid} reply={self.reply!r} {len(self.data)} bytes>"


Event = Msg | Info | Err | Malformed | _Control


class Parser:
    """What the server sent, as events; see the module's docstring for the bounds."""

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self._held = b""
        self.max_payload = max_payload

    @property
    def held(self) -> int:
        """Bytes held of an incomplete line or message."""
        return len(self._held)

    def feed(self, data: bytes) -> list[Event]:
        """The events ``data`` completes (raises WireError: the connection must close)."""
        buf = self._held + data if self._held else data
        events: list[Event] = []
        pos, size = 0, len(buf)
        while pos < size:
            end = buf.find(_CRLF, pos)
            if end < 0:
                if size - pos > MAX_CONTROL:
                    raise WireError(f"a control line longer than {MAX_CONTROL} bytes")
                break
            verb = buf[pos:pos + 4]
            if verb == b"MSG ":
                done = self._msg(buf, pos, end, events)
            elif verb == b"HMSG":
                done = self._hmsg(buf, pos, end, events)
            else:
                events.append(_control(buf[pos:end]))
                done = end + 2
            if done < 0:
                break
            pos = done
        self._held = buf[pos:] if pos < size else b""
        if len(self._held) > self.max_payload + HEADER_ROOM:
            raise WireError(f"a message over max_payload ({self.max_payload} bytes)")
        return events

    def _size(self, token: bytes) -> int:
        if not token.isdigit():
            raise WireError(f"not a size: {token[:32]!r}")
        size = int(token)
        if size > self.max_payload + HEADER_ROOM:
            raise WireError(f"a message of {size} bytes, over max_payload ({self.max_payload})")
        return size

    def _msg(self, buf: bytes, pos: int, end: int, events: list[Event]) -> int:
        """``MSG <subject> <sid> [reply] <#bytes>``: where the next event starts, -1 if
        the payload is not all here yet."""
        parts = buf[pos + 4:end].split()
        if len(parts) not in (3, 4):
            raise WireError(f"a malformed MSG line: {buf[pos:min(end, pos + 128)]!r}")
        start = end + 2
        stop = _payload_end(buf, start, self._size(parts[-1]), "MSG")
        if stop < 0:
            return -1
        reply = parts[2].decode("latin-1") if len(parts) == 4 else ""
        events.append(Msg(parts[0].decode("latin-1"), _sid(parts[1]), reply, buf[start:stop]))
        return stop + 2

    def _hmsg(self, buf: bytes, pos: int, end: int, events: list[Event]) -> int:
        """``HMSG <subject> <sid> [reply] <#header bytes> <#total bytes>``."""
        parts = buf[pos + 4:end].split()
        if len(parts) not in (4, 5) or buf[pos + 4:pos + 5] != b" ":
            raise WireError(f"a malformed HMSG line: {buf[pos:min(end, pos + 128)]!r}")
        head, total = self._size(parts[-2]), self._size(parts[-1])
        if head > total:
            raise WireError("an HMSG with more header bytes than bytes")
        start = end + 2
        stop = _payload_end(buf, start, total, "HMSG")
        if stop < 0:
            return -1
        subject = parts[0].decode("latin-1")
        reply = parts[2].decode("latin-1") if len(parts) == 5 else ""
        try:
            headers = parse_headers(buf[start:start + head])
        except ValueError as exc:
            events.append(Malformed(subject, str(exc)))
        else:
            events.append(Msg(subject, _sid(parts[1]), reply, buf[start + head:stop], headers))
        return stop + 2


def _payload_end(buf: bytes, start: int, size: int, verb: str) -> int:
    """Where the ``size``-byte payload from ``start`` ends (its CRLF checked), -1 if it
    is not all here yet."""
    stop = start + size
    if stop + 2 > len(buf):
        return -1
    if buf[stop:stop + 2] != _CRLF:
        raise WireError(f"{verb} payload not ended by CRLF")
    return stop


def _sid(token: bytes) -> int:
    if not token.isdigit():
        raise WireError(f"not a subscription id: {token[:32]!r}")
    return int(token)


def _control(line: bytes) -> Event:
    if line == b"PING":
        return PING
    if line == b"PONG":
        return PONG
    if line == b"+OK":
        return OK
    if line.startswith(b"-ERR"):
        return Err(line[4:].strip().strip(b"'").decode("utf-8", "replace"))
    if line.startswith(b"INFO "):
        try:
            fields = json.loads(line[5:])
        except ValueError as exc:
            raise WireError("an INFO that is not JSON") from exc
        if not isinstance(fields, dict):
            raise WireError("an INFO that is not a JSON object")
        return Info(fields)
    raise WireError(f"an unknown protocol line: {line[:64]!r}")


def parse_headers(block: bytes) -> dict[str, str]:
    """``NATS/1.0[ status[ description]]\\r\\nKey: Value\\r\\n...\\r\\n\\r\\n`` as a dict
    (ValueError if it is not that)."""
    text = block.decode("utf-8")
    if not text.endswith("\r\n\r\n"):
        raise ValueError("headers not ended by an empty line")
    lines = text[:-4].split("\r\n")
    first = lines[0]
    if not first.startswith(_HEADER_LINE):
        raise ValueError(f"headers not starting {_HEADER_LINE}: {first[:32]!r}")
    headers: dict[str, str] = {}
    status = first[len(_HEADER_LINE):].strip()
    if status:
        code, _, description = status.partition(" ")
        headers["Status"] = code
        if description:
            headers["Description"] = description.strip()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise ValueError(f"a header line without a name: {line[:32]!r}")
        headers[name.strip()] = value.strip()
    return headers


# -- what the client sends ---------------------------------------------------------


def _subject(subject: str) -> bytes:
    """``subject`` for a protocol line: no space, no control character (no injection)."""
    if not subject or " " in subject or not subject.isprintable():
        raise ValueError(f"not a NATS subject: {subject[:64]!r}")
    return subject.encode("latin-1")


def connect(options: dict[str, Any]) -> bytes:
    return b"CONNECT " + json.dumps(options, separators=(",", ":")).encode() + _CRLF


def sub(subject: str, sid: int, queue: str = "") -> bytes:
    if queue:
        return b"SUB %s %s %d\r\n" % (_subject(subject), _subject(queue), sid)
    return b"SUB %s %d\r\n" % (_subject(subject), sid)


def unsub(sid: int) -> bytes:
    return b"UNSUB %d\r\n" % sid


def pub(subject: str, payload: bytes, reply: str = "") -> bytes:
    """One PUB, control line and payload in one piece (one write)."""
    if reply:
        return b"PUB %s %s %d\r\n%s\r\n" % (_subject(subject), _subject(reply), len(payload), payload)
    return b"PUB %s %d\r\n%s\r\n" % (_subject(subject), len(payload), payload)


def ping() -> bytes:
    return b"PING\r\n"


def pong() -> bytes:
    return b"PONG\r\n"
