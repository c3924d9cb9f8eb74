"""The signed payroll service end to end: WS-Security through the real relay (127.0.0.1, port 0).

The service is ``services.signed_payroll_app`` hosted with ``security=MESSAGE``
behind a :class:`RelayServiceHost`; clients are ``relay_client`` with
``message_security``. Between the client and the relay sits, where a test
needs it, a :class:`~tests.support.tampering_proxy.TamperingProxy`. The
service records every GetSalary it runs, so "the operation never ran" is
checked, not assumed. Both sides' clocks are the test PKI's ``T0``.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep
from lxml import etree

from bindings.binding import (
    BasicHttpRelayBinding,
    EndToEndSecurityMode,
    RelayBinding,
    WS2007HttpRelayBinding,
)
from bindings.exceptions import UntrustedResponse
from bindings.host import RelayServiceHost
from bindings.spyne_host import spyne_wsgi
from bindings.wssecurity import MessageSecurity
from bindings.zeep_transport import relay_client
from hc.connection_string import ConnectionString
from samples.payroll import client as sample_client
from samples.payroll import credentials, listener, services
from soap import ns
from soap.envelope import Envelope
from soap.fault import find_fault
from soap.security import EnvelopeSigner, TimestampHook, verify_envelope
from soap.security.header import WSU_ID
from tests.soap.test_security_trust import T0, Party, pki
from tests.support.relay import RelayThread
from tests.support.tampering_proxy import Tamper, TamperingProxy

MESSAGE = EndToEndSecurityMode.MESSAGE
TIMEOUT = 10.0
CLIENT_SIGNER = "signer=CN=payroll-client"
BINDINGS = {
    "token-in-http-header": BasicHttpRelayBinding(security=MESSAGE),
    "token-in-soap-header": BasicHttpRelayBinding(security=MESSAGE, token_in_soap_header=True),
    "ws2007": WS2007HttpRelayBinding(security=MESSAGE),
}
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def at_t0() -> Any:
    return T0


def service_security(**changes: Any) -> MessageSecurity:
    settings: dict[str, Any] = {
        "identity": pki().server.identity,
        "trust": pki().pinned(pki().leaf),
        "clock": at_t0,
    }
    return MessageSecurity(**{**settings, **changes})


def client_security(**changes: Any) -> MessageSecurity:
    settings: dict[str, Any] = {
        "identity": pki().leaf.identity,
        "trust": pki().pinned(pki().server),
        "clock": at_t0,
    }
    return MessageSecurity(**{**settings, **changes})


@dataclass
class Service:
    """A hosted signed payroll service and what reached it."""

    host: RelayServiceHost
    binding: RelayBinding
    recorder: services.Recorder
    received: list[bytes] = field(default_factory=list)

    @property
    def entity(self) -> str:
        return self.host.address.entity_path

    @property
    def wsdl(self) -> str:
        return f"{self.host.public_address}?wsdl"


def _recording(app: WsgiApp, received: list[bytes]) -> WsgiApp:
    """Keep the POST bodies that passed the WS-Security check (the middleware sits outside)."""

    def recording(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "POST":
            received.append(environ["wsgi.input"].getvalue())
        return app(environ, start_response)

    return recording


@contextmanager
def hosted(cs: ConnectionString, binding: RelayBinding, entity: str) -> Iterator[Service]:
    recorder = services.Recorder()
    soap12 = binding.soap_version == "1.2"
    adapter = spyne_wsgi(services.signed_payroll_app(recorder, soap12=soap12), binding)
    service = Service(None, binding, recorder)  # type: ignore[arg-type]
    host = RelayServiceHost(
        _recording(adapter, service.received),
        binding=binding,
        connection_string=cs.with_entity(entity),
        message_security=service_security(),
        open_timeout=TIMEOUT,
    )
    service.host = host
    try:
        with host:
            yield service
    finally:
        adapter.close()


@pytest.fixture
def cs(relay: RelayThread) -> ConnectionString:
    return ConnectionString.parse(relay.connection_string)


@pytest.fixture(params=list(BINDINGS), ids=list(BINDINGS))
def signed(request: pytest.FixtureRequest, cs: ConnectionString) -> Iterator[Service]:
    with hosted(cs, BINDINGS[request.param], "payroll-signed") as service:
        yield service


@pytest.fixture
def signed11(cs: ConnectionString) -> Iterator[Service]:
    with hosted(cs, BINDINGS["token-in-http-header"], "payroll-signed") as service:
        yield service


@pytest.fixture
def proxy() -> Iterator[TamperingProxy]:
    with TamperingProxy() as running:
        yield running


def client_for(
    service: Service,
    cs: ConnectionString,
    proxy: TamperingProxy | None = None,
    *,
    binding: RelayBinding | None = None,
    security: MessageSecurity | None = None,
) -> zeep.Client:
    """A client of ``service`` (signing, unless ``binding`` says otherwise), maybe via ``proxy``."""
    binding = binding or service.binding
    if security is None and binding.security is MESSAGE:
        security = client_security()
    client = relay_client(
        service.wsdl,
        binding=binding,
        connection_string=cs.with_entity(service.entity),
        operation_timeout=TIMEOUT,
        message_security=security,
    )
    if proxy is not None:
        proxy.route(client.transport.session)
    return client


def fault_code(caught: pytest.ExceptionInfo[zeep.exceptions.Fault]) -> str:
    """The WS-Security fault's local name: the SOAP 1.1 code, or the SOAP 1.2 subcode."""
    subcodes = caught.value.subcodes or []
    code = subcodes[-1].localname if subcodes else str(caught.value.code)
    return str(code).rpartition(":")[2]


def _element(data: bytes, local: str) -> bytes | None:
    """The bytes of the first element called ``local`` (any prefix), start to end tag."""
    name = re.escape(local.encode())
    found = re.search(rb"<((?:[\w.-]+:)?)" + name + rb"[\s>].*?</\1" + name + rb">", data, re.DOTALL)
    return None if found is None else found.group(0)


# --- signed calls through the relay ----------------------------------------


def test_signed_call_verifies_at_the_service_and_the_reply_at_the_client(
    signed: Service, cs: ConnectionString, proxy: TamperingProxy
) -> None:
    client = client_for(signed, cs, proxy)
    assert client.service.GetSalary(7) == Decimal("5120.50")
    assert signed.recorder.lines == [f"salary employee=7 {CLIENT_SIGNER}"]
    sent, received = proxy.sent[-1], signed.received[-1]
    token = _element(sent, "RelayAccessToken")
    assert (token is not None) is signed.binding.token_in_soap_header
    # The relay took the token header out and left every other byte as it was.
    assert received == (sent if token is None else sent.replace(token, b"", 1))
    reply = Envelope.from_bytes(proxy.replies[-1])
    policy = client_security().policy(MESSAGE, service=False)
    assert policy is not None
    assert verify_envelope(reply, policy).signer == pki().server.cert


def test_unsigned_request_to_the_signed_service_gets_a_fault(
    signed: Service, cs: ConnectionString
) -> None:
    plain = type(signed.binding)(token_in_soap_header=signed.binding.token_in_soap_header)
    client = client_for(signed, cs, binding=plain)
    with pytest.raises(zeep.exceptions.Fault, match="no wsse:Security header") as caught:
        client.service.GetSalary(7)
    assert fault_code(caught) == "InvalidSecurity"
    assert signed.recorder.lines == [] and signed.received == []


def test_a_reply_from_an_untrusted_service_is_refused(
    signed11: Service, cs: ConnectionString
) -> None:
    client = client_for(signed11, cs, security=client_security(trust=pki().pinned(pki().stranger)))
    with pytest.raises(UntrustedResponse, match="not trusted"):
        client.service.GetSalary(7)


def test_a_client_the_service_does_not_trust_gets_a_fault(
    signed11: Service, cs: ConnectionString
) -> None:
    client = client_for(signed11, cs, security=client_security(identity=pki().stranger.identity))
    with pytest.raises(zeep.exceptions.Fault, match="not trusted") as caught:
        client.service.GetSalary(7)
    assert fault_code(caught) == "InvalidSecurityToken"
    assert signed11.recorder.lines == []


async def test_the_async_client_signs_and_verifies_too(
    signed11: Service, cs: ConnectionString
) -> None:
    from bindings.zeep_async import relay_async_client

    entity = cs.with_entity(signed11.entity)
    # zeep loads the WSDL synchronously; the relay and the host run in their own threads.
    client = relay_async_client(
        signed11.wsdl, binding=signed11.binding, connection_string=entity,
        message_security=client_security(trust=pki().pinned(pki().stranger)),
    )  # fmt: skip
    async with client:
        with pytest.raises(UntrustedResponse, match="not trusted"):
            await client.service.GetSalary(8)
    client = relay_async_client(
        signed11.wsdl, binding=signed11.binding, connection_string=entity,
        message_security=client_security(),
    )  # fmt: skip
    async with client:
        assert await client.service.GetSalary(7) == Decimal("5120.50")
    assert signed11.recorder.lines == [
        f"salary employee=8 {CLIENT_SIGNER}", f"salary employee=7 {CLIENT_SIGNER}"
    ]


# --- a tampering proxy in front of the relay -------------------------------


@pytest.mark.parametrize(
    ("tamper", "code", "reason"),
    [
        (Tamper.BODY_BYTE, "FailedCheck", "changed after signing"),
        (Tamper.REPLAY, "InvalidSecurity", "received before (a replay)"),
        (Tamper.WRAP_BODY, "InvalidSecurity", "outside this envelope's signable parts"),
    ],
)
def test_tampered_messages_get_a_fault_and_never_run(
    signed: Service,
    cs: ConnectionString,
    proxy: TamperingProxy,
    tamper: Tamper,
    code: str,
    reason: str,
) -> None:
    client = client_for(signed, cs, proxy)
    assert client.service.GetSalary(7) == Decimal("5120.50")  # honest, and captured
    proxy.mode = tamper
    with pytest.raises(zeep.exceptions.Fault, match=re.escape(reason)) as caught:
        client.service.GetSalary(8)
    assert fault_code(caught) == code
    assert len(signed.received) == 1  # nothing the proxy forwarded got past the check
    assert signed.recorder.lines == [f"salary employee=7 {CLIENT_SIGNER}"]
    proxy.mode = Tamper.NONE
    assert client.service.GetSalary(12) == Decimal("4975.25")
    assert len(signed.recorder.lines) == 2


def test_a_charset_differential_gets_a_fault_and_never_runs(
    signed: Service, cs: ConnectionString, proxy: TamperingProxy
) -> None:
    """The signed GetSalary(7) verifies as UTF-8; sent as charset=utf-7 it reads as GetSalary(8)."""
    client = client_for(signed, cs, proxy)
    proxy.mode = Tamper.CHARSET
    reason = "charset 'utf-7' is not the document's"
    with pytest.raises(zeep.exceptions.Fault, match=reason) as caught:
        client.service.GetSalary(7)
    assert fault_code(caught) == ("Sender" if signed.binding.soap_version == "1.2" else "Client")
    assert signed.received == [] and signed.recorder.lines == []
    proxy.mode = Tamper.NONE
    assert client.service.GetSalary(7) == Decimal("5120.50")
    assert signed.recorder.lines == [f"salary employee=7 {CLIENT_SIGNER}"]


def test_a_signed_reply_to_another_call_is_refused(
    cs: ConnectionString, proxy: TamperingProxy
) -> None:
    """WS2007 replies carry a signed wsa:RelatesTo; a client takes only replies to its calls."""
    with hosted(cs, BINDINGS["ws2007"], "payroll-signed") as service:
        first = client_for(service, cs, proxy)
        assert first.service.GetSalary(8) == Decimal("5480.00")
        stolen = proxy.replies[-1]
        policy = client_security().policy(MESSAGE, service=False)
        assert policy is not None
        signed_parts = verify_envelope(Envelope.from_bytes(stolen), policy).signed_parts
        assert f"{{{ns.WSA}}}RelatesTo" in signed_parts
        second = client_for(service, cs, proxy)
        proxy.reply_with = stolen  # genuinely signed, fresh, and new to this client
        with pytest.raises(UntrustedResponse, match="names no request this client is waiting"):
            second.service.GetSalary(7)
        proxy.reply_with = None
        assert second.service.GetSalary(7) == Decimal("5120.50")


# --- bad input through the relay -------------------------------------------


def _signed_request(
    client: zeep.Client, *, by: Party | None = None, clock_offset: timedelta = timedelta()
) -> etree._Element:
    """GetSalary(7) from a plain ``client``, signed by ``by`` (the client) at T0+offset."""
    root = client.create_message(client.service, "GetSalary", 7)
    moment = T0 + clock_offset
    TimestampHook(clock=lambda: moment).egress(root, {})
    EnvelopeSigner((by or pki().leaf).identity).sign(Envelope.from_element(root))
    return root


def _garbage_in_security(client: zeep.Client) -> bytes:
    root = _signed_request(client)
    security = Envelope.from_element(root).header_blocks[0]
    security[0].tail = "%%% garbage &<>; not a token %%%"
    return etree.tostring(root)


def _without(client: zeep.Client, *paths: str) -> bytes:
    """A signed request with the elements at ``paths`` taken out (unsigned parts: no digest)."""
    root = _signed_request(client)
    for path in paths:
        element = root.find(path)
        assert element is not None, path
        parent = element.getparent()
        assert parent is not None
        parent.remove(element)
    return etree.tostring(root)


def _duplicate_ids(client: zeep.Client) -> bytes:
    root = _signed_request(client)
    envelope = Envelope.from_element(root)
    assert envelope.header is not None
    twin = etree.SubElement(envelope.header, "{urn:attacker}Twin")
    twin.set(WSU_ID, envelope.body.get(WSU_ID))
    return etree.tostring(root)


BAD_INPUT: dict[str, tuple[Callable[[zeep.Client], bytes], str, str]] = {
    "garbage-in-security": (_garbage_in_security, "InvalidSecurity", "stray text"),
    "missing-certificate": (
        lambda c: _without(c, ".//{*}BinarySecurityToken", ".//{*}Signature/{*}KeyInfo"),
        "InvalidSecurityToken", "the signature has no KeyInfo",
    ),
    "dangling-certificate-reference": (
        lambda c: _without(c, ".//{*}BinarySecurityToken"),
        "InvalidSecurityToken", "key reference",
    ),
    "untrusted-certificate": (
        lambda c: etree.tostring(_signed_request(c, by=pki().stranger)),
        "InvalidSecurityToken", "not trusted",
    ),
    "expired-certificate": (
        lambda c: etree.tostring(_signed_request(c, by=pki().expired)),
        "InvalidSecurityToken", "expired or not yet valid",
    ),
    "expired-timestamp": (
        lambda c: etree.tostring(_signed_request(c, clock_offset=timedelta(hours=-1))),
        "MessageExpired", "older than 0:05:00",
    ),
    "duplicate-ids": (_duplicate_ids, "InvalidSecurity", "used more than once"),
    "dtd": (
        lambda c: b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        + etree.tostring(_signed_request(c)),
        "", "DTDs are not allowed",
    ),
    "not-xml": (lambda c: b"<soap:Envelope garbage", "", "not a readable SOAP envelope"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INPUT), ids=list(BAD_INPUT))
def test_bad_input_gets_a_clear_fault_and_the_service_keeps_serving(
    signed11: Service, cs: ConnectionString, relay: RelayThread, case: str
) -> None:
    make, code, reason = BAD_INPUT[case]
    crafting = client_for(signed11, cs, binding=BasicHttpRelayBinding())  # adds no security
    response = requests.post(
        f"{relay.base_url}/{signed11.entity}",
        data=make(crafting),
        headers={
            "ServiceBusAuthorization": relay.token(signed11.entity),
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": '"GetSalary"',
        },
        timeout=TIMEOUT,
    )
    assert response.status_code in (400, 500), response.text
    fault = find_fault(Envelope.from_bytes(response.content))
    assert fault is not None, response.text
    assert reason in fault.reason
    if code:
        assert fault.subcode is not None and fault.subcode.localname == code
    assert signed11.recorder.lines == [] and signed11.received == []
    assert client_for(signed11, cs).service.GetSalary(7) == Decimal("5120.50")
    assert signed11.recorder.lines == [f"salary employee=7 {CLIENT_SIGNER}"]


# --- the sample's signed variant -------------------------------------------


def test_the_sample_signed_call_with_demo_credentials(
    cs: ConnectionString, tmp_path: Path
) -> None:
    keys = credentials.write_demo_credentials(tmp_path / "keys")
    assert stat.S_IMODE((keys / "client.key").stat().st_mode) == 0o600
    recorder, lines = services.Recorder(), list[str]()
    with RelayServiceHost(
        services.signed_payroll_app(recorder),
        binding=sample_client.SIGNED_BINDING,
        connection_string=cs.with_entity("payroll-signed"),
        message_security=credentials.service_security(keys),
        open_timeout=TIMEOUT,
    ):
        report = sample_client.Report()
        sample_client.call_signed(cs, keys, report, say=lines.append)
    assert report.signed_salary == Decimal("5120.50")
    assert report.unsigned_fault.startswith("InvalidSecurity: ")
    assert recorder.lines == ["salary employee=7 signer=CN=payroll-demo-client"]
    assert "GetSalary(7) signed   = 5120.50 (the reply's signature verified)" in lines[1]


def test_the_signed_operation_refuses_a_request_nobody_checked(cs: ConnectionString) -> None:
    recorder = services.Recorder()
    with RelayServiceHost(
        services.signed_payroll_app(recorder),  # hosted without security=MESSAGE: a mistake
        connection_string=cs.with_entity("payroll-signed"),
        open_timeout=TIMEOUT,
    ) as host:
        client = relay_client(
            f"{host.public_address}?wsdl", connection_string=cs.with_entity("payroll-signed")
        )
        with pytest.raises(zeep.exceptions.Fault, match="needs a signed request") as caught:
            client.service.GetSalary(7)
    assert fault_code(caught) == "Client.SignatureRequired"
    assert recorder.lines == []


def test_the_signed_listener_needs_credentials(cs: ConnectionString) -> None:
    argv = ["--connection-string", str(cs), "--service", "payroll-signed"]
    assert listener.main(argv) == 2
