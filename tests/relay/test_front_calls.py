"""The front's common call, relayed with no task (``relay.front_calls``), in memory.

A real ``relay.front.Front`` on a real ``RelayState``; the listener is a
listener-role ``hc.protocol.ControlChannel`` behind an in-memory transport, and
each sender connection is a transport that keeps what the relay writes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from hc.entities import EntityKind, Rights
from hc.events import ConnectionClosed, RequestReceived
from hc.messages import ResponseCommand
from hc.protocol import ControlChannel, Role
from hc.sas import create_token
from relay.front import Front, FrontProtocol
from relay.listeners import ListenerConnection
from relay.namespace import EntityConfig, NamespaceConfig, SasRule
from relay.state import RelayState
from relay.wire import ChannelWire
from tests.relay.memory import MemoryTransport, turn

KEY = "ZnJvbnQtY2FsbHMta2V5LTAwMDAwMDAwMDAwMDAwMDA="
BASE = "http://127.0.0.1:9"


class SenderTransport(asyncio.Transport):
    """A sender's connection to the front: keeps what the relay writes."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.closed = False
        self.protocol: asyncio.BaseProtocol | None = None

    def write(self, data: Any) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.protocol is not None:  # as asyncio's: connection_lost in a later step
                asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default


@dataclass
class Setup:
    state: RelayState
    front: Front
    listener: ControlChannel
    wire: ChannelWire
    connection: ListenerConnection
    senders: list[tuple[FrontProtocol, SenderTransport]] = field(default_factory=list)

    def sender(self) -> tuple[FrontProtocol, SenderTransport]:
        protocol, transport = self.front(), SenderTransport()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        self.senders.append((protocol, transport))
        return protocol, transport

    def requests(self) -> list[RequestReceived]:
        return [e for e in self.listener.events_received() if isinstance(e, RequestReceived)]

    def answer(self, request: RequestReceived, status: int = 200, body: bytes = b"<ok/>") -> None:
        self.listener.send_response(
            ResponseCommand(request.command.id, status, "Fine", (("Content-Type", "text/xml"),),
                            bool(body)),
            body or None,
        )
        self.wire.feed_data(b"".join(self.listener.data_to_send()))


def request_bytes(path: str = "echo", body: bytes = b"<call/>", token: bool = True) -> bytes:
    auth = f"ServiceBusAuthorization: {create_token(BASE, 'root', KEY)}\r\n" if token else ""
    return (
        f"POST /{path} HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Type: text/xml\r\n{auth}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    config = NamespaceConfig(
        name="front-calls", host="127.0.0.1", port=9,
        rules=(SasRule("root", KEY, Rights.MANAGE | Rights.LISTEN | Rights.SEND),),
        entities=(
            EntityConfig.for_kind("echo", EntityKind.REQUEST_RESPONSE),
            EntityConfig.for_kind("slow", EntityKind.REQUEST_RESPONSE, timeout=0.2),
            EntityConfig.for_kind("inbox", EntityKind.ONEWAY),
        ),
    )
    state = RelayState.of(config)
    state.loop = asyncio.get_running_loop()
    front = Front(state, fallback=asyncio.Protocol)
    listener = ControlChannel(Role.LISTENER)
    connection = ListenerConnection("echo", token_expiry=float("inf"), check_renewal=float,
                                    clock=time.time)
    wire = connection.connect(MemoryTransport(listener))
    for path in ("echo", "slow", "inbox"):
        entity = state.registry.get(path)
        assert entity is not None
        entity.add(connection)
    yield Setup(state, front, listener, wire, connection)
    await front.finish()


async def settle() -> None:
    for _ in range(3):
        await turn()


async def test_a_common_call_is_queued_and_answered_without_a_task(setup: Setup) -> None:
    sender, out = setup.sender()
    tasks_before = len(asyncio.all_tasks())
    sender.data_received(request_bytes())
    assert len(asyncio.all_tasks()) == tasks_before  # no task for the call
    assert setup.state.calls.in_flight == 1
    await settle()
    [request] = setup.requests()
    assert request.command.method == "POST" and request.body == b"<call/>"
    setup.answer(request, 201, b"<done/>")
    assert out.data.startswith(b"HTTP/1.1 201 Fine\r\n")
    assert out.data.endswith(b"\r\n\r\n<done/>")
    assert setup.state.calls.in_flight == 0
    assert len(setup.state.rendezvous) == 0


async def test_pipelined_calls_are_answered_in_order(setup: Setup) -> None:
    sender, out = setup.sender()
    sender.data_received(request_bytes(body=b"<one/>") + request_bytes(body=b"<two/>"))
    await settle()
    [first] = setup.requests()  # the second waits until the first is answered
    setup.answer(first, 200, b"<1/>")
    await settle()
    [second] = setup.requests()
    assert second.body == b"<two/>"
    setup.answer(second, 200, b"<2/>")
    assert out.data.count(b"HTTP/1.1 200") == 2
    assert out.data.index(b"<1/>") < out.data.index(b"<2/>")


async def test_a_oneway_call_is_202_once_acknowledged_and_errors_pass_through(
    setup: Setup,
) -> None:
    sender, out = setup.sender()
    sender.data_received(request_bytes("inbox"))
    await settle()
    [request] = setup.requests()
    setup.answer(request, 200, b"")
    assert out.data.startswith(b"HTTP/1.1 202 Accepted\r\n")
    out.data.clear()
    sender.data_received(request_bytes("inbox"))
    await settle()
    [request] = setup.requests()
    setup.answer(request, 500, b"<fault/>")
    assert out.data.startswith(b"HTTP/1.1 500 Fine\r\n") and out.data.endswith(b"<fault/>")


async def test_no_answer_in_time_is_504_and_the_late_answer_is_dropped(setup: Setup) -> None:
    sender, out = setup.sender()
    sender.data_received(request_bytes("slow"))
    await settle()
    [request] = setup.requests()
    deadline = time.monotonic() + 5
    while not out.data and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert out.data.startswith(b"HTTP/1.1 504 ")
    assert b"did not answer within 0.2 s" in out.data
    assert setup.state.calls.in_flight == 0
    setup.answer(request)  # too late: dropped quietly, not counted against the listener
    assert setup.connection.unknown_answers == 0
    assert out.data.count(b"HTTP/1.1") == 1


async def test_a_listener_that_goes_fails_its_calls_at_once_with_502(setup: Setup) -> None:
    sender, out = setup.sender()
    sender.data_received(request_bytes())
    await settle()
    assert len(setup.requests()) == 1
    setup.wire.feed_eof()  # the listener's connection is lost
    assert out.data.startswith(b"HTTP/1.1 502 ")
    assert setup.state.calls.in_flight == 0


async def test_what_is_not_the_common_case_is_still_served_by_the_general_path(
    setup: Setup,
) -> None:
    sender, out = setup.sender()
    sender.data_received(request_bytes(token=False))  # refused there, with its 401
    await settle()
    assert out.data.startswith(b"HTTP/1.1 401 ")
    assert b"WWW-Authenticate: SharedAccessSignature" in out.data
    other, other_out = setup.sender()
    envelope = (b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Header>"
                b"<RelayAccessToken xmlns='http://schemas.microsoft.com/netservices/2009/05/"
                b"servicebus/connect'><wsse:BinarySecurityToken xmlns:wsse='x'>t"
                b"</wsse:BinarySecurityToken></RelayAccessToken></s:Header><s:Body/></s:Envelope>")
    tasks_before = len(asyncio.all_tasks())
    other.data_received(request_bytes(body=envelope))
    assert len(asyncio.all_tasks()) == tasks_before + 1  # a RelayAccessToken: the task path
    await settle()
    [request] = setup.requests()
    setup.answer(request)
    await settle()
    assert other_out.data.startswith(b"HTTP/1.1 200 Fine\r\n")


async def test_a_stopping_relay_refuses_new_calls_and_lets_queued_ones_finish(
    setup: Setup,
) -> None:
    sender, out = setup.sender()
    sender.data_received(request_bytes())
    await settle()
    [request] = setup.requests()
    draining = asyncio.ensure_future(setup.state.calls.drain(grace=5))
    await turn()
    late, late_out = setup.sender()
    late.data_received(request_bytes())
    await settle()
    assert late_out.data.startswith(b"HTTP/1.1 503 ")
    setup.answer(request)
    assert out.data.startswith(b"HTTP/1.1 200 ")
    assert await draining == 0
    assert not any(isinstance(e, ConnectionClosed) for e in setup.listener.events_received())
