"""What the lean HTTP/1.1 front (``relay.front``) reads and writes, without its I/O.

:class:`FrontLimits` (what a client may send, and how slowly), :class:`FastRequest`
(a small request the front serves itself, body in memory), and the bytes of a
response head.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import unquote

from multidict import CIMultiDict

from hc.messages import Headers
from relay.chunks import one_chunk
from relay.listeners import INLINE_LIMIT
from relay.request_head import ParsedHead

if TYPE_CHECKING:
    from relay.namespace import NamespaceConfig

__all__ = ["FastRequest", "FrontLimits", "fast_request", "head_bytes"]

_REASONS = {s.value: s.phrase for s in HTTPStatus}


@dataclass(frozen=True, slots=True)
class FrontLimits:
    """What a client may send, and how slowly (the ``[namespace]`` keys of the same names)."""

    max_head: int = 16 * 1024
    max_headers: int = 100
    header_timeout: float = 10.0
    idle_timeout: float = 15.0
    body_timeout: float = 10.0
    min_body_rate: int = 1000
    max_connections: int = 20_000

    @classmethod
    def of(cls, config: NamespaceConfig) -> FrontLimits:
        return cls(
            max_head=config.max_header_size,
            max_headers=config.max_headers,
            header_timeout=config.header_timeout,
            idle_timeout=config.idle_timeout,
            body_timeout=config.body_timeout,
            min_body_rate=config.min_body_rate,
            max_connections=config.max_connections,
        )

    def body_deadline(self, start: float, received: int) -> float:
        """When a body begun at ``start`` with ``received`` bytes in must have more.

        ``body_timeout`` seconds, plus one second per ``min_body_rate`` bytes received
        (Apache mod_reqtimeout's ``body=10,MinRate=1000``).
        """
        return start + self.body_timeout + received / self.min_body_rate


class FastRequest:
    """A :class:`relay.sender_io.SenderRequest` whose body is already in memory."""

    __slots__ = (
        "body",
        "body_exists",
        "content_length",
        "headers",
        "host",
        "keep_alive",
        "method",
        "path",
        "raw_path",
        "raw_query",
        "remote",
        "secure",
    )

    def __init__(
        self, head: ParsedHead, headers: CIMultiDict[str], length: int,
        secure: bool, remote: tuple[str, int] | None,
    ) -> None:
        raw_path, _, raw_query = head.url.partition("?")
        self.method = head.method
        self.raw_path, self.raw_query = raw_path, raw_query
        self.path = unquote(raw_path) if "%" in raw_path else raw_path
        self.headers = headers
        self.content_length = length if "Content-Length" in headers else None
        self.body_exists = length > 0
        self.secure = secure
        self.host = head.host
        self.remote = remote
        self.body = b""
        self.keep_alive = "close" not in headers.get("Connection", "").lower()

    async def read(self) -> bytes:
        return self.body

    def iter_body(self) -> AsyncIterator[bytes]:
        return one_chunk(self.body)


def fast_request(
    head: ParsedHead, secure: bool, remote: tuple[str, int] | None
) -> FastRequest | None:
    """The request the front serves itself, or None (aiohttp will)."""
    url = head.url
    if head.upgrade or head.version != "1.1" or not url.startswith("/"):
        return None
    if url.startswith(("/$", "/?")) or url == "/":  # /$hc/, and the relay's own /$ pages
        return None
    headers = CIMultiDict(head.pairs)
    if "Transfer-Encoding" in headers or "Upgrade" in headers or "Expect" in headers:
        return None
    length = int(headers.get("Content-Length", "0"))  # llhttp checked it: one number
    if length > INLINE_LIMIT or head.method == "CONNECT":
        return None
    return FastRequest(head, headers, length, secure, remote)


_date_cache: tuple[int, bytes] = (0, b"")


def _date_header() -> bytes:
    """``Date: ...`` for this second, formatted once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, f"Date: {formatdate(now, usegmt=True)}\r\n".encode())
    return _date_cache[1]


def head_bytes(status: int, reason: str | None, headers: Headers, framing: str) -> bytes:
    """The status line and headers (already valid: see ``forwarded_response_headers``)."""
    lines = [f"HTTP/1.1 {status} {reason or _REASONS.get(status, 'Unknown')}\r\n"]
    for name, value in headers:
        lines.append(f"{name}: {value}\r\n")
    lines.append(framing)
    return "".join(lines).encode("latin-1", "replace") + _date_header() + b"\r\n"
