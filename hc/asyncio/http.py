"""The HTTP side of a listener: ``RelayedHttpListenerContext`` and its request and response.

A listener's ``request_handler`` is awaited with one context per relayed
request, as in ``Microsoft.Azure.Relay``::

    async def handle(context: RelayedHttpListenerContext) -> None:
        body = await context.request.read()
        context.response.status_code = 200
        context.response.headers.append(("Content-Type", "text/plain"))
        await context.response.write(b"you sent " + body)
        await context.response.close()

The response is sent when it is closed (the listener closes it after the handler
if the handler did not): inline on the control channel when its body is at most
64 KiB, else on the request's rendezvous socket, the body streamed in pieces as
it is written (PROTOCOL.md §3).  A large request body streams too:
``async for chunk in context.request.stream()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from hc.handshake import Headers
from hc.messages import RequestCommand, ResponseCommand

__all__ = [
    "INLINE_LIMIT",
    "RelayedHttpListenerContext",
    "RelayedHttpListenerRequest",
    "RelayedHttpListenerResponse",
    "ResponseWriter",
]

#: PROTOCOL.md §3: response bodies up to 64 KiB may travel inline on the control channel.
INLINE_LIMIT = 64 * 1024


class ResponseWriter(Protocol):
    """Where a response goes (the listener gives one per request)."""

    async def send(self, command: ResponseCommand, body: bytes, wait: bool = True) -> None:
        """The whole response at once; ``wait=False``: an inline one may return once it is
        handed to the transport, without waiting for its buffer (a rendezvous one waits
        anyway)."""

    async def begin(self, command: ResponseCommand) -> None:
        """A response whose body follows in pieces (``command.body`` is true)."""

    async def chunk(self, data: bytes, end: bool) -> None:
        """The next piece of the body; ``end`` on the last (then the response is delivered)."""

    def abort(self) -> None:
        """Drop a response whose body cannot be finished (the sender sees it break off)."""


class _Whole:
    """An inline body as one piece, or none when it is empty (an iterator class: mypyc
    compiles no async generators)."""

    def __init__(self, body: bytes | None) -> None:
        self._body = body

    def __aiter__(self) -> _Whole:
        return self

    async def __anext__(self) -> bytes:
        body, self._body = self._body, None
        if not body:
            raise StopAsyncIteration
        return body


@dataclass
class RelayedHttpListenerRequest:
    """The sender's request as the relay passed it on.

    Attributes:
        method: the HTTP method.
        url: the public URL the sender called (``http://relay/entity/path?query``).
        target: its path and query, as the sender wrote them.
        headers: the request headers (the relay strips credentials and hop-by-hop ones).
        remote_endpoint: the sender's (address, port) as the relay saw it, if known.
        tracking_id: the relay's id of this request.
        has_entity_body: whether a body comes (it may still be empty).
    """

    method: str
    url: str
    target: str
    headers: Headers
    remote_endpoint: tuple[str, int] | None
    tracking_id: str
    has_entity_body: bool = False
    _chunks: AsyncIterator[bytes] | None = field(default=None, repr=False)
    _body: bytes | None = field(default=None, repr=False)  # a body that came whole

    @classmethod
    def from_command(
        cls, command: RequestCommand, base: str, body: bytes | AsyncIterator[bytes] | None = None
    ) -> RelayedHttpListenerRequest:
        """The request of ``command``, its body whole (inline) or in pieces (rendezvous)."""
        target = command.request_target or "/"
        whole, chunks = (body, None) if isinstance(body, bytes) else (None, body)
        return cls(
            command.method or "GET", base + target, target, command.request_headers,
            command.remote_endpoint, command.id, bool(command.body), chunks, whole,
        )

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), default)

    def stream(self) -> AsyncIterator[bytes]:
        """The body in pieces as they arrive (read it once).

        Raises (while iterating):
            BodyBrokenError: the relay closed the socket before the body's end.
        """
        if self._chunks is None:
            self._chunks = _Whole(self._body)
            self._body = None
        return self._chunks

    async def read(self) -> bytes:
        """The whole body (held in memory: prefer :meth:`stream` for large ones).

        Raises:
            BodyBrokenError: the relay closed the socket before the body's end.
        """
        if self._chunks is None:
            body, self._body = self._body or b"", b""
            return body
        return b"".join([chunk async for chunk in self._chunks])


class RelayedHttpListenerResponse:
    """The answer: set ``status_code``, ``status_description`` and ``headers``, write, close.

    The first 64 KiB of the body are held; past them the status and headers are
    sent and the body streams (later changes to them have no effect).

    Args:
        request_id: the request's tracking id.
        writer: where the response goes (given by the listener).
    """

    def __init__(self, request_id: str, writer: ResponseWriter) -> None:
        self.status_code = 200
        self.status_description = ""
        self.headers: list[tuple[str, str]] = []
        self._request_id, self._writer = request_id, writer
        self._body = bytearray()
        self._streaming = False
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def started(self) -> bool:
        """Whether the status and headers were sent (the body streams)."""
        return self._streaming

    def reset(self, status_code: int, status_description: str,
              headers: list[tuple[str, str]], body: bytes = b"") -> None:
        """Replace everything set or written so far (an error answer instead).

        Raises:
            RuntimeError: the response was closed or has started.
        """
        if self._closed or self._streaming:
            raise RuntimeError("the response was sent already")
        self.status_code, self.status_description = status_code, status_description
        self.headers[:] = headers
        self._body[:] = body

    def _command(self, has_body: bool) -> ResponseCommand:
        return ResponseCommand(
            self._request_id, self.status_code, self.status_description, tuple(self.headers),
            has_body,
        )

    async def write(self, data: bytes) -> None:
        """Add ``data`` to the body (sent in pieces once past 64 KiB).

        Raises:
            RuntimeError: the response was closed already.
            ConnectionError: the rendezvous socket closed while the body streamed.
        """
        if self._closed:
            raise RuntimeError("the response is closed")
        if self._streaming:
            if data:
                await self._writer.chunk(bytes(data), False)
            return
        self._body += data
        if len(self._body) > INLINE_LIMIT:
            self._streaming = True
            await self._writer.begin(self._command(True))
            held = bytes(self._body)
            self._body.clear()
            await self._writer.chunk(held, False)

    def abort(self) -> None:
        """Give up on a response whose body streams already: its socket is dropped, so the
        sender sees the response break off rather than end early (a 500 is too late)."""
        self._closed = True
        self._writer.abort()

    async def close(self, *, wait: bool = True) -> None:
        """Send the response, or the end of its body (once; later calls do nothing).

        Returns once the response is written to the relay's connection (by rendezvous:
        once the relay took it).  ``wait=False`` returns as soon as a response that goes
        inline on the control channel is handed to its transport, unless the transport's
        buffer is over its high-water mark (what the listener does when a handler returns
        without closing: nothing is left to do after the write).

        Raises:
            ConnectionError: it did not reach the relay (the control channel or the
                rendezvous socket closed first).
        """
        if self._closed:
            return
        self._closed = True
        if self._streaming:
            await self._writer.chunk(b"", True)
            return
        body = bytes(self._body)
        self._body.clear()
        await self._writer.send(self._command(bool(body)), body, wait)


@dataclass
class RelayedHttpListenerContext:
    """One relayed request and its response."""

    request: RelayedHttpListenerRequest
    response: RelayedHttpListenerResponse
