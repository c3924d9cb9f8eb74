"""One relayed HTTP exchange, the bindings' side: a Handler call on the SDK's context.

The SDK (:mod:`hc.asyncio`) reads the request (inline or by rendezvous) and
sends the response (inline up to 64 KiB, else by rendezvous); this module turns
its :class:`~hc.asyncio.RelayedHttpListenerContext` into the bindings'
:class:`~bindings.handler.RelayedRequest`, awaits the
:class:`~bindings.handler.Handler` in a call slot, and writes the
:class:`~bindings.handler.RelayedResponse` back.

Once the response is written (inline: written to the control channel's
transport; by rendezvous: written, and the socket closed by the relay with
1000) its ``after_sent`` hook is awaited; if writing fails or is cancelled, its
``if_unsent`` hook instead (:func:`bindings.handler.settle`).  One-way work
starts in ``after_sent``.

Call slots (``binding.max_concurrent_calls``, the listener's ``limiter``) are
taken only once the body is there: a handler with a ``prepare(request)``
coroutine (:class:`~bindings.wsgi_host.WsgiHandler`) reads and checks the body
in it, outside the slot (:func:`call_in_slot`).
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bindings.address import RelayAddress
from bindings.handler import Handler, RelayedRequest, RelayedResponse, settle
from hc.asyncio import BodyBrokenError, RelayedHttpListenerRequest, RelayedHttpListenerResponse
from hc.asyncio.http import INLINE_LIMIT
from hc.headers import FRAMING_HEADERS

__all__ = [
    "INLINE_LIMIT",
    "Prepare",
    "call_handler",
    "call_in_slot",
    "relayed_request",
    "respond",
]

log = logging.getLogger("bindings.listener")

#: A handler's ``prepare``: reads the body before a slot is taken; a response ends the call.
Prepare = Callable[[RelayedRequest], Awaitable[RelayedRequest | RelayedResponse]]


def relayed_request(request: RelayedHttpListenerRequest, address: RelayAddress) -> RelayedRequest:
    """The handler's view of the SDK's request."""
    return RelayedRequest(
        method=request.method,
        target=request.target,
        headers=request.headers,
        body=request.stream(),
        public_base=address.http_base,
        entity_path=address.entity_path,
        remote=request.remote_endpoint,
    )


async def call_handler(handler: Handler, request: RelayedRequest) -> RelayedResponse:
    """Await ``handler``; an exception becomes a plain 500 (logged, never sent).

    Raises:
        BodyBrokenError: the body broke off while the handler read it (nobody to answer).
    """
    try:
        return await handler(request)
    except BodyBrokenError:
        raise
    except Exception:
        log.exception("handler failed on %s %s", request.method, request.target)
        return RelayedResponse(
            500,
            "Internal Server Error",
            (("Content-Type", "text/plain; charset=utf-8"),),
            b"The service failed to process the request.",
        )


async def call_in_slot(
    handler: Handler,
    request: RelayedRequest,
    limiter: asyncio.Semaphore,
    prepare: Prepare | None = None,
) -> RelayedResponse:
    """``prepare`` the request outside a call slot, then call ``handler`` in one.

    A response from ``prepare`` (413, a quota fault) is the answer: no slot is taken.

    Raises:
        BodyBrokenError: the body broke off before its end.
    """
    if prepare is not None:
        prepared = await call_handler(prepare, request)  # type: ignore[arg-type]
        if isinstance(prepared, RelayedResponse):
            return prepared
        request = prepared
    async with limiter:
        return await call_handler(handler, request)


async def respond(target: RelayedHttpListenerResponse, response: RelayedResponse) -> None:
    """Write ``response`` through the SDK, then settle it (sent, or not when writing failed)."""
    try:
        target.status_code = response.status
        target.status_description = _reason(response)
        target.headers[:] = [(k, v) for k, v in response.headers if k.lower() not in FRAMING_HEADERS]
        body = response.body
        if isinstance(body, bytes | bytearray | memoryview):
            await target.write(bytes(body))
        else:
            async for chunk in body:
                await target.write(chunk)
        await target.close()
    except BaseException:
        await _close_body(response.body)
        await settle(response, sent=False)
        raise
    await _close_body(response.body)
    await settle(response, sent=True)


def _reason(response: RelayedResponse) -> str:
    try:
        return response.reason or http.HTTPStatus(response.status).phrase
    except ValueError:
        return ""


async def _close_body(body: object) -> None:
    aclose: Any = getattr(body, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            log.debug("closing a response body failed", exc_info=True)
