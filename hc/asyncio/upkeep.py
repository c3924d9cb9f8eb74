"""What keeps a listener's control channel alive: keep-alive pings and token renewal.

:class:`KeepAlive` pings every ``interval`` seconds with a numbered payload and
drops the channel when the matching pong does not come within ``timeout``
(a cut link never delivers a close frame); :func:`renew_tokens` sends
``renewToken`` when RENEW_AT of the token's remaining life has passed (PROTOCOL.md §3).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

from hc.asyncio.connection import WebSocketProtocol
from hc.asyncio.tokens import SecurityToken
from hc.protocol import ControlChannel

__all__ = ["MIN_RENEW_WAIT", "RENEW_AT", "KeepAlive", "renew_tokens"]

log = logging.getLogger("hc.asyncio.listener")

#: Renew the token when this fraction of its remaining life has passed.
RENEW_AT = 0.8
#: Wait before asking the provider again when it handed back the same token.
MIN_RENEW_WAIT = 1.0


class KeepAlive:
    """Pings one control channel; ``unresponsive`` once a pong failed to come.

    Args:
        control: the channel.
        interval: seconds between pings.
        timeout: seconds a ping may wait for its pong.
    """

    def __init__(self, control: WebSocketProtocol, interval: float, timeout: float) -> None:
        self.control, self.interval, self.timeout = control, interval, timeout
        self.unresponsive = False
        self._pong: asyncio.Future[None] | None = None
        self._payload = b""

    def pong(self, data: bytes) -> None:
        """A pong arrived: it answers the ping in flight when it carries its payload."""
        if data == self._payload and self._pong is not None and not self._pong.done():
            self._pong.set_result(None)

    async def run(self) -> None:
        """Ping until the channel closes; abort it when a pong does not come in time."""
        channel = self.control.machine
        assert isinstance(channel, ControlChannel)
        loop = asyncio.get_running_loop()
        count = 0
        while not self.control.closed.done():
            await asyncio.sleep(self.interval)
            count += 1
            self._pong, self._payload = loop.create_future(), count.to_bytes(8, "big")
            self.control.send(functools.partial(channel.send_ping, self._payload))
            try:
                await asyncio.wait_for(self._pong, self.timeout)
            except TimeoutError:
                self.unresponsive = True
                self.control.abort()
                return


async def renew_tokens(
    control: WebSocketProtocol,
    current: SecurityToken | None,
    get_token: Callable[[], Awaitable[SecurityToken | None]],
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    name: str,
) -> None:
    """Send ``renewToken`` when RENEW_AT of the current token's remaining life has passed."""
    channel = control.machine
    assert isinstance(channel, ControlChannel)
    while current is not None:
        await sleep(max(0.0, (current.expires_at - clock()) * RENEW_AT))
        fresh = await get_token()
        if fresh is None:
            return
        if fresh.token == current.token:
            if fresh.expires_at <= clock():
                return  # a fixed token: nothing to renew; the relay will close with 1008
            await sleep(MIN_RENEW_WAIT)
            continue
        control.send(functools.partial(channel.send_renew_token, fresh.token))
        log.info("listener %s renewed its token", name)
        current = fresh
