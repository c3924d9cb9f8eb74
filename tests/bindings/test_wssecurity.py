"""bindings.wssecurity at the WSGI level and with zeep in-process (no sockets, no relay).

A tiny Spyne payroll service sits behind :class:`WsSecurityMiddleware`; a zeep
client talks to it through :class:`WsgiTransport`, which calls the WSGI
application directly. Every clock is the test PKI's ``T0``.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import zeep
from lxml import etree
from requests.structures import CaseInsensitiveDict
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from spyne import Application, Integer, ServiceBase, rpc
from spyne import Decimal as SpyneDecimal
from spyne.protocol.soap import Soap11, Soap12
from spyne.server.wsgi import WsgiApplication

from bindings.binding import EndToEndSecurityMode
from bindings.exceptions import BindingError, ConfigurationError
from bindings.wssecurity import (
    ENVIRON_KEY,
    MessageSecurity,
    UntrustedResponse,
    WsSecurityMiddleware,
    WsSecurityPlugin,
    secure_service,
    security_plugin,
)
from bindings.zeep_addressing import AddressingPlugin
from soap import ns
from soap.addressing import AddressingHook
from soap.envelope import Envelope, SoapVersion
from soap.exceptions import UnsupportedAlgorithm
from soap.fault import find_fault
from soap.security import (
    EnvelopeSigner,
    SecurityResult,
    TimestampHook,
    WsSecurityHook,
    verify_envelope,
)
from soap.security.header import WSU_ID
from tests.soap.test_security_trust import T0, pki
from tests.support.tampering_proxy import smuggle_utf7

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network

Mode = EndToEndSecurityMode
TNS = "urn:test:payroll"
ADDRESS = "http://relay.test/payroll"
USERS = {"alice": "s3cret"}
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


# --- a tiny Spyne service and an in-process zeep transport -----------------


@dataclass
class Calls:
    """What the service saw: operation arguments and the environ of each call."""

    salaries: list[int] = field(default_factory=list)
    environs: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


def payroll_service(calls: Calls, version: SoapVersion = SoapVersion.SOAP11) -> WsgiApp:
    """A Spyne payroll app with one operation, ``GetSalary(employee_id)``."""

    class Payroll(ServiceBase):  # type: ignore[misc]
        @rpc(Integer, _returns=SpyneDecimal)  # type: ignore[misc]
        def GetSalary(ctx: Any, employee_id: int) -> Decimal:
            calls.salaries.append(employee_id)
            calls.environs.append(ctx.transport.req_env)
            return Decimal(1000 + employee_id)

    protocol = Soap11 if version is SoapVersion.SOAP11 else Soap12
    app = Application([Payroll], tns=TNS, in_protocol=protocol(), out_protocol=protocol())
    spyne_app = WsgiApplication(app)

    def recording(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "POST":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            calls.bodies.append(body)
            environ["wsgi.input"] = io.BytesIO(body)
        return spyne_app(environ, start_response)  # type: ignore[no-any-return]

    return recording


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def call(
    app: WsgiApp,
    method: str = "POST",
    body: bytes = b"",
    *,
    content_type: str = "text/xml; charset=utf-8",
    query: str = "",
    extra: dict[str, Any] | None = None,
) -> Reply:
    """Run one request through a WSGI app."""
    environ = wsgi_environ(method, body, content_type=content_type, query=query, extra=extra)
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    result = app(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return Reply(int(seen["status"].split()[0]), seen["headers"], data)


def wsgi_environ(
    method: str = "POST",
    body: bytes = b"",
    *,
    content_type: str = "text/xml; charset=utf-8",
    query: str = "",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The environ of one request to ``/payroll`` at ``relay.test``."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "/payroll",
        "PATH_INFO": "",
        "QUERY_STRING": query,
        "SERVER_NAME": "relay.test",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "relay.test",
        "REMOTE_ADDR": "192.0.2.1",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    environ.update(extra or {})
    return environ


class WsgiTransport(zeep.Transport):  # type: ignore[misc]
    """A zeep transport that calls a WSGI app in-process instead of using HTTP."""

    def __init__(self, app: WsgiApp) -> None:
        super().__init__()
        self.app = app

    def _load_remote_data(self, url: str) -> bytes:
        return call(self.app, "GET", query=url.partition("?")[2]).body

    def post(self, address: str, message: bytes | str, headers: dict[str, str]) -> Any:
        data = message.encode() if isinstance(message, str) else message
        content_type = headers.get("Content-Type", "text/xml; charset=utf-8")
        extra = {"HTTP_SOAPACTION": headers.get("SOAPAction", "")}
        reply = call(self.app, body=data, content_type=content_type, extra=extra)
        return ZeepReply(reply.status, CaseInsensitiveDict(reply.headers), reply.body)


@dataclass
class ZeepReply:
    """What zeep's ``process_reply`` reads of a transport's answer."""

    status_code: int
    headers: CaseInsensitiveDict[str]
    content: bytes
    encoding: str = "utf-8"


def zeep_client(app: WsgiApp, *plugins: zeep.Plugin | None) -> zeep.Client:
    assert None not in plugins, "a message mode always gives a plugin"
    return zeep.Client(f"{ADDRESS}?wsdl", transport=WsgiTransport(app), plugins=list(plugins))


# --- settings per mode -----------------------------------------------------


def service_settings(**changes: Any) -> MessageSecurity:
    settings: dict[str, Any] = {
        "identity": pki().server.identity,
        "trust": pki().pinned(pki().leaf, pki().ec_leaf),
        "credentials": USERS.get,
        "clock": at(T0),
    }
    settings.update(changes)
    return MessageSecurity(**settings)


def client_settings(**changes: Any) -> MessageSecurity:
    settings: dict[str, Any] = {
        "identity": pki().leaf.identity,
        "trust": pki().pinned(pki().server),
        "clock": at(T0),
    }
    settings.update(changes)
    return MessageSecurity(**settings)


@pytest.mark.parametrize("mode", [Mode.NONE, Mode.TRANSPORT])
def test_no_message_security_in_transport_modes(mode: Mode) -> None:
    app = payroll_service(Calls())
    assert secure_service(app, mode, None) is app
    assert security_plugin(mode, None) is None
    assert client_settings().client_hook(mode) is None
    assert service_settings().policy(mode, service=True) is None


@pytest.mark.parametrize("mode", [Mode.MESSAGE, Mode.TRANSPORT_WITH_MESSAGE_CREDENTIAL])
def test_message_modes_need_settings(mode: Mode) -> None:
    with pytest.raises(ConfigurationError, match="needs MessageSecurity"):
        secure_service(payroll_service(Calls()), mode, None)
    with pytest.raises(ConfigurationError, match="needs MessageSecurity"):
        security_plugin(mode, None)


def test_message_mode_policies() -> None:
    service = service_settings().policy(Mode.MESSAGE, service=True)
    assert service is not None and service.require_signature and service.require_timestamp
    client = client_settings().policy(Mode.MESSAGE, service=False)
    assert client is not None and client.require_signature
    assert client_settings(verify_replies=False).policy(Mode.MESSAGE, service=False) is None
    hook = client_settings(username="alice", password="s3cret").client_hook(Mode.MESSAGE)
    assert hook is not None and hook.signer is not None and hook.username_token is not None


def test_credential_mode_policies() -> None:
    twmc = Mode.TRANSPORT_WITH_MESSAGE_CREDENTIAL
    by_password = service_settings().policy(twmc, service=True)
    assert by_password is not None
    assert by_password.require_username_token and not by_password.require_signature
    by_cert = service_settings(credentials=None).policy(twmc, service=True)
    assert by_cert is not None and by_cert.require_signature
    hook = client_settings(username="alice", password="s3cret").client_hook(twmc)
    assert hook is not None and hook.signer is None and hook.policy is None
    cert_hook = client_settings().client_hook(twmc)
    assert cert_hook is not None and cert_hook.signer is not None


@pytest.mark.parametrize(
    ("settings", "mode", "service", "message"),
    [
        (MessageSecurity(), Mode.MESSAGE, True, "trust store on the service"),
        (MessageSecurity(), Mode.TRANSPORT_WITH_MESSAGE_CREDENTIAL, True, "credentials or"),
        (MessageSecurity(identity=pki().leaf.identity), Mode.MESSAGE, False, "verify_replies"),
        (MessageSecurity(trust=pki().authority()), Mode.MESSAGE, False, "signing identity"),
        (MessageSecurity(), Mode.TRANSPORT_WITH_MESSAGE_CREDENTIAL, False, "username and pass"),
        (MessageSecurity(username="alice"), Mode.TRANSPORT_WITH_MESSAGE_CREDENTIAL, False,
         "needs a password"),
    ],
)  # fmt: skip
def test_configuration_errors(
    settings: MessageSecurity, mode: Mode, service: bool, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        if service:
            secure_service(payroll_service(Calls()), mode, settings)
        else:
            security_plugin(mode, settings)


def test_settings_never_show_secrets() -> None:
    text = repr(MessageSecurity(username="alice", password="s3cret", credentials=USERS.get))
    assert "s3cret" not in text and "alice" in text


# --- the middleware --------------------------------------------------------


def signed_request(
    version: SoapVersion = SoapVersion.SOAP11,
    *,
    employee: int = 7,
    addressing: bool = False,
    **settings: Any,
) -> bytes:
    env = version.namespace
    root = etree.fromstring(
        f'<s:Envelope xmlns:s="{env}" xmlns:p="{TNS}"><s:Body>'
        f"<p:GetSalary><p:employee_id>{employee}</p:employee_id></p:GetSalary>"
        "</s:Body></s:Envelope>"
    )
    if addressing:
        AddressingHook(to=ADDRESS, action=f"{TNS}/GetSalary").egress(root, {})
    hook = client_settings(**settings).client_hook(Mode.MESSAGE)
    assert hook is not None
    hook.egress(root, {})
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def secured(calls: Calls, version: SoapVersion = SoapVersion.SOAP11, **changes: Any) -> WsgiApp:
    return secure_service(
        payroll_service(calls, version), Mode.MESSAGE, service_settings(**changes)
    )


def fault_of(reply: Reply) -> tuple[str | None, str]:
    fault = find_fault(Envelope.from_bytes(reply.body))
    assert fault is not None
    subcode = None if fault.subcode is None else str(fault.subcode.localname)
    return subcode, fault.reason


@pytest.mark.parametrize("version", list(SoapVersion))
def test_verified_request_reaches_the_service_byte_for_byte(version: SoapVersion) -> None:
    calls = Calls()
    body = signed_request(version)
    reply = call(secured(calls, version), body=body, content_type=version.content_type)
    assert reply.status == 200, reply.body
    assert calls.salaries == [7]
    assert calls.bodies == [body]
    result = calls.environs[0][ENVIRON_KEY]
    assert isinstance(result, SecurityResult) and result.signer == pki().leaf.cert
    assert "REMOTE_USER" not in calls.environs[0]


@pytest.mark.parametrize("version", list(SoapVersion))
def test_replies_are_signed_and_verify_at_the_client(version: SoapVersion) -> None:
    reply = call(secured(Calls(), version), body=signed_request(version))
    envelope = Envelope.from_bytes(reply.body)
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    policy = client_settings().policy(Mode.MESSAGE, service=False)
    assert policy is not None
    result = verify_envelope(envelope, policy)
    assert result.signer == pki().server.cert
    assert envelope.body_payload is not None
    assert etree.QName(envelope.body_payload).localname == "GetSalaryResponse"


def test_service_without_identity_leaves_replies_unsigned() -> None:
    reply = call(secured(Calls(), identity=None), body=signed_request())
    assert reply.status == 200
    assert b"Security" not in reply.body


def _tampered() -> bytes:
    return signed_request().replace(b"<p:employee_id>7<", b"<p:employee_id>9<")


def _unsigned() -> bytes:
    return (
        f'<s:Envelope xmlns:s="{ns.SOAP11_ENV}" xmlns:p="{TNS}"><s:Body>'
        "<p:GetSalary><p:employee_id>7</p:employee_id></p:GetSalary></s:Body></s:Envelope>"
    ).encode()


def _wrapped() -> bytes:
    root = etree.fromstring(signed_request())
    header, body = root[0], root[1]
    evil = etree.Element(body.tag)
    evil.append(
        etree.fromstring(
            f'<p:GetSalary xmlns:p="{TNS}"><p:employee_id>1</p:employee_id></p:GetSalary>'
        )
    )
    body.addprevious(evil)
    etree.SubElement(header, "{urn:evil}Wrapper").append(body)
    return bytes(etree.tostring(root))


@pytest.mark.parametrize(
    ("body", "subcode", "reason"),
    [
        (_unsigned(), "InvalidSecurity", "no wsse:Security header"),
        (_tampered(), "FailedCheck", "changed after signing"),
        (_wrapped(), "InvalidSecurity", "outside"),
        (b"<not-closed", None, "not a readable SOAP envelope"),
        (b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', None, "DTD"),
        (b"<html/>", None, "not a SOAP 1.1/1.2 Envelope"),
        (b"", None, "not a readable SOAP envelope"),
    ],
)
def test_bad_requests_get_a_fault_and_never_reach_the_service(
    body: bytes, subcode: str | None, reason: str
) -> None:
    calls = Calls()
    reply = call(secured(calls), body=body)
    assert reply.status == 500
    assert reply.headers["Content-Type"] == "text/xml; charset=utf-8"
    got_subcode, got_reason = fault_of(reply)
    assert got_subcode == subcode
    assert reason in got_reason
    assert calls.salaries == [] and calls.bodies == []
    assert b"Signature" not in reply.body  # security faults are not signed


def test_soap12_faults_use_the_soap12_media_type() -> None:
    body = signed_request(SoapVersion.SOAP12).replace(b">7<", b">8<")
    reply = call(secured(Calls(), SoapVersion.SOAP12), body=body, content_type="text/xml")
    assert reply.headers["Content-Type"].startswith("application/soap+xml")
    assert fault_of(reply)[0] == "FailedCheck"


def test_replayed_request_is_refused() -> None:
    calls = Calls()
    app = secured(calls)
    body = signed_request()
    assert call(app, body=body).status == 200
    reply = call(app, body=body)
    assert reply.status == 500 and "replay" in fault_of(reply)[1]
    assert calls.salaries == [7]


def test_expired_request_is_refused() -> None:
    calls = Calls()
    app = secured(calls, clock=at(T0 + timedelta(minutes=30)))
    reply = call(app, body=signed_request())
    assert fault_of(reply)[0] == "MessageExpired"
    assert calls.salaries == []


def test_untrusted_certificate_is_refused() -> None:
    app = secured(Calls(), trust=pki().pinned(pki().stranger))
    assert fault_of(call(app, body=signed_request()))[0] == "InvalidSecurityToken"


def test_wsdl_and_other_gets_pass_through() -> None:
    reply = call(secured(Calls()), "GET", query="wsdl")
    assert reply.status == 200 and b"GetSalary" in reply.body
    assert b"Signature" not in reply.body


def test_oversized_bodies_get_413() -> None:
    policy = service_settings().policy(Mode.MESSAGE, service=True)
    assert policy is not None
    calls = Calls()
    app = WsSecurityMiddleware(payroll_service(calls), policy, max_body=100)
    reply = call(app, body=signed_request())
    assert reply.status == 413 and calls.bodies == []
    chunked = call(
        app,
        body=signed_request(),
        extra={"CONTENT_LENGTH": "", "wsgi.input_terminated": True},
    )
    assert chunked.status == 413


def test_unterminated_input_without_length_is_not_read() -> None:
    policy = service_settings().policy(Mode.MESSAGE, service=True)
    assert policy is not None
    app = WsSecurityMiddleware(payroll_service(Calls()), policy)
    reply = call(app, body=signed_request(), extra={"CONTENT_LENGTH": ""})
    assert "not a readable SOAP envelope" in fault_of(reply)[1]


def test_chunked_request_with_terminated_input() -> None:
    calls = Calls()
    extra = {"CONTENT_LENGTH": "", "wsgi.input_terminated": True}
    assert call(secured(calls), body=signed_request(), extra=extra).status == 200
    assert calls.salaries == [7]


def test_username_token_sets_remote_user() -> None:
    calls = Calls()
    app = secure_service(
        payroll_service(calls), Mode.TRANSPORT_WITH_MESSAGE_CREDENTIAL, service_settings()
    )
    root = etree.fromstring(_unsigned())
    hook = client_settings(username="alice", password="s3cret").client_hook(
        Mode.TRANSPORT_WITH_MESSAGE_CREDENTIAL
    )
    assert hook is not None
    hook.egress(root, {})
    reply = call(app, body=etree.tostring(root))
    assert reply.status == 200
    assert b"Signature" not in reply.body  # no reply signing in this mode
    assert calls.environs[0]["REMOTE_USER"] == "alice"
    assert calls.environs[0][ENVIRON_KEY].username == "alice"


def test_non_soap_replies_are_left_alone() -> None:
    def text_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    def broken_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/xml")])
        write(b"<not")
        return [b" xml"]

    policy = service_settings().policy(Mode.MESSAGE, service=True)
    assert policy is not None
    signer = EnvelopeSigner(pki().server.identity)
    for app, expected in ((text_app, b"ok"), (broken_app, b"<not xml")):
        middleware = WsSecurityMiddleware(
            app, policy, signer=signer, timestamp=TimestampHook(clock=at(T0))
        )
        assert call(middleware, body=signed_request()).body == expected


LEGACY: dict[str, Any] = {
    "allow_sha1": True,
    "signature_method": SignatureMethod.RSA_SHA1,
    "digest_method": DigestAlgorithm.SHA1,
}
RSA_SHA1 = b"http://www.w3.org/2000/09/xmldsig#rsa-sha1"


def test_a_legacy_peer_is_served_with_sha1_both_ways() -> None:
    calls = Calls()
    request = signed_request(**LEGACY)
    assert RSA_SHA1 in request
    strict = call(secured(Calls()), body=request)
    assert fault_of(strict)[0] == "UnsupportedAlgorithm"
    reply = call(secured(calls, **LEGACY), body=request)
    assert reply.status == 200 and calls.salaries == [7]
    assert RSA_SHA1 in reply.body and b"#sha1" in reply.body
    envelope = Envelope.from_bytes(reply.body)
    legacy_client = client_settings(**LEGACY).policy(Mode.MESSAGE, service=False)
    assert legacy_client is not None
    assert verify_envelope(envelope, legacy_client).signer == pki().server.cert
    strict_client = client_settings().policy(Mode.MESSAGE, service=False)
    assert strict_client is not None
    with pytest.raises(UnsupportedAlgorithm, match="SHA-1 is refused"):
        verify_envelope(Envelope.from_bytes(reply.body), strict_client)


def test_the_zeep_plugin_signs_with_sha1_for_a_legacy_service(calls: Calls) -> None:
    plugin = security_plugin(Mode.MESSAGE, client_settings(**LEGACY))
    assert zeep_client(secured(calls, **LEGACY), plugin).service.GetSalary(3) == Decimal(1003)
    assert calls.salaries == [3]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({**LEGACY, "allow_sha1": False}, "needs allow_sha1=True"),
        ({"signature_method": SignatureMethod.ECDSA_SHA256}, "does not fit the key type"),
    ],
)
def test_signing_settings_that_cannot_work_are_configuration_errors(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        secure_service(payroll_service(Calls()), Mode.MESSAGE, service_settings(**changes))
    with pytest.raises(ConfigurationError, match=message):
        security_plugin(Mode.MESSAGE, client_settings(**changes))


# --- the zeep plugin -------------------------------------------------------


@pytest.fixture
def calls() -> Iterator[Calls]:
    yield Calls()


def test_zeep_client_signs_and_verifies(calls: Calls) -> None:
    plugin = security_plugin(Mode.MESSAGE, client_settings())
    assert isinstance(plugin, WsSecurityPlugin)
    client = zeep_client(secured(calls), plugin)
    assert client.service.GetSalary(7) == Decimal(1007)
    assert calls.salaries == [7]
    assert calls.environs[0][ENVIRON_KEY].signer == pki().leaf.cert


def test_zeep_client_refuses_unsigned_replies(calls: Calls) -> None:
    plugin = security_plugin(Mode.MESSAGE, client_settings())
    client = zeep_client(secured(calls, identity=None), plugin)
    with pytest.raises(UntrustedResponse, match="no wsse:Security header") as caught:
        client.service.GetSalary(7)
    assert isinstance(caught.value, zeep.exceptions.SignatureVerificationFailed)
    assert isinstance(caught.value, BindingError)


def test_zeep_client_refuses_replies_from_an_untrusted_service(calls: Calls) -> None:
    plugin = security_plugin(Mode.MESSAGE, client_settings(trust=pki().pinned(pki().stranger)))
    with pytest.raises(UntrustedResponse, match="not trusted"):
        zeep_client(secured(calls), plugin).service.GetSalary(7)


def test_zeep_client_sees_security_faults(calls: Calls) -> None:
    plugin = security_plugin(Mode.MESSAGE, client_settings(identity=pki().stranger.identity))
    with pytest.raises(zeep.exceptions.Fault) as caught:
        zeep_client(secured(calls), plugin).service.GetSalary(7)
    assert caught.value.code is not None and caught.value.code.endswith("InvalidSecurityToken")
    assert calls.salaries == []


def test_zeep_username_token_over_the_credential_mode(calls: Calls) -> None:
    twmc = Mode.TRANSPORT_WITH_MESSAGE_CREDENTIAL
    app = secure_service(payroll_service(calls), twmc, service_settings())
    good = security_plugin(twmc, client_settings(username="alice", password="s3cret"))
    assert zeep_client(app, good).service.GetSalary(3) == Decimal(1003)
    bad = security_plugin(twmc, client_settings(username="alice", password="nope"))
    with pytest.raises(zeep.exceptions.Fault) as caught:
        zeep_client(app, bad).service.GetSalary(3)
    assert caught.value.code is not None and caught.value.code.endswith("FailedAuthentication")
    assert calls.salaries == [3]


def test_plugin_repr_and_hook_passthrough() -> None:
    plugin = WsSecurityPlugin(WsSecurityHook(timestamp=None, policy=None))
    root = etree.fromstring(_unsigned())
    assert plugin.egress(root, {}, None, {}) == (root, {})
    assert plugin.ingress(root, {}, None) == (root, {})
    assert repr(plugin).startswith("WsSecurityPlugin(")


def test_zeep_addressing_headers_are_signed_when_our_plugin_comes_last(calls: Calls) -> None:
    app = secured(calls)  # signed addressing is required by default
    plugin = security_plugin(Mode.MESSAGE, client_settings())
    assert zeep_client(app, AddressingPlugin(), plugin).service.GetSalary(4) == Decimal(1004)
    signed = calls.environs[0][ENVIRON_KEY].signed_parts
    assert {f"{{{ns.WSA}}}{name}" for name in ("Action", "MessageID", "To")} <= set(signed)
    # In the wrong order the addressing headers are added after signing: refused.
    wrong = zeep_client(app, plugin, AddressingPlugin())
    with pytest.raises(zeep.exceptions.Fault, match="does not cover wsa:"):
        wrong.service.GetSalary(4)


def test_unsigned_addressing_passes_only_when_allowed_explicitly(calls: Calls) -> None:
    plugin = security_plugin(Mode.MESSAGE, client_settings())
    lax = secured(calls, require_signed_addressing=False)
    # Our plugin first: zeep's WS-Addressing headers are added after signing.
    assert zeep_client(lax, plugin, AddressingPlugin()).service.GetSalary(4) == Decimal(1004)
    assert calls.salaries == [4]


@pytest.mark.parametrize("require_signed_addressing", [True, False])
def test_a_second_wsa_to_beside_the_signed_one_is_refused(require_signed_addressing: bool) -> None:
    calls = Calls()
    app = secured(calls, require_signed_addressing=require_signed_addressing)
    forged = f'<wsa:To xmlns:wsa="{ns.WSA}">http://attacker.test/</wsa:To>'.encode()
    data = signed_request(addressing=True).replace(b"</s:Header>", forged + b"</s:Header>", 1)
    reply = call(app, body=data)
    subcode, reason = fault_of(reply)
    assert subcode == "InvalidSecurity"
    assert reason.endswith("header: an unsigned wsa:To stands beside the signed one")
    assert calls.salaries == []


# --- the bytes the service reads are the bytes that were verified ---------


@pytest.mark.parametrize("version", list(SoapVersion))
def test_a_charset_that_reads_the_signed_bytes_as_another_request_is_refused(
    version: SoapVersion,
) -> None:
    """The auditor's attack: UTF-7 markup in an unsigned header, sent as charset=utf-7."""
    forged = smuggle_utf7(signed_request(version, employee=7))
    # The attack is real: read as UTF-7 the bytes hold an unsigned Body for employee 8 ...
    as_utf7 = Envelope.from_bytes(forged.decode("utf-7").encode())
    assert as_utf7.body.get(WSU_ID) is None
    assert as_utf7.body.findtext(f".//{{{TNS}}}employee_id") == "8"
    # ... and read as UTF-8 (their own encoding), the signed request for 7, which verifies.
    calls = Calls()
    honest = call(secured(calls, version), body=forged, content_type=version.content_type)
    assert honest.status == 200 and calls.salaries == [7]
    calls = Calls()
    content_type = f"{version.content_type}; charset=utf-7"
    reply = call(secured(calls, version), body=forged, content_type=content_type)
    assert reply.status == 500
    assert reply.headers["Content-Type"].startswith(version.content_type)
    subcode, reason = fault_of(reply)
    assert subcode is None
    assert "charset 'utf-7' is not the document's encoding (utf-8)" in reason
    assert calls.salaries == [] and calls.bodies == []


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/xml; charset=UTF-8", 200),
        ('text/xml; charset="utf-8"', 200),
        ("text/xml", 200),
        ("text/xml; charset=iso-8859-1", 500),
        ("text/xml; charset=utf-8; charset=utf-7", 500),
        ("text/xml; charset=utf-16", 500),
    ],
)
def test_only_a_charset_naming_the_document_encoding_reaches_the_service(
    content_type: str, status: int
) -> None:
    calls = Calls()
    reply = call(secured(calls), body=signed_request(), content_type=content_type)
    assert reply.status == status
    assert calls.salaries == ([7] if status == 200 else [])


def test_a_utf16_request_with_its_charset_reaches_the_service() -> None:
    root = etree.fromstring(signed_request())
    data = bytes(etree.tostring(root, xml_declaration=True, encoding="utf-16"))
    assert data.startswith(codecs.BOM_UTF16_LE)
    calls = Calls()
    assert call(secured(calls), body=data, content_type="text/xml; charset=utf-16").status == 200
    assert calls.salaries == [7]
    reply = call(secured(Calls()), body=data, content_type="text/xml; charset=utf-8")
    assert "not the document's encoding (utf-16)" in fault_of(reply)[1]


# --- requests with a body are checked, whatever the method -----------------


@dataclass
class PlainApp:
    """A plain WSGI app that runs whatever it is sent (and can be closed)."""

    bodies: list[bytes] = field(default_factory=list)
    closed: int = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.bodies.append(environ["wsgi.input"].read())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ran"]

    def close(self) -> None:
        self.closed += 1


def plain_secured(app: WsgiApp) -> WsSecurityMiddleware:
    policy = service_settings().policy(Mode.MESSAGE, service=True)
    assert policy is not None
    return WsSecurityMiddleware(app, policy)


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "POST", "PUT"])
def test_a_request_with_a_body_is_checked_whatever_its_method(method: str) -> None:
    app = PlainApp()
    secured_app = plain_secured(app)
    for extra in ({}, {"CONTENT_LENGTH": "", "wsgi.input_terminated": True}):
        reply = call(secured_app, method, body=_unsigned(), extra=extra)
        assert reply.status == 500 and fault_of(reply)[0] == "InvalidSecurity"
    assert app.bodies == []
    body = signed_request()
    assert call(secured_app, method, body=body).body == b"ran"
    assert app.bodies == [body]


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_a_fetch_without_a_body_passes_with_nothing_to_read(method: str) -> None:
    app = PlainApp()
    # No length and no wsgi.input_terminated: the bytes in the stream are not the body.
    reply = call(plain_secured(app), method, body=_unsigned(), extra={"CONTENT_LENGTH": ""})
    assert reply.body == b"ran" and app.bodies == [b""]


def test_close_reaches_the_wrapped_app() -> None:
    app = PlainApp()
    plain_secured(app).close()
    assert app.closed == 1
    plain_secured(payroll_service(Calls())).close()  # an app without close(): nothing to do


# --- a signed reply keeps the app's result open until the server is done ---


@dataclass
class TrackedResult:
    """A WSGI result that notes what the server did with it (``close``, ``discard``)."""

    chunks: list[bytes]
    events: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def discard(self) -> None:
        self.events.append("discard")

    def close(self) -> None:
        self.events.append("close")


def tracked(app: WsgiApp, results: list[TrackedResult]) -> WsgiApp:
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> TrackedResult:
        results.append(TrackedResult(list(app(environ, start_response))))
        return results[-1]

    return wrapped


def run_signed(results: list[TrackedResult], **changes: Any) -> Any:
    """The middleware's (signed) result for a signed GetSalary, not closed."""
    app = secure_service(
        tracked(payroll_service(Calls()), results), Mode.MESSAGE, service_settings(**changes)
    )
    return app(wsgi_environ(body=signed_request()), lambda *_: None)


def test_a_signed_reply_closes_the_apps_result_only_when_closed_itself() -> None:
    results: list[TrackedResult] = []
    reply = run_signed(results)
    envelope = Envelope.from_bytes(b"".join(reply))
    policy = client_settings().policy(Mode.MESSAGE, service=False)
    assert policy is not None and verify_envelope(envelope, policy).signer == pki().server.cert
    assert results[0].events == []  # signed, read, and still open
    reply.close()
    assert results[0].events == ["close"]


def test_a_signed_reply_passes_discard_on() -> None:
    results: list[TrackedResult] = []
    reply = run_signed(results)
    reply.discard()  # the relay host: the response could not be written
    reply.close()
    assert results[0].events == ["discard", "close"]
    plain = run_signed([], identity=None)  # unsigned: the app's own result, as it was
    assert isinstance(plain, TrackedResult)


class FailingSigner(EnvelopeSigner):
    def sign(self, envelope: Envelope) -> etree._Element:
        raise UnsupportedAlgorithm("no signing today")


def test_a_reply_that_cannot_be_signed_drops_the_apps_result() -> None:
    results: list[TrackedResult] = []
    policy = service_settings().policy(Mode.MESSAGE, service=True)
    assert policy is not None
    app = WsSecurityMiddleware(
        tracked(payroll_service(Calls()), results), policy,
        signer=FailingSigner(pki().server.identity), timestamp=TimestampHook(clock=at(T0)),
    )
    with pytest.raises(UnsupportedAlgorithm, match="no signing today"):
        app(wsgi_environ(body=signed_request()), lambda *_: None)
    assert results[0].events == ["discard", "close"]
