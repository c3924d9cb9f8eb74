"""spyne_wsgi at the WSGI level: no relay, no sockets; the environ is what the host builds."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import spyne.application
import zeep
from lxml import etree
from spyne import Application, Integer, ServiceBase, Unicode, rpc
from spyne.protocol.soap import Soap11, Soap12

from bindings.binding import (
    BasicHttpRelayBinding,
    NetEventRelayBinding,
    NetOnewayRelayBinding,
    WS2007HttpRelayBinding,
)
from bindings.oneway import oneway, oneway_operations, oneway_request_tags
from bindings.spyne_host import SpyneRelayApp, spyne_wsgi
from samples.payroll.services import (
    TNS,
    Recorder,
    payroll12_app,
    payroll_app,
    timesheet_app,
)
from soap import ns
from tests.bindings.wsgi_helpers import RELAY_ORIGIN, call_wsgi

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network

S11 = ns.SOAP11_ENV
S12 = ns.SOAP12_ENV
WSA = ns.WSA
RELAY_ADDRESS = f"http://{RELAY_ORIGIN}/payroll"


def envelope(body: str, *, version: str = S11, header: str = "") -> bytes:
    head = f"<s:Header>{header}</s:Header>" if header else ""
    return (
        f'<s:Envelope xmlns:s="{version}" xmlns:a="{WSA}" xmlns:p="{TNS}">'
        f"{head}<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


GET_SALARY_7 = "<p:GetSalary><p:employee_id>7</p:employee_id></p:GetSalary>"
SOAP12_CT = "application/soap+xml; charset=utf-8"


def fault_string(body: bytes) -> str:
    root = etree.fromstring(body)
    texts = root.xpath("//faultstring/text() | //*[local-name()='Text']/text()")
    return str(texts[0]) if texts else ""


def soap_address(wsdl: bytes) -> list[str]:
    root = etree.fromstring(wsdl)
    return [str(a) for a in root.xpath("//*[local-name()='address']/@location")]


@pytest.fixture
def payroll() -> Iterator[SpyneRelayApp]:
    app = spyne_wsgi(payroll_app(), BasicHttpRelayBinding())
    yield app
    app.close()


# -- WSDL ---------------------------------------------------------------------


def test_wsdl_address_follows_the_environ_host_every_time(payroll: SpyneRelayApp) -> None:
    first = call_wsgi(payroll, query="wsdl", host="10.0.0.5:8080")
    second = call_wsgi(payroll, query="wsdl")
    assert first.status == second.status == 200
    assert soap_address(first.body) == ["http://10.0.0.5:8080/payroll"]
    assert soap_address(second.body) == [RELAY_ADDRESS]
    assert b"10.0.0.5" not in second.body


def test_wsdl_dot_wsdl_path_and_https_scheme(payroll: SpyneRelayApp) -> None:
    response = call_wsgi(payroll, path_info=".wsdl", extra={"wsgi.url_scheme": "https"})
    assert soap_address(response.body) == [f"https://{RELAY_ORIGIN}/payroll"]


def test_oneway_operations_have_no_output_and_zeep_loads_the_wsdl(tmp_path: Path) -> None:
    app = spyne_wsgi(timesheet_app(), NetOnewayRelayBinding())
    wsdl = call_wsgi(app, query="wsdl", script_name="/timesheet").body
    root = etree.fromstring(wsdl)
    ops = root.xpath("//wsdl:portType/wsdl:operation", namespaces={"wsdl": ns.WSDL})
    assert [op.get("name") for op in ops] == ["SubmitTimesheet"]
    assert root.xpath("//wsdl:output", namespaces={"wsdl": ns.WSDL}) == []
    path = tmp_path / "timesheet.wsdl"
    path.write_bytes(wsdl)
    client = zeep.Client(str(path))
    [binding] = client.wsdl.bindings.values()
    operation = binding.get("SubmitTimesheet")
    assert operation.output is None
    app.close()


def test_oneway_markers() -> None:
    app = timesheet_app()
    assert oneway_operations(app) == {"SubmitTimesheet"}
    assert oneway_request_tags(app) == {f"{{{TNS}}}SubmitTimesheet"}
    assert oneway_operations(payroll_app()) == set()
    with pytest.raises(TypeError, match="_returns"):
        oneway(Integer, _returns=Integer)


# -- one-way ------------------------------------------------------------------


def _submit(employee: int = 7) -> bytes:
    return envelope(
        f"<p:SubmitTimesheet><p:employee_id>{employee}</p:employee_id>"
        "<p:hours>7.5</p:hours></p:SubmitTimesheet>"
    )


def test_oneway_answers_202_empty_then_runs_the_handler_exactly_once() -> None:
    recorder = Recorder()
    app = spyne_wsgi(timesheet_app(recorder), NetOnewayRelayBinding())
    response = call_wsgi(app, "POST", body=_submit(), script_name="/timesheet", close=False)
    assert (response.status, response.body) == (202, b"")
    assert response.headers["Content-Length"] == "0"
    app.close(wait=True)  # drains the pool: nothing was submitted before the answer went out
    assert recorder.lines == []
    app = spyne_wsgi(timesheet_app(recorder), NetOnewayRelayBinding())
    response = call_wsgi(app, "POST", body=_submit(), script_name="/timesheet", close=False)
    response.close()  # the server sent the 202
    response.close()  # a second close() runs nothing more
    app.close(wait=True)
    assert recorder.lines == ["timesheet employee=7 hours=7.5"]


def test_oneway_handler_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Failing(ServiceBase):  # type: ignore[misc]
        @oneway(Integer)
        def Explode(ctx, n):  # type: ignore[no-untyped-def]
            raise ValueError("kaboom-detail")

    spyne_app = Application(
        [Failing], tns="urn:t", in_protocol=Soap11(validator="lxml"), out_protocol=Soap11()
    )
    app = spyne_wsgi(spyne_app, BasicHttpRelayBinding())
    body = envelope('<Explode xmlns="urn:t"><n>1</n></Explode>')
    with caplog.at_level(logging.ERROR, logger="bindings.spyne_host"):
        assert call_wsgi(app, "POST", body=body).status == 202
        app.close(wait=True)
    messages = [r.getMessage() for r in caplog.records if r.name == "bindings.spyne_host"]
    assert any("one-way operation failed" in m for m in messages)
    assert any("TrackingId:" in m for m in messages)


def test_event_binding_acknowledges_every_operation() -> None:
    recorder = Recorder()
    app = spyne_wsgi(timesheet_app(recorder), NetEventRelayBinding())
    assert call_wsgi(app, "POST", body=_submit(12)).status == 202
    app.close(wait=True)
    assert recorder.lines == ["timesheet employee=12 hours=7.5"]


# -- WS-Addressing (WS2007) ---------------------------------------------------


def _wsa_headers(to: str = RELAY_ADDRESS, must_understand: bool = True) -> str:
    mu = ' s:mustUnderstand="1"' if must_understand else ""
    return (
        f"<a:Action{mu}>GetSalary</a:Action><a:MessageID>urn:uuid:1234</a:MessageID>"
        f"<a:ReplyTo><a:Address>{WSA}/anonymous</a:Address></a:ReplyTo><a:To{mu}>{to}</a:To>"
    )


@pytest.fixture
def payroll12() -> Iterator[SpyneRelayApp]:
    app = spyne_wsgi(payroll12_app(), WS2007HttpRelayBinding())
    yield app
    app.close()


def test_ws2007_reply_relates_to_the_request(payroll12: SpyneRelayApp) -> None:
    body = envelope(GET_SALARY_7, version=S12, header=_wsa_headers())
    response = call_wsgi(payroll12, "POST", body=body, content_type=SOAP12_CT)
    assert response.status == 200
    root = etree.fromstring(response.body)
    assert root.findtext(f".//{{{WSA}}}RelatesTo") == "urn:uuid:1234"
    assert root.findtext(f".//{{{WSA}}}Action") == "GetSalaryResponse"
    assert root.findtext(f".//{{{TNS}}}GetSalaryResult") == "5120.50"
    assert int(response.headers["Content-Length"]) == len(response.body)


def test_ws2007_request_without_addressing_gets_a_plain_reply(payroll12: SpyneRelayApp) -> None:
    body = envelope(GET_SALARY_7, version=S12)
    response = call_wsgi(payroll12, "POST", body=body, content_type=SOAP12_CT)
    assert response.status == 200 and WSA.encode() not in response.body


def test_ws2007_fault_reply_uses_the_fault_action(payroll12: SpyneRelayApp) -> None:
    body = envelope(GET_SALARY_7.replace(">7<", ">99<"), version=S12, header=_wsa_headers())
    response = call_wsgi(payroll12, "POST", body=body, content_type=SOAP12_CT)
    root = etree.fromstring(response.body)
    assert root.findtext(f".//{{{WSA}}}Action") == f"{WSA}/soap/fault"
    assert "No employee has the id 99" in fault_string(response.body)


def test_ws2007_rejects_a_to_of_another_address(payroll12: SpyneRelayApp) -> None:
    body = envelope(GET_SALARY_7, version=S12, header=_wsa_headers("http://10.0.0.5/payroll"))
    response = call_wsgi(payroll12, "POST", body=body, content_type=SOAP12_CT)
    assert response.status == 400
    assert "wsa:To" in fault_string(response.body)
    assert b"Sender" in response.body


# -- errors -------------------------------------------------------------------


class Broken(ServiceBase):  # type: ignore[misc]
    @rpc(Unicode, _returns=Unicode)
    def Crash(ctx, text):  # type: ignore[no-untyped-def]
        raise RuntimeError(f"secret database password {text}")


def _broken(version: type = Soap11) -> SpyneRelayApp:
    spyne_app = Application(
        [Broken], tns="urn:broken", in_protocol=version(validator="lxml"), out_protocol=version()
    )
    return spyne_wsgi(spyne_app, BasicHttpRelayBinding())


CRASH = b'<s:Envelope xmlns:s="%s"><s:Body><Crash xmlns="urn:broken">'
CRASH += b"<text>hunter2</text></Crash></s:Body></s:Envelope>"


@pytest.mark.parametrize("tracebacks_on", [False, True])
def test_unhandled_exception_is_a_server_fault_without_details(
    tracebacks_on: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if tracebacks_on:  # what spyne.application.return_traceback_in_unhandled_exceptions() does
        monkeypatch.setattr(
            spyne.application, "get_fault_string_from_exception", lambda e: traceback.format_exc()
        )
    app = _broken()
    with caplog.at_level(logging.ERROR, logger="bindings.spyne_host"):
        response = call_wsgi(app, "POST", body=CRASH % S11.encode())
    assert response.status == 500
    reason = fault_string(response.body)
    assert reason.startswith("Internal server error TrackingId:")
    assert b"hunter2" not in response.body and b"Traceback" not in response.body
    assert b"Server" in response.body
    tracking_id = reason.rsplit(":", 1)[1]
    logged = [r for r in caplog.records if tracking_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    app.close()


def test_unhandled_exception_in_soap12_is_a_receiver_fault() -> None:
    app = _broken(Soap12)
    response = call_wsgi(app, "POST", body=CRASH % S12.encode(), content_type=SOAP12_CT)
    assert b"Receiver" in response.body
    assert fault_string(response.body).startswith("Internal server error TrackingId:")
    assert b"hunter2" not in response.body
    app.close()


def test_a_service_fault_keeps_its_code_and_message(payroll: SpyneRelayApp) -> None:
    response = call_wsgi(payroll, "POST", body=envelope(GET_SALARY_7.replace(">7<", ">99<")))
    assert response.status == 500
    assert b"Client.UnknownEmployee" in response.body
    assert fault_string(response.body) == "No employee has the id 99"


XXE = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b'<s:Envelope xmlns:s="%s"><s:Body>&e;</s:Body></s:Envelope>'
)


@pytest.mark.parametrize(
    "bad",
    [
        XXE % S11.encode(),
        b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]><x>&b;</x>',
        b"<s:Envelope xmlns:s='nope'><unclosed>",
        b"not xml at all",
        b'<x xmlns="urn:not-soap"/>',
    ],
)
def test_bad_xml_is_a_client_fault_and_the_service_keeps_serving(
    payroll: SpyneRelayApp, bad: bytes
) -> None:
    response = call_wsgi(payroll, "POST", body=bad)
    assert response.status == 500  # SOAP 1.1 sends every fault with 500
    assert b"faultcode>soap:Client<" in response.body
    assert b"root:" not in response.body
    ok = call_wsgi(payroll, "POST", body=envelope(GET_SALARY_7))
    assert ok.status == 200 and b"5120.50" in ok.body


def test_bad_xml_in_soap12_is_a_sender_fault_with_400(payroll12: SpyneRelayApp) -> None:
    response = call_wsgi(payroll12, "POST", body=XXE % S12.encode(), content_type=SOAP12_CT)
    assert response.status == 400
    assert b"Sender" in response.body


def test_an_oversized_body_is_refused() -> None:
    app = spyne_wsgi(timesheet_app(), NetOnewayRelayBinding(max_received_message_size=100))
    response = call_wsgi(app, "POST", body=_submit() + b" " * 200)
    assert response.status == 413
    app.close()


def test_an_output_protocol_that_is_not_xml_is_serialised_by_spyne() -> None:
    from spyne.protocol.json import JsonDocument
    from spyne.server.wsgi import WsgiApplication

    class Salaries(ServiceBase):  # type: ignore[misc]
        @rpc(Integer, _returns=Integer)  # type: ignore[misc]
        def GetSalary(ctx: object, employee_id: int) -> int:
            return 1000 + employee_id

    spyne_app = Application([Salaries], tns=TNS, in_protocol=Soap11(), out_protocol=JsonDocument())
    app = spyne_wsgi(spyne_app, BasicHttpRelayBinding())
    response = call_wsgi(app, "POST", body=envelope(GET_SALARY_7))
    app.close()
    assert response.status == 200, response.body
    assert response.headers["Content-Type"].startswith("application/json")
    assert json.loads(response.body) == 1007
    alone = call_wsgi(WsgiApplication(spyne_app), "POST", body=envelope(GET_SALARY_7))
    assert (alone.status, alone.body) == (response.status, response.body)  # as Spyne answers


@pytest.mark.parametrize(
    "body",
    [GET_SALARY_7, "<p:ListEmployees/>", "<p:GetSalary><p:employee_id>99</p:employee_id></p:GetSalary>",
     "<p:NoSuchOperation/>"],
)
def test_the_driver_answers_what_spynes_own_server_answers(body: str) -> None:
    from spyne.server.wsgi import WsgiApplication

    spyne_app = payroll_app()
    app = spyne_wsgi(spyne_app, BasicHttpRelayBinding())
    ours = call_wsgi(app, "POST", body=envelope(body))
    app.close()
    alone = call_wsgi(WsgiApplication(spyne_app), "POST", body=envelope(body))
    assert (ours.status, ours.body) == (alone.status, alone.body)
    assert ours.headers["Content-Type"] == alone.headers["Content-Type"]


@pytest.mark.parametrize(
    "body", [GET_SALARY_7, "<p:GetSalary><p:employee_id>99</p:employee_id></p:GetSalary>"]
)
def test_the_driver_answers_soap12_as_spyne_does_without_addressing(body: str) -> None:
    from spyne.server.wsgi import WsgiApplication

    spyne_app = payroll12_app()
    app = spyne_wsgi(spyne_app, WS2007HttpRelayBinding())
    ours = call_wsgi(app, "POST", body=envelope(body, version=S12), content_type=SOAP12_CT)
    app.close()
    alone = call_wsgi(WsgiApplication(spyne_app), "POST", body=envelope(body, version=S12),
                      content_type=SOAP12_CT)
    assert (ours.status, ours.body) == (alone.status, alone.body)


def test_ws2007_takes_a_to_with_another_host_name_as_wcf_does(payroll12: SpyneRelayApp) -> None:
    # a WCF client that called http://localhost:9350/... reaching a host opened on 127.0.0.1
    port = RELAY_ORIGIN.split(":")[1]
    body = envelope(GET_SALARY_7, version=S12,
                    header=_wsa_headers(f"http://LOCALHOST:{port}/Payroll/"))
    response = call_wsgi(payroll12, "POST", body=body, content_type=SOAP12_CT)
    assert response.status == 200
    assert etree.fromstring(response.body).findtext(f".//{{{TNS}}}GetSalaryResult") == "5120.50"


def test_ws2007_compare_to_host_refuses_another_host_name() -> None:
    app = spyne_wsgi(payroll12_app(), WS2007HttpRelayBinding(compare_to_host=True))
    port = RELAY_ORIGIN.split(":")[1]
    answers = {
        to: call_wsgi(app, "POST", content_type=SOAP12_CT,
                      body=envelope(GET_SALARY_7, version=S12, header=_wsa_headers(to)))
        for to in (f"http://localhost:{port}/payroll", RELAY_ADDRESS.upper())
    }
    app.close()
    refused, taken = answers.values()
    assert (refused.status, taken.status) == (400, 200)
    assert "is not this service's address" in fault_string(refused.body)


def test_ws2007_schema_invalid_request_is_a_sender_fault_not_an_internal_error(
    payroll12: SpyneRelayApp, caplog: pytest.LogCaptureFixture,
) -> None:
    # Spyne's lxml validator gives its message as bytes; its SOAP 1.2 output raised TypeError
    wrong = GET_SALARY_7.replace("employee_id", "employeeId")
    body = envelope(wrong, version=S12, header=_wsa_headers())
    with caplog.at_level(logging.ERROR):
        response = call_wsgi(payroll12, "POST", body=body, content_type=SOAP12_CT)
    assert b"Sender" in response.body and b"Receiver" not in response.body
    assert "employeeId" in fault_string(response.body)
    assert not [r for r in caplog.records if r.name.startswith("bindings")]


def test_a_host_lets_spyne_collect_garbage_once_a_minute_not_once_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Spyne's full gc.collect() after a call (for multipart uploads a host never gets)
    stalls every call in flight; a host makes it rare, unless the application chose."""
    import spyne.const

    monkeypatch.setattr(spyne.const, "MIN_GC_INTERVAL", 1.0)  # Spyne's default
    SpyneRelayApp(payroll_app(), BasicHttpRelayBinding())
    assert spyne.const.MIN_GC_INTERVAL == 60.0
    monkeypatch.setattr(spyne.const, "MIN_GC_INTERVAL", 5.0)  # the application's own choice
    SpyneRelayApp(payroll_app(), BasicHttpRelayBinding())
    assert spyne.const.MIN_GC_INTERVAL == 5.0
