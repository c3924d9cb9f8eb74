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
64 KiB, else on the request's rendezvous socket (PROTOCOL.md §3).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from hc.handshake import Headers
from hc.messages import RequestCommand, ResponseCommand

__all__ = [
    "RelayedHttpListenerContext",
    "RelayedHttpListenerRequest",
    "RelayedHttpListenerResponse",
    "ResponseSender",
]

#: ``sender(command, body)``: writes the response; raises when it did not reach the relay.
ResponseSender = Callable[[ResponseCommand, bytes], Awaitable[None]]


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
    """

    method: str
    url: str
    target: str
    headers: Headers
    remote_endpoint: tuple[str, int] | None
    tracking_id: str
    _body: bytes = field(default=b"", repr=False)

    @classmethod
    def from_command(cls, command: RequestCommand, body: bytes | None, base: str) -> RelayedHttpListenerRequest:
        target = command.request_target or "/"
        return cls(
            command.method or "GET", base + target, target, command.request_headers,
            command.remote_endpoint, command.id, body or b"",
        )

    @property
    def has_entity_body(self) -> bool:
        return bool(self._body)

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), default)

    async def read(self) -> bytes:
        """The whole body."""
        return self._body

    async def stream(self) -> AsyncIterator[bytes]:
        """The body in chunks (nothing for an empty body)."""
        if self._body:
            yield self._body


class RelayedHttpListenerResponse:
    """The answer: set ``status_code``, ``status_description`` and ``headers``, write, close.

    Args:
        request_id: the request's tracking id.
        sender: writes the finished response (given by the listener).
    """

    def __init__(self, request_id: str, sender: ResponseSender) -> None:
        self.status_code = 200
        self.status_description = ""
        self.headers: list[tuple[str, str]] = []
        self._request_id, self._sender = request_id, sender
        self._body = bytearray()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def reset(self, status_code: int, status_description: str,
              headers: list[tuple[str, str]], body: bytes = b"") -> None:
        """Replace everything set or written so far (an error answer instead)."""
        if self._closed:
            raise RuntimeError("the response is closed")
        self.status_code, self.status_description = status_code, status_description
        self.headers[:] = headers
        self._body[:] = body

    async def write(self, data: bytes) -> None:
        """Add ``data`` to the body.

        Raises:
            RuntimeError: the response was closed already.
        """
        if self._closed:
            raise RuntimeError("the response is closed")
        self._body += data

    async def close(self) -> None:
        """Send the response (once; later calls do nothing).

        Raises:
            ConnectionError: it did not reach the relay (the control channel or the
                rendezvous socket closed first).
        """
        if self._closed:
            return
        self._closed = True
        body = bytes(self._body)
        self._body.clear()
        command = ResponseCommand(
            self._request_id, self.status_code, self.status_description,
            tuple(self.headers), bool(body),
        )
        await self._sender(command, body)


@dataclass
class RelayedHttpListenerContext:
    """One relayed request and its response."""

    request: RelayedHttpListenerRequest
    response: RelayedHttpListenerResponse
