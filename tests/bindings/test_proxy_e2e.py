"""The bindings through real HTTP proxies: a host's listeners, the zeep clients, the errors.

squid (open) and tinyproxy (Basic credentials) run on 127.0.0.1; their logs show
that the host's connections and the clients' requests went through them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bindings import (
    HostStatus,
    NetTcpRelayBinding,
    RelayServiceHost,
    TokenProvider,
    relay_async_client,
    relay_client,
)
from bindings.exceptions import ConfigurationError, ProxyAuthenticationFailed, ProxyFailed
from bindings.relay_errors import ProxyTransportError, RelayTransportError
from samples.payroll.services import PayrollProgress, payroll_app, payroll_run_app
from tests.support.proxies import HttpProxy, clear_proxy_environment, squid, tinyproxy
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayThread

TOKENS = TokenProvider.shared_access_key(TEST_KEY_NAME, TEST_KEY)


@pytest.fixture(scope="module")
def open_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpProxy]:
    with squid(tmp_path_factory.mktemp("squid")) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def guarded_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpProxy]:
    with tinyproxy(tmp_path_factory.mktemp("tinyproxy"), users={"bob": "pa55"}) as proxy:
        yield proxy


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxy_environment(monkeypatch)


def _host(relay: RelayThread, entity: str, proxy: object) -> RelayServiceHost:
    return RelayServiceHost(payroll_app(), f"sb://127.0.0.1:{relay.port}/{entity}",
                            token_provider=TOKENS, proxy=proxy, open_timeout=15)  # type: ignore[arg-type]


def test_a_host_and_a_client_both_behind_squid(relay: RelayThread, open_proxy: HttpProxy) -> None:
    with _host(relay, "payroll-squid", open_proxy.url) as host:
        assert host.status is HostStatus.ONLINE
        client = relay_client(f"{relay.base_url}/payroll-squid?wsdl", token_provider=TOKENS,
                              proxy=open_proxy.url, operation_timeout=15)
        assert client.service.GetSalary(7) == Decimal("5120.50")
    log = open_proxy.log()
    assert f"CONNECT 127.0.0.1:{relay.port}" in log  # the host's control channel
    assert f"POST {relay.base_url}/payroll-squid" in log  # the client's call (plain http)


async def test_the_async_client_goes_through_the_environment_proxy(
    relay: RelayThread, guarded_proxy: HttpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", guarded_proxy.url_with("bob", "pa55"))
    with _host(relay, "payroll-env", True):  # the host reads the environment too
        client = relay_async_client(f"{relay.base_url}/payroll-env?wsdl", token_provider=TOKENS,
                                    operation_timeout=15)
        async with client:
            assert await client.service.GetSalary(7) == Decimal("5120.50")
    log = guarded_proxy.log()
    assert f"CONNECT 127.0.0.1:{relay.port}" in log
    assert f"POST {relay.base_url}/payroll-env" in log


def test_a_host_with_wrong_proxy_credentials_goes_offline_with_a_named_error(
    relay: RelayThread, guarded_proxy: HttpProxy
) -> None:
    host = _host(relay, "payroll-denied", guarded_proxy.url)
    with pytest.raises(ProxyAuthenticationFailed) as caught:
        host.open(timeout=15)
    error = caught.value
    assert error.status == 407 and error.permanent and error.proxy == guarded_proxy.url
    assert "relay refused" not in str(error) and f"proxy {guarded_proxy.url}" in str(error)
    assert host.status is HostStatus.CLOSED


def test_an_unreachable_proxy_is_a_proxy_failure_not_a_relay_one(relay: RelayThread) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host = _host(relay, "payroll-noproxy", f"http://127.0.0.1:{port}")
    host.open_timeout = 2
    with pytest.raises(Exception) as caught:
        host.open()
    cause = caught.value.__cause__ or caught.value
    assert isinstance(cause, ProxyFailed) and cause.status == 0 and not cause.permanent
    with pytest.raises(ProxyTransportError) as failed:
        relay_client(f"{relay.base_url}/payroll-noproxy?wsdl", token_provider=TOKENS,
                     proxy=f"http://127.0.0.1:{port}")
    assert failed.value.status_code == 0 and "HTTP proxy could not be used" in str(failed.value)


def test_clients_without_proxy_credentials_get_a_407_proxy_error(
    relay: RelayThread, guarded_proxy: HttpProxy
) -> None:
    with pytest.raises(ProxyTransportError) as caught:
        relay_client(f"{relay.base_url}/payroll?wsdl", token_provider=TOKENS, proxy=guarded_proxy.url)
    assert caught.value.status_code == 407
    assert isinstance(caught.value, RelayTransportError)  # still a transport error for zeep users
    https = f"https://127.0.0.1:{relay.port}/payroll?wsdl"  # a tunnel: the 407 answers CONNECT
    with pytest.raises(ProxyTransportError) as tunnel:
        relay_client(https, token_provider=TOKENS, proxy=guarded_proxy.url)
    assert tunnel.value.status_code == 407


def test_a_bad_proxy_url_is_a_configuration_error(relay: RelayThread, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="only http://"):
        _host(relay, "x", "socks5://proxy:1080")


def _parks(client: Any, timeout: float = 5.0) -> bool:
    """Whether the sync client's loop thread parks (its next call then uses the lane)."""
    deadline = time.monotonic() + timeout
    while not client.transport.lane.parked:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_a_nettcp_session_and_its_host_both_behind_squid(
    relay: RelayThread, open_proxy: HttpProxy
) -> None:
    """The NetTcp binding's session WebSocket (the SDK client) and its WSDL fetch take the
    proxy given to relay_client, as the host's control channel takes its own."""
    progress: list[tuple[int, int, str]] = []

    class ShowProgress:
        def Progress(self, done: int, total: int, employee: str) -> None:
            progress.append((done, total, employee))

    address = f"sb://127.0.0.1:{relay.port}/payroll-run-squid"
    with RelayServiceHost(payroll_run_app(), address, binding=NetTcpRelayBinding(),
                          token_provider=TOKENS, proxy=open_proxy.url, open_timeout=15):
        client = relay_client(f"{relay.base_url}/payroll-run-squid?wsdl",
                              binding=NetTcpRelayBinding(), token_provider=TOKENS,
                              proxy=open_proxy.url, callback=(PayrollProgress, ShowProgress()))
        try:
            total = client.service.RunPayroll("2026-11")
            assert _parks(client)
            again = client.service.RunPayroll("2026-11")  # on the calling thread (the lane)
        finally:
            client.transport.close()
    assert total > 0 and again == total and progress and progress[-1][0] == progress[-1][1]
    assert client.transport.lane.calls >= 1  # the lane's I/O went through the tunnel too
    log = open_proxy.log()
    assert f"GET {relay.base_url}/payroll-run-squid" in log  # the WSDL fetch (squid strips the query)
    assert log.count(f"CONNECT 127.0.0.1:{relay.port}") >= 2  # the host's channel, the session
