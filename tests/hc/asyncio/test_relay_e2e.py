"""The SDK against a real relay: listener, client, HTTP by inline and rendezvous."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import aiohttp
import pytest

from hc.asyncio import (
    AuthorizationFailedError,
    EndpointNotFoundError,
    HybridConnectionClient,
    HybridConnectionListener,
    RelayedHttpListenerContext,
    TokenProvider,
)
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayHandle

PROVIDER = TokenProvider.create_shared_access_signature_token_provider(TEST_KEY_NAME, TEST_KEY)


@pytest.fixture
async def http(arelay: RelayHandle) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"ServiceBusAuthorization": arelay.token("echo")}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield session


async def echo(context: RelayedHttpListenerContext) -> None:
    request, response = context.request, context.response
    body = await request.read()
    response.headers.append(("X-Method", request.method))
    response.headers.append(("X-Target", request.target))
    response.headers.append(("Content-Type", request.header("Content-Type") or "text/plain"))
    await response.write(body[::-1])


@pytest.fixture
async def listener(arelay: RelayHandle) -> AsyncIterator[HybridConnectionListener]:
    listener = HybridConnectionListener(f"{arelay.base_url}/echo", PROVIDER)
    listener.request_handler = echo
    await listener.open()
    yield listener
    await listener.close()


async def test_an_inline_request_reaches_the_handler_and_its_answer_comes_back(
    arelay: RelayHandle, listener: HybridConnectionListener, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{arelay.base_url}/echo/x?y=1", data=b"hello",
                         headers={"Content-Type": "text/x-test"}) as reply:
        assert reply.status == 200
        assert await reply.read() == b"olleh"
        assert reply.headers["X-Method"] == "POST"
        assert reply.headers["X-Target"] == "/echo/x?y=1"
        assert reply.headers["Content-Type"] == "text/x-test"


@pytest.mark.parametrize("size", [64 * 1024 + 1, 3 * 1024 * 1024 + 5])
async def test_large_bodies_travel_by_rendezvous_both_ways(
    arelay: RelayHandle, listener: HybridConnectionListener, http: aiohttp.ClientSession, size: int
) -> None:
    body = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    async with http.post(f"{arelay.base_url}/echo", data=io.BytesIO(body)) as reply:
        assert reply.status == 200
        assert await reply.read() == body[::-1]


async def test_a_client_stream_reaches_accept_connection_both_ways(
    arelay: RelayHandle, listener: HybridConnectionListener
) -> None:
    client = HybridConnectionClient(f"{arelay.base_url}/echo", PROVIDER)
    async with await client.create_connection(subprotocols=("chat",)) as sent:
        taken = await asyncio.wait_for(listener.accept_connection(), 5)
        assert taken is not None
        assert taken.subprotocol == "chat" and sent.subprotocol == "chat"
        await sent.write(b"ping")
        assert await taken.read() == b"ping"
        await taken.write("pong")
        assert await sent.receive() == "pong"
        await taken.close()
        assert await sent.read() == b""
        assert sent.close_code == 1000


async def test_a_wrong_key_is_an_authorization_failure(arelay: RelayHandle) -> None:
    wrong = TokenProvider.create_shared_access_signature_token_provider(TEST_KEY_NAME, "nope")
    listener = HybridConnectionListener(f"{arelay.base_url}/echo", wrong)
    with pytest.raises(AuthorizationFailedError) as caught:
        await listener.open()
    assert caught.value.status == 401


async def test_a_client_without_a_listener_gets_endpoint_not_found(arelay: RelayHandle) -> None:
    client = HybridConnectionClient(f"{arelay.base_url}/nobody", PROVIDER)
    with pytest.raises(EndpointNotFoundError):
        await client.create_connection()


async def test_a_client_with_a_wrong_key_is_refused_401(
    arelay: RelayHandle, listener: HybridConnectionListener
) -> None:
    wrong = TokenProvider.create_shared_access_signature_token_provider(TEST_KEY_NAME, "nope")
    with pytest.raises(AuthorizationFailedError) as caught:
        await HybridConnectionClient(f"{arelay.base_url}/echo", wrong).create_connection()
    assert caught.value.status == 401 and caught.value.permanent


async def test_a_listener_that_gives_up_calls_offline_with_the_reason(arelay: RelayHandle) -> None:
    wrong = TokenProvider.create_shared_access_signature_token_provider(TEST_KEY_NAME, "nope")
    listener = HybridConnectionListener(f"{arelay.base_url}/echo", wrong)
    gone: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
    listener.offline = gone.set_result
    await asyncio.wait_for(listener.start(), 10)  # the runner ends: a permanent refusal
    assert isinstance(await gone, AuthorizationFailedError)
    assert listener.last_error is gone.result() and not listener.is_online


async def test_a_handler_failing_mid_stream_breaks_the_response_off(
    arelay: RelayHandle, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    async def half(context: RelayedHttpListenerContext) -> None:
        await context.response.write(b"x" * 100_000)  # past 64 KiB: the body streams
        raise RuntimeError("broke mid-stream")

    listener = HybridConnectionListener(f"{arelay.base_url}/echo", PROVIDER)
    listener.request_handler = half
    await listener.open()
    try:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with http.get(f"{arelay.base_url}/echo") as reply:
                assert reply.status == 200
                await reply.read()  # never whole: its socket was dropped
    finally:
        await listener.close()
    assert "broke mid-stream" in caplog.text
