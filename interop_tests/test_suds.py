"""suds-community calling the payroll services through the relay, with no code of ours.

suds is configured the way its documentation says: the WSDL URL on the relay and the
``ServiceBusAuthorization`` header in its ``headers`` option (sent with the WSDL fetch and
with every call). suds speaks SOAP 1.1 only (it reads ``soap12`` bindings but always sends
1.1 envelopes), so the SOAP 1.2 entity is not called here.

Quirk (suds-community ``client.py``, ``process_reply``): suds reads a SOAP fault only from a
200 or 500 reply. The relay's own errors (401, 403, 404, 502, 504) carry a SOAP fault too,
but suds raises a bare ``Exception((status, reason))`` for them; the relay puts its message
in the HTTP reason phrase, so it still reaches the user, and a ``MessagePlugin`` sees the
whole fault. Service faults (500) are ``suds.WebFault`` as usual.

Quirk (urllib's ``AbstractBasicAuthHandler``, which suds' default ``HttpAuthenticated``
transport installs): a 401 whose ``WWW-Authenticate`` names any scheme but Basic raises
``ValueError("... does not support the following scheme: 'SharedAccessSignature'")``
instead of the HTTP error. The relay's 401 must carry its challenge (RFC 9110), so a suds
user who wants the status and message passes ``transport=HttpTransport()``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from lxml import etree
from suds import WebFault
from suds.client import Client
from suds.plugin import MessagePlugin
from suds.transport.http import HttpTransport

from interop_tests.payroll_site import TIMEOUT, PayrollSite
from soap import ns


def _client(payroll: PayrollSite, entity: str, **options: Any) -> Client:
    return Client(
        payroll.wsdl(entity),
        headers={"ServiceBusAuthorization": payroll.token(entity)},
        timeout=TIMEOUT,
        **options,
    )


class LastReply(MessagePlugin):  # type: ignore[misc]
    """Keeps the raw body of the last reply, whatever its HTTP status."""

    def __init__(self) -> None:
        self.body = b""

    def received(self, context: Any) -> None:
        self.body = context.reply


def test_results_and_service_fault(payroll: PayrollSite) -> None:
    client = _client(payroll, "payroll")
    assert client.service.GetSalary(7) == Decimal("5120.50")
    employees = client.service.ListEmployees().Employee
    assert [(e.id, e.name) for e in employees] == [
        (7, "Ada Lovelace"), (8, "Grace Hopper"), (12, "Edsger Dijkstra"),
    ]
    with pytest.raises(WebFault) as caught:
        client.service.GetSalary(99)
    assert caught.value.fault.faultcode.endswith("Client.UnknownEmployee")
    assert caught.value.fault.faultstring == "No employee has the id 99"


def test_oneway_and_event_calls(payroll: PayrollSite) -> None:
    timesheets = _client(payroll, "timesheet")
    assert timesheets.service.SubmitTimesheet(12, Decimal("6.25")) is None
    events = _client(payroll, "payroll-events")
    assert events.service.PayrollRunCompleted("suds", Decimal(42)) is None
    expected = [
        (payroll.timesheets, "timesheet employee=12 hours=6.25"),
        (payroll.audit, "audit run=suds total=42"),
        (payroll.notifications, "notifications run=suds total=42"),
    ]
    for recorder, line in expected:
        assert recorder.wait_for_line(line)
        assert recorder.lines.count(line) == 1


def test_the_default_transport_refuses_the_relays_401_challenge(payroll: PayrollSite) -> None:
    client = _client(payroll, "payroll")

    client.set_options(headers={})
    with pytest.raises(ValueError, match="'SharedAccessSignature'"):  # the quirk: see above
        client.service.GetSalary(7)


def test_relay_errors_reach_suds_with_status_and_message(payroll: PayrollSite) -> None:
    reply = LastReply()
    client = _client(payroll, "payroll", plugins=[reply], transport=HttpTransport())

    client.set_options(headers={})  # the WSDL came with a token; the call goes without
    with pytest.raises(Exception) as unauthorised:
        client.service.GetSalary(7)
    assert not isinstance(unauthorised.value, WebFault)  # the quirk: see the module docstring
    status, reason = unauthorised.value.args[0]
    assert status == 401 and "token" in reason
    fault = etree.fromstring(reply.body).find(f".//{{{ns.SOAP11_ENV}}}Fault")
    assert fault is not None and fault.findtext("faultcode", "").endswith("Client")
    assert "TrackingId:" in fault.findtext("faultstring", "")

    client.set_options(
        headers={"ServiceBusAuthorization": payroll.token("nobody-here")},
        location=payroll.url("nobody-here"),
    )
    with pytest.raises(Exception) as missing:
        client.service.GetSalary(7)
    assert missing.value.args[0][0] == 404
