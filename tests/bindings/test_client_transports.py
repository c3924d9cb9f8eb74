"""The sync (requests) and async (httpx) zeep transports share one auth and one error mapping.

End to end against a real relay (``relay`` fixture) and a real host; the auth
callable and the mapping are also checked alone, with each library's own
request objects.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import requests
import zeep

from bindings.binding import BasicHttpRelayBinding, WS2007HttpRelayBinding
from bindings.client_auth import AUTH_HEADER, Audience, RelayAuth
from bindings.client_errors import RequestKind, library_errors, raise_for_answer
from bindings.exceptions import RelayTransportError
from bindings.host import RelayServiceHost
from bindings.tokens import SecurityToken, TokenProvider
from bindings.zeep_async import relay_async_client
from bindings.zeep_transport import relay_client
from hc.sas import SasToken
from samples.payroll.services import payroll12_app, payroll_app
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayThread

#: Calls an operation with either client; returns what zeep returned.
Caller = Callable[..., Awaitable[Any]]


class RecordingProvider(TokenProvider):
    """Signs real tokens with ``key`` and records each audience it was asked for."""

    def __init__(self, key: str = TEST_KEY) -> None:
        self.inner = TokenProvider.shared_access_key(TEST_KEY_NAME, key)
        self.audiences: list[str] = []

    def get_token(self, audience: str) -> SecurityToken:
        self.audiences.append(audience)
        return self.inner.get_token(audience)


async def call_sync(wsdl: str, operation: str, *args: Any, **options: Any) -> Any:
    """relay_client in a worker thread (it blocks), the operation called there too."""

    def run() -> Any:
        client = relay_client(wsdl, **options)
        return getattr(client.service, operation)(*args)

    return await asyncio.to_thread(run)


async def call_async(wsdl: str, operation: str, *args: Any, **options: Any) -> Any:
    client = await asyncio.to_thread(relay_async_client, wsdl, **options)  # loads the WSDL
    async with client:
        return await getattr(client.service, operation)(*args)


@pytest.fixture(params=["requests", "httpx"])
def call(request: pytest.FixtureRequest) -> Caller:
    return call_sync if request.param == "requests" else call_async


@pytest.fixture
def payroll(relay: RelayThread) -> Iterator[str]:
    """The payroll service hosted through the relay; yields its WSDL address."""
    provider = TokenProvider.shared_access_key(TEST_KEY_NAME, TEST_KEY)
    host = RelayServiceHost(payroll_app(), f"sb://127.0.0.1:{relay.port}/payroll",
                            token_provider=provider)
    with host:
        yield f"{relay.base_url}/payroll?wsdl"


# -- against the relay --------------------------------------------------------


async def test_the_relay_takes_each_transports_token(
    relay: RelayThread, payroll: str, call: Caller
) -> None:
    provider = RecordingProvider()
    assert await call(payroll, "GetSalary", 7, token_provider=provider) == Decimal("5120.50")
    # the WSDL (and its XSD) fetches and the call, each with a fresh token for the entity
    assert len(provider.audiences) >= 2
    assert set(provider.audiences) == {f"{relay.base_url}/payroll"}


async def test_a_token_in_the_soap_header_also_reaches_the_service(
    relay: RelayThread, call: Caller
) -> None:
    provider = TokenProvider.shared_access_key(TEST_KEY_NAME, TEST_KEY)
    binding = WS2007HttpRelayBinding()
    host = RelayServiceHost(payroll12_app(), f"sb://127.0.0.1:{relay.port}/payroll12",
                            binding=binding, token_provider=provider)
    with host:
        salary = await call(f"{relay.base_url}/payroll12?wsdl", "GetSalary", 7,
                            binding=binding, token_provider=RecordingProvider())
    assert salary == Decimal("5120.50")


async def test_a_refused_token_is_a_transport_error_with_the_relays_reason(
    payroll: str, call: Caller
) -> None:
    with pytest.raises(RelayTransportError) as caught:
        await call(payroll, "GetSalary", 7, token_provider=RecordingProvider(key="d3Jvbmc="))
    error = caught.value
    assert error.status_code == 401 and error.code is not None
    assert error.tracking_id and f"TrackingId:{error.tracking_id}" in str(error)


async def test_no_token_at_all_is_refused_too(payroll: str, call: Caller) -> None:
    binding = BasicHttpRelayBinding(client_authentication="none")
    with pytest.raises(RelayTransportError) as caught:
        await call(payroll, "GetSalary", 7, binding=binding)
    assert caught.value.status_code == 401


async def test_a_call_the_service_refuses_is_a_zeep_fault(payroll: str, call: Caller) -> None:
    with pytest.raises(zeep.exceptions.Fault, match="No employee has the id 99") as caught:
        await call(payroll, "GetSalary", 99, token_provider=RecordingProvider())
    assert not isinstance(caught.value, RelayTransportError)


async def test_an_unreachable_relay_is_a_transport_error_without_a_status(call: Caller) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(RelayTransportError, match="cannot fetch") as caught:
        await call(f"http://127.0.0.1:{port}/payroll?wsdl", "GetSalary", 7,
                   token_provider=RecordingProvider())
    assert caught.value.status_code == 0
    assert isinstance(caught.value.__cause__, (requests.RequestException, httpx.HTTPError))


# -- the shared parts alone ---------------------------------------------------


@pytest.mark.parametrize("library", ["requests", "httpx"])
@pytest.mark.parametrize(
    ("method", "url", "skip_posts", "audience"),
    [
        ("GET", "http://relay:9350/payroll?wsdl", False, "http://relay:9350/payroll"),
        ("POST", "http://relay:9350/payroll/sub", False, "http://relay:9350/payroll"),
        ("POST", "http://relay:9350/payroll", True, None),  # the token is in the SOAP header
        ("GET", "http://elsewhere:80/types.xsd", False, None),  # not the relay: no token
    ],
)  # fmt: skip
def test_one_auth_callable_for_both_libraries(
    library: str, method: str, url: str, skip_posts: bool, audience: str | None
) -> None:
    provider = RecordingProvider()
    auth = RelayAuth(provider, Audience("payroll", ["http://relay:9350/payroll?wsdl"]),
                     skip_posts=skip_posts)
    request: Any = (
        requests.Request(method, url).prepare() if library == "requests"
        else httpx.Request(method, url)
    )
    assert auth(request) is request
    token = request.headers.get(AUTH_HEADER)
    if audience is None:
        assert token is None and provider.audiences == []
    else:
        assert unquote(SasToken.parse(token).raw_resource) == audience


def test_the_error_mapping() -> None:
    json_error = b'{"error": {"code": "NoListener", "message": "nobody", "trackingId": "t-1"}}'
    for kind in RequestKind:
        raise_for_answer(kind, "http://r/p", 202, None, lambda: b"")  # fine: never read
        with pytest.raises(RelayTransportError) as caught:
            raise_for_answer(kind, "http://r/p", 502, "application/json", lambda: json_error)
        assert (caught.value.status_code, caught.value.code) == (502, "NoListener")
    fault = b"<not-read/>"
    raise_for_answer(RequestKind.CALL, "http://r/p", 500, "text/xml", lambda: fault)  # zeep's
    with pytest.raises(RelayTransportError, match="answered HTTP 500"):
        raise_for_answer(RequestKind.FETCH, "http://r/p?wsdl", 500, "text/xml", lambda: fault)
    with pytest.raises(RelayTransportError, match="cannot reach http://r/p: boom") as caught:
        with library_errors(RequestKind.CALL, "http://r/p", (OSError, ValueError)):
            raise ValueError("boom")
    assert caught.value.status_code == 0 and isinstance(caught.value.__cause__, ValueError)
