"""A signed one-way Spyne host through a listener and the scripted relay: work waits for its 202.

The host signs its replies (``security=MESSAGE`` with an identity), so the
WS-Security middleware signs the reply of every request, the one-way ``202``
too. The Spyne adapter's one-way job starts when the WSGI result is closed:
the middleware must leave that to the relay host (after the ``202`` was
written) and pass ``discard()`` on when writing it failed. The listener's sends
wait for the gate of ``tests/bindings/test_exchange.py``, so "before the 202
was written" is a state the test holds. ``Probe`` notes when the adapter's
result is closed or discarded: that is the moment its job starts or is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import zeep

from bindings.address import RelayAddress
from bindings.binding import EndToEndSecurityMode, NetOnewayRelayBinding
from bindings.listener import HybridConnectionListener
from bindings.reconnect import Backoff, ReconnectPolicy
from bindings.spyne_host import spyne_wsgi
from bindings.tokens import TokenProvider
from bindings.wsgi_host import WsgiApp, WsgiHandler
from bindings.wssecurity import WsSecurityMiddleware, secure_service
from samples.payroll.services import Recorder, timesheet_app
from tests.bindings.fake_hc_relay import ScriptedRelay, recv_json, request_json
from tests.bindings.test_exchange import Gate, GatedListener
from tests.bindings.test_wssecurity import service_settings
from tests.bindings.test_wssecurity_wiring import contract, signed_message

BINDING = NetOnewayRelayBinding(security=EndToEndSecurityMode.MESSAGE, keepalive_interval=0)
LINE = "timesheet employee=7 hours=7.5"


class Probe:
    """WSGI middleware noting ``close`` and ``discard`` of the wrapped app's results."""

    def __init__(self, app: WsgiApp) -> None:
        self.app, self.events = app, list[str]()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return _Noted(self.app(environ, start_response), self.events)

    def close(self) -> None:
        getattr(self.app, "close")()  # noqa: B009 - the adapter's pool: acknowledged work ends


class _Noted:
    def __init__(self, result: Iterable[bytes], events: list[str]) -> None:
        self.result, self.events = result, events

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.result)

    def discard(self) -> None:
        self.events.append("discard")
        getattr(self.result, "discard")()  # noqa: B009 - Spyne's one-way result has it

    def close(self) -> None:
        self.events.append("close")
        getattr(self.result, "close")()  # noqa: B009


def signed_host(recorder: Recorder) -> tuple[WsgiHandler, Probe]:
    """The one-way timesheet app as ``make_handler`` hosts it, a probe around the adapter."""
    probe = Probe(spyne_wsgi(timesheet_app(recorder), BINDING))
    app = secure_service(probe, BINDING.security, service_settings())
    assert isinstance(app, WsSecurityMiddleware) and app.signer is not None  # replies signed
    return WsgiHandler(app), probe


@pytest.fixture
async def relay() -> AsyncIterator[ScriptedRelay]:
    async with ScriptedRelay() as running:
        yield running


@pytest.fixture
def client(tmp_path: Path) -> zeep.Client:
    return zeep.Client(str(contract(tmp_path, timesheet_app, BINDING)))


def start(
    relay: ScriptedRelay, made: list[HybridConnectionListener], handler: WsgiHandler, gate: Gate
) -> HybridConnectionListener:
    listener = GatedListener(
        RelayAddress.parse(f"http://127.0.0.1:{relay.port}/svc"), handler,
        binding=BINDING, gate=gate,
        token_provider=TokenProvider.shared_access_key("Root", "key"),
        policy=ReconnectPolicy(Backoff(rng=lambda: 0.0)),
    )
    made.append(listener)
    listener.start()
    return listener


async def send_held(relay: ScriptedRelay, gate: Gate, body: bytes) -> Any:
    """Send ``body`` and wait until the listener's answer is held at the gate."""
    control = await relay.next_control()
    gate.close()
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    await control.send(request_json("m1", relay.address("request", "x"), headers=headers))
    await control.send(body)
    await asyncio.wait_for(gate.held.wait(), 5)
    return control


async def test_a_signed_one_way_operation_starts_only_after_its_202_was_written(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener], client: zeep.Client
) -> None:
    recorder, gate = Recorder(), Gate()
    handler, probe = signed_host(recorder)
    start(relay, listeners, handler, gate)
    control = await send_held(relay, gate, signed_message(client, "SubmitTimesheet", 7,
                                                          Decimal("7.5")))
    assert probe.events == [] and recorder.lines == []  # the 202 is held: no job yet
    gate.open.set()
    reply = (await recv_json(control))["response"]
    assert (reply["requestId"], reply["statusCode"], reply["body"]) == ("m1", 202, False)
    assert await asyncio.to_thread(recorder.wait_for, 1, 10)
    assert probe.events == ["close"] and recorder.lines == [LINE]
    await handler.aclose()


async def test_a_signed_one_way_operation_whose_202_failed_never_runs(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener], client: zeep.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder, gate = Recorder(), Gate()
    handler, probe = signed_host(recorder)
    listener = start(relay, listeners, handler, gate)
    control = await send_held(relay, gate, signed_message(client, "SubmitTimesheet", 7,
                                                          Decimal("7.5")))
    assert probe.events == []
    await control.close(1011, "relay gone")
    gate.open.set()  # the held 202 now meets a closed channel
    await relay.next_control()  # the listener reconnected: the failed call is over
    await listener.close(timeout=5)
    await handler.aclose()  # closes the adapter: acknowledged one-way work would finish here
    assert probe.events == ["discard", "close"] and recorder.lines == []
    assert "could not answer a relayed call" in caplog.text
