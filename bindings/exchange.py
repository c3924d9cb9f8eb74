"""One relayed HTTP exchange, the listener's side (PROTOCOL.md §3).

The listener hands each ``request`` command here.  Two shapes arrive:

* **inline**: the full request JSON on the control channel, its body (if
  ``"body": true``) as the next binary message there;
* **address-only** (no ``method``): the listener opens the request's rendezvous
  ``address``; the relay sends the full request JSON and the body (one binary
  message, possibly many frames) there, and the response goes back on it.

The response travels on the control channel when its body is known and at most
64 KiB ("JSON + one binary message", adjacent: see :class:`ControlChannel`);
otherwise on the rendezvous socket, the body streamed as one binary message of
several frames (PROTOCOL.md: "a streamed body is one message of several frames
ending with an empty final frame" -- websockets' ``send(async_iterable)``).

Once the response is written (inline: queued on the control channel; by
rendezvous: written, and the socket closed by the relay with 1000) its ``after_sent`` hook is
awaited; if writing fails or is cancelled, its ``if_unsent`` hook instead
(:func:`bindings.handler.settle`).  One-way work starts in ``after_sent``.

Call slots (``binding.max_concurrent_calls``, the listener's ``limiter``) are
taken only once the body is there: a handler with a ``prepare(request)``
coroutine (:class:`~bindings.wsgi_host.WsgiHandler`) reads and checks the body
in it, outside the slot (:func:`call_in_slot`), so senders that trickle their
bodies cannot hold every slot.  A rendezvous body that breaks off (the relay
closed the socket: the sender went away or was too slow) ends the call with one
INFO line, no response and no traceback (:class:`BodyBroken`).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from bindings.address import RelayAddress
from bindings.handler import Handler, RelayedRequest, RelayedResponse, iter_bytes, settle
from hc.exceptions import MalformedMessage
from hc.headers import FRAMING_HEADERS
from hc.messages import RequestCommand, ResponseCommand, parse_relay_command

__all__ = [
    "INLINE_LIMIT",
    "BodyBroken",
    "ControlChannel",
    "OpenSocket",
    "Prepare",
    "RelayClientConnection",
    "call_handler",
    "call_in_slot",
    "relayed_request",
    "send_response",
    "serve_rendezvous",
]

log = logging.getLogger("bindings.listener")

#: PROTOCOL.md §3: bodies up to 64 KiB travel inline on the control channel.
INLINE_LIMIT = 64 * 1024
#: Largest frame of a streamed body.
FRAME_SIZE = 64 * 1024
#: Seconds spent dropping the rest of a body that was answered before its end.
DISCARD_TIMEOUT = 30.0

#: Opens a rendezvous WebSocket (no token: the one-time id is the credential).
OpenSocket = Callable[[str], AbstractAsyncContextManager[ClientConnection]]
#: A handler's ``prepare``: reads the body before a slot is taken; a response ends the call.
Prepare = Callable[[RelayedRequest], Awaitable[RelayedRequest | RelayedResponse]]


class BodyBroken(ConnectionError):
    """The request body broke off: the relay closed the rendezvous before its end."""


class RelayClientConnection(ClientConnection):
    """websockets' client connection, writing everything queued in one write.

    :class:`ControlChannel` queues a ``response`` command and its body together,
    so they leave in one syscall (one TCP segment) instead of one per frame.
    """

    def send_data(self) -> None:
        data = self.protocol.data_to_send()
        end = data.index(b"") if b"" in data else len(data)  # b"": half-close after this
        if end:
            self.transport.write(b"".join(data[:end]))
        if end < len(data):
            if self.transport.can_write_eof():
                with contextlib.suppress(OSError, RuntimeError):  # uvloop: RuntimeError
                    self.transport.write_eof()
            else:
                self.transport.close()


class ControlChannel:
    """The sending half of the control channel.

    PROTOCOL.md §3: after ``"body": true`` "the next binary message is the
    response body", so a ``response`` JSON and its body are queued in one step,
    with no await between them: no other command can slip between them, and on
    a :class:`RelayClientConnection` both leave in one write.
    """

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @property
    def is_open(self) -> bool:
        return self.ws.state is State.OPEN

    async def send(self, text: str, body: bytes | None = None) -> None:
        """Send a command and, if given, its body as the very next message."""
        async with self.ws.send_context():
            self.ws.protocol.send_text(text.encode())
            if body is not None:
                self.ws.protocol.send_binary(body)


def relayed_request(
    command: RequestCommand, body: AsyncIterator[bytes], address: RelayAddress
) -> RelayedRequest:
    """The handler's view of a full ``request`` command."""
    return RelayedRequest(
        method=command.method or "GET",
        target=command.request_target or "/",
        headers=command.request_headers,
        body=body,
        public_base=address.http_base,
        entity_path=address.entity_path,
        remote=command.remote_endpoint,
    )


async def call_handler(handler: Handler, request: RelayedRequest) -> RelayedResponse:
    """Await ``handler``; an exception becomes a plain 500 (logged, never sent).

    Raises:
        BodyBroken: the body broke off while the handler read it (nobody to answer).
    """
    try:
        return await handler(request)
    except BodyBroken:
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
        BodyBroken: the body broke off before its end.
    """
    if prepare is not None:
        prepared = await call_handler(prepare, request)  # type: ignore[arg-type]
        if isinstance(prepared, RelayedResponse):
            return prepared
        request = prepared
    async with limiter:
        return await call_handler(handler, request)


def _response_command(request_id: str, response: RelayedResponse, has_body: bool) -> ResponseCommand:
    try:
        reason = response.reason or http.HTTPStatus(response.status).phrase
    except ValueError:
        reason = ""
    headers = tuple((k, v) for k, v in response.headers if k.lower() not in FRAMING_HEADERS)
    return ResponseCommand(request_id, response.status, reason, headers, has_body)


async def _prefetch(
    body: bytes | AsyncIterator[bytes], limit: int
) -> tuple[bytes, AsyncIterator[bytes] | None]:
    """Read up to ``limit`` + 1 bytes; the rest iterator is None when the body ended."""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body), None
    head = bytearray()
    async for chunk in body:
        head += chunk
        if len(head) > limit:
            return bytes(head), body
    return bytes(head), None


async def _frames(head: bytes, rest: AsyncIterator[bytes] | None) -> AsyncIterator[bytes]:
    """``head`` then ``rest``, as non-empty frames of at most FRAME_SIZE bytes."""
    for start in range(0, len(head), FRAME_SIZE):
        yield head[start : start + FRAME_SIZE]
    if rest is not None:
        async for chunk in rest:
            for start in range(0, len(chunk), FRAME_SIZE):
                yield bytes(chunk[start : start + FRAME_SIZE])


async def _write(
    ws: ClientConnection, command: ResponseCommand, head: bytes, rest: AsyncIterator[bytes] | None
) -> None:
    await ws.send(command.serialize())
    if command.body:
        await ws.send(_frames(head, rest))


async def _close_body(body: object) -> None:
    aclose: Any = getattr(body, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            log.debug("closing a response body failed", exc_info=True)


async def send_response(
    request_id: str,
    response: RelayedResponse,
    *,
    control: ControlChannel | None,
    rendezvous: str,
    open_socket: OpenSocket,
) -> None:
    """Send ``response`` inline when small and the channel is open, else by rendezvous.

    Then await its ``after_sent`` hook, or ``if_unsent`` when sending failed.
    """
    try:
        head, rest = await _prefetch(response.body, INLINE_LIMIT)
        has_body = bool(head) or rest is not None
        command = _response_command(request_id, response, has_body)
        if rest is None and len(head) <= INLINE_LIMIT and control is not None and control.is_open:
            await control.send(command.serialize(), head if has_body else None)
        else:
            async with open_socket(rendezvous) as ws:
                await _write(ws, command, head, rest)
            _check_taken(ws)
    except BaseException:
        await _close_body(response.body)
        await settle(response, sent=False)
        raise
    await _close_body(response.body)
    await settle(response, sent=True)


async def serve_rendezvous(
    command: RequestCommand,
    *,
    handler: Handler,
    address: RelayAddress,
    open_socket: OpenSocket,
    limiter: asyncio.Semaphore,
    prepare: Prepare | None = None,
) -> None:
    """Serve an address-only request on its rendezvous socket, then close it.

    The body is read by ``prepare`` (when given) before a slot of ``limiter`` is
    taken.  The response is settled as sent once the socket closed cleanly after it.
    """
    response: RelayedResponse | None = None
    try:
        async with open_socket(command.address) as ws:
            full = await _full_request(ws, command)
            if full is None:
                return
            # The handler bounds the body itself (prepare: max_received_message_size), and
            # an answered body's rest is discarded: no 1009 from websockets' own cap.
            ws.protocol.max_message_size = None
            body = _binary(ws.recv_streaming()) if full.body else iter_bytes(b"")
            request = relayed_request(full, body, address)
            try:
                response = await call_in_slot(handler, request, limiter, prepare)
            except BodyBroken as exc:
                log.info("rendezvous %s: %s; the call is dropped", full.id, exc)
                return
            try:
                head, rest = await _prefetch(response.body, 0)
                has_body = bool(head) or rest is not None
                await _write(ws, _response_command(full.id, response, has_body), head, rest)
            finally:
                await _close_body(response.body)
            await _discard_rest(ws, body, full.id)
        if response is not None:
            _check_taken(ws)
    except BaseException:
        if response is not None:
            await settle(response, sent=False)
        raise
    if response is not None:
        await settle(response, sent=True)


async def _discard_rest(ws: ClientConnection, body: AsyncIterator[bytes], request_id: str) -> None:
    """Read and drop what is left of a body the handler answered early (413, a quota fault).

    Our relay stops sending the body once it has the answer and closes the socket
    when the sender is served, so this ends promptly; a relay that reads answers
    only after the whole body (as ours did) gets it read here.  Nothing is kept
    (no memory, no slot), for at most DISCARD_TIMEOUT seconds.
    """
    dropped = 0
    try:
        async with asyncio.timeout(DISCARD_TIMEOUT):
            async for chunk in body:
                dropped += len(chunk)
    except (BodyBroken, TimeoutError):
        pass
    if dropped:
        log.info("rendezvous %s: dropped %d bytes of a body answered early", request_id, dropped)


def _check_taken(ws: ClientConnection) -> None:
    """Raise unless the relay closed the rendezvous with 1000, as it does once it took the response.

    Raises:
        ConnectionClosed: the relay closed it otherwise (1008: an unknown id, 1009:
            too big), so the response did not reach the sender.
    """
    if ws.close_code != 1000:
        raise ws.close_exc


async def _full_request(ws: ClientConnection, command: RequestCommand) -> RequestCommand | None:
    """The full request command the relay sends first on a rendezvous socket."""
    first = await ws.recv()
    try:
        full = parse_relay_command(first)
    except MalformedMessage as exc:
        log.warning("rendezvous %s: relay sent a malformed request: %s", command.id, exc)
        return None
    if not isinstance(full, RequestCommand) or full.is_address_only:
        log.warning("rendezvous %s: expected a full request command", command.id)
        return None
    return full


async def _binary(chunks: AsyncIterator[str | bytes]) -> AsyncIterator[bytes]:
    """The body's frames as bytes; :class:`BodyBroken` when the socket closes before its end."""
    size = 0
    try:
        async for chunk in chunks:
            data = chunk.encode() if isinstance(chunk, str) else chunk
            size += len(data)
            yield data
    except ConnectionClosed as exc:
        raise BodyBroken(
            f"the request body broke off after {size} bytes (relay closed the rendezvous:"
            f" {exc.rcvd.code if exc.rcvd else 1006})"
        ) from exc
