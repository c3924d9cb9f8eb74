"""HybridConnectionListener against a scripted relay (tests/bindings/fake_hc_relay.py)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from bindings.address import RelayAddress
from bindings.binding import BasicHttpRelayBinding, NetOnewayRelayBinding
from bindings.exceptions import (
    ListenerDisconnected,
    ListenerQuotaExceeded,
    ListenerRejected,
    RelayUnresponsive,
)
from bindings.handler import RelayedRequest, RelayedResponse
from bindings.listener import HybridConnectionListener
from bindings.reconnect import Backoff, ReconnectPolicy
from bindings.status import HostStatus
from bindings.tokens import SecurityToken, TokenProvider
from hc.asyncio import HybridConnectionStream
from hc.messages import AcceptCommand
from hc.sas import SasToken
from tests.bindings.fake_hc_relay import (
    ScriptedRelay,
    recv_bytes,
    recv_json,
    request_json,
)

Handler = Callable[[RelayedRequest], Awaitable[RelayedResponse]]


async def echo(request: RelayedRequest) -> RelayedResponse:
    body = await request.read()
    seen = {"method": request.method, "target": request.target, "base": request.public_base,
            "entity": request.entity_path, "remote": request.remote,
            "type": request.header("content-type")}
    return RelayedResponse(200, "", (("X-Seen", json.dumps(seen)), ("Content-Length", "9")),
                           body.upper())


@pytest.fixture
async def relay() -> AsyncIterator[ScriptedRelay]:
    async with ScriptedRelay() as running:
        yield running


class Sleeps:
    """An injected sleep that records reconnect delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


def make(
    relay: ScriptedRelay, made: list[HybridConnectionListener], handler: Handler = echo,
    **options: Any,
) -> HybridConnectionListener:
    options.setdefault("token_provider", TokenProvider.shared_access_key("Root", "key"))
    options.setdefault("policy", ReconnectPolicy(Backoff(rng=lambda: 0.0)))
    address = RelayAddress.parse(f"http://127.0.0.1:{relay.port}/svc")
    listener = HybridConnectionListener(address, handler, **options)
    made.append(listener)
    listener.start()
    return listener


async def online(listener: HybridConnectionListener) -> None:
    status = await asyncio.wait_for(listener.wait_for(HostStatus.ONLINE, HostStatus.OFFLINE), 5)
    assert status is HostStatus.ONLINE, listener.last_error


async def test_handshake_carries_id_token_kind_and_discovery(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    listener = make(relay, listeners, binding=NetOnewayRelayBinding(), discovery="public")
    await relay.next_control()
    (handshake,) = relay.handshakes
    query = parse_qs(urlsplit(handshake.path).query)
    assert urlsplit(handshake.path).path == "/$hc/svc"
    assert query == {"sb-hc-action": ["listen"], "sb-hc-id": [listener.id],
                     "sb-relay-kind": ["oneway"], "sb-relay-discovery": ["public"],
                     "sb-relay-max-message-size": ["65536"]}
    token = SasToken.parse(handshake.headers["ServiceBusAuthorization"])
    assert unquote(token.raw_resource) == f"http://127.0.0.1:{relay.port}/svc"
    await online(listener)


async def test_client_authentication_none_is_asked_for_on_the_handshake(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    listener = make(relay, listeners, binding=BasicHttpRelayBinding(client_authentication="none"))
    await relay.next_control()
    (handshake,) = relay.handshakes
    query = parse_qs(urlsplit(handshake.path).query)
    assert query == {"sb-hc-action": ["listen"], "sb-hc-id": [listener.id],
                     "sb-relay-client-auth": ["none"],
                     "sb-relay-max-message-size": [str(2 * 1024 * 1024)]}
    assert "ServiceBusAuthorization" in handshake.headers  # listening always needs a token


async def test_inline_request_gets_an_inline_response(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    make(relay, listeners)
    control = await relay.next_control()
    await control.send(request_json("r1", relay.address("request", "x"), target="/svc/a?b=1"))
    await control.send(b"hello relay")
    reply = (await recv_json(control))["response"]
    assert reply["requestId"] == "r1" and reply["statusCode"] == 200 and reply["body"] is True
    assert reply["statusDescription"] == "OK"
    assert "Content-Length" not in reply["responseHeaders"]  # framing is the relay's job
    assert await recv_bytes(control) == b"HELLO RELAY"
    seen = json.loads(reply["responseHeaders"]["X-Seen"])
    assert seen == {"method": "POST", "target": "/svc/a?b=1", "base": f"http://127.0.0.1:{relay.port}",
                    "entity": "svc", "remote": ["10.1.2.3", 4242], "type": "text/plain"}


async def test_no_body_either_way_sends_no_binary_message(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    async def empty(request: RelayedRequest) -> RelayedResponse:
        assert await request.read() == b""
        return RelayedResponse(204)

    make(relay, listeners, empty)
    control = await relay.next_control()
    for ident in ("r1", "r2"):
        await control.send(request_json(ident, relay.address("request", ident), method="GET",
                                        body=False))
    replies = [(await recv_json(control))["response"] for _ in range(2)]
    assert sorted(r["requestId"] for r in replies) == ["r1", "r2"]
    assert all(r["body"] is False and r["statusCode"] == 204 for r in replies)


async def test_address_only_request_is_served_on_its_rendezvous(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    result: asyncio.Future[tuple[dict[str, Any], bytes]] = asyncio.get_running_loop().create_future()
    body = b"x" * 200_000

    async def rendezvous(ws: ServerConnection) -> None:
        await ws.send(request_json("big", "unused", target="/svc/upload"))
        await ws.send([body[i : i + 50_000] for i in range(0, len(body), 50_000)])  # 4 frames
        reply = await recv_json(ws)
        result.set_result((reply, await recv_bytes(ws)))

    relay.rendezvous["rv1"] = rendezvous
    make(relay, listeners)
    control = await relay.next_control()
    await control.send(json.dumps({"request": {"address": relay.address("request", "rv1"),
                                               "id": "big"}}))
    reply, answer = await asyncio.wait_for(result, 5)
    assert reply["response"]["requestId"] == "big" and reply["response"]["statusCode"] == 200
    assert answer == body.upper()


async def test_a_large_response_goes_back_by_rendezvous(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    payload = bytes(range(256)) * 800  # 200 KiB > 64 KiB

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 10_000):
            yield payload[start : start + 10_000]

    async def large(request: RelayedRequest) -> RelayedResponse:
        return RelayedResponse(200, "OK", (("Content-Type", "application/octet-stream"),), stream())

    result: asyncio.Future[tuple[dict[str, Any], bytes]] = asyncio.get_running_loop().create_future()

    async def rendezvous(ws: ServerConnection) -> None:
        reply = await recv_json(ws)
        result.set_result((reply, await recv_bytes(ws)))

    relay.rendezvous["rv2"] = rendezvous
    make(relay, listeners, large)
    control = await relay.next_control()
    await control.send(request_json("r9", relay.address("request", "rv2"), method="GET", body=False))
    reply, answer = await asyncio.wait_for(result, 5)
    assert reply["response"]["requestId"] == "r9" and reply["response"]["body"] is True
    assert answer == payload
    # and a small streamed body still goes inline on the control channel
    relay.rendezvous.clear()
    payload = b"small"
    await control.send(request_json("r10", relay.address("request", "none"), method="GET",
                                    body=False))
    assert (await recv_json(control))["response"]["requestId"] == "r10"
    assert await recv_bytes(control) == b"small"


async def test_a_failing_handler_is_a_plain_500(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener], caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request: RelayedRequest) -> RelayedResponse:
        raise KeyError("internal detail")

    make(relay, listeners, broken)
    control = await relay.next_control()
    await control.send(request_json("r1", relay.address("request", "x"), body=False))
    assert (await recv_json(control))["response"]["statusCode"] == 500
    assert b"internal detail" not in await recv_bytes(control)
    assert "internal detail" in caplog.text


async def test_a_malformed_command_closes_the_channel_with_1008_and_the_listener_comes_back(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    statuses: list[HostStatus] = []
    listener = make(relay, listeners, on_status=statuses.append)
    control = await relay.next_control()
    await online(listener)
    await control.send("this is not JSON")
    await asyncio.wait_for(control.wait_closed(), 5)
    assert control.close_code == 1008 and "not valid JSON" in (control.close_reason or "")
    fresh = await relay.next_control()
    await online(listener)
    error = listener.last_error
    assert isinstance(error, ListenerDisconnected) and error.close_code == 1008
    await fresh.send(request_json("r2", relay.address("request", "x"), body=False))
    assert (await recv_json(fresh))["response"]["requestId"] == "r2"
    assert statuses == [HostStatus.ONLINE, HostStatus.CONNECTING, HostStatus.ONLINE]


async def test_concurrent_calls_are_bounded_by_the_binding(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    active, peak, two_running, gate = 0, 0, asyncio.Event(), asyncio.Event()

    async def slow(request: RelayedRequest) -> RelayedResponse:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        if active == 2:
            two_running.set()
        await gate.wait()
        active -= 1
        return RelayedResponse(200)

    make(relay, listeners, slow, binding=BasicHttpRelayBinding(max_concurrent_calls=2))
    control = await relay.next_control()
    for i in range(5):
        await control.send(request_json(f"r{i}", relay.address("request", "x"), body=False))
    await asyncio.wait_for(two_running.wait(), 5)
    gate.set()
    replies = {(await recv_json(control))["response"]["requestId"] for _ in range(5)}
    assert replies == {f"r{i}" for i in range(5)} and peak == 2


async def test_401_goes_offline_at_once_with_the_relays_message(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    relay.refuse(401, "Unauthorized", "SAS token has expired")
    listener = make(relay, listeners)
    assert await asyncio.wait_for(listener.wait_for(HostStatus.OFFLINE), 5) is HostStatus.OFFLINE
    await asyncio.wait_for(listener.start(), 5)  # run() returned: no retry
    error = listener.last_error
    assert isinstance(error, ListenerRejected) and error.status == 401
    assert error.code == "Unauthorized" and "SAS token has expired" in str(error)
    assert len(relay.handshakes) == 1


async def test_quota_is_permanent(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    relay.refuse(403, "ListenerQuotaExceeded", "the entity has its maximum of 25 listeners")
    listener = make(relay, listeners)
    await asyncio.wait_for(listener.wait_for(HostStatus.OFFLINE), 5)
    assert isinstance(listener.last_error, ListenerQuotaExceeded)
    assert "25 listeners" in str(listener.last_error)


async def test_transient_refusals_are_retried_with_backoff(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    relay.refuse(503, "ServerBusy", "try later")
    relay.refuse(500, "InternalError", "oops")
    sleeps = Sleeps()
    policy = ReconnectPolicy(Backoff(base=0.5, cap=30, rng=lambda: 1.0))
    listener = make(relay, listeners, token_provider=None, policy=policy, sleep=sleeps)
    await online(listener)
    assert sleeps.delays == [0.5, 1.0] and len(relay.handshakes) == 3
    assert isinstance(listener.last_error, ListenerRejected) and listener.last_error.status == 500


async def test_relay_close_codes_lead_to_reconnects(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    statuses: list[HostStatus] = []
    now = [1000.0]
    sleeps = Sleeps()
    listener = make(
        relay, listeners, token_provider=None, on_status=statuses.append, sleep=sleeps,
        clock=lambda: now[0], policy=ReconnectPolicy(Backoff(rng=lambda: 1.0), stable_after=5),
    )
    for code, uptime in [(1008, 3600), (1008, 0), (1001, 60)]:
        # 1: a long, stable connection whose token then expired -> at once, fresh token
        # 2: 1008 again straight away -> back off; 3: entity deleted -> back off from the start
        control = await relay.next_control()
        await online(listener)  # ONLINE is set where the uptime clock starts
        now[0] += uptime
        await control.close(code, "token expired" if code == 1008 else "entity deleted")
    await relay.next_control()
    await online(listener)
    assert sleeps.delays == [0.0, 0.5, 0.5]
    error = listener.last_error
    assert isinstance(error, ListenerDisconnected) and error.close_code == 1001
    assert statuses == [HostStatus.ONLINE, HostStatus.CONNECTING] * 3 + [HostStatus.ONLINE]


class ShortLivedTokens(TokenProvider):
    """Tokens that live ``life`` seconds; each call makes a new one."""

    def __init__(self, life: float) -> None:
        self.life, self.counter = life, itertools.count(1)

    def get_token(self, audience: str) -> SecurityToken:
        return SecurityToken(f"token-{next(self.counter)}", time.time() + self.life)


async def test_the_token_is_renewed_before_it_expires(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    make(relay, listeners, token_provider=ShortLivedTokens(0.3))
    control = await relay.next_control()
    assert relay.handshakes[0].headers["ServiceBusAuthorization"] == "token-1"
    renewals = [(await recv_json(control))["renewToken"]["token"] for _ in range(2)]
    assert renewals[0] != "token-1" and renewals[0] != renewals[1]


async def test_keepalive_pings_go_out_every_interval(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    make(relay, listeners, binding=BasicHttpRelayBinding(keepalive_interval=0.05))
    control = await relay.next_control()
    pings = [await asyncio.wait_for(control.pings.get(), 5) for _ in range(3)]
    assert len(set(pings)) == 3  # three distinct pings, each answered (the channel stays up)
    assert control.state is State.OPEN and len(relay.handshakes) == 1


async def test_a_relay_that_stops_answering_pings_is_left_and_reconnected(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    statuses: list[HostStatus] = []
    listener = make(relay, listeners, binding=BasicHttpRelayBinding(keepalive_interval=0.1),
                    on_status=statuses.append)
    hung = await relay.next_control()
    await online(listener)
    hung.answer_pings = False
    fresh = await relay.next_control()  # the listener gave up on the silent channel
    await online(listener)
    await asyncio.wait_for(hung.wait_closed(), 5)
    error = listener.last_error  # the listener failed the channel: no close handshake
    assert isinstance(error, RelayUnresponsive) and error.close_code == 1006
    assert "did not answer a keep-alive ping within 3 s" in str(error)
    assert "relay closed" not in str(error)
    assert statuses == [HostStatus.ONLINE, HostStatus.CONNECTING, HostStatus.ONLINE]
    await asyncio.wait_for(fresh.pings.get(), 5)  # and it keeps pinging the new one


async def test_no_pings_when_keepalive_is_off(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    listener = make(relay, listeners, binding=BasicHttpRelayBinding(keepalive_interval=0))
    control = await relay.next_control()
    await online(listener)
    await control.send(request_json("r1", relay.address("request", "x"), body=False))
    assert (await recv_json(control))["response"]["requestId"] == "r1"
    assert control.pings.empty()


async def test_websocket_senders_are_refused_with_501_without_on_accept(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    make(relay, listeners)
    control = await relay.next_control()
    accept = AcceptCommand(relay.address("accept", "a1"), "c1",
                           (("Sec-WebSocket-Key", "k"),), ("127.0.0.1", 1))
    await control.send(accept.serialize())
    query = await asyncio.wait_for(relay.rejected_accepts.get(), 5)
    assert query["sb-hc-statusCode"] == ["501"] and query["sb-hc-id"] == ["a1"]
    assert "does not accept" in query["sb-hc-statusDescription"][0]


async def test_on_accept_gets_the_sender_with_its_subprotocol(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    accepted: asyncio.Future[tuple[str | None, str]] = asyncio.get_running_loop().create_future()

    async def on_accept(stream: HybridConnectionStream, command: AcceptCommand) -> None:
        message = await stream.receive()
        await stream.write(f"{message!s}!")
        accepted.set_result((stream.subprotocol, command.id))

    echoed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def sender_side(ws: ServerConnection) -> None:
        await ws.send("hi")
        echoed.set_result(str(await ws.recv()))

    relay.rendezvous["a2"] = sender_side
    make(relay, listeners, on_accept=on_accept)
    control = await relay.next_control()
    headers = (("Sec-WebSocket-Key", "k"), ("Sec-WebSocket-Protocol", "chat.v1, chat.v0"))
    await control.send(AcceptCommand(relay.address("accept", "a2"), "c2", headers).serialize())
    assert await asyncio.wait_for(echoed, 5) == "hi!"
    assert await asyncio.wait_for(accepted, 5) == ("chat.v1", "c2")


async def test_close_finishes_in_flight_calls_and_refuses_new_ones(
    relay: ScriptedRelay, listeners: list[HybridConnectionListener]
) -> None:
    started, gate = asyncio.Event(), asyncio.Event()

    async def slow(request: RelayedRequest) -> RelayedResponse:
        started.set()
        await gate.wait()
        return RelayedResponse(200, "OK", (), b"done")

    listener = make(relay, listeners, slow)
    control = await relay.next_control()
    await control.send(request_json("in-flight", relay.address("request", "x"), body=False))
    await asyncio.wait_for(started.wait(), 5)
    closing = asyncio.ensure_future(listener.close(timeout=5))
    await asyncio.wait_for(listener.wait_for(HostStatus.CLOSING), 5)
    await control.send(request_json("late", relay.address("request", "y"), body=False))
    late = (await recv_json(control))["response"]
    assert (late["requestId"], late["statusCode"]) == ("late", 503)
    await recv_bytes(control)
    gate.set()
    done = (await recv_json(control))["response"]
    assert (done["requestId"], done["statusCode"]) == ("in-flight", 200)
    assert await recv_bytes(control) == b"done"
    await asyncio.wait_for(closing, 5)
    await asyncio.wait_for(control.wait_closed(), 5)
    assert listener.status is HostStatus.CLOSED and control.close_code == 1000
