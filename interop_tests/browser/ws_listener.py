"""A WebSocket listener for the browser tests: echo one message, then close or be closed.

Each accepted connection gets one text message ``"<n> <mode>"``.  It echoes it, then
with ``mode == "listener-closes"`` closes with ``4000 + n`` and ``"bye <n>"``;
otherwise it waits for the sender's Close and records its code and reason.
"""

from __future__ import annotations

import asyncio
import json

import websockets


class EchoThenClose:
    """Runs on an event loop: ``await run()`` until cancelled."""

    def __init__(self, ws_base: str, path: str, token: str) -> None:
        self.url = f"{ws_base}/$hc/{path}?sb-hc-action=listen"
        self.token = token
        #: (code, reason) of each Close a sender sent, in order.
        self.sender_closes: list[tuple[int | None, str | None]] = []
        self.online = asyncio.Event()
        self._closed = asyncio.Condition()
        self._sessions: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        headers = {"ServiceBusAuthorization": self.token}
        async with websockets.connect(self.url, additional_headers=headers) as control:
            self.online.set()
            try:
                async for message in control:
                    accept = json.loads(message).get("accept")
                    if accept is not None:
                        task = asyncio.create_task(self._session(accept["address"]))
                        self._sessions.add(task)
                        task.add_done_callback(self._sessions.discard)
            finally:
                for task in list(self._sessions):
                    task.cancel()

    async def _session(self, address: str) -> None:
        async with websockets.connect(address) as ws:
            message = str(await ws.recv())
            await ws.send(message)
            number, mode = message.split(" ", 1)
            if mode == "listener-closes":
                await ws.close(4000 + int(number), f"bye {number}")
                return
            await ws.wait_closed()
            async with self._closed:
                self.sender_closes.append((ws.close_code, ws.close_reason))
                self._closed.notify_all()

    async def wait_sender_closes(self, count: int) -> list[tuple[int | None, str | None]]:
        """The first ``count`` Closes senders sent, once they all arrived."""
        async with self._closed:
            await self._closed.wait_for(lambda: len(self.sender_closes) >= count)
            return self.sender_closes[:count]
