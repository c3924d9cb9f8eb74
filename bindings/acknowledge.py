"""One-way hosting: acknowledge with ``202 Accepted`` first, run the handler after.

PROTOCOL.md §6: for ``oneway`` and ``event`` entities the sender gets 202 once the
listener "has acknowledged receipt (listener bindings reply 202 before running
the handler)".  :class:`Acknowledging` wraps any handler that way for
NetOnewayRelayBinding and NetEventRelayBinding hosts: it reads the whole body
(the relay caps it at the entity's ``max_message_size``, 64 KiB by default),
answers 202 with an empty body, and runs the real handler in the background
once that 202 was written to the relay (the response's ``after_sent`` hook),
logging what it returns or raises.  A 202 that could not be written starts
nothing: the sender saw no acknowledgement and may send the message again, so
running it anyway could run it twice.  ``aclose()`` waits for those runs.

Which requests are acknowledged is :class:`~bindings.oneway.OnewayRule`'s
decision (every message, by default): ``GET`` and ``HEAD`` are not messages
but metadata fetches (a WSDL or XSD), which the relay routes to one listener
like request/response, so they are answered by the handler directly.

When the wrapped handler reads bodies in a ``prepare`` step (a
:class:`~bindings.wsgi_host.WsgiHandler`: bounded, quota-checked, before a call
slot is taken), :meth:`Acknowledging.prepare` is that step: a body over a limit
gets its 413 or fault instead of a 202.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from bindings.handler import Handler, RelayedRequest, RelayedResponse, iter_bytes, settle
from bindings.oneway import METADATA_METHODS, Delivery, OnewayRule

__all__ = ["METADATA_METHODS", "Acknowledging"]

#: A NetOneway/NetEvent binding: every message but a metadata fetch.
_EVERY_MESSAGE = OnewayRule(every_message=True)

log = logging.getLogger("bindings.oneway")


class Acknowledging:
    """A Handler that answers 202 at once and runs ``handler`` in the background.

    Args:
        handler: the real handler; its response is discarded (errors are logged).
        rule: which requests are one-way messages (the others get the handler's
            answer); every message but ``GET``/``HEAD`` by default.
    """

    def __init__(self, handler: Handler, rule: OnewayRule = _EVERY_MESSAGE) -> None:
        self.handler, self.rule = handler, rule
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"Acknowledging({self.handler!r})"

    async def prepare(self, request: RelayedRequest) -> RelayedRequest | RelayedResponse:
        """The wrapped handler's ``prepare`` (reads and checks the body), if it has one."""
        prepare = getattr(self.handler, "prepare", None)
        if prepare is None:
            return request
        prepared: RelayedRequest | RelayedResponse = await prepare(request)
        return prepared

    async def __call__(self, request: RelayedRequest) -> RelayedResponse:
        if self.rule.delivery(request.method) is Delivery.REPLY:
            return await self.handler(request)
        body = await request.read()
        copy = replace(request, body=iter_bytes(body), _read=body)

        async def start() -> None:
            task = asyncio.get_running_loop().create_task(self._run(copy))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return RelayedResponse(202, "Accepted", after_sent=start)

    async def _run(self, request: RelayedRequest) -> None:
        try:
            response = await self.handler(request)
        except Exception:
            log.exception("one-way handler failed on %s %s", request.method, request.target)
            return
        if response.status >= 400:
            log.warning(
                "one-way handler answered %s %s on %s %s (the sender already has 202)",
                response.status, response.reason, request.method, request.target,
            )
        try:
            aclose = getattr(response.body, "aclose", None)
            if aclose is not None:
                await aclose()
            await settle(response, sent=True)  # its answer went nowhere, but it is complete
        except Exception:
            log.exception("finishing a one-way run failed on %s %s", request.method, request.target)

    @property
    def pending(self) -> int:
        """Background runs not finished yet."""
        return len(self._tasks)

    async def aclose(self, timeout: float = 30.0) -> None:
        """Wait (at most ``timeout`` s) for background runs; cancel the rest."""
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        closer = getattr(self.handler, "aclose", None)
        if closer is not None:
            await closer()
