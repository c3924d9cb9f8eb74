"""The payroll sample end to end: the real relay, real hosts, zeep clients; 127.0.0.1 only."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep
from lxml import etree

from bindings import (
    BasicHttpRelayBinding,
    NetEventRelayBinding,
    NetOnewayRelayBinding,
    NetTcpRelayBinding,
    RelayServiceHost,
    WS2007HttpRelayBinding,
    relay_client,
)
from bindings.exceptions import RelayTransportError
from hc.connection_string import ConnectionString
from samples.payroll import services
from samples.payroll.client import contract_client
from soap import ns
from tests.support.relay import RelayThread

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0
WSA = ns.WSA


@pytest.fixture
def cs(relay: RelayThread) -> ConnectionString:
    return ConnectionString.parse(relay.connection_string)


@pytest.fixture
def payroll(cs: ConnectionString) -> Iterator[RelayServiceHost]:
    with RelayServiceHost(
        services.payroll_app(), connection_string=cs.with_entity("payroll"), open_timeout=TIMEOUT
    ) as host:
        yield host


@pytest.fixture
def payroll12(cs: ConnectionString) -> Iterator[RelayServiceHost]:
    with RelayServiceHost(
        services.payroll12_app(),
        binding=WS2007HttpRelayBinding(),
        connection_string=cs.with_entity("payroll12"),
        open_timeout=TIMEOUT,
    ) as host:
        yield host


def test_soap11_call_and_fault(payroll: RelayServiceHost, cs: ConnectionString) -> None:
    client = relay_client(
        f"{payroll.public_address}?wsdl",
        connection_string=cs.with_entity("payroll"),
        operation_timeout=TIMEOUT,
    )
    assert client.service.GetSalary(7) == Decimal("5120.50")
    assert [e.id for e in client.service.ListEmployees()] == [7, 8, 12]
    with pytest.raises(zeep.exceptions.Fault, match="No employee has the id 99") as caught:
        client.service.GetSalary(99)
    assert str(caught.value.code).endswith("Client.UnknownEmployee")


@pytest.mark.parametrize("in_soap_header", [False, True])
def test_basic_http_token_in_either_place(
    payroll: RelayServiceHost, cs: ConnectionString, in_soap_header: bool
) -> None:
    client = relay_client(
        f"{payroll.public_address}?wsdl",
        binding=BasicHttpRelayBinding(token_in_soap_header=in_soap_header),
        connection_string=cs.with_entity("payroll"),
    )
    assert client.service.GetSalary(12) == Decimal("4975.25")


class MessageIds(zeep.Plugin):  # type: ignore[misc]
    """Records the ``wsa:MessageID`` of each request as it leaves (after WS-Addressing)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def egress(self, envelope: Any, http_headers: Any, operation: Any, binding_options: Any) -> Any:
        self.sent.append(envelope.findtext(f".//{{{WSA}}}MessageID") or "")
        return envelope, http_headers


def test_soap12_ws_addressing_call(payroll12: RelayServiceHost, cs: ConnectionString) -> None:
    ids = MessageIds()
    client = relay_client(
        f"{payroll12.public_address}?wsdl",
        binding=WS2007HttpRelayBinding(),
        connection_string=cs.with_entity("payroll12"),
    )
    assert client.service.GetSalary(8) == Decimal("5480.00")
    client.plugins.append(ids)  # after our AddressingPlugin, which adds the MessageID
    with client.settings(raw_response=True):
        reply = client.service.GetSalary(7)
    root = etree.fromstring(reply.content)
    assert len(ids.sent) == 1 and ids.sent[0].startswith("urn:uuid:")
    assert root.findtext(f".//{{{WSA}}}RelatesTo") == ids.sent[0]
    assert root.findtext(f".//{{{WSA}}}Action") == "GetSalaryResponse"


def test_a_payroll_run_reports_progress_through_callbacks(cs: ConnectionString) -> None:
    from samples.payroll.client import Report, ShowProgress

    lines: list[str] = []
    report = Report()
    with RelayServiceHost(services.payroll_run_app(), binding=NetTcpRelayBinding(),
                          connection_string=cs.with_entity("payroll-run"),
                          open_timeout=TIMEOUT) as host:
        client = relay_client(f"{host.public_address}?wsdl", binding=NetTcpRelayBinding(),
                              connection_string=cs.with_entity("payroll-run"),
                              callback=(services.PayrollProgress, ShowProgress(report, lines.append)))
        try:
            assert client.service.RunPayroll("2026-11") == Decimal("15575.75")
        finally:
            client.transport.close()
    assert report.run_progress == [1, 2, 3]  # each employee, in order, before the total came
    assert lines[-1] == "  progress 3/3: Edsger Dijkstra paid"


def test_wsdl_through_the_relay_shows_the_relay_address(
    payroll: RelayServiceHost, relay: RelayThread
) -> None:
    response = requests.get(
        f"{relay.base_url}/payroll?wsdl",
        headers={"ServiceBusAuthorization": relay.token("payroll")},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    locations = etree.fromstring(response.content).xpath("//*[local-name()='address']/@location")
    assert locations == [f"{relay.base_url}/payroll"]


def test_oneway_gets_202_and_the_handler_runs_exactly_once(
    cs: ConnectionString, tmp_path: Path
) -> None:
    recorder = services.Recorder()
    entity = cs.with_entity("timesheet")
    binding = NetOnewayRelayBinding()
    with RelayServiceHost(
        services.timesheet_app(recorder), binding=binding, connection_string=entity
    ):
        client = contract_client(services.timesheet_app, binding, entity, tmp_path)
        assert client.service.SubmitTimesheet(7, Decimal("7.5")) is None
        assert recorder.wait_for(1, TIMEOUT)
    assert recorder.lines == ["timesheet employee=7 hours=7.5"]


def test_event_reaches_both_subscribers_once(cs: ConnectionString, tmp_path: Path) -> None:
    audit, notifications = services.Recorder(), services.Recorder()
    entity = cs.with_entity("payroll-events")
    binding = NetEventRelayBinding()
    with (
        RelayServiceHost(services.audit_app(audit), binding=binding, connection_string=entity),
        RelayServiceHost(
            services.notifications_app(notifications), binding=binding, connection_string=entity
        ),
    ):
        client = contract_client(services.audit_app, binding, entity, tmp_path)
        with client.settings(raw_response=True):
            reply = client.service.PayrollRunCompleted("2026-11", Decimal("100.25"))
        assert (reply.status_code, reply.headers["Relay-Delivered"]) == (202, "2")
        assert audit.wait_for(1, TIMEOUT) and notifications.wait_for(1, TIMEOUT)
    assert audit.lines == ["audit run=2026-11 total=100.25"]
    assert notifications.lines == ["notifications run=2026-11 total=100.25"]


def test_relay_errors_reach_the_client_with_a_tracking_id(
    cs: ConnectionString, relay: RelayThread, tmp_path: Path
) -> None:
    with pytest.raises(RelayTransportError) as caught:
        relay_client(f"{relay.base_url}/nobody-here?wsdl", connection_string=cs)
    assert caught.value.status_code == 404 and caught.value.tracking_id
    # a SOAP call to an entity with no listener: the relay's SOAP fault becomes a zeep Fault
    client = contract_client(
        services.payroll_app, BasicHttpRelayBinding(), cs.with_entity("nobody-here"), tmp_path
    )
    with pytest.raises(zeep.exceptions.Fault, match="TrackingId:"):
        client.service.GetSalary(7)


def test_the_demo_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "samples.payroll.demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Demo OK" in result.stdout
    assert "delivered to 2 subscribers" in result.stdout
