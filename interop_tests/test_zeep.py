"""zeep (sync ``Client`` and ``AsyncClient``) calling the payroll services through the relay.

zeep is the client the bindings are built around, but it is not ours: these tests check
its real behaviour end to end against a real relay and real hosts. Each binding is called
the way its clients would, with the WSDL fetched through the relay:

- SOAP 1.1 (``payroll``): results, a service fault as ``zeep.exceptions.Fault``;
- SOAP 1.2 + WS-Addressing (``payroll12``, token in the ``RelayAccessToken`` SOAP header):
  results, a ``Sender`` fault, ``RelatesTo`` in the reply;
- one-way (``timesheet``) and event (``payroll-events``): ``None`` back, 202, and the
  handlers ran (each exactly once);
- the relay's own errors (no such entity, no token) as ``zeep.exceptions.Fault``.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import zeep
from lxml import etree
from zeep.proxy import AsyncServiceProxy

from bindings import (
    NetEventRelayBinding,
    NetOnewayRelayBinding,
    TokenProvider,
    WS2007HttpRelayBinding,
    relay_client,
)
from bindings.zeep_async import relay_async_client
from interop_tests.payroll_site import TIMEOUT, PayrollSite
from soap import ns

PAYROLL_BINDING = "{urn:soap-relay:payroll}Payroll"


def _client(payroll: PayrollSite, entity: str, **kwargs: object) -> zeep.Client:
    return relay_client(
        payroll.wsdl(entity), connection_string=payroll.entity_cs(entity),
        operation_timeout=TIMEOUT, **kwargs,
    )


def _async_client(payroll: PayrollSite, entity: str, **kwargs: object) -> zeep.AsyncClient:
    return relay_async_client(
        payroll.wsdl(entity), connection_string=payroll.entity_cs(entity),
        operation_timeout=TIMEOUT, **kwargs,
    )


# -- sync Client -------------------------------------------------------------------------


def test_soap11_results_and_service_fault(payroll: PayrollSite) -> None:
    client = _client(payroll, "payroll")
    assert client.service.GetSalary(7) == Decimal("5120.50")
    assert [e.name for e in client.service.ListEmployees()] == [
        "Ada Lovelace", "Grace Hopper", "Edsger Dijkstra",
    ]
    with pytest.raises(zeep.exceptions.Fault, match="No employee has the id 99") as caught:
        client.service.GetSalary(99)
    assert caught.value.code.endswith("Client.UnknownEmployee")


def test_soap12_ws_addressing_results_and_fault(payroll: PayrollSite) -> None:
    client = _client(payroll, "payroll12", binding=WS2007HttpRelayBinding())
    assert client.service.GetSalary(8) == Decimal("5480.00")
    with client.settings(raw_response=True):
        reply = client.service.GetSalary(12)
    assert reply.headers["Content-Type"].startswith("application/soap+xml")
    root = etree.fromstring(reply.content)
    assert root.tag == f"{{{ns.SOAP12_ENV}}}Envelope"
    assert root.findtext(f".//{{{ns.WSA}}}RelatesTo", "").startswith("urn:uuid:")
    with pytest.raises(zeep.exceptions.Fault, match="No employee has the id 99") as caught:
        client.service.GetSalary(99)
    assert caught.value.code.endswith("Sender")


def test_oneway_call_returns_none_and_runs_once(payroll: PayrollSite) -> None:
    client = _client(payroll, "timesheet", binding=NetOnewayRelayBinding())
    assert client.service.SubmitTimesheet(7, Decimal("38.5")) is None
    line = "timesheet employee=7 hours=38.5"
    assert payroll.timesheets.wait_for_line(line)
    assert payroll.timesheets.lines.count(line) == 1


def test_event_reaches_both_subscribers(payroll: PayrollSite) -> None:
    client = _client(payroll, "payroll-events", binding=NetEventRelayBinding())
    with client.settings(raw_response=True):
        reply = client.service.PayrollRunCompleted("zeep-sync", Decimal("100.25"))
    assert (reply.status_code, reply.headers["Relay-Delivered"]) == (202, "2")
    assert client.service.PayrollRunCompleted("zeep-sync-2", Decimal(1)) is None
    for recorder, name in ((payroll.audit, "audit"), (payroll.notifications, "notifications")):
        for run, total in (("zeep-sync", "100.25"), ("zeep-sync-2", "1")):
            line = f"{name} run={run} total={total}"
            assert recorder.wait_for_line(line)
            assert recorder.lines.count(line) == 1


def test_relay_errors_are_zeep_faults(payroll: PayrollSite) -> None:
    client = _client(payroll, "payroll")
    nobody = client.create_service(PAYROLL_BINDING, payroll.url("nobody-here"))
    with pytest.raises(zeep.exceptions.Fault, match="TrackingId:") as missing:
        nobody.GetSalary(7)
    assert missing.value.code.endswith("Client")

    wsdl_only = TokenProvider.shared_access_signature(payroll.token("payroll"))
    tokenless = relay_client(payroll.wsdl("payroll"), token_provider=wsdl_only)
    tokenless.transport.session.auth = None  # the WSDL came with a token; the call goes without
    with pytest.raises(zeep.exceptions.Fault, match="token") as unauthorised:
        tokenless.service.GetSalary(7)
    assert unauthorised.value.code.endswith("Client")


# -- AsyncClient -------------------------------------------------------------------------


async def test_async_soap11_results_and_fault(payroll: PayrollSite) -> None:
    async with _async_client(payroll, "payroll") as client:
        assert await client.service.GetSalary(7) == Decimal("5120.50")
        assert len(await client.service.ListEmployees()) == 3
        with pytest.raises(zeep.exceptions.Fault, match="No employee has the id 99") as caught:
            await client.service.GetSalary(99)
    assert caught.value.code.endswith("Client.UnknownEmployee")


async def test_async_soap12_ws_addressing_results_and_fault(payroll: PayrollSite) -> None:
    async with _async_client(payroll, "payroll12", binding=WS2007HttpRelayBinding()) as client:
        assert await client.service.GetSalary(12) == Decimal("4975.25")
        with client.settings(raw_response=True):
            reply = await client.service.GetSalary(8)
        with pytest.raises(zeep.exceptions.Fault, match="No employee has the id 99") as caught:
            await client.service.GetSalary(99)
    root = etree.fromstring(reply.content)
    assert root.findtext(f".//{{{ns.WSA}}}RelatesTo", "").startswith("urn:uuid:")
    assert caught.value.code.endswith("Sender")


async def test_async_oneway_and_event(payroll: PayrollSite) -> None:
    async with _async_client(payroll, "timesheet", binding=NetOnewayRelayBinding()) as client:
        assert await client.service.SubmitTimesheet(8, Decimal(4)) is None
    async with _async_client(
        payroll, "payroll-events", binding=NetEventRelayBinding()
    ) as client:
        with client.settings(raw_response=True):
            reply = await client.service.PayrollRunCompleted("zeep-async", Decimal("7.5"))
    assert (reply.status_code, reply.headers["Relay-Delivered"]) == (202, "2")
    for recorder, line in (
        (payroll.timesheets, "timesheet employee=8 hours=4"),
        (payroll.audit, "audit run=zeep-async total=7.5"),
        (payroll.notifications, "notifications run=zeep-async total=7.5"),
    ):
        assert recorder.wait_for_line(line)
        assert recorder.lines.count(line) == 1


async def test_async_relay_error_is_a_zeep_fault(payroll: PayrollSite) -> None:
    async with _async_client(payroll, "payroll") as client:
        # zeep quirk: AsyncClient.create_service returns a sync ServiceProxy whose calls
        # hand a coroutine to process_reply; an AsyncServiceProxy has to be made by hand.
        binding = client.wsdl.bindings[PAYROLL_BINDING]
        nobody = AsyncServiceProxy(client, binding, address=payroll.url("nobody-here"))
        with pytest.raises(zeep.exceptions.Fault, match="TrackingId:"):
            await nobody.GetSalary(7)
