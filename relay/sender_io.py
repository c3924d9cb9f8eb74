"""What ``relay.http_senders`` needs from an HTTP sender's connection, whoever serves it.

Two I/O shells serve HTTP senders on the relay's one port: ``relay.front`` (a
lean HTTP/1.1 protocol for the common case: a request with a ``Content-Length``
body of at most 64 KiB) and aiohttp (everything else: chunked and large
bodies, HTTP/1.0, ``Expect``, WebSocket upgrades).  Both hand
``relay_http`` a :class:`SenderRequest` and a :class:`SenderReply`, so the
relaying logic is written once.  This module also holds the aiohttp side of
that pair.

A body the relay reads must keep up a minimum rate (nginx's
``client_body_timeout``, Apache mod_reqtimeout's ``body=10,MinRate=1000``): the
front enforces it while it buffers a small body, :class:`AiohttpSender` while
the relay reads or streams one; too slow raises ``RequestTimeout`` (408).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from hc.messages import Headers
from relay.error_body import new_tracking_id
from relay.exceptions import RequestTimeout
from relay.request_head import refusal

if TYPE_CHECKING:
    from relay.front_wire import FrontLimits

__all__ = ["AiohttpReply", "AiohttpSender", "SenderReply", "SenderRequest"]


class SenderRequest(Protocol):
    """One HTTP request from a sender, head parsed, body readable."""

    method: str
    #: The percent-decoded path, as routing sees it.
    path: str
    raw_path: str
    raw_query: str
    content_length: int | None
    #: True when the request has a body (a positive length, or chunked).
    body_exists: bool
    secure: bool
    #: The ``Host`` the sender used (the relay's public name for this request).
    host: str
    remote: tuple[str, int] | None

    @property
    def headers(self) -> CIMultiDictProxy[str] | CIMultiDict[str]:
        """The sender's headers, case-insensitive, repeats kept."""

    async def read(self) -> bytes:
        """The whole body (only called for bodies the caller bounded)."""

    def iter_body(self) -> AsyncIterator[bytes]:
        """The body in chunks as they arrive."""


class SenderReply(Protocol):
    """Where the answer to a :class:`SenderRequest` goes."""

    def whole(self, status: int, reason: str | None, headers: Headers, body: bytes) -> None:
        """Answer with a complete response: head and body leave in one write."""

    async def stream(
        self, status: int, reason: str | None, headers: Headers, chunks: AsyncIterator[bytes]
    ) -> None:
        """Answer with a streamed (chunked) body; raises what ``chunks`` raises."""

    def abort(self) -> None:
        """Drop the connection: a streamed answer broke off and must not look complete."""


class AiohttpSender:
    """A :class:`SenderRequest` over an aiohttp ``web.Request``.

    Args:
        request: the request, its head parsed and checked (``relay.request_head``).
        host: its validated ``Host`` header.
        limits: the body timeout and minimum rate, counted from now (the head's end).
    """

    def __init__(self, request: web.Request, host: str, limits: FrontLimits) -> None:
        self._request = request
        self._limits = limits
        self._loop = asyncio.get_running_loop()
        self._start = self._loop.time()
        self.method = request.method
        self.path = request.path
        self.raw_path = request.rel_url.raw_path
        self.raw_query = request.rel_url.raw_query_string
        self.headers = request.headers
        self.content_length = request.content_length
        self.body_exists = request.body_exists
        self.secure = request.secure
        self.host = host
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.remote = (str(peer[0]), int(peer[1])) if peer else None

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_body()])

    async def iter_body(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises ``RequestTimeout`` when it falls behind."""
        content, limits, received = self._request.content, self._limits, 0
        while True:
            deadline = limits.body_deadline(self._start, received)
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await content.readany()
            except TimeoutError:
                error = RequestTimeout(
                    f"the request body arrived slower than {limits.min_body_rate} bytes/s"
                    f" ({received} bytes in {self._loop.time() - self._start:.0f} s)"
                )
                self._cut(error)
                raise error from None
            if not chunk:
                return
            received += len(chunk)
            yield chunk


    def _cut(self, error: RequestTimeout) -> None:
        """End the sender's connection now, with a 408 if nothing was answered yet.

        Whoever reads the body (the relay itself, or a listener's rendezvous) gets
        the error raised; the sender must not wait for that reader to pass it on.
        """
        transport = self._request.transport
        if transport is None or transport.is_closing():
            return
        if self._request.writer.output_size == 0:
            transport.write(refusal(error, new_tracking_id()))
        transport.close()


class AiohttpReply:
    """A :class:`SenderReply` that leaves the aiohttp response in ``response``."""

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.response: web.StreamResponse | None = None

    def whole(self, status: int, reason: str | None, headers: Headers, body: bytes) -> None:
        self.response = web.Response(
            status=status, reason=reason, body=body, headers=CIMultiDict(headers)
        )

    async def stream(
        self, status: int, reason: str | None, headers: Headers, chunks: AsyncIterator[bytes]
    ) -> None:
        self.response = response = web.StreamResponse(
            status=status, reason=reason, headers=CIMultiDict(headers)
        )
        await response.prepare(self._request)
        async for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()

    def abort(self) -> None:
        transport = self._request.transport
        if transport is not None and not transport.is_closing():  # (once: see FrontProtocol.close)
            transport.close()
