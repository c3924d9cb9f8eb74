"""The contract between a listener connection and what it hosts.

A listener turns each relayed request into a :class:`RelayedRequest`, awaits a
:class:`Handler` and sends the :class:`RelayedResponse` back through the relay.
Handlers: the WSGI adapter (Spyne or any WSGI app), the forwarder to a local
HTTP service, and the one-way/event wrappers that acknowledge before running.

A response may carry two hooks, and the sender of a response awaits exactly one
of them (:func:`settle`): ``after_sent`` once the response was written to the
relay, ``if_unsent`` when writing it failed or it was dropped.  One-way work
starts in ``after_sent``, so a message whose ``202`` never reached the relay
(and which the sender may retry) never runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from hc.messages import Headers

__all__ = ["Handler", "Hook", "RelayedRequest", "RelayedResponse", "iter_bytes", "settle"]


async def iter_bytes(data: bytes) -> AsyncIterator[bytes]:
    """An async iterator over one bytes object (empty bytes yield nothing)."""
    if data:
        yield data


@dataclass
class RelayedRequest:
    """An HTTP request as the sender made it, credentials already stripped by the relay.

    Attributes:
        method: HTTP method.
        target: path and query the sender used, e.g. ``/payroll?wsdl``.
        headers: request headers (no hop-by-hop headers, ``Via`` added by the relay).
        body: the body, streamed; ``await request.read()`` collects it.
        public_base: the relay's public origin, e.g. ``http://127.0.0.1:9350``;
            WSDL addresses and faults must show this, never the listener's own.
        entity_path: the entity this listener serves, e.g. ``payroll``.
        remote: the sender's address as the relay saw it, if known.
    """

    method: str
    target: str
    headers: Headers
    body: AsyncIterator[bytes]
    public_base: str
    entity_path: str
    remote: tuple[str, int] | None = None
    _read: bytes | None = field(default=None, repr=False)

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), default)

    async def read(self) -> bytes:
        """The whole body (read once; later calls return the same bytes)."""
        if self._read is None:
            self._read = b"".join([chunk async for chunk in self.body])
        return self._read


#: A response hook: awaited once, by whoever sends (or drops) the response.
Hook = Callable[[], Awaitable[None]]


@dataclass
class RelayedResponse:
    """The response a handler produced; ``body`` may stream.

    Attributes:
        after_sent: awaited once the whole response was written to the relay;
            never when writing it failed.
        if_unsent: awaited instead of ``after_sent`` when the response could not
            be written (or was dropped).
    """

    status: int = 200
    reason: str = ""
    headers: Headers = ()
    body: bytes | AsyncIterator[bytes] = b""
    after_sent: Hook | None = field(default=None, repr=False)
    if_unsent: Hook | None = field(default=None, repr=False)


async def settle(response: RelayedResponse, *, sent: bool) -> None:
    """Await the response's ``after_sent`` (``sent``) or ``if_unsent`` hook, if it has one.

    Both hooks are cleared first, so a response is settled at most once.
    """
    hook = response.after_sent if sent else response.if_unsent
    response.after_sent = response.if_unsent = None
    if hook is not None:
        await hook()


Handler = Callable[[RelayedRequest], Awaitable[RelayedResponse]]
