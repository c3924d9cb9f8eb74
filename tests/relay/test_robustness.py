"""What a listener or sender controls must never break the relay's answers to others."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from lxml import etree

from relay.accepts import ListenerRejected
from relay.boundary import error_answer
from relay.namespace import EntityConfig
from relay.state import RelayState
from soap.relay_token import relay_token_header
from tests.support.raw_listener import RawListener, Reply
from tests.support.relay import RelayHandle, make_namespace


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def answering(status: int, headers: dict[str, str], body: bytes = b"ok") -> Any:
    async def serve(command: dict[str, Any], received: bytes) -> Reply:
        return status, headers, body
    return serve


HOSTILE_HEADERS = {
    "Bad Name": "space in the name",
    "X-Split": "a\r\nInjected: yes",
    "X-Nul": "a\x00b",
    "Caf\u00e9": "non-token name",
    "X-Fine": "kept",
}


async def test_hostile_response_headers_are_dropped_and_the_reply_is_well_formed(
    arelay: RelayHandle, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    serve = answering(200, HOSTILE_HEADERS)
    async with RawListener(arelay.ws_url, "h", arelay.token("h"), serve=serve):
        for _ in range(2):  # the same listener keeps serving
            async with http.post(f"{arelay.base_url}/h", data=b"x",
                                 headers={"ServiceBusAuthorization": arelay.token("h")}) as resp:
                assert resp.status == 200 and await resp.read() == b"ok"
                assert resp.headers["X-Fine"] == "kept"
                assert "Injected" not in resp.headers and "X-Split" not in resp.headers
                assert "X-Nul" not in resp.headers and "Bad Name" not in resp.headers
    assert "dropped response headers" in caplog.text


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({f"X-H{i}": "v" for i in range(5_000)}, b"5000 header fields (at most 100)"),
        ({"X-Big": "v" * 40_000}, b"bytes of header fields (at most 32768)"),
    ],
)
async def test_a_listener_response_head_too_big_for_clients_is_a_502(
    arelay: RelayHandle, http: aiohttp.ClientSession, headers: dict[str, str], why: bytes
) -> None:
    token = {"ServiceBusAuthorization": arelay.token("big")}
    async with RawListener(arelay.ws_url, "big", arelay.token("big"), serve=answering(200, headers)):
        async with http.post(f"{arelay.base_url}/big", data=b"x", headers=token) as resp:
            assert resp.status == 502
            body = await resp.read()
            assert b"InvalidListenerResponse" in body and why in body
    fine = {f"X-H{i}": "v" for i in range(99)}  # 99 + the relay's Via: still forwarded
    async with RawListener(arelay.ws_url, "big", arelay.token("big"), serve=answering(200, fine)):
        async with http.post(f"{arelay.base_url}/big", data=b"x", headers=token) as resp:
            assert resp.status == 200 and resp.headers["X-H98"] == "v"


@pytest.mark.parametrize("status", [100, 101, 199])
async def test_a_listener_answering_1xx_gets_the_sender_a_prompt_502(
    arelay: RelayHandle, http: aiohttp.ClientSession, status: int
) -> None:
    async with RawListener(arelay.ws_url, "s", arelay.token("s"), serve=answering(status, {})):
        token = {"ServiceBusAuthorization": arelay.token("s")}
        async with http.post(f"{arelay.base_url}/s", data=b"x", headers=token,
                             timeout=aiohttp.ClientTimeout(total=5)) as resp:
            assert resp.status == 502
            assert "InvalidListenerResponse" in await resp.text()


async def test_late_answers_after_a_timeout_do_not_get_the_listener_closed(
    make_relay: Any, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay.listener")
    relay = await make_relay(EntityConfig("slow", timeout=0.1))
    release = asyncio.Event()
    calls = itertools.count()

    async def serve(command: dict[str, Any], body: bytes) -> Reply:
        if next(calls) < 20:
            await release.wait()  # answer only after the sender got its 504
        return 200, {}, b"late" if not release.is_set() else b"on time"

    token = {"ServiceBusAuthorization": relay.token("slow")}
    async with RawListener(relay.ws_url, "slow", relay.token("slow"), serve=serve):
        for _ in range(20):  # more than the 16 unknown ids that close a listener
            release.clear()
            async with http.post(f"{relay.base_url}/slow", data=b"x", headers=token) as resp:
                assert resp.status == 504
            release.set()
        async with http.post(f"{relay.base_url}/slow", data=b"x", headers=token) as resp:
            assert resp.status == 200
        state = relay.server.state.registry.get("slow")
        assert state is not None and len(state.listeners) == 1
        late = [r for r in caplog.records if "after its sender gave up" in r.getMessage()]
        assert late and all(r.levelno == logging.INFO for r in late)  # dropped quietly...
        assert state.listeners[0].unknown_answers == 0  # ...not held against it


def soap_with_token(token: str) -> tuple[bytes, bytes]:
    header = etree.tostring(relay_token_header(token))
    envelope = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>'
        + header + b"</s:Header><s:Body><Ping xmlns='urn:x'/></s:Body></s:Envelope>"
    )
    return envelope, header


async def test_a_soap_token_never_reaches_the_listener(
    make_relay: Any, http: aiohttp.ClientSession
) -> None:
    relay = await make_relay(EntityConfig("open", requires_client_authorization=False))
    soap = {"Content-Type": "text/xml; charset=utf-8"}
    async with RawListener(relay.ws_url, "open", relay.token("open")) as lst:
        envelope, header = soap_with_token(relay.token("open"))
        # On an entity that needs no token, and beside a token in the HTTP header.
        async with http.post(f"{relay.base_url}/open", data=envelope, headers=soap) as resp:
            assert resp.status == 200
        both = {**soap, "ServiceBusAuthorization": relay.token("open")}
        async with http.post(f"{relay.base_url}/open", data=envelope, headers=both) as resp:
            assert resp.status == 200
        big = envelope.replace(b"<Ping xmlns='urn:x'/>", b"<Ping xmlns='urn:x'>" + b"x" * 100_000 + b"</Ping>")
        async with http.post(f"{relay.base_url}/open", data=big, headers=both) as resp:
            assert resp.status == 200  # over 64 KiB: read for the scan, sent address-only
    bodies = [r.body for r in lst.received]
    assert bodies == [envelope.replace(header, b"")] * 2 + [big.replace(header, b"")]


def test_error_reason_phrases_carry_no_line_breaks() -> None:
    state = RelayState.of(make_namespace())
    request = SimpleNamespace(method="GET", path="/$hc/x", host="127.0.0.1", headers={})
    answer = error_answer(ListenerRejected(418, "no\r\nInjected: yes\tthanks"), request, state, "t1")
    status, reason, body = answer.status, answer.reason, answer.body
    assert status == 418
    assert reason is not None and "\r" not in reason and "\n" not in reason
    assert b"Injected" in body  # the full text still reaches the sender, escaped in the body


@pytest.mark.parametrize(
    ("sender", "listener", "sender_gets", "listener_gets"),
    [
        (["chat.v2", "chat.v1"], None, "chat.v2", None),  # the listener leaves it to the relay
        (["chat.v2", "chat.v1"], ["chat.v1"], "chat.v1", "chat.v1"),
        (["chat.v2"], ["other"], None, None),  # nothing in common: neither side gets one
        (None, ["chat.v1"], None, None),  # the sender asked for none
    ],
)
async def test_each_websocket_side_only_gets_a_subprotocol_it_offered(
    arelay: RelayHandle, sender: list[str] | None, listener: list[str] | None,
    sender_gets: str | None, listener_gets: str | None,
) -> None:
    import json

    import websockets

    control = await websockets.connect(
        f"{arelay.ws_url}/$hc/chat?sb-hc-action=listen",
        additional_headers={"ServiceBusAuthorization": arelay.token("chat")},
    )

    async def accept() -> str | None:
        address = json.loads(await control.recv())["accept"]["address"]
        async with websockets.connect(address, subprotocols=listener) as ws:  # type: ignore[arg-type]
            await ws.send(await ws.recv())
            return ws.subprotocol

    accepted = asyncio.create_task(accept())
    async with websockets.connect(
        f"{arelay.ws_url}/$hc/chat?sb-hc-action=connect", subprotocols=sender,  # type: ignore[arg-type]
        additional_headers={"ServiceBusAuthorization": arelay.token("chat")},
    ) as ws:
        assert ws.subprotocol == sender_gets
        await ws.send("ping")
        assert await ws.recv() == "ping"
    assert await asyncio.wait_for(accepted, 5) == listener_gets
    await control.close()


def test_entity_paths_are_at_most_260_characters() -> None:
    from relay.exceptions import BadRequest
    from relay.routing import normalize_path

    assert normalize_path("/" + "a" * 260 + "/") == "a" * 260
    with pytest.raises(BadRequest, match="longer than 260"):
        normalize_path("a" * 261)


def test_failure_limiter_keeps_a_bounded_table_forgetting_the_oldest_first() -> None:
    from relay.routing import FailureLimiter

    now = [0.0]
    limiter = FailureLimiter(burst=1, per_second=0.001, max_clients=3, clock=lambda: now[0])
    for client in ("a", "b", "c", "a", "d"):  # "a" failed again after "b": "b" is the oldest
        limiter.record_failure(client)
    assert len(limiter) == 3
    assert limiter.allowed("b")  # forgotten: starts with a full bucket
    assert not limiter.allowed("a") and not limiter.allowed("c") and not limiter.allowed("d")


async def test_a_client_changing_its_token_on_every_attempt_is_throttled(arelay: RelayHandle) -> None:
    import websockets
    from websockets.exceptions import InvalidStatus

    async def status(token: str) -> int:
        with pytest.raises(InvalidStatus) as info:
            await websockets.connect(
                f"{arelay.ws_url}/$hc/flood?sb-hc-action=listen",
                additional_headers={"ServiceBusAuthorization": token},
            )
        return info.value.response.status_code

    from relay.routing import FailureLimiter

    arelay.server.state.address_limiter = FailureLimiter(burst=100, per_second=0.001)  # no refill
    statuses = [await status(f"SharedAccessSignature sr=x&sig=bad{n}&se=1&skn=k") for n in range(110)]
    assert statuses[:100] == [401] * 100  # a fresh token each time: the per-token bucket never runs dry
    assert set(statuses[100:]) == {429}
    # Other addresses are not held back.
    async with websockets.connect(
        f"{arelay.ws_url}/$hc/flood?sb-hc-action=listen", local_addr=("127.0.0.2", 0),
        additional_headers={"ServiceBusAuthorization": arelay.token("flood")},
    ) as ws:
        assert ws.state.name == "OPEN"


def test_rendezvous_ids_stay_unique_and_192_bits_across_batches() -> None:
    import base64

    from relay.routing import RandomIds

    make = RandomIds()
    ids = [make() for _ in range(64 * 5 + 3)]  # several urandom batches
    assert len(set(ids)) == len(ids)
    assert all(len(base64.urlsafe_b64decode(i)) == 24 for i in ids)
