"""curl: raw SOAP through the relay, envelopes written by hand, no SOAP library at all.

- SOAP 1.1 with the token in a WCF ``RelayAccessToken`` SOAP header (PROTOCOL.md section 6),
  the XML written out here from the spec, not by ``soap.relay_token``;
- SOAP 1.2 with the token in the ``ServiceBusAuthorization`` HTTP header;
- SOAP 1.1 with the token in the ``sb-hc-token`` query parameter;
- no token at all: 401 with a SOAP fault of the request's SOAP version.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from lxml import etree

from interop_tests.payroll_site import TIMEOUT, PayrollSite
from soap import ns

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None, reason="needs curl (apt-packages.txt; `make bootstrap`)"
)

TNS = "urn:soap-relay:payroll"
SOAP11 = "text/xml; charset=utf-8"
SOAP12 = 'application/soap+xml; charset=utf-8; action="GetSalary"'
RELAY_TOKEN_HEADER = """
    <RelayAccessToken xmlns="http://schemas.microsoft.com/netservices/2009/05/servicebus/connect">
      <wsse:BinarySecurityToken
          xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
          xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
          wsu:Id="uuid:{id}"
          ValueType="http://schemas.xmlsoap.org/ws/2009/11/swt-token-profile-1.0"
          EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
        >{token}</wsse:BinarySecurityToken>
    </RelayAccessToken>"""


def envelope(env_ns: str, employee_id: int, header: str = "") -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="{env_ns}" xmlns:p="{TNS}">
  <soap:Header>{header}</soap:Header>
  <soap:Body><p:GetSalary><p:employee_id>{employee_id}</p:employee_id></p:GetSalary></soap:Body>
</soap:Envelope>""".encode()


@dataclass
class Reply:
    status: int
    content_type: str
    headers: str
    body: bytes

    def xml(self) -> etree._Element:
        return etree.fromstring(self.body)


def curl(url: str, body: bytes, headers: dict[str, str], folder: Path) -> Reply:
    """POST ``body`` with the curl binary; the status, headers and body it saw."""
    out, dumped = folder / f"{uuid.uuid4().hex}.body", folder / f"{uuid.uuid4().hex}.headers"
    argv = ["curl", "--silent", "--show-error", "--max-time", str(int(TIMEOUT)),
            "--data-binary", "@-", "--output", str(out), "--dump-header", str(dumped),
            "--write-out", "%{http_code}\n%{content_type}"]
    for name, value in headers.items():
        argv += ["--header", f"{name}: {value}"]
    done = subprocess.run(
        [*argv, url], input=body, capture_output=True, timeout=TIMEOUT + 5, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    status, content_type = done.stdout.decode().split("\n", 1)
    return Reply(int(status), content_type, dumped.read_text(), out.read_bytes())


def salary(reply: Reply) -> str | None:
    return reply.xml().findtext(f".//{{{TNS}}}GetSalaryResult")


def test_soap11_with_the_token_in_a_relay_access_token_header(
    payroll: PayrollSite, tmp_path: Path
) -> None:
    token = base64.b64encode(payroll.token("payroll").encode()).decode()
    header = RELAY_TOKEN_HEADER.format(id=uuid.uuid4(), token=token)
    reply = curl(
        payroll.url("payroll"), envelope(ns.SOAP11_ENV, 7, header),
        {"Content-Type": SOAP11, "SOAPAction": '"GetSalary"'}, tmp_path,
    )
    assert (reply.status, salary(reply)) == (200, "5120.50")
    assert reply.content_type.startswith("text/xml")
    assert "via:" in reply.headers.lower()  # answered by the listener, through the relay


def test_soap12_with_the_service_bus_authorization_header(
    payroll: PayrollSite, tmp_path: Path
) -> None:
    reply = curl(
        payroll.url("payroll12"), envelope(ns.SOAP12_ENV, 8),
        {"Content-Type": SOAP12, "ServiceBusAuthorization": payroll.token("payroll12")}, tmp_path,
    )
    assert (reply.status, salary(reply)) == (200, "5480.00")
    assert reply.content_type.startswith("application/soap+xml")
    assert reply.xml().tag == f"{{{ns.SOAP12_ENV}}}Envelope"


def test_soap11_with_the_token_in_the_query(payroll: PayrollSite, tmp_path: Path) -> None:
    url = f"{payroll.url('payroll')}?sb-hc-token={quote(payroll.token('payroll'), safe='')}"
    reply = curl(
        url, envelope(ns.SOAP11_ENV, 12), {"Content-Type": SOAP11, "SOAPAction": '"GetSalary"'},
        tmp_path,
    )
    assert (reply.status, salary(reply)) == (200, "4975.25")


@pytest.mark.parametrize(
    ("entity", "env_ns", "content_type", "code_path"),
    [
        ("payroll", ns.SOAP11_ENV, SOAP11, "faultcode"),
        ("payroll12", ns.SOAP12_ENV, SOAP12, f"{{{ns.SOAP12_ENV}}}Code/{{{ns.SOAP12_ENV}}}Value"),
    ],
    ids=["soap11", "soap12"],
)
def test_no_token_gets_a_401_soap_fault(
    payroll: PayrollSite, tmp_path: Path, entity: str, env_ns: str, content_type: str,
    code_path: str,
) -> None:
    reply = curl(payroll.url(entity), envelope(env_ns, 7), {"Content-Type": content_type},
                 tmp_path)
    assert reply.status == 401
    assert reply.content_type.split(";")[0] == content_type.split(";")[0]
    fault = reply.xml().find(f"{{{env_ns}}}Body/{{{env_ns}}}Fault")
    assert fault is not None
    code = fault.findtext(code_path, "")
    assert code.endswith("Client" if env_ns == ns.SOAP11_ENV else "Sender")
    assert "token" in "".join(fault.itertext())
    assert "via:" not in reply.headers.lower()  # the relay's own answer, not the service's
