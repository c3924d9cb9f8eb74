"""relay_client / RelayTransport against a stand-in relay on 127.0.0.1:0."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests
import zeep
from lxml import etree

from bindings.binding import (
    BasicHttpRelayBinding,
    NetOnewayRelayBinding,
    WS2007HttpRelayBinding,
)
from bindings.exceptions import BindingError, RelayTransportError
from bindings.settings import ENV_VAR
from bindings.spyne_host import SpyneRelayApp, spyne_wsgi
from bindings.tokens import SecurityToken, TokenProvider
from bindings.zeep_transport import Audience, relay_client
from hc.sas import SasToken
from samples.payroll.services import Recorder, payroll12_app, payroll_app, timesheet_app
from soap import ns
from soap.envelope import SoapVersion
from soap.fault import relay_error_envelope
from tests.bindings.http_fake_relay import Canned, FakeRelay, fake_relay, ok_instead_of_accepted

KEY_NAME = "RootManageSharedAccessKey"
KEY = "dGVzdGtleS1mb3ItdGVzdHMtb25seS0wMDAwMDAwMA=="


class CountingProvider(TokenProvider):
    """Signs real tokens and counts how often it was asked."""

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


def test_token_in_http_header_on_wsdl_fetch_and_post(relay: FakeRelay) -> None:
    provider = CountingProvider()
    client = relay_client(f"{relay.base_url}/payroll?wsdl", token_provider=provider)
    assert client.service.GetSalary(7) == Decimal("5120.50")
    get, post = relay.requests[0], relay.requests[-1]
    assert (get.method, get.query, post.method) == ("GET", "wsdl", "POST")
    for request in (get, post):
        token = request.headers["Servicebusauthorization"]
        assert audience_of(token) == f"{relay.base_url}/payroll"
        assert request.soap_token is None
    assert set(provider.audiences) == {f"{relay.base_url}/payroll"}
    assert len(provider.audiences) == len(relay.requests)  # asked every time: renewal is automatic


def test_token_in_soap_header_when_the_binding_says_so(relay: FakeRelay) -> None:
    binding = BasicHttpRelayBinding(token_in_soap_header=True)
    provider = CountingProvider()
    url = f"{relay.base_url}/payroll?wsdl"
    client = relay_client(url, binding=binding, token_provider=provider)
    employees = client.service.ListEmployees()
    assert [e.name for e in employees][:1] == ["Ada Lovelace"]
    get, post = relay.requests[0], relay.requests[-1]
    assert "Servicebusauthorization" in get.headers
    assert "Servicebusauthorization" not in post.headers
    assert post.soap_token is not None
    assert audience_of(post.soap_token) == f"{relay.base_url}/payroll"


def test_ws2007_uses_soap12_addressing_and_the_soap_header_token(relay: FakeRelay) -> None:
    client = relay_client(
        f"{relay.base_url}/payroll12?wsdl",
        binding=WS2007HttpRelayBinding(),
        token_provider=CountingProvider(),
    )
    assert client.service.GetSalary(8) == Decimal("5480.00")
    post = relay.requests[-1]
    assert post.headers["Content-Type"].startswith("application/soap+xml")
    root = etree.fromstring(post.body)
    assert root.findtext(f".//{{{ns.WSA}}}To") == f"{relay.base_url}/payroll12"
    assert root.findtext(f".//{{{ns.WSA}}}MessageID")
    assert post.soap_token is not None and "Servicebusauthorization" not in post.headers


def test_connection_string_supplies_the_token(relay: FakeRelay) -> None:
    cs = f"Endpoint=sb://127.0.0.1/;SharedAccessKeyName={KEY_NAME};SharedAccessKey={KEY}"
    client = relay_client(f"{relay.base_url}/payroll?wsdl", connection_string=cs)
    assert client.service.GetSalary(12) == Decimal("4975.25")
    assert audience_of(relay.requests[-1].headers["Servicebusauthorization"]).endswith("/payroll")


def test_no_provider_sends_no_token(relay: FakeRelay) -> None:
    client = relay_client(f"{relay.base_url}/payroll?wsdl")
    client.service.GetSalary(7)
    assert all("Servicebusauthorization" not in r.headers for r in relay.requests)


def env_cs(base_url: str) -> str:
    """A connection string for the relay at ``base_url`` (``sb://`` on loopback: no TLS)."""
    host = base_url.removeprefix("http://")
    return f"Endpoint=sb://{host}/;SharedAccessKeyName={KEY_NAME};SharedAccessKey={KEY}"


def test_the_environment_variable_supplies_the_token(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    cs = env_cs(relay.base_url)
    monkeypatch.setenv(ENV_VAR, cs + ";EntityPath=payroll12")  # the URL's entity wins
    client = relay_client(f"{relay.base_url}/payroll?wsdl")
    assert client.service.GetSalary(12) == Decimal("4975.25")
    for request in relay.requests:
        assert audience_of(request.headers["Servicebusauthorization"]) == f"{relay.base_url}/payroll"


def test_the_environment_variable_for_another_relay_is_not_used(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = int(relay.base_url.rpartition(":")[2])
    monkeypatch.setenv(ENV_VAR, env_cs(f"http://127.0.0.1:{port + 1}"))
    relay_client(f"{relay.base_url}/payroll?wsdl").service.GetSalary(7)
    assert all("Servicebusauthorization" not in r.headers for r in relay.requests)


def test_client_authentication_none_sends_no_token_unless_given_one(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    cs = env_cs(relay.base_url)
    monkeypatch.setenv(ENV_VAR, cs)
    url = f"{relay.base_url}/payroll?wsdl"
    for in_header in (False, True):
        binding = BasicHttpRelayBinding(client_authentication="none", token_in_soap_header=in_header)
        for client in (relay_client(url, binding=binding),
                       relay_client(url, binding=binding, connection_string=cs)):
            client.service.GetSalary(7)
    assert all("Servicebusauthorization" not in r.headers and r.soap_token is None
               for r in relay.requests)
    binding = BasicHttpRelayBinding(client_authentication="none")
    relay_client(url, binding=binding, token_provider=CountingProvider()).service.GetSalary(7)
    assert "Servicebusauthorization" in relay.requests[-1].headers


def test_a_relay_soap_fault_becomes_a_zeep_fault(relay: FakeRelay) -> None:
    client = relay_client(f"{relay.base_url}/payroll?wsdl", token_provider=CountingProvider())
    relay.routes["payroll"] = Canned(
        "502 Bad Gateway",
        "text/xml; charset=utf-8",
        relay_error_envelope(
            SoapVersion.SOAP11,
            sender_side=False,
            message="No service is hosted at the specified address.",
            code="NoListener",
            tracking_id="trk-42",
        ),
    )
    with pytest.raises(zeep.exceptions.Fault) as caught:
        client.service.GetSalary(7)
    expected = "No service is hosted at the specified address. TrackingId:trk-42"
    assert caught.value.message == expected


def test_a_service_fault_becomes_a_zeep_fault(relay: FakeRelay) -> None:
    client = relay_client(f"{relay.base_url}/payroll?wsdl")
    with pytest.raises(zeep.exceptions.Fault, match="No employee has the id 99") as caught:
        client.service.GetSalary(99)
    assert caught.value.code.endswith("Client.UnknownEmployee")


@pytest.mark.parametrize("status", ["404 Not Found", "401 Unauthorized", "502 Bad Gateway"])
def test_json_error_on_wsdl_fetch_is_a_relay_transport_error(status: str) -> None:
    code = {"404": "EntityNotFound", "401": "Unauthorized", "502": "NoListener"}[status[:3]]
    body = {"error": {"code": code, "message": "something went wrong", "trackingId": "trk-7"}}
    canned = Canned(status, "application/json; charset=utf-8", json.dumps(body).encode())
    with fake_relay({"missing": canned}) as relay, pytest.raises(RelayTransportError) as caught:
        relay_client(f"{relay.base_url}/missing?wsdl", token_provider=CountingProvider())
    error = caught.value
    assert isinstance(error, zeep.exceptions.TransportError) and isinstance(error, BindingError)
    assert error.status_code == int(status[:3])
    assert (error.code, error.relay_message) == (code, "something went wrong")
    assert error.tracking_id == "trk-7"
    assert "trk-7" in str(error) and code in str(error)


def test_an_unreachable_relay_is_a_relay_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RelayTransportError, match="cannot fetch"):
        relay_client(f"http://127.0.0.1:{port}/payroll?wsdl", timeout=5)


def test_202_with_an_empty_body_returns_none(tmp_path: Path) -> None:
    recorder = Recorder()
    timesheets = spyne_wsgi(timesheet_app(recorder), NetOnewayRelayBinding())
    with fake_relay({"timesheet": timesheets}) as relay:
        # one-way entities answer GETs 202 too: the client shares the contract
        wsdl = tmp_path / "timesheet.wsdl"
        wsdl.write_bytes(timesheets.wsdl(f"{relay.base_url}/timesheet"))
        cs = (
            f"Endpoint=sb://{relay.base_url[7:]}/;SharedAccessKeyName={KEY_NAME};"
            f"SharedAccessKey={KEY};"
            "EntityPath=timesheet"
        )
        client = relay_client(str(wsdl), binding=NetOnewayRelayBinding(), connection_string=cs)
        assert client.service.SubmitTimesheet(7, Decimal("7.5")) is None
        with client.settings(raw_response=True):
            raw = client.service.SubmitTimesheet(8, Decimal(1))
        assert (raw.status_code, raw.content) == (202, b"")
        token = relay.requests[-1].headers["Servicebusauthorization"]
        assert audience_of(token) == f"{relay.base_url}/timesheet"
    timesheets.close(wait=True)
    assert sorted(recorder.lines) == [
        "timesheet employee=7 hours=7.5",
        "timesheet employee=8 hours=1",
    ]


def test_a_one_way_call_answered_200_with_an_empty_body_returns_none() -> None:
    # Mono's WCF answers one-way calls 200 with an empty body (.NET: 202)
    recorder = Recorder()
    timesheets = spyne_wsgi(timesheet_app(recorder), BasicHttpRelayBinding())
    with fake_relay({"timesheet": ok_instead_of_accepted(timesheets)}) as relay:
        client = relay_client(f"{relay.base_url}/timesheet?wsdl", token_provider=CountingProvider())
        envelope = client.create_message(client.service, "SubmitTimesheet", 8, Decimal(1))
        raw = requests.post(f"{relay.base_url}/timesheet", data=etree.tostring(envelope),
                            headers={"Content-Type": "text/xml"}, timeout=10)
        assert (raw.status_code, raw.content) == (200, b"")  # what zeep gets on the wire
        assert client.service.SubmitTimesheet(7, Decimal("7.5")) is None
    timesheets.close(wait=True)
    assert sorted(recorder.lines) == [
        "timesheet employee=7 hours=7.5", "timesheet employee=8 hours=1",
    ]


def test_an_empty_200_to_a_request_response_call_is_still_an_error(tmp_path: Path) -> None:
    payroll = spyne_wsgi(payroll_app(), BasicHttpRelayBinding())
    with fake_relay({"payroll": Canned("200 OK")}) as relay:
        wsdl = tmp_path / "payroll.wsdl"
        wsdl.write_bytes(payroll.wsdl(f"{relay.base_url}/payroll"))
        client = relay_client(str(wsdl), token_provider=CountingProvider())
        with pytest.raises(zeep.exceptions.TransportError):
            client.service.GetSalary(7)
    payroll.close()


def test_a_local_wsdl_file_signs_for_the_posted_entity(tmp_path: Path) -> None:
    timesheets = spyne_wsgi(timesheet_app(), NetOnewayRelayBinding())
    with fake_relay({"timesheet": timesheets}) as relay:
        wsdl = tmp_path / "contract.wsdl"
        wsdl.write_bytes(timesheets.wsdl(f"{relay.base_url}/timesheet"))
        client = relay_client(str(wsdl), token_provider=CountingProvider())
        assert client.service.SubmitTimesheet(7, Decimal(2)) is None
        token = relay.requests[-1].headers["Servicebusauthorization"]
        assert audience_of(token) == f"{relay.base_url}/timesheet"
    timesheets.close(wait=True)


def test_tokens_never_reach_the_logs(relay: FakeRelay, caplog: pytest.LogCaptureFixture) -> None:
    provider = CountingProvider()
    with caplog.at_level(logging.DEBUG):
        client = relay_client(
            f"{relay.base_url}/payroll12?wsdl",
            binding=WS2007HttpRelayBinding(),
            token_provider=provider,
        )
        client.service.GetSalary(7)
    token = provider.inner.get_token(f"{relay.base_url}/payroll12").text
    signature = SasToken.parse(token).signature
    for record in caplog.records:
        message = record.getMessage()
        assert signature not in message and unquote(signature) not in message
        assert "RelayAccessToken" not in message


def test_audience_is_the_entity_on_the_relay_and_nothing_elsewhere() -> None:
    audience = Audience("payroll", ["http://127.0.0.1:9350/payroll?wsdl"])
    assert audience("http://127.0.0.1:9350/payroll/v2?x=1") == "http://127.0.0.1:9350/payroll"
    assert audience("http://10.0.0.5:8000/svc") is None
    assert audience("http://127.0.0.1:9351/payroll") is None
    default_port = Audience(None, ["https://relay.example.com/x"])
    assert default_port("https://RELAY.example.com:443/y") == "https://RELAY.example.com:443/y"
    assert Audience(None)("http://anywhere:1/svc") == "http://anywhere:1/svc"


def test_no_token_for_an_address_that_is_not_the_relay(tmp_path: Path) -> None:
    payroll = spyne_wsgi(payroll_app(), BasicHttpRelayBinding())
    with fake_relay({"payroll": payroll}) as elsewhere, fake_relay() as relay:
        wsdl = payroll.wsdl(f"{elsewhere.base_url}/payroll")  # e.g. a private address
        relay.routes["payroll"] = Canned("200 OK", "text/xml", wsdl)
        for in_header in (False, True):
            client = relay_client(
                f"{relay.base_url}/payroll?wsdl",
                binding=BasicHttpRelayBinding(token_in_soap_header=in_header),
                token_provider=CountingProvider(),
            )
            assert client.service.GetSalary(7) == Decimal("5120.50")
            assert "Servicebusauthorization" in relay.requests[-1].headers
            post = elsewhere.requests[-1]
            assert "Servicebusauthorization" not in post.headers and post.soap_token is None
    payroll.close()


def test_transport_is_not_accepted() -> None:
    with pytest.raises(TypeError, match="transport"):
        relay_client("http://127.0.0.1:1/x?wsdl", transport=zeep.Transport())
