"""A response's ``after_sent`` / ``if_unsent`` hooks, through a listener and the scripted relay.

One-way work must start only once its ``202`` was written to the relay, and never
when writing it failed (the sender saw no acknowledgement and may send it again).
The listener here writes through a transport (injected with the SDK's ``connector``)
that holds its bytes behind a gate the test opens, so "before the 202 was written"
is a state the test can hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bindings.acknowledge import Acknowledging
from bindings.address import RelayAddress
from bindings.binding import NetOnewayRelayBinding
from bindings.handler import Handler, RelayedRequest, RelayedResponse
from bindings.host import make_handler
from bindings.listener import HybridConnectionListener
from bindings.reconnect import Backoff, ReconnectPolicy
from bindings.tokens import TokenProvider
from hc.asyncio.connection import tcp_connector
from hc.handshake import Target
from samples.payroll.services import TNS, Recorder, timesheet_app
from tests.bindings.fake_hc_relay import ScriptedRelay, recv_json, request_json

BINDING = NetOnewayRelayBinding(keepalive_interval=0)  # no pings: every send is the test's


class Gate:
    """Holds a listener's writes while closed; ``held`` is set when one waits.

    Its :meth:`connector` opens real TCP sockets whose transport, while the gate is
    closed, keeps what is written and tells the protocol to pause writing (so a
    response counts as written only once the gate opens and the bytes leave).
    """

    def __init__(self) -> None:
        self.open, self.held = asyncio.Event(), asyncio.Event()
        self.open.set()

    def close(self) -> None:
        self.open.clear()
        self.held.clear()

    async def connector(
        self, factory: Callable[[], asyncio.Protocol], target: Target
    ) -> asyncio.BaseTransport:
        shim = _GatedProtocol(factory(), self)
        return await tcp_connector(lambda: shim, target)


class _GatedTransport(asyncio.Transport):
    def __init__(self, real: asyncio.Transport, protocol: asyncio.Protocol, gate: Gate) -> None:
        super().__init__()
        self.real, self.protocol, self.gate = real, protocol, gate
        self.kept: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.gate.open.is_set() and not self.kept:
            self.real.write(data)
            return
        self.kept.append(bytes(data))
        if len(self.kept) == 1:
            self.gate.held.set()
            self.protocol.pause_writing()
            asyncio.get_running_loop().create_task(self._release())

    async def _release(self) -> None:
        await self.gate.open.wait()
        kept, self.kept = self.kept, []
        if not self.real.is_closing():
            self.real.write(b"".join(kept))
        self.protocol.resume_writing()

    def is_closing(self) -> bool:
        return self.real.is_closing()

    def close(self) -> None:
        self.real.close()

    def abort(self) -> None:
        self.real.abort()

    def pause_reading(self) -> None:
        self.real.pause_reading()

    def resume_reading(self) -> None:
        self.real.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.real.get_extra_info(name, default)


class _GatedProtocol(asyncio.Protocol):
    """Hands the real protocol a gated transport, and passes everything else through."""

    def __init__(self, inner: asyncio.Protocol, gate: Gate) -> None:
        self.inner, self.gate = inner, gate

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.inner.connection_made(_GatedTransport(transport, self.inner, self.gate))

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class GatedListener(HybridConnectionListener):
    """A listener whose sockets send only through ``gate``."""

    def __init__(self, *args: Any, gate: Gate, **options: Any) -> None:
        super().__init__(*args, connector=gate.connector, **options)
        self.gate = gate

    async def close(self, timeout: float = 30.0) -> None:
        self.gate.open.set()  # a failed test must not leave the close handshake held
        await super().close(timeout)


@pytest.fixture
async def relay() -> AsyncIterator[ScriptedRelay]:
    async with ScriptedRelay() as running:
        yield running


def start(
    relay: ScriptedRelay, made: list[HybridConnectionListener], handler: Handler, gate: Gate
) -> HybridConnectionListener:
    address = RelayAddress.parse(f"http://127.0.0.1:{relay.port}/svc")
    listener = GatedListener(
        address, handler, binding=BINDING, gate=gate,
        token_provider=TokenProvider.shared_access_key("Root", "key"),
        policy=ReconnectPolicy(Backoff(rng=lambda: 0.0)),
    )
    made.append(listener)
    listener.start()
    return listener


def recording_handler() -> tuple[Handler, asyncio.Queue[bytes]]:
    started: asyncio.Queue[bytes] = asyncio.Queue()

    async def handler(request: RelayedRequest) -> RelayedResponse:
        started.put_nowait(await request.read())
        return RelayedResponse(200)

    return handler, started


SUBMIT = (
    f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:p="{TNS}">'
    "<s:Body><p:SubmitTimesheet><p:employee_id>7</p:employee_id><p:hours>7.5</p:hours>"
    "</p:SubmitTimesheet></s:Body></s:Envelope>"
).encode()


async def send_request(relay: ScriptedRelay, control: Any, body: bytes) -> None:
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    await control.send(request_json("m1", relay.address("request", "x"), headers=headers))
    await control.send(body)


async def test_a_one_way_handler_starts_only_after_its_202_was_written(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    gate = Gate()
    inner, started = recording_handler()
    handler = Acknowledging(inner)
    start(relay, listeners, handler, gate)
    control = await relay.next_control()
    gate.close()
    await send_request(relay, control, b"<tick/>")
    await asyncio.wait_for(gate.held.wait(), 5)  # the 202 is being written, and held
    assert started.empty() and handler.pending == 0
    gate.open.set()
    reply = (await recv_json(control))["response"]
    assert (reply["requestId"], reply["statusCode"], reply["body"]) == ("m1", 202, False)
    assert await asyncio.wait_for(started.get(), 5) == b"<tick/>"
    await handler.aclose()


async def fail_the_202(relay: ScriptedRelay, listener: HybridConnectionListener,
                       gate: Gate) -> None:
    """Send a one-way request; while its 202 is held, the relay drops the control channel."""
    control = await relay.next_control()
    gate.close()
    await send_request(relay, control, SUBMIT)
    await asyncio.wait_for(gate.held.wait(), 5)
    await control.close(1011, "relay gone")
    gate.open.set()  # the held 202 now meets a closed channel
    await relay.next_control()  # the listener reconnected: the failed call is over
    await listener.close(timeout=5)


async def test_a_202_that_could_not_be_written_never_runs_the_handler(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener], caplog: pytest.LogCaptureFixture
) -> None:
    gate = Gate()
    inner, started = recording_handler()
    handler = Acknowledging(inner)
    listener = start(relay, listeners, handler, gate)
    await fail_the_202(relay, listener, gate)
    await handler.aclose()
    assert started.empty() and handler.pending == 0
    assert "could not answer a relayed call" in caplog.text


async def test_a_spyne_one_way_operation_runs_after_its_202_and_never_without_it(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    recorder = Recorder()
    gate = Gate()
    handler = make_handler(timesheet_app(recorder), BINDING)
    listener = start(relay, listeners, handler, gate)
    await fail_the_202(relay, listener, gate)
    # and one whose 202 goes out runs exactly once, after it was read
    listener = start(relay, listeners, handler, gate)
    control = await relay.next_control()
    await send_request(relay, control, SUBMIT)
    reply = (await recv_json(control))["response"]
    assert reply["statusCode"] == 202
    await listener.close(timeout=5)
    aclose = getattr(handler, "aclose")  # noqa: B009 - the WsgiHandler's, awaited below
    await aclose()  # closes the Spyne app: its acknowledged one-way work finishes first
    assert recorder.lines == ["timesheet employee=7 hours=7.5"]


async def test_a_response_sent_by_rendezvous_is_settled_once_the_relay_closed_it(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    settled: asyncio.Queue[str] = asyncio.Queue()
    settled_before_close: list[int] = []

    async def hooked(request: RelayedRequest) -> RelayedResponse:
        async def after_sent() -> None:
            settled.put_nowait("sent")

        async def if_unsent() -> None:
            settled.put_nowait("unsent")

        return RelayedResponse(202, after_sent=after_sent, if_unsent=if_unsent)

    async def rendezvous(ws: Any) -> None:
        await ws.send(request_json("rv", "unused", body=False))
        await recv_json(ws)
        settled_before_close.append(settled.qsize())  # written, but the socket is still open
        await ws.close()

    relay.rendezvous["rv1"] = rendezvous
    start(relay, listeners, hooked, Gate())
    control = await relay.next_control()
    await control.send(f'{{"request": {{"address": "{relay.address("request", "rv1")}",'
                       ' "id": "rv"}}')
    assert await asyncio.wait_for(settled.get(), 5) == "sent"
    assert settled_before_close == [0] and settled.empty()


async def test_a_failed_rendezvous_settles_the_response_as_unsent(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    settled: asyncio.Queue[str] = asyncio.Queue()

    async def hooked(request: RelayedRequest) -> RelayedResponse:
        async def after_sent() -> None:
            settled.put_nowait("sent")

        async def if_unsent() -> None:
            settled.put_nowait("unsent")

        return RelayedResponse(200, body=b"x" * 100_000,  # over 64 KiB: by rendezvous
                               after_sent=after_sent, if_unsent=if_unsent)

    start(relay, listeners, hooked, Gate())
    control = await relay.next_control()
    # No script for this id: the scripted relay closes the rendezvous with 1008 at once.
    await control.send(request_json("big", relay.address("request", "nobody"), body=False))
    assert await asyncio.wait_for(settled.get(), 5) == "unsent"
    assert settled.empty()
