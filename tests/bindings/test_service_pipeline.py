"""The service pipeline parses each request once: the host's quota parse, nothing after it.

The handler is the one :func:`bindings.app_handler.make_handler` gives
``RelayServiceHost``, called in the test's loop with a relayed request (no
relay, no socket). Every lxml entry point that parses a document is counted
while the request runs, replies and one-way runs included.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from lxml import etree

import soap.envelope
from bindings.app_handler import make_handler
from bindings.binding import (
    BasicHttpRelayBinding,
    EndToEndSecurityMode,
    NetOnewayRelayBinding,
    RelayBinding,
    WS2007HttpRelayBinding,
)
from bindings.handler import RelayedRequest, RelayedResponse, iter_bytes, settle
from bindings.wssecurity import ENVIRON_KEY, MessageSecurity
from samples.payroll.services import (
    TNS,
    Recorder,
    payroll12_app,
    payroll_app,
    signed_payroll_app,
    timesheet_app,
)
from soap import ns
from soap.addressing import AddressingHeaders, AddressingHook
from soap.envelope import Envelope, SoapVersion
from soap.fault import find_fault
from tests.bindings.test_wssecurity import client_settings, service_settings
from tests.soap.test_security_trust import T0

RELAY = "http://relay.example.com:9350"
#: lxml's document parsers (module functions, and the incremental parser class).
_PARSE_FUNCTIONS = ("fromstring", "XML", "XMLID", "parse", "iterparse")


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the lxml parse entry points called, in order, while the test runs."""
    seen: list[str] = []

    def counted(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def parse(*args: Any, **kwargs: Any) -> Any:
            seen.append(name)
            return original(*args, **kwargs)

        return parse

    for name in _PARSE_FUNCTIONS:
        monkeypatch.setattr(etree, name, counted(name, getattr(etree, name)))

    class CountedPullParser(etree.XMLPullParser):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            seen.append("XMLPullParser")
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(etree, "XMLPullParser", CountedPullParser)
    return seen


@pytest.fixture
def envelope_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Our own parse entry points only: the quota parser and ``soap.envelope.parse_xml``."""
    seen: list[str] = []
    original = soap.envelope.parse_xml

    def parse_xml(data: bytes) -> etree._Element:
        seen.append("parse_xml")
        return original(data)

    monkeypatch.setattr(soap.envelope, "parse_xml", parse_xml)
    pull = etree.XMLPullParser

    class CountedPullParser(pull):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            seen.append("XMLPullParser")
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(etree, "XMLPullParser", CountedPullParser)
    return seen


def request_envelope(
    operation: str, version: SoapVersion = SoapVersion.SOAP11, employee: int = 7
) -> etree._Element:
    body = f"<p:{operation}><p:employee_id>{employee}</p:employee_id>"
    if operation == "SubmitTimesheet":
        body += "<p:hours>7.5</p:hours>"
    return etree.fromstring(
        f'<s:Envelope xmlns:s="{version.namespace}" xmlns:p="{TNS}">'
        f"<s:Body>{body}</p:{operation}></s:Body></s:Envelope>"
    )


def relayed(root: etree._Element, entity: str, version: SoapVersion) -> RelayedRequest:
    data = bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))
    headers = (("Content-Type", f"{version.content_type}; charset=utf-8"),)
    return RelayedRequest("POST", f"/{entity}", headers, iter_bytes(data), RELAY, entity)


async def run(handler: Any, request: RelayedRequest, counted: list[str]) -> RelayedResponse:
    """Send ``request`` to ``handler`` and settle the response; count only from here."""
    counted.clear()  # building the app (Spyne's schema) and the request parse too
    response: RelayedResponse = await handler(request)
    await settle(response, sent=True)
    return response


def reply_of(response: RelayedResponse) -> Envelope:
    assert isinstance(response.body, bytes)
    return Envelope.from_bytes(response.body)


# -- every lxml parse counted: one per request --------------------------------


async def test_basic_http_request_is_parsed_once(parses: list[str]) -> None:
    handler = make_handler(payroll_app(), BasicHttpRelayBinding())
    request = relayed(request_envelope("GetSalary"), "payroll", SoapVersion.SOAP11)
    response = await run(handler, request, parses)
    assert parses == ["XMLPullParser"]  # the quota parse; Spyne and the reply parse nothing
    assert response.status == 200
    await handler.aclose()
    payload = reply_of(response).body_payload
    assert payload is not None and Decimal(payload.findtext(f"{{{TNS}}}GetSalaryResult") or "") \
        == Decimal("5120.50")


async def test_ws2007_request_is_parsed_once_and_its_reply_is_stamped(
    parses: list[str],
) -> None:
    handler = make_handler(payroll12_app(), WS2007HttpRelayBinding())
    root = request_envelope("GetSalary", SoapVersion.SOAP12)
    hook = AddressingHook(to=f"{RELAY}/payroll", action=f"{TNS}/GetSalary",
                          id_factory=lambda: "urn:uuid:request-1")
    hook.egress(root, {})
    response = await run(handler, relayed(root, "payroll", SoapVersion.SOAP12), parses)
    assert parses == ["XMLPullParser"]
    await handler.aclose()
    headers = AddressingHeaders.from_header(reply_of(response).header)
    assert (headers.relates_to, headers.action) == ("urn:uuid:request-1",
                                                    f"{TNS}/GetSalaryResponse")


async def test_oneway_request_is_parsed_once_also_when_it_runs(parses: list[str]) -> None:
    recorder = Recorder()
    handler = make_handler(timesheet_app(recorder), NetOnewayRelayBinding())
    request = relayed(request_envelope("SubmitTimesheet"), "timesheet", SoapVersion.SOAP11)
    response = await run(handler, request, parses)
    assert (response.status, response.body) == (202, b"")
    assert recorder.wait_for(1, timeout=10)  # the run after the 202, on the same tree
    await handler.aclose()
    assert parses == ["XMLPullParser"]
    assert recorder.lines == ["timesheet employee=7 hours=7.5"]


async def test_username_token_request_is_parsed_once(parses: list[str]) -> None:
    binding = BasicHttpRelayBinding(security=EndToEndSecurityMode.TRANSPORT_WITH_MESSAGE_CREDENTIAL)
    settings = MessageSecurity(credentials={"alice": "s3cret"}.get, clock=lambda: T0)
    handler = make_handler(payroll_app(), binding, settings)
    root = request_envelope("GetSalary")
    client = MessageSecurity(username="alice", password="s3cret", clock=lambda: T0)
    hook = client.client_hook(EndToEndSecurityMode.TRANSPORT_WITH_MESSAGE_CREDENTIAL)
    assert hook is not None
    hook.egress(root, {})
    response = await run(handler, relayed(root, "payroll", SoapVersion.SOAP11), parses)
    assert parses == ["XMLPullParser"]
    assert response.status == 200
    await handler.aclose()


async def test_a_wsgi_app_behind_the_middleware_gets_the_hosts_tree(parses: list[str]) -> None:
    seen: list[object] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(environ[ENVIRON_KEY].username)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["wsgi.input"].read()]  # the bytes that were checked

    binding = BasicHttpRelayBinding(security=EndToEndSecurityMode.TRANSPORT_WITH_MESSAGE_CREDENTIAL)
    settings = MessageSecurity(credentials={"alice": "s3cret"}.get, clock=lambda: T0)
    handler = make_handler(app, binding, settings)
    root = request_envelope("GetSalary")
    client = MessageSecurity(username="alice", password="s3cret", clock=lambda: T0)
    hook = client.client_hook(EndToEndSecurityMode.TRANSPORT_WITH_MESSAGE_CREDENTIAL)
    assert hook is not None
    hook.egress(root, {})
    request = relayed(root, "payroll", SoapVersion.SOAP11)
    response = await run(handler, request, parses)
    assert parses == ["XMLPullParser"]
    await handler.aclose()
    assert response.status == 200 and seen == ["alice"]
    assert response.body == etree.tostring(root, xml_declaration=True, encoding="utf-8")


async def test_a_refused_request_is_parsed_once(parses: list[str]) -> None:
    binding = BasicHttpRelayBinding(security=EndToEndSecurityMode.TRANSPORT_WITH_MESSAGE_CREDENTIAL)
    settings = MessageSecurity(credentials={"alice": "s3cret"}.get, clock=lambda: T0)
    handler = make_handler(payroll_app(), binding, settings)
    request = relayed(request_envelope("GetSalary"), "payroll", SoapVersion.SOAP11)
    response = await run(handler, request, parses)
    assert parses == ["XMLPullParser"]
    await handler.aclose()
    fault = find_fault(reply_of(response))
    assert response.status == 500 and fault is not None and "Security" in fault.reason


@pytest.mark.parametrize(
    ("body", "why"),
    [(b"<s:Envelope><s:Body>", "not well-formed"), (b"<hello/>", "not a SOAP 1.1/1.2 Envelope")],
)
async def test_a_body_that_is_no_envelope_is_parsed_once(
    parses: list[str], body: bytes, why: str
) -> None:
    handler = make_handler(payroll_app(), BasicHttpRelayBinding())
    headers = (("Content-Type", "text/xml; charset=utf-8"),)
    request = RelayedRequest("POST", "/payroll", headers, iter_bytes(body), RELAY, "payroll")
    response = await run(handler, request, parses)
    assert parses == ["XMLPullParser"]  # the adapter's fault reuses what that parse found
    await handler.aclose()
    fault = find_fault(reply_of(response))
    assert response.status == 500 and fault is not None
    assert fault.reason.startswith("Malformed SOAP request") and why in fault.reason


# -- MESSAGE mode: our parses counted (signxml copies the tree for itself) ----


@pytest.mark.parametrize("version", list(SoapVersion))
async def test_signed_request_is_parsed_once_by_the_pipeline(
    envelope_parses: list[str], version: SoapVersion
) -> None:
    recorder = Recorder()
    binding: RelayBinding = (
        BasicHttpRelayBinding(security=EndToEndSecurityMode.MESSAGE)
        if version is SoapVersion.SOAP11
        else WS2007HttpRelayBinding(security=EndToEndSecurityMode.MESSAGE)
    )
    app = signed_payroll_app(recorder, soap12=version is SoapVersion.SOAP12)
    handler = make_handler(app, binding, service_settings())
    root = request_envelope("GetSalary", version)
    if binding.addressing:
        AddressingHook(to=f"{RELAY}/payroll", action=f"{TNS}/GetSalary").egress(root, {})
    client = client_settings().client_hook(EndToEndSecurityMode.MESSAGE)
    assert client is not None
    client.egress(root, {})
    response = await run(handler, relayed(root, "payroll", version), envelope_parses)
    assert envelope_parses == ["XMLPullParser"]
    await handler.aclose()
    assert response.status == 200, response.body
    assert recorder.lines and "signer=" in recorder.lines[0]  # the service saw the result
    reply = reply_of(response)
    assert reply.header is not None and reply.header.find(f".//{{{ns.DS}}}Signature") is not None
    client.ingress(reply.root, {})  # the reply tree was signed, then serialised once
