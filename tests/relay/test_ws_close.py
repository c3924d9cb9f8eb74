"""The closing handshake of a relayed WebSocket (RFC 6455 §5.5.1, §7.1.1).

The sender here is driven frame by frame (websockets' sans-I/O client on a raw
stream), so each test decides when, or whether, it answers the relay's Close.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import websockets
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

import relay.rawws
from tests.support.relay import RelayHandle


class RawSender:
    """A WebSocket sender whose every write is explicit."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 proto: ClientProtocol) -> None:
        self.reader, self.writer, self.proto = reader, writer, proto

    @classmethod
    async def connect(cls, handle: RelayHandle, path: str) -> RawSender:
        url = f"{handle.ws_url}/$hc/{path}?sb-hc-action=connect"
        proto = ClientProtocol(parse_uri(url))
        request = proto.connect()
        request.headers["ServiceBusAuthorization"] = handle.token(path)
        proto.send_request(request)
        reader, writer = await asyncio.open_connection("127.0.0.1", handle.port)
        sender = cls(reader, writer, proto)
        sender.flush()
        event = await sender.next_event()
        assert isinstance(event, Response) and event.status_code == 101, event
        return sender

    def flush(self) -> None:
        """Write what the protocol queued (for a Close: the echo of the relay's Close)."""
        for chunk in self.proto.data_to_send():
            if chunk:
                self.writer.write(chunk)

    def send(self, opcode: Opcode, data: bytes) -> None:
        if opcode is Opcode.CLOSE:
            self.proto.send_close(Close.parse(data).code, Close.parse(data).reason)
        else:
            self.proto.send_frame(Frame(opcode, data))
        self.flush()

    async def next_event(self) -> Frame | Response:
        while True:
            events = self.proto.events_received()
            if events:
                assert len(events) == 1, events
                return events[0]  # type: ignore[return-value]
            data = await self.reader.read(65536)
            assert data, "the relay closed the connection before the next event"
            self.proto.receive_data(data)

    async def read_eof(self) -> None:
        """Wait for the relay's FIN (a reset would raise)."""
        assert await self.reader.read(65536) == b""
        self.writer.close()


@asynccontextmanager
async def accepting_listener(handle: RelayHandle, path: str, **connect: Any) -> AsyncIterator[
    asyncio.Future[websockets.ClientConnection]
]:
    """A listener whose next accepted WebSocket (``websockets.connect(address, **connect)``)
    is the future's result."""
    control = await websockets.connect(
        f"{handle.ws_url}/$hc/{path}?sb-hc-action=listen",
        additional_headers={"ServiceBusAuthorization": handle.token(path)},
    )
    accepted: asyncio.Future[websockets.ClientConnection] = asyncio.get_running_loop().create_future()

    async def accept() -> None:
        address = json.loads(await control.recv())["accept"]["address"]
        accepted.set_result(await websockets.connect(address, **connect))

    task = asyncio.create_task(accept())
    try:
        yield accepted
    finally:
        task.cancel()
        if accepted.done():
            await accepted.result().close()
        await control.close()


async def _listener_closes(handle: RelayHandle, path: str) -> tuple[RawSender, asyncio.Task[None]]:
    """A session whose listener sends Close(4001, "listener done"); the sender got it."""
    async with accepting_listener(handle, path) as accepted:
        sender = await RawSender.connect(handle, path)
        listener = await asyncio.wait_for(accepted, 5)
        closing = asyncio.create_task(listener.close(4001, "listener done"))
        frame = await asyncio.wait_for(sender.next_event(), 5)
        assert isinstance(frame, Frame) and frame.opcode is Opcode.CLOSE
        close = Close.parse(frame.data)
        assert (close.code, close.reason) == (4001, "listener done")
        return sender, closing


async def test_the_relay_waits_for_the_senders_close_before_closing_tcp(arelay: RelayHandle) -> None:
    sender, closing = await _listener_closes(arelay, "close-wait")
    await asyncio.wait_for(closing, 5)  # the listener's own handshake completed meanwhile
    # The relay's Close is out; the TCP connection must stay open for the echo.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sender.reader.read(1), 0.5)
    sender.flush()  # the sender's Close, echoing the relay's
    await asyncio.wait_for(sender.read_eof(), 5)


async def test_a_sender_that_never_answers_the_close_is_dropped_after_the_timeout(
    arelay: RelayHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay.rawws, "CLOSE_TIMEOUT", 0.5)
    sender, _ = await _listener_closes(arelay, "close-timeout")
    started = time.monotonic()
    try:
        await asyncio.wait_for(sender.reader.read(), 5)  # until the relay drops it
    except ConnectionResetError:
        pass
    assert 0.4 < time.monotonic() - started < 3
    sender.writer.close()


async def test_data_after_the_relays_close_does_not_stall_the_handshake(
    arelay: RelayHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay.rawws, "CLOSE_TIMEOUT", 30.0)
    sender, _ = await _listener_closes(arelay, "close-data")
    for i in range(50):  # far more than the frames the relay queues before it pauses
        sender.writer.write(b"".join(_masked_text(f"late {i}" * 100)))
    sender.flush()
    await asyncio.wait_for(sender.read_eof(), 5)


async def test_a_sender_close_reaches_the_listener_and_both_handshakes_complete(
    arelay: RelayHandle,
) -> None:
    async with accepting_listener(arelay, "close-sender") as accepted:
        sender = await RawSender.connect(arelay, "close-sender")
        listener = await asyncio.wait_for(accepted, 5)
        sender.send(Opcode.CLOSE, Close(4002, "sender done").serialize())
        echo = await asyncio.wait_for(sender.next_event(), 5)
        assert isinstance(echo, Frame) and Close.parse(echo.data).code == 4002
        await asyncio.wait_for(sender.read_eof(), 5)
        await asyncio.wait_for(listener.wait_closed(), 5)
        assert listener.close_code == 4002 and listener.close_reason == "sender done"
        assert listener.protocol.close_rcvd_then_sent is True  # the listener answered the relay's Close


def _masked_text(text: str) -> list[bytes]:
    """One masked client TEXT frame, written bypassing the (closing) protocol's checks."""
    return [Frame(Opcode.TEXT, text.encode()).serialize(mask=True, extensions=[])]
