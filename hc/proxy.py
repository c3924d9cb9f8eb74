"""HTTP CONNECT proxies: which one a connection takes, the CONNECT request, its answer. No I/O.

Corporate networks often let nothing out but an HTTP proxy. A WebSocket (ws or wss)
leaves through it in a tunnel (RFC 9110 §9.3.6)::

    CONNECT relay.example.com:443 HTTP/1.1
    Host: relay.example.com:443
    Proxy-Authorization: Basic dXNlcjpwYXNz        (when the proxy URL has credentials)

    HTTP/1.1 200 Connection established            (any 2xx: the tunnel is open)

after which the bytes are the relay's (TLS first for wss). :mod:`hc.asyncio.proxy`
drives this over a socket.

Which proxy: an explicit URL, or the environment as curl and requests read it:
``https_proxy`` for wss (TLS) targets, ``http_proxy`` for ws, ``all_proxy`` for both
(lower case first, then upper case), unless ``no_proxy`` names the host (``*``, a
domain and its subdomains with or without a leading dot, an IP address or CIDR
block, each optionally with ``:port``).
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from hc.exceptions import RemoteProtocolError

__all__ = [
    "ANSWER_LIMIT",
    "ConnectAnswer",
    "ConnectAnswerParser",
    "Proxy",
    "bypasses",
    "connect_request",
    "proxy_from_environment",
]

#: The largest CONNECT answer head read (status line and headers).
ANSWER_LIMIT = 16 * 1024
_HOST = re.compile(r"[A-Za-z0-9._~%:-]+")
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: ([^\r\n]*))?")


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy: where it is and, for Basic authentication, who we are.

    The credentials stay out of ``repr`` and :attr:`url`.
    """

    host: str
    port: int
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)

    @classmethod
    def parse(cls, text: str) -> Proxy:
        """From ``http://[user:password@]host[:port]`` (``host:port`` alone means http).

        Raises:
            ValueError: another scheme (an https proxy is not supported), no host, a
                bad port; the message never holds the password.
        """
        text = text.strip()
        if "://" not in text:
            text = "http://" + text
        parts = urlsplit(text)
        where = f"{parts.scheme}://{parts.hostname or ''}"
        if parts.scheme != "http":
            raise ValueError(f"proxy {where}: only http:// proxies (CONNECT) are supported")
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise ValueError(f"proxy {where}: bad port") from exc
        if not parts.hostname or not _HOST.fullmatch(parts.hostname):
            raise ValueError(f"proxy {where}: no valid host")
        return cls(parts.hostname, port, unquote(parts.username or ""), unquote(parts.password or ""))

    @property
    def url(self) -> str:
        """``http://host:port``, without credentials (for logs and errors)."""
        return f"http://{_authority(self.host, self.port)}"

    @property
    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` value (Basic), or None without credentials."""
        if not self.username and not self.password:
            return None
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _variable(environ: Mapping[str, str], name: str) -> str:
    return (environ.get(name) or environ.get(name.upper()) or "").strip()


def proxy_from_environment(host: str, port: int, tls: bool, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy the environment gives for a connection to ``host:port``, or None.

    Raises:
        ValueError: the variable holds something that is not a proxy URL (named).
    """
    if bypasses(host, port, _variable(environ, "no_proxy")):
        return None
    for name in ("https_proxy" if tls else "http_proxy", "all_proxy"):
        value = _variable(environ, name)
        if value:
            try:
                return Proxy.parse(value)
            except ValueError as exc:
                raise ValueError(f"{name.upper()}: {exc}") from exc
    return None


def bypasses(host: str, port: int, no_proxy: str) -> bool:
    """True when the ``no_proxy`` list names ``host`` (and ``port``, if the entry has one)."""
    host = host.strip("[]").lower().rstrip(".")
    for entry in (item.strip().lower() for item in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, entry_port = _split_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        if _names(name, host):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6]:port
        name, _, rest = entry[1:].partition("]")
        return name, int(rest[1:]) if rest[1:].isdigit() else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, int(port) if port.isdigit() else None
    return entry, None


def _names(entry: str, host: str) -> bool:
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        domain = entry.lstrip("*").lstrip(".").rstrip(".")
        return bool(domain) and (host == domain or host.endswith("." + domain))
    try:
        return ipaddress.ip_address(host) in network
    except ValueError:
        return False


def connect_request(host: str, port: int, proxy: Proxy) -> bytes:
    """The CONNECT request opening a tunnel to ``host:port`` through ``proxy``.

    Raises:
        ValueError: a host that could smuggle text into the request.
    """
    if not _HOST.fullmatch(host.strip("[]")) or not 0 < port < 65536:
        raise ValueError(f"not a host and port to tunnel to: {host!r}:{port}")
    authority = _authority(host.strip("[]"), port)
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if (credentials := proxy.authorization) is not None:
        lines.append(f"Proxy-Authorization: {credentials}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


@dataclass(frozen=True)
class ConnectAnswer:
    """The proxy's answer head: status, reason and the headers (names lower-cased)."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def established(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)


class ConnectAnswerParser:
    """Reads the answer head to a CONNECT, at most :data:`ANSWER_LIMIT` bytes.

    ``feed`` until it returns True; then :attr:`answer` holds the head and
    :attr:`leftover` what came after it (the tunnel's first bytes).
    """

    def __init__(self, limit: int = ANSWER_LIMIT) -> None:
        self._buffer = bytearray()
        self._limit = limit
        self.answer: ConnectAnswer | None = None
        self.leftover = b""

    def feed(self, data: bytes) -> bool:
        """Take bytes; True once the head is complete.

        Raises:
            RemoteProtocolError: not an HTTP/1 answer, or a head over the limit.
        """
        if self.answer is not None:
            self.leftover += data
            return True
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > self._limit:
                raise RemoteProtocolError(f"the proxy's answer head is over {self._limit} bytes")
            if len(self._buffer) >= 12 and not self._buffer.startswith(b"HTTP/1."):
                raise RemoteProtocolError("the proxy did not answer in HTTP/1")
            return False
        if end > self._limit:
            raise RemoteProtocolError(f"the proxy's answer head is over {self._limit} bytes")
        self.answer = _parse_head(bytes(self._buffer[:end]))
        self.leftover = bytes(self._buffer[end + 4 :])
        self._buffer.clear()
        return True

    def feed_eof(self) -> None:
        """The proxy closed the connection.

        Raises:
            RemoteProtocolError: before its answer was complete.
        """
        if self.answer is None:
            raise RemoteProtocolError("the proxy closed the connection without answering the CONNECT")


def _parse_head(head: bytes) -> ConnectAnswer:
    status_line, *lines = head.split(b"\r\n")
    matched = _STATUS_LINE.fullmatch(status_line)
    if matched is None:
        raise RemoteProtocolError("the proxy's answer has no valid status line")
    headers = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise RemoteProtocolError("the proxy's answer has a malformed header line")
        headers.append((name.strip().decode("latin-1").lower(), value.strip().decode("latin-1")))
    reason = (matched.group(2) or b"").decode("latin-1").strip()
    return ConnectAnswer(int(matched.group(1)), reason[:200], tuple(headers))
