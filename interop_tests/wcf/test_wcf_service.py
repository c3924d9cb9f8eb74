"""A self-hosted WCF service (Mono's ServiceHost, BasicHttpBinding) behind ``soaprelay forward``.

``WcfService.exe`` (``Service.cs``) listens on a loopback port with its WSDL at
``?wsdl``; ``soaprelay forward`` puts it behind a real relay with no change to
the service. zeep (sync and async, through the bindings' ``relay_client`` and
``relay_async_client``) and the WCF client call it through the relay.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urljoin

import pytest
import requests
import zeep
from lxml import etree

from bindings import relay_async_client, relay_client
from hc.connection_string import ConnectionString
from interop_tests.payroll_site import TIMEOUT
from interop_tests.wcf.mono import Programs
from soap import ns
from tests.support.procs import SOAPRELAY, Child, Children
from tests.support.relay import RelayThread, relay_thread

pytestmark = pytest.mark.wcf

ENTITY = "wcf-service"
ENGINEERING = [(7, "Ada Lovelace", Decimal("5120.50")), (8, "Grace Hopper", Decimal("5480.00"))]
_REFERENCES = {f"{{{ns.WSDL}}}import": "location", f"{{{ns.XSD}}}import": "schemaLocation"}


@dataclass
class Forwarded:
    """The WCF service, where it really listens, and the relay in front of it."""

    relay: RelayThread
    service: Child
    forward: Child
    private_url: str

    @property
    def url(self) -> str:
        return f"{self.relay.base_url}/{ENTITY}"

    @property
    def cs(self) -> ConnectionString:
        return ConnectionString.parse(self.relay.connection_string).with_entity(ENTITY)

    def token(self) -> str:
        return self.relay.token(ENTITY)


@pytest.fixture(scope="module")
def forwarded(
    wcf_programs: Programs, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Forwarded]:
    folder = tmp_path_factory.mktemp("wcf-service")
    with relay_thread() as relay, Children(folder) as children:
        service = children.start("wcf-service", [wcf_programs.mono,
                                                 str(wcf_programs.path("WcfService.exe"))])
        private_url = service.wait_for("READY ", TIMEOUT)
        forward = children.start("forward", [
            *SOAPRELAY, "forward", "--connection-string", relay.connection_string,
            "--entity", ENTITY, "--to", private_url,
        ])
        forward.wait_for("soaprelay: forwarding ", TIMEOUT)
        yield Forwarded(relay, service, forward, private_url)


def _documents(start: str, token: str) -> dict[str, bytes]:
    """The WSDL at ``start`` and every WSDL/XSD it imports, fetched through the relay."""
    found: dict[str, bytes] = {}
    todo = [start]
    while todo:
        url = todo.pop()
        if url in found:
            continue
        answer = requests.get(url, headers={"ServiceBusAuthorization": token}, timeout=TIMEOUT)
        assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])
        found[url] = answer.content
        root = etree.fromstring(answer.content)
        for element in root.iter(*_REFERENCES):
            location = element.get(_REFERENCES[str(element.tag)])
            if location is not None:
                todo.append(urljoin(url, location))
    return found


def test_the_wsdl_and_its_schemas_name_only_the_relay(forwarded: Forwarded) -> None:
    documents = _documents(f"{forwarded.url}?wsdl", forwarded.token())
    # Mono splits its contract over ?wsdl, ?wsdl=wsdl0, ?xsd=xsd0 and ?xsd=xsd1
    assert len(documents) == 4, list(documents)
    assert all(url.startswith(f"{forwarded.url}?") for url in documents)
    private = re.escape(forwarded.private_url.split("/payroll")[0])
    for url, document in documents.items():
        assert not re.search(private.encode(), document), url
    service = etree.fromstring(documents[f"{forwarded.url}?wsdl"])
    [address] = service.iter(f"{{{ns.WSDL_SOAP11}}}address")
    assert address.get("location") == forwarded.url


def test_zeep_calls_the_wcf_service(forwarded: Forwarded) -> None:
    client = relay_client(f"{forwarded.url}?wsdl", connection_string=forwarded.cs)
    assert client.service.GetSalary(7) == Decimal("5120.50")
    staff = client.service.ListStaff("Engineering")
    assert [(s.Id, s.Name, s.Salary) for s in staff] == ENGINEERING
    with pytest.raises(zeep.exceptions.Fault) as caught:
        client.service.GetSalary(99)
    assert (caught.value.code, caught.value.message) == ("UnknownEmployee", "No employee has the id 99")
    detail = caught.value.detail
    assert detail is not None
    assert [detail[0].findtext(f"{{urn:soap-relay:wcf-payroll}}{name}")
            for name in ("Id", "Message")] == ["99", "no such employee"]
    before = client.service.TimesheetCount()
    # Mono answers the one-way call 200 with an empty body: relay_client returns None
    assert client.service.SubmitTimesheet(8, Decimal(40)) is None
    assert forwarded.service.wait_for("timesheet 8 ", TIMEOUT) == "40"
    assert client.service.TimesheetCount() == before + 1


async def test_zeep_async_calls_the_wcf_service(forwarded: Forwarded) -> None:
    async with relay_async_client(f"{forwarded.url}?wsdl", connection_string=forwarded.cs) as client:
        assert await client.service.GetSalary(8) == Decimal("5480.00")
        staff = await client.service.ListStaff("Research")
        assert [(s.Id, s.Name) for s in staff] == [(12, "Edsger Dijkstra")]
        with pytest.raises(zeep.exceptions.Fault) as caught:
            await client.service.GetSalary(98)
        assert caught.value.code == "UnknownEmployee"
        before = await client.service.TimesheetCount()
        assert await client.service.SubmitTimesheet(12, Decimal("7.5")) is None
        assert forwarded.service.wait_for("timesheet 12 ", TIMEOUT) == "7.5"
        assert await client.service.TimesheetCount() == before + 1


def test_the_wcf_client_calls_the_wcf_service(wcf_programs: Programs, forwarded: Forwarded) -> None:
    salary, staff, fault, count, sent = wcf_programs.client(
        forwarded.url, "basic", "wcf", "http", forwarded.token(),
        "salary:12", "employees:Engineering", "salary:99", "count", "timesheet:7:37.5",
    )
    assert salary.value == "4975.25"
    assert staff.value == ";".join(f"{i}|{n}|Engineering|{s}" for i, n, s in ENGINEERING)
    # the typed FaultException<UnknownStaffFault>: code, reason and the detail's fields
    assert fault.kind == "fault", fault
    assert fault.fields == ("UnknownEmployee", "No employee has the id 99", "99 no such employee")
    assert sent.value == "sent"
    assert forwarded.service.wait_for("timesheet 7 ", TIMEOUT) == "37.5"
    [after] = wcf_programs.client(forwarded.url, "basic", "wcf", "http", forwarded.token(), "count")
    assert int(after.value) == int(count.value) + 1


def test_the_forwarder_logged_no_traceback(forwarded: Forwarded) -> None:
    # runs after the calls above (same module): none of them cost the forwarder a traceback
    assert forwarded.forward.alive()
    assert forwarded.forward.tracebacks() == []
