"""The WebSocket opening handshake (RFC 6455 §4), client side and the server's answer. No I/O.

A client sends an HTTP/1.1 ``GET`` with ``Upgrade: websocket`` and a random
``Sec-WebSocket-Key``; the server answers ``101 Switching Protocols`` with
``Sec-WebSocket-Accept`` = base64(SHA-1(key + GUID)).  Anything else is a refusal,
whose status, reason and (bounded) body say why: the relay answers a refused
listener with ``401``/``403``/``404`` and a JSON error body.

    >>> target = Target.parse("ws://127.0.0.1:9350/$hc/svc?sb-hc-action=listen")
    >>> request, key = client_request(target, (("ServiceBusAuthorization", "t"),), key=b"k" * 16)
    >>> parser = ResponseParser(key)
    >>> parser.feed(accept_response(key) + b"\\x81\\x00")
    True
    >>> parser.response.status, parser.leftover
    (101, b'\\x81\\x00')
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from hc.exceptions import LocalProtocolError, RemoteProtocolError

__all__ = [
    "HandshakeRejected",
    "Response",
    "ResponseParser",
    "Target",
    "accept_key",
    "accept_response",
    "client_request",
    "opening_problem",
    "parse_request_head",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: The largest response head (status line and headers) read before giving up.
MAX_HEAD = 64 * 1024
#: The largest refusal body kept (the rest is not read).
MAX_BODY = 64 * 1024
_SCHEMES = {"ws": False, "http": False, "sb": True, "wss": True, "https": True}

#: Header pairs in order.
Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Target:
    """Where a WebSocket goes: host, port, TLS or not, and the request target."""

    host: str
    port: int
    tls: bool
    resource: str

    @classmethod
    def parse(cls, url: str) -> Target:
        """From a ws/wss/http/https/sb URL (http and ws are plain, the others TLS).

        Raises:
            LocalProtocolError: another scheme, or no host.
        """
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise LocalProtocolError(f"not a WebSocket URL: {url!r}")
        tls = _SCHEMES[parts.scheme]
        port = parts.port or (443 if tls else 80)
        resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.hostname, port, tls, resource)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        return host if self.port == default else f"{host}:{self.port}"


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for the ``Sec-WebSocket-Key`` ``key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def opening_problem(method: str, header: Callable[[str], str | None]) -> str | None:
    """Why a request is not a WebSocket opening handshake (RFC 6455 §4.2.1), or None.

    ``header(name)`` gives a request header's value (None when absent); the server
    answers a problem with ``400`` and the reason.
    """
    if method != "GET":
        return f"a WebSocket upgrade is a GET, not {method}"
    if (header("Upgrade") or "").lower() != "websocket":
        return "the request does not ask to upgrade to websocket"
    if "upgrade" not in [t.strip().lower() for t in (header("Connection") or "").split(",")]:
        return "the Connection header does not include Upgrade"
    if header("Sec-WebSocket-Version") != "13":
        return "Sec-WebSocket-Version must be 13"
    key = header("Sec-WebSocket-Key") or ""
    if len(key) != 24 or not key.endswith("=="):  # base64 of 16 bytes (§4.2.1 item 5)
        return "Sec-WebSocket-Key is not 16 bytes in base64"
    return None


def client_request(
    target: Target,
    headers: Headers = (),
    *,
    subprotocols: tuple[str, ...] = (),
    key: bytes | None = None,
) -> tuple[bytes, str]:
    """The Upgrade request's bytes and its ``Sec-WebSocket-Key`` (16 random bytes unless given).

    Raises:
        LocalProtocolError: a header name or value with CR or LF in it.
    """
    ws_key = base64.b64encode(key if key is not None else os.urandom(16)).decode()
    lines = [
        f"GET {target.resource} HTTP/1.1",
        f"Host: {target.host_header}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {ws_key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocols:
        lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
    for name, value in headers:
        if any(c in f"{name}{value}" for c in "\r\n") or not name:
            raise LocalProtocolError(f"header {name!r} cannot be sent")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), ws_key


def accept_response(key: str, headers: Headers = ()) -> bytes:
    """A server's ``101`` for ``key`` (what the relay's side writes; used by in-memory tests)."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_request_head(head: bytes) -> tuple[str, str, Headers]:
    """A request head's (method, target, headers), up to and without the blank line.

    Raises:
        RemoteProtocolError: not an HTTP/1.1 request line, or a header line without a colon.
    """
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise RemoteProtocolError(f"malformed request line {lines[0][:100]!r}")
    return parts[0], parts[1], _headers(lines[1:])


def _headers(lines: list[str]) -> Headers:
    pairs = []
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise RemoteProtocolError(f"malformed header line {line[:100]!r}")
        pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


@dataclass(frozen=True)
class Response:
    """A handshake response: status, reason, headers, and a refusal's body."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)


class HandshakeRejected(RemoteProtocolError):
    """The server did not switch protocols: ``response`` says what it answered instead."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"{response.status} {response.reason}".strip(), status=response.status)
        self.response = response


class ResponseParser:
    """Reads the server's answer to :func:`client_request`.

    :meth:`feed` returns True once the answer is complete: a checked ``101``
    (``response`` set, the bytes after it in ``leftover``: the first frames), or
    a refusal with its body (read to ``Content-Length``, at most MAX_BODY; call
    :meth:`feed_eof` when the body runs to the end of the stream).

    Args:
        key: the ``Sec-WebSocket-Key`` sent.
        subprotocols: those offered; the server may choose one of them only.
    """

    def __init__(self, key: str, subprotocols: tuple[str, ...] = ()) -> None:
        self._key, self._offered = key, subprotocols
        self._buffer = bytearray()
        self._head: Response | None = None
        self._body_length = -1
        self.response: Response | None = None
        self.leftover = b""

    def feed(self, data: bytes) -> bool:
        """Add bytes; True once the response is complete.

        Raises:
            RemoteProtocolError: a malformed or oversized head, or a ``101`` that
                does not check out (accept key, Upgrade, an unoffered subprotocol).
        """
        self._buffer += data
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise RemoteProtocolError("handshake response head too long")
                return False
            self._head = self._parse_head(bytes(self._buffer[:end]))
            del self._buffer[: end + 4]
            if self._head.status == 101:
                self._check_switch(self._head)
                self.response, self.leftover = self._head, bytes(self._buffer)
                return True
            length = self._head.header("Content-Length")
            self._body_length = int(length) if length and length.isdigit() else -1
        return self._body_done()

    def feed_eof(self) -> Response:
        """The stream ended: the refusal as read so far.

        Raises:
            RemoteProtocolError: it ended before the status line and headers.
        """
        if self._head is None:
            raise RemoteProtocolError("connection closed during the handshake")
        self._finish()
        assert self.response is not None
        return self.response

    def _body_done(self) -> bool:
        wanted = MAX_BODY if self._body_length < 0 else min(self._body_length, MAX_BODY)
        if len(self._buffer) >= wanted and self._body_length >= 0 or len(self._buffer) >= MAX_BODY:
            self._finish()
            return True
        return False

    def _finish(self) -> None:
        assert self._head is not None
        body = bytes(self._buffer[: self._body_length if self._body_length >= 0 else MAX_BODY])
        head = self._head
        self.response = Response(head.status, head.reason, head.headers, body[:MAX_BODY])

    @staticmethod
    def _parse_head(head: bytes) -> Response:
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit() or len(code) != 3:
            raise RemoteProtocolError(f"malformed status line {lines[0][:100]!r}")
        return Response(int(code), reason, _headers(lines[1:]))

    def _check_switch(self, response: Response) -> None:
        if (response.header("Upgrade") or "").lower() != "websocket":
            raise RemoteProtocolError("101 without Upgrade: websocket")
        if response.header("Sec-WebSocket-Accept") != accept_key(self._key):
            raise RemoteProtocolError("wrong Sec-WebSocket-Accept in the 101")
        chosen = response.header("Sec-WebSocket-Protocol")
        if chosen is not None and chosen not in self._offered:
            raise RemoteProtocolError(f"the server chose subprotocol {chosen!r}, not offered")
        if (response.header("Sec-WebSocket-Extensions") or "").strip():
            raise RemoteProtocolError("the server chose an extension, none was offered")
