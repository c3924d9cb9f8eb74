"""WCF clients (Mono's System.ServiceModel) calling Spyne services hosted by our bindings.

``WcfClient.exe`` (``Client.cs``, hand-written contracts in ``SpyneContracts.cs``)
calls through a real relay, with BasicHttpBinding (SOAP 1.1) against
``BasicHttpRelayBinding`` and a CustomBinding (``TextMessageEncoding``
``Soap12WSAddressing10`` + ``HttpTransport``) against ``WS2007HttpRelayBinding``;
the token goes in the ``ServiceBusAuthorization`` HTTP header
(``OperationContextScope`` + ``HttpRequestMessageProperty``) or in the
``RelayAccessToken`` SOAP header.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hc.sas import create_token
from interop_tests.wcf.mono import Programs
from interop_tests.wcf.spyne_site import SpyneSite, spyne_site
from samples.payroll.services import EMPLOYEES
from tests.support.relay import TEST_KEY, TEST_KEY_NAME

pytestmark = pytest.mark.wcf

EVERYONE = ";".join(f"{i}|{name}|{department}" for i, (name, department, _) in EMPLOYEES.items())
#: 300,000 characters, some of them two or three bytes in UTF-8: a body over 300 KB.
BIG = "echo:300000"


@pytest.fixture(scope="module")
def site() -> Iterator[SpyneSite]:
    with spyne_site() as running:
        yield running


@pytest.mark.parametrize(("entity", "binding", "token_place", "fault_code"), [
    ("wcf-payroll", "basic", "http", "Client.UnknownEmployee"),
    ("wcf-payroll12", "soap12", "soap", "Sender/UnknownEmployee"),
], ids=["basichttp-token-in-http-header", "soap12-wsa10-token-in-soap-header"])
def test_values_lists_a_fault_and_a_300_kb_body(
    wcf_programs: Programs, site: SpyneSite, entity: str, binding: str, token_place: str,
    fault_code: str,
) -> None:
    salary, employees, fault, echo = wcf_programs.client(
        site.url(entity), binding, "spyne", token_place, site.token(entity),
        "salary:7", "employees", "salary:99", BIG,
    )
    assert salary.value == str(EMPLOYEES[7][2])
    assert employees.value == EVERYONE
    # Spyne's Fault("Client.UnknownEmployee", ...) as WCF's FaultException: code and reason
    assert fault.kind == "fault", fault
    assert fault.fields == (fault_code, "No employee has the id 99")
    assert echo.value == "300000 same"


@pytest.mark.parametrize(("entity", "binding", "token_place"), [
    ("wcf-payroll", "basic", "soap"),
    ("wcf-payroll12", "soap12", "http"),
], ids=["basichttp-token-in-soap-header", "soap12-token-in-http-header"])
def test_the_token_in_the_other_place(
    wcf_programs: Programs, site: SpyneSite, entity: str, binding: str, token_place: str,
) -> None:
    [salary] = wcf_programs.client(
        site.url(entity), binding, "spyne", token_place, site.token(entity), "salary:8",
    )
    assert salary.value == str(EMPLOYEES[8][2])


def test_a_one_way_call_runs_exactly_once(wcf_programs: Programs, site: SpyneSite) -> None:
    entity = "wcf-timesheet"
    first, second = wcf_programs.client(
        site.url(entity), "basic", "spyne", "http", site.token(entity),
        "timesheet:7:37.5", "timesheet:12:8",
    )
    assert (first.value, second.value) == ("sent", "sent")
    assert site.timesheets.wait_for_line("timesheet employee=12 hours=8")
    assert site.timesheets.lines == [
        "timesheet employee=7 hours=37.5", "timesheet employee=12 hours=8",
    ]


@pytest.mark.parametrize(("entity", "binding"), [
    ("wcf-payroll", "basic"), ("wcf-payroll12", "soap12"),
])
def test_a_call_without_a_token_is_refused_with_a_clear_error(
    wcf_programs: Programs, site: SpyneSite, entity: str, binding: str,
) -> None:
    [refused] = wcf_programs.client(site.url(entity), binding, "spyne", "none", "", "salary:7")
    # Mono's HTTP channel raises a WebException carrying the relay's status and reason
    assert refused.kind == "error", refused
    assert refused.fields[0] == "WebException"
    assert "401" in refused.fields[1]
    assert "a SAS token is required" in refused.fields[1]


def test_a_wcf_client_calling_localhost_reaches_a_host_opened_on_127_0_0_1(
    wcf_programs: Programs, site: SpyneSite,
) -> None:
    # The host opened http://127.0.0.1:P/wcf-payroll12; the client's wsa:To says localhost.
    # WCF's default address filter ignores the host name, and so does the WS2007 binding.
    url = site.url("wcf-payroll12", host="localhost")
    token = create_token(url, TEST_KEY_NAME, TEST_KEY)  # the token is for the URL called
    [salary] = wcf_programs.client(url, "soap12", "spyne", "soap", token, "salary:12")
    assert salary.value == str(EMPLOYEES[12][2])
