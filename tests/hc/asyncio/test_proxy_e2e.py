"""The SDK through real HTTP proxies (squid, tinyproxy): tunnels, credentials, refusals.

Every socket of ours (the listener's control channel, its rendezvous sockets, the
client's WebSocket) goes through the proxy's CONNECT; the proxies' own logs prove it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from hc.asyncio import (
    HybridConnectionClient,
    HybridConnectionListener,
    ProxyAuthenticationRequiredError,
    ProxyError,
    ProxyRefusedError,
    ProxyUnreachableError,
    RelayedHttpListenerContext,
    RelayUnreachableError,
    TokenProvider,
)
from tests.support.certs import self_signed
from tests.support.proxies import HttpProxy, clear_proxy_environment, squid, tinyproxy
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayFactory, RelayHandle

TOKENS = TokenProvider.create_shared_access_signature_token_provider(TEST_KEY_NAME, TEST_KEY)
BIG = 200 * 1024  # over the inline limit: the request goes by a rendezvous socket


@pytest.fixture(scope="module")
def squid_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpProxy]:
    with squid(tmp_path_factory.mktemp("squid")) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def guarded_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpProxy]:
    with tinyproxy(tmp_path_factory.mktemp("tinyproxy"), users={"alice": "s3cret"}) as proxy:
        yield proxy


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxy_environment(monkeypatch)


async def echo(context: RelayedHttpListenerContext) -> None:
    await context.response.write(await context.request.read())


async def _round_trip(relay: RelayHandle, entity: str, proxy: object,
                      trust: ssl.SSLContext | None = None) -> None:
    """A listener and a client through ``proxy``: inline, rendezvous, and a WebSocket."""
    base = f"{relay.base_url}/{entity}"
    listener = HybridConnectionListener(base, TOKENS, proxy=proxy, ssl_context=trust)  # type: ignore[arg-type]
    listener.request_handler = echo
    await listener.open()
    try:
        headers = {"ServiceBusAuthorization": relay.token(entity)}
        async with aiohttp.ClientSession(headers=headers) as http:
            for body in (b"small", b"x" * BIG):
                async with http.post(base, data=body, ssl=trust or True) as answer:
                    assert answer.status == 200 and await answer.read() == body
        client = HybridConnectionClient(base, TOKENS, proxy=proxy, ssl_context=trust)  # type: ignore[arg-type]
        async with await client.create_connection() as sent:
            taken = await asyncio.wait_for(listener.accept_connection(), 10)
            assert taken is not None
            await sent.write(b"through the tunnel")
            assert await taken.read() == b"through the tunnel"
            await taken.close()
    finally:
        await listener.close()


def _connects(proxy: HttpProxy, port: int) -> int:
    return proxy.log().count(f"CONNECT 127.0.0.1:{port}")


async def test_everything_goes_through_squid(arelay: RelayHandle, squid_proxy: HttpProxy) -> None:
    await _round_trip(arelay, "via-squid", squid_proxy.url)
    await asyncio.sleep(0)
    # squid logs a tunnel when it ends: the control channel, the rendezvous and the client's.
    for _ in range(100):
        if _connects(squid_proxy, arelay.port) >= 3:
            break
        await asyncio.sleep(0.05)
    assert _connects(squid_proxy, arelay.port) >= 3, squid_proxy.log()


async def test_wss_runs_tls_to_the_relay_inside_the_tunnel(
    tmp_path: Path, make_relay: RelayFactory, guarded_proxy: HttpProxy
) -> None:
    cert, key = self_signed(tmp_path)
    relay = await make_relay(tls_cert=cert, tls_key=key)
    trust = ssl.create_default_context(cafile=cert)
    before = _connects(guarded_proxy, relay.port)
    await _round_trip(relay, "secure", guarded_proxy.url_with("alice", "s3cret"), trust)
    assert _connects(guarded_proxy, relay.port) - before >= 3


async def test_the_environment_names_the_proxy_and_no_proxy_bypasses_it(
    arelay: RelayHandle, guarded_proxy: HttpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", guarded_proxy.url_with("alice", "s3cret"))
    before = _connects(guarded_proxy, arelay.port)
    await _round_trip(arelay, "from-env", True)
    through = _connects(guarded_proxy, arelay.port)
    assert through - before >= 3
    monkeypatch.setenv("NO_PROXY", "localhost, 127.0.0.0/8")
    await _round_trip(arelay, "bypassed", True)
    assert _connects(guarded_proxy, arelay.port) == through
    monkeypatch.delenv("NO_PROXY")
    await _round_trip(arelay, "not-at-all", None)  # proxy=None: direct despite HTTP_PROXY
    assert _connects(guarded_proxy, arelay.port) == through


async def test_wrong_credentials_are_a_permanent_407_and_the_listener_gives_up_at_once(
    arelay: RelayHandle, guarded_proxy: HttpProxy
) -> None:
    for url, status in ((guarded_proxy.url, 407), (guarded_proxy.url_with("alice", "wrong"), 401)):
        listener = HybridConnectionListener(f"{arelay.base_url}/denied", TOKENS, proxy=url)
        gave_up: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        retried: list[BaseException | None] = []
        listener.offline = gave_up.set_result
        listener.connecting = retried.append
        task = listener.start()
        error = await asyncio.wait_for(gave_up, 10)
        await asyncio.wait_for(task, 5)  # the runner ended: no retry storm
        assert retried == []
        assert isinstance(error, ProxyAuthenticationRequiredError)
        assert error.status == status and error.permanent  # tinyproxy: 401 for wrong ones
        assert not isinstance(error, RelayUnreachableError)  # a proxy's error, not the relay's
        assert f"proxy {guarded_proxy.url}" in str(error) and "wrong" not in str(error)
        assert "s3cret" not in repr(listener.connector)


async def test_a_port_the_proxy_forbids_is_a_permanent_403(
    tmp_path: Path, arelay: RelayHandle
) -> None:
    with tinyproxy(tmp_path, connect_ports=[443]) as strict:
        client = HybridConnectionClient(f"{arelay.base_url}/any", TOKENS, proxy=strict.url)
        with pytest.raises(ProxyRefusedError) as caught:
            await client.create_connection()
    assert caught.value.status == 403 and caught.value.permanent
    assert caught.value.target == f"127.0.0.1:{arelay.port}"


async def test_a_relay_the_proxy_cannot_reach_is_a_transient_refusal(
    squid_proxy: HttpProxy, unused_port: int
) -> None:
    client = HybridConnectionClient(f"http://127.0.0.1:{unused_port}/gone", TOKENS, proxy=squid_proxy.url)
    with pytest.raises(ProxyRefusedError) as caught:
        await client.create_connection()
    assert caught.value.status == 503 and not caught.value.permanent


async def test_an_unreachable_proxy_is_named_and_retried(arelay: RelayHandle, unused_port: int) -> None:
    listener = HybridConnectionListener(f"{arelay.base_url}/retry", TOKENS,
                                        proxy=f"http://127.0.0.1:{unused_port}")
    retried: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
    listener.connecting = lambda error: retried.done() or retried.set_result(error)
    listener.start()
    try:
        error = await asyncio.wait_for(retried, 10)
    finally:
        await listener.close()
    assert isinstance(error, ProxyUnreachableError) and not error.permanent
    assert isinstance(error, ProxyError) and f"proxy http://127.0.0.1:{unused_port}" in str(error)


def test_a_bad_proxy_url_is_refused_where_it_is_given() -> None:
    with pytest.raises(ValueError, match="only http://"):
        HybridConnectionClient("http://127.0.0.1:1/x", TOKENS, proxy="socks5://u:secret@h:1")


async def test_a_bad_proxy_in_the_environment_is_a_permanent_proxy_error(
    monkeypatch: pytest.MonkeyPatch, unused_port: int
) -> None:
    monkeypatch.setenv("https_proxy", "ftp://nope")
    client = HybridConnectionClient(f"https://127.0.0.1:{unused_port}/x", TOKENS)
    with pytest.raises(ProxyError, match="HTTPS_PROXY") as caught:
        await client.create_connection()
    assert caught.value.permanent


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
