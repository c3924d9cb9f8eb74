"""What every request head must be before the relay acts on it. No I/O.

A request enters the relay in one of two places: ``relay.front`` (the first
head of every connection, parsed by llhttp through ``httptools``) or aiohttp
(later requests on a connection the front handed over).  Both apply these
checks, so a malformed head never reaches routing, SAS or the discovery feed::

    head over max_header_size, or more than max_headers fields -> 431
    anything llhttp refuses (bare LF, NUL, obs-fold, bad method,
    duplicate or negative Content-Length, ...)                  -> 400, llhttp's reason
    a version other than HTTP/1.1 or HTTP/1.0 (0.9, 2.0)        -> 505, answered as HTTP/1.1
    no Host (HTTP/1.1), two Hosts, a Host that is not
    host[:port] (RFC 9110 §7.2, RFC 3986 §3.2.2)                -> 400 "malformed Host header"
    an absolute-form target whose authority is not the Host    -> 400

The relay is an origin server, not a proxy: an absolute-form target (RFC 9112
§3.2.2) is accepted only when it names the relay the ``Host`` header names, so
the validated ``Host`` is the one name every later stage (SAS resources, the
feed's self link, ``Via``) uses.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import urlsplit

import httptools

from relay.error_body import render_error
from relay.exceptions import BadRequest, HeaderFieldsTooLarge, RelayError, VersionNotSupported

__all__ = [
    "HeadCollector",
    "ParsedHead",
    "PartialHead",
    "check_absolute_target",
    "host_name",
    "parse_head",
    "refusal",
]

#: RFC 3986 reg-name as DNS names use it (letters, digits, '-', '.', '_'), or an IPv4 address.
_REG_NAME = re.compile(r"[A-Za-z0-9._-]{1,253}")
_IP_LITERAL = re.compile(r"\[([0-9A-Fa-f:.]{2,45})\]")
_PORT = re.compile(r"[0-9]{1,5}")
_VERSIONS = frozenset({"1.1", "1.0"})


class HeadCollector:
    """httptools callbacks collecting one request head."""

    __slots__ = ("pairs", "url")

    def __init__(self) -> None:
        self.url = b""
        self.pairs: list[tuple[str, str]] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.pairs.append((name.decode("latin-1"), value.decode("latin-1")))


@dataclass(frozen=True, slots=True)
class ParsedHead:
    """A complete request head that passed every check of this module."""

    method: str
    url: str
    version: str
    pairs: list[tuple[str, str]]
    #: llhttp saw an upgrade (``Connection: upgrade`` + ``Upgrade``, or CONNECT).
    upgrade: bool
    #: The validated ``Host`` header ("" only for an HTTP/1.0 request without one).
    host: str

    # Written out, not generated: compiled by mypyc, a dataclass's generated __init__
    # stays interpreted (~2-11k instructions a call); this one compiles. Same
    # parameters and defaults as the fields (tests/relay/test_request_head.py checks).
    def __init__(
        self, method: str, url: str, version: str, pairs: list[tuple[str, str]], upgrade: bool,
        host: str,
    ) -> None:
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "pairs", pairs)
        object.__setattr__(self, "upgrade", upgrade)
        object.__setattr__(self, "host", host)


def parse_head(head: bytes, max_headers: int) -> ParsedHead:
    """Parse and check a complete head (request line to the blank line).

    Raises:
        BadRequest: llhttp refused it, or its Host or target is malformed.
        HeaderFieldsTooLarge: more than ``max_headers`` fields.
        VersionNotSupported: not HTTP/1.1 or HTTP/1.0.
    """
    collected = HeadCollector()
    parser = httptools.HttpRequestParser(collected)
    upgrade = False
    try:
        parser.feed_data(head)
    except httptools.HttpParserUpgrade:
        upgrade = True
    except httptools.HttpParserError as exc:
        raise BadRequest(f"malformed request: {exc}") from None
    if len(collected.pairs) > max_headers:
        raise HeaderFieldsTooLarge(f"more than {max_headers} header fields")
    version = parser.get_http_version()
    if version not in _VERSIONS:
        raise VersionNotSupported(f"HTTP/{version} is not supported (use HTTP/1.1)")
    url = collected.url.decode("latin-1")
    host = _single_host(collected.pairs, required=version == "1.1")
    if not url.startswith("/"):
        check_absolute_target(url, host)
    method = parser.get_method().decode("ascii")
    return ParsedHead(method, url, version, collected.pairs, upgrade, host)


def _single_host(pairs: list[tuple[str, str]], *, required: bool) -> str:
    """RFC 9112 §3.2: exactly one valid Host in HTTP/1.1 (at most one in 1.0)."""
    hosts = [value for name, value in pairs if len(name) == 4 and name.lower() == "host"]
    if len(hosts) > 1:
        raise BadRequest("malformed Host header: more than one Host header")
    if not hosts:
        if required:
            raise BadRequest("malformed Host header: HTTP/1.1 requires a Host header")
        return ""
    host_name(hosts[0])
    return hosts[0]


def host_name(host: str) -> str:
    """The lower-cased host name of a ``Host`` value (IPv6 without brackets).

    Raises:
        BadRequest: ``host`` is not ``uri-host [ ":" port ]`` with a port up to 65535.
    """
    name = _host_name(host)
    if name is None:
        shown = host if len(host) <= 64 else host[:64] + "..."
        raise BadRequest(f"malformed Host header: {shown!r}")
    return name


@functools.lru_cache(maxsize=256)
def _host_name(host: str) -> str | None:
    """:func:`host_name`, or None when malformed (cached: senders repeat a few hosts)."""
    host = host.strip(" \t")
    literal = _IP_LITERAL.match(host)
    if literal is not None:
        name, rest = literal.group(1), host[literal.end() :]
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
    else:
        name, colon, port = host.partition(":")
        rest = colon + port
        if not _REG_NAME.fullmatch(name):
            return None
    if rest and not (rest[0] == ":" and _PORT.fullmatch(rest[1:]) and int(rest[1:]) <= 65535):
        return None
    return name.lower()


def check_absolute_target(url: str, host: str) -> None:
    """Refuse an absolute-form target naming another authority than ``Host``.

    Origin-form (``/...``), asterisk-form (``*``) and CONNECT's authority-form pass
    (CONNECT is refused later, with its own reason).
    """
    if url == "*" or "://" not in url:
        return
    try:
        authority = urlsplit(url).netloc
    except ValueError:
        raise BadRequest("malformed request target") from None
    if not host or authority.lower() != host.strip(" \t").lower():
        # The attacker's authority is not echoed: it must never come back in an answer.
        raise BadRequest("the absolute-form target's authority is not the Host header's")


class _NoCallbacks:
    """llhttp checks the syntax; nothing is collected from a partial head."""

    __slots__ = ()


class PartialHead:
    """An incomplete head fed to llhttp as it arrives, to refuse bad input early.

    A head with bare-LF line endings never contains the blank line the front
    waits for; llhttp refuses it at its first line, so the client gets a prompt
    400 instead of a wait for the header timeout.
    """

    __slots__ = ("_parser",)

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(_NoCallbacks())

    def feed(self, data: bytes) -> None:
        """Check the next bytes of the head; raises :class:`BadRequest` on a syntax error."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # the head is complete: the caller parses it whole
        except httptools.HttpParserError as exc:
            raise BadRequest(f"malformed request: {exc}") from None


def refusal(error: RelayError, tracking: str) -> bytes:
    """The whole HTTP/1.1 answer to a request refused before it was understood:
    status, ``Connection: close`` and the JSON error body (PROTOCOL.md §5)."""
    rendered = render_error(error, None, tracking)
    head = (
        f"HTTP/1.1 {rendered.status} {HTTPStatus(rendered.status).phrase}\r\n"
        f"Content-Type: {rendered.content_type}\r\nX-Relay-Tracking-Id: {tracking}\r\n"
        f"Content-Length: {len(rendered.body)}\r\nConnection: close\r\n"
        f"Date: {formatdate(usegmt=True)}\r\n\r\n"
    )
    return head.encode("ascii") + rendered.body
