"""relay_async_client / AsyncRelayTransport against a stand-in relay on 127.0.0.1:0."""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import zeep

from bindings.binding import BasicHttpRelayBinding, NetOnewayRelayBinding, WS2007HttpRelayBinding
from bindings.exceptions import RelayTransportError
from bindings.spyne_host import SpyneRelayApp, spyne_wsgi
from bindings.tokens import SecurityToken, TokenProvider
from bindings.zeep_async import relay_async_client
from hc.sas import SasToken
from samples.payroll.services import Recorder, payroll12_app, payroll_app, timesheet_app
from tests.bindings.http_fake_relay import Canned, FakeRelay, fake_relay, ok_instead_of_accepted

KEY_NAME = "RootManageSharedAccessKey"
KEY = "dGVzdGtleS1mb3ItdGVzdHMtb25seS0wMDAwMDAwMA=="


class CountingProvider(TokenProvider):
    def __init__(self) -> None:
        self.inner = TokenProvider.shared_access_key(KEY_NAME, KEY)
        self.audiences: list[str] = []

    def get_token(self, audience: str) -> SecurityToken:
        self.audiences.append(audience)
        return self.inner.get_token(audience)


def audience_of(token: str) -> str:
    return unquote(SasToken.parse(token).raw_resource)


@pytest.fixture
def apps() -> Iterator[dict[str, SpyneRelayApp]]:
    hosted = {
        "payroll": spyne_wsgi(payroll_app(), BasicHttpRelayBinding()),
        "payroll12": spyne_wsgi(payroll12_app(), WS2007HttpRelayBinding()),
    }
    yield hosted
    for app in hosted.values():
        app.close()


@pytest.fixture
def relay(apps: dict[str, SpyneRelayApp]) -> Iterator[FakeRelay]:
    with fake_relay(dict(apps)) as running:
        yield running


async def test_token_in_the_http_header_on_every_request(relay: FakeRelay) -> None:
    provider = CountingProvider()
    async with relay_async_client(
        f"{relay.base_url}/payroll?wsdl", token_provider=provider
    ) as client:
        assert await client.service.GetSalary(7) == Decimal("5120.50")
        assert len(await client.service.ListEmployees()) == 3
    get, post = relay.requests[0], relay.requests[-1]
    assert (get.method, get.query, post.method) == ("GET", "wsdl", "POST")
    for request in relay.requests:
        assert audience_of(request.headers["Servicebusauthorization"]) == (
            f"{relay.base_url}/payroll"
        )
        assert request.soap_token is None
    assert len(provider.audiences) == len(relay.requests)


async def test_ws2007_sends_soap12_addressing_and_the_soap_header_token(relay: FakeRelay) -> None:
    async with relay_async_client(
        f"{relay.base_url}/payroll12?wsdl",
        binding=WS2007HttpRelayBinding(),
        token_provider=CountingProvider(),
    ) as client:
        assert await client.service.GetSalary(8) == Decimal("5480.00")
    get, post = relay.requests[0], relay.requests[-1]
    assert "Servicebusauthorization" in get.headers
    assert "Servicebusauthorization" not in post.headers
    assert post.headers["Content-Type"].startswith("application/soap+xml")
    assert post.soap_token is not None
    assert audience_of(post.soap_token) == f"{relay.base_url}/payroll12"
    assert b"http://www.w3.org/2005/08/addressing" in post.body


async def test_connection_string_supplies_the_token(relay: FakeRelay) -> None:
    cs = f"Endpoint=sb://127.0.0.1/;SharedAccessKeyName={KEY_NAME};SharedAccessKey={KEY}"
    async with relay_async_client(
        f"{relay.base_url}/payroll?wsdl", connection_string=cs
    ) as client:
        assert await client.service.GetSalary(12) == Decimal("4975.25")
    assert audience_of(relay.requests[-1].headers["Servicebusauthorization"]).endswith("/payroll")


async def test_service_and_relay_faults_are_zeep_faults(relay: FakeRelay) -> None:
    async with relay_async_client(f"{relay.base_url}/payroll?wsdl") as client:
        with pytest.raises(zeep.exceptions.Fault, match="No employee has the id 99"):
            await client.service.GetSalary(99)
        body = {"error": {"code": "NoListener", "message": "nobody", "trackingId": "trk-9"}}
        relay.routes["payroll"] = Canned(
            "502 Bad Gateway", "application/json", json.dumps(body).encode()
        )
        with pytest.raises(RelayTransportError) as caught:
            await client.service.GetSalary(7)
    assert (caught.value.status_code, caught.value.tracking_id) == (502, "trk-9")


def test_a_refused_wsdl_fetch_is_a_relay_transport_error() -> None:
    body = {"error": {"code": "EntityNotFound", "message": "no such entity", "trackingId": "t"}}
    canned = Canned("404 Not Found", "application/json", json.dumps(body).encode())
    with fake_relay({"gone": canned}) as relay, pytest.raises(RelayTransportError) as caught:
        relay_async_client(f"{relay.base_url}/gone?wsdl")
    assert (caught.value.status_code, caught.value.code) == (404, "EntityNotFound")


async def test_202_with_an_empty_body_returns_none(tmp_path: Path) -> None:
    recorder = Recorder()
    timesheets = spyne_wsgi(timesheet_app(recorder), NetOnewayRelayBinding())
    with fake_relay({"timesheet": timesheets}) as relay:
        async with relay_async_client(
            f"{relay.base_url}/timesheet?wsdl",
            binding=NetOnewayRelayBinding(),
            token_provider=CountingProvider(),
        ) as client:
            assert await client.service.SubmitTimesheet(7, Decimal("7.5")) is None
    timesheets.close(wait=True)
    assert recorder.lines == ["timesheet employee=7 hours=7.5"]


async def test_a_one_way_call_answered_200_with_an_empty_body_returns_none() -> None:
    # Mono's WCF answers one-way calls 200 with an empty body (.NET: 202)
    recorder = Recorder()
    timesheets = spyne_wsgi(timesheet_app(recorder), BasicHttpRelayBinding())
    with fake_relay({"timesheet": ok_instead_of_accepted(timesheets)}) as relay:
        async with relay_async_client(
            f"{relay.base_url}/timesheet?wsdl", token_provider=CountingProvider(),
        ) as client:
            assert await client.service.SubmitTimesheet(7, Decimal("7.5")) is None
    timesheets.close(wait=True)
    assert recorder.lines == ["timesheet employee=7 hours=7.5"]


async def test_tokens_never_reach_the_logs(
    relay: FakeRelay, caplog: pytest.LogCaptureFixture
) -> None:
    provider = CountingProvider()
    with caplog.at_level(logging.DEBUG):
        async with relay_async_client(
            f"{relay.base_url}/payroll12?wsdl",
            binding=WS2007HttpRelayBinding(),
            token_provider=provider,
        ) as client:
            await client.service.GetSalary(7)
    signature = SasToken.parse(provider.inner.get_token(f"{relay.base_url}/payroll12").text)
    for record in caplog.records:
        message = record.getMessage()
        assert signature.signature not in message and "RelayAccessToken" not in message


def test_without_httpx_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_httpx(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "httpx":
            raise ImportError("No module named 'httpx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_httpx)
    with pytest.raises(ImportError, match="pip install 'httpx"):
        relay_async_client("http://127.0.0.1:1/payroll?wsdl")


def test_transport_is_not_accepted() -> None:
    with pytest.raises(TypeError, match="transport"):
        relay_async_client("http://127.0.0.1:1/x?wsdl", transport=object())
