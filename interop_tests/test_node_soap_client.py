"""node-soap (``soap`` on npm) calling the payroll services through the relay.

``node/soap_client.js`` fetches the WSDL through the relay, calls one operation and prints
the outcome as JSON. Checked: SOAP 1.1 and 1.2 results and service faults, the token in
the ``ServiceBusAuthorization`` header or, for SOAP 1.2, in a ``RelayAccessToken`` SOAP
header that node-soap serialises itself (the WSDL then comes with ``sb-hc-token``), one-way
and event calls, and the relay's own errors as node-soap faults.

node-soap quirks met here: it never chooses SOAP 1.2 from the WSDL (``--soap12`` sets its
``forceSoap12Headers``), and it returns an element with attributes as
``{attributes, $value}``, which is what the ``xml:lang`` on fault texts becomes
(``soap_client.js`` takes the text out).
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any
from urllib.parse import quote

import pytest

from interop_tests.payroll_site import TIMEOUT, PayrollSite
from tests.support.node import NODE_SKIP_REASON, node_available, run_node

pytestmark = [pytest.mark.node, pytest.mark.skipif(not node_available(), reason=NODE_SKIP_REASON)]

RELAY_ACCESS_TOKEN = (
    '<RelayAccessToken xmlns="http://schemas.microsoft.com/netservices/2009/05/servicebus/connect">'
    '<wsse:BinarySecurityToken xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/'
    'oasis-200401-wss-wssecurity-secext-1.0.xsd" xmlns:wsu="http://docs.oasis-open.org/wss/'
    '2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" wsu:Id="uuid:{id}" '
    'ValueType="http://schemas.xmlsoap.org/ws/2009/11/swt-token-profile-1.0" '
    'EncodingType="http://docs.oasis-open.org/wss/2004/01/'
    'oasis-200401-wss-soap-message-security-1.0#Base64Binary">{token}</wsse:BinarySecurityToken>'
    "</RelayAccessToken>"
)


def node_soap(
    payroll: PayrollSite, entity: str, operation: str, args: dict[str, Any], *options: str,
    token: bool = True,
) -> dict[str, Any]:
    """Run soap_client.js once; its JSON result line."""
    auth = ["--header", f"ServiceBusAuthorization: {payroll.token(entity)}"] if token else []
    done = run_node(
        "soap_client.js", payroll.wsdl(entity), operation, json.dumps(args), *auth, *options,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_soap11_results_and_service_fault(payroll: PayrollSite) -> None:
    ok = node_soap(payroll, "payroll", "GetSalary", {"employee_id": 7})
    assert ok == {"fault": False, "result": {"GetSalaryResult": 5120.5}}
    listed = node_soap(payroll, "payroll", "ListEmployees", {})
    employees = listed["result"]["ListEmployeesResult"]["Employee"]
    assert [e["name"] for e in employees] == ["Ada Lovelace", "Grace Hopper", "Edsger Dijkstra"]
    fault = node_soap(payroll, "payroll", "GetSalary", {"employee_id": 99})
    assert (fault["fault"], fault["status"]) == (True, 500)
    assert fault["faultcode"].endswith("Client.UnknownEmployee")
    assert fault["faultstring"] == "No employee has the id 99"


def test_soap12_results_and_service_fault(payroll: PayrollSite) -> None:
    ok = node_soap(payroll, "payroll12", "GetSalary", {"employee_id": 8}, "--soap12")
    assert ok == {"fault": False, "result": {"GetSalaryResult": 5480}}
    fault = node_soap(payroll, "payroll12", "GetSalary", {"employee_id": 99}, "--soap12")
    assert (fault["fault"], fault["status"]) == (True, 500)
    assert fault["faultcode"].endswith("Sender")
    assert fault["faultstring"] == "No employee has the id 99"


def test_soap12_with_the_token_in_a_relay_access_token_header(payroll: PayrollSite) -> None:
    token = payroll.token("payroll12")
    header = RELAY_ACCESS_TOKEN.format(id=uuid.uuid4(), token=base64.b64encode(token.encode()).decode())
    wsdl = f"{payroll.wsdl('payroll12')}&sb-hc-token={quote(token, safe='')}"
    done = run_node(
        "soap_client.js", wsdl, "GetSalary", '{"employee_id": 12}', "--soap12",
        "--soap-header", header, timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == {"fault": False, "result": {"GetSalaryResult": 4975.25}}


def test_oneway_and_event_calls(payroll: PayrollSite) -> None:
    oneway = node_soap(
        payroll, "timesheet", "SubmitTimesheet", {"employee_id": 8, "hours": "12.5"}
    )
    event = node_soap(
        payroll, "payroll-events", "PayrollRunCompleted", {"run_id": "node-soap", "total": "9.75"}
    )
    assert oneway == event == {"fault": False, "result": None}
    expected = [
        (payroll.timesheets, "timesheet employee=8 hours=12.5"),
        (payroll.audit, "audit run=node-soap total=9.75"),
        (payroll.notifications, "notifications run=node-soap total=9.75"),
    ]
    for recorder, line in expected:
        assert recorder.wait_for_line(line)
        assert recorder.lines.count(line) == 1


def test_relay_errors_are_node_soap_faults(payroll: PayrollSite) -> None:
    missing = node_soap(
        payroll, "payroll", "GetSalary", {"employee_id": 7}, "--endpoint", payroll.url("nobody")
    )
    assert (missing["fault"], missing["status"]) == (True, 404)
    assert missing["faultcode"].endswith("Client")
    assert "TrackingId:" in missing["faultstring"]
    assert missing["detail"]["RelayError"]["Code"] == "EntityNotFound"

    wsdl = f"{payroll.wsdl('payroll')}&sb-hc-token={quote(payroll.token('payroll'), safe='')}"
    done = run_node("soap_client.js", wsdl, "GetSalary", '{"employee_id": 7}', timeout=TIMEOUT)
    unauthorised = json.loads(done.stdout)  # the WSDL came with a token; the call goes without
    assert (unauthorised["fault"], unauthorised["status"]) == (True, 401)
    assert "token" in unauthorised["faultstring"]
