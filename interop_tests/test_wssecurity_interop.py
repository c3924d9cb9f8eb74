"""WS-Security against peers nobody here wrote: zeep's own wsse and python-xmlsec.

A Spyne payroll service behind :class:`~bindings.wssecurity.WsSecurityMiddleware`
runs on a local wsgiref server (127.0.0.1, port 0); zeep calls it over real HTTP
with its own ``zeep.wsse`` pieces:

- ``Signature`` and ``BinarySignature`` (python-xmlsec) with RSA-SHA256 verify at
  our service; zeep's default RSA-SHA1 is refused unless the legacy option is on;
- our signed replies verify in zeep's ``Signature`` (which checks every reply; a
  client that expects unsigned replies uses the sign-only subclass below);
- zeep's ``Signature`` covers only the Body and Timestamp, never the WS-Addressing
  headers its ``WsAddressingPlugin`` adds: those unsigned headers are refused by
  default, and accepted only with ``require_signed_addressing=False``;
- zeep's ``UsernameToken`` (text and digest) is accepted, a replayed nonce refused;
- requests our signxml signer makes verify with python-xmlsec directly;
- zeep's ``BinarySignature`` through the real relay, with the relay token in a
  ``RelayAccessToken`` SOAP header that the relay cuts out: the signature made
  by python-xmlsec still verifies at our service.

Everything runs at the test PKI's ``T0``: zeep's Timestamp and UsernameToken take
their times from the tests, and the service's clock is injected.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import zeep
from lxml import etree
from zeep.plugins import HistoryPlugin, Plugin
from zeep.wsa import WsAddressingPlugin
from zeep.wsse import utils as zeep_wsse_utils
from zeep.wsse.username import UsernameToken

from bindings.binding import BasicHttpRelayBinding, EndToEndSecurityMode
from bindings.host import RelayServiceHost
from bindings.wssecurity import MessageSecurity, secure_service, security_plugin
from bindings.zeep_transport import relay_client
from soap import ns
from soap.addressing import AddressingHook
from soap.envelope import Envelope, SoapVersion, build_envelope
from soap.security import EnvelopeSigner, KeyInfoStyle, TimestampHook
from soap.security.header import element_by_id
from soap.security.timestamp import format_datetime
from tests.bindings.test_wssecurity import Calls, WsgiApp, payroll_service
from tests.soap.test_security_trust import T0, Party, pki
from tests.support.relay import relay_thread

try:
    import xmlsec
except Exception as exc:  # noqa: BLE001 - ImportError, or xmlsec's libxml2 version mismatch
    xmlsec = None  # type: ignore[assignment]
    _XMLSEC_MISSING = f"python-xmlsec cannot be imported ({exc}); pip install xmlsec"
else:
    from zeep.wsse.signature import BinarySignature, Signature

    _XMLSEC_MISSING = ""

needs_xmlsec = pytest.mark.skipif(xmlsec is None, reason=_XMLSEC_MISSING)

Mode = EndToEndSecurityMode
USERS = {"alice": "s3cret"}


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


# --- a real HTTP server and zeep clients -----------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep request lines out of the test output."""


@contextmanager
def serve(app: WsgiApp) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (port 0) in a thread; yield its base URL."""
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/payroll"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@contextmanager
def client(
    base_url: str, *, wsse: Any = None, plugins: list[Plugin] | None = None
) -> Iterator[Any]:
    """A zeep client for the service's WSDL (its HTTP session closed afterwards)."""
    transport = zeep.Transport(timeout=10, operation_timeout=10)
    try:
        yield zeep.Client(
            f"{base_url}?wsdl", transport=transport, wsse=wsse, plugins=plugins or []
        ).service
    finally:
        transport.session.close()


class ZeepTimestamp(Plugin):  # type: ignore[misc]
    """Adds a ``wsu:Timestamp`` made with zeep's own helpers (zeep's Signature signs it)."""

    def __init__(self, created: datetime = T0) -> None:
        self.created = created

    def egress(self, envelope: Any, http_headers: Any, operation: Any, options: Any) -> Any:
        security = zeep_wsse_utils.get_security_header(envelope)
        wsu = zeep_wsse_utils.WSU
        security.append(
            wsu.Timestamp(
                wsu.Created(format_datetime(self.created)),
                wsu.Expires(format_datetime(self.created + timedelta(minutes=5))),
            )
        )
        return envelope, http_headers


def service(
    calls: Calls,
    version: SoapVersion = SoapVersion.SOAP11,
    *,
    mode: Mode = Mode.MESSAGE,
    **changes: Any,
) -> WsgiApp:
    """The payroll service (MESSAGE mode by default): trusts the client, signs as the server."""
    settings: dict[str, Any] = {
        "identity": pki().server.identity,
        "trust": pki().pinned(pki().leaf),
        "credentials": USERS.get,
        "clock": at(T0),
    }
    settings.update(changes)
    return secure_service(payroll_service(calls, version), mode, MessageSecurity(**settings))


@pytest.fixture
def pem_files(tmp_path: Path) -> Callable[[Party], tuple[str, str]]:
    """Writes a party's key and certificate to PEM files (zeep's Signature reads files)."""

    def write(party: Party) -> tuple[str, str]:
        key, cert = tmp_path / f"{id(party)}.key", tmp_path / f"{id(party)}.crt"
        key.write_bytes(party.key_pem)
        cert.write_bytes(party.cert_pem)
        return str(key), str(cert)

    return write


def _sha256() -> dict[str, Any]:
    assert xmlsec is not None
    return {
        "signature_method": xmlsec.constants.TransformRsaSha256,
        "digest_method": xmlsec.constants.TransformSha256,
    }


def _sign_only(kind: type) -> type:
    """zeep's signer without its check of every reply (for services that do not sign)."""

    class SignOnly(kind):  # type: ignore[misc, valid-type]
        def verify(self, envelope: Any) -> Any:
            return envelope

    return SignOnly


# --- zeep signs, we verify -------------------------------------------------


@needs_xmlsec
@pytest.mark.parametrize("kind", ["Signature", "BinarySignature"])
@pytest.mark.parametrize("version", list(SoapVersion))
def test_zeep_sha256_signatures_verify_and_our_signed_replies_verify_in_zeep(
    kind: str, version: SoapVersion, pem_files: Callable[[Party], tuple[str, str]]
) -> None:
    calls = Calls()
    key, cert = pem_files(pki().leaf)
    _, server_cert = pem_files(pki().server)
    signer = {"Signature": Signature, "BinarySignature": BinarySignature}[kind]
    # zeep's Signature verifies replies with the same certificate it signs with; so
    # the reply check uses a second instance holding the server's certificate.
    outgoing = signer(key, cert, **_sha256())
    incoming = Signature(key, server_cert)

    class SignAndVerify:
        def apply(self, envelope: Any, headers: Any) -> Any:
            return outgoing.apply(envelope, headers)

        def verify(self, envelope: Any) -> Any:
            return incoming.verify(envelope)

    with (
        serve(service(calls, version)) as url,
        client(url, wsse=SignAndVerify(), plugins=[ZeepTimestamp()]) as api,
    ):
        assert api.GetSalary(7) == Decimal(1007)
    assert calls.salaries == [7]
    result = calls.environs[0]["soaprelay.wssecurity"]
    assert result.signer == pki().leaf.cert
    assert len(result.signed_parts) == 2  # Body and Timestamp


@needs_xmlsec
def test_zeep_reply_check_catches_a_reply_signed_by_someone_else(
    pem_files: Callable[[Party], tuple[str, str]],
) -> None:
    key, cert = pem_files(pki().leaf)
    # Plain zeep Signature checks the reply with the *client's* certificate: our
    # server's genuine signature does not verify under it, and zeep says so.
    with (
        serve(service(Calls())) as url,
        client(url, wsse=Signature(key, cert, **_sha256()), plugins=[ZeepTimestamp()]) as api,
        pytest.raises(zeep.exceptions.SignatureVerificationFailed),
    ):
        api.GetSalary(7)


@needs_xmlsec
def test_zeep_default_sha1_is_refused_unless_legacy_is_on(
    pem_files: Callable[[Party], tuple[str, str]],
) -> None:
    key, cert = pem_files(pki().leaf)
    sign_only = _sign_only(Signature)(key, cert)  # zeep's default: RSA-SHA1, SHA-1
    strict_calls, legacy_calls = Calls(), Calls()
    with (
        serve(service(strict_calls, identity=None)) as url,
        client(url, wsse=sign_only, plugins=[ZeepTimestamp()]) as api,
    ):
        with pytest.raises(zeep.exceptions.Fault) as caught:
            api.GetSalary(7)
    assert caught.value.code is not None and caught.value.code.endswith("UnsupportedAlgorithm")
    assert "SHA-1 is refused" in caught.value.message
    assert strict_calls.salaries == []
    with (
        serve(service(legacy_calls, identity=None, allow_sha1=True)) as url,
        client(url, wsse=sign_only, plugins=[ZeepTimestamp()]) as api,
    ):
        assert api.GetSalary(7) == Decimal(1007)
    assert legacy_calls.salaries == [7]


@needs_xmlsec
def test_zeep_signature_from_an_untrusted_key_is_refused(
    pem_files: Callable[[Party], tuple[str, str]],
) -> None:
    key, cert = pem_files(pki().stranger)
    calls = Calls()
    wsse = _sign_only(BinarySignature)(key, cert, **_sha256())
    with serve(service(calls)) as url, client(url, wsse=wsse, plugins=[ZeepTimestamp()]) as api:
        with pytest.raises(zeep.exceptions.Fault) as caught:
            api.GetSalary(7)
    assert caught.value.code is not None and caught.value.code.endswith("InvalidSecurityToken")
    assert calls.salaries == []


@needs_xmlsec
def test_zeep_leaves_ws_addressing_unsigned_which_is_refused_unless_allowed(
    pem_files: Callable[[Party], tuple[str, str]],
) -> None:
    """zeep's Signature signs the Body and Timestamp only, not the wsa headers.

    Unsigned WS-Addressing headers beside a signature are refused by default
    (anyone on the path could add or change ``wsa:To`` or ``wsa:ReplyTo``). A
    service that must serve zeep's own signer with WS-Addressing says so with
    ``require_signed_addressing=False``; a second header with the name of a
    signed one would still be refused (there is none here: zeep signs none).
    """
    key, cert = pem_files(pki().leaf)
    wsse = _sign_only(Signature)(key, cert, **_sha256())
    plugins: list[Plugin] = [WsAddressingPlugin(), ZeepTimestamp()]
    strict, lax = Calls(), Calls()
    with (
        serve(service(strict, identity=None)) as url,
        client(url, wsse=wsse, plugins=plugins) as api,
        pytest.raises(zeep.exceptions.Fault, match="does not cover wsa:") as caught,
    ):
        api.GetSalary(7)
    assert caught.value.code is not None and caught.value.code.endswith("InvalidSecurity")
    assert strict.salaries == []
    app = service(lax, identity=None, require_signed_addressing=False)
    with serve(app) as url, client(url, wsse=wsse, plugins=plugins) as api:
        assert api.GetSalary(7) == Decimal(1007)
    assert lax.salaries == [7]
    assert len(lax.environs[0]["soaprelay.wssecurity"].signed_parts) == 2  # Body, Timestamp


# --- zeep UsernameToken ----------------------------------------------------


def _timestamp_token() -> Any:
    wsu = zeep_wsse_utils.WSU
    return wsu.Timestamp(
        wsu.Created(format_datetime(T0)), wsu.Expires(format_datetime(T0 + timedelta(minutes=5)))
    )


@pytest.mark.parametrize("digest", [False, True])
def test_zeep_username_tokens_are_accepted(digest: bool) -> None:
    calls = Calls()
    token = UsernameToken(
        "alice", "s3cret", use_digest=digest, created=T0, timestamp_token=_timestamp_token()
    )
    # This service is plain HTTP: a clear-text password needs the host's opt-in.
    app = service(calls, mode=Mode.TRANSPORT_WITH_MESSAGE_CREDENTIAL, password_text_over_http=True)
    with serve(app) as url, client(url, wsse=token) as api:
        assert api.GetSalary(3) == Decimal(1003)
    assert calls.environs[0]["REMOTE_USER"] == "alice"


def test_a_clear_text_password_over_plain_http_is_refused_without_the_hosts_opt_in() -> None:
    calls = Calls()
    app = service(calls, mode=Mode.TRANSPORT_WITH_MESSAGE_CREDENTIAL)
    text = UsernameToken("alice", "s3cret", use_digest=False, created=T0,
                         timestamp_token=_timestamp_token())
    digest = UsernameToken("alice", "s3cret", use_digest=True, created=T0,
                           timestamp_token=_timestamp_token())
    with serve(app) as url:
        with client(url, wsse=text) as api, pytest.raises(zeep.exceptions.Fault) as caught:
            api.GetSalary(3)
        assert caught.value.code is not None and caught.value.code.endswith("InvalidSecurityToken")
        assert "clear-text password" in str(caught.value.message) and calls.salaries == []
        with client(url, wsse=digest) as api:
            assert api.GetSalary(4) == Decimal(1004)  # a PasswordDigest needs no opt-in


@pytest.mark.parametrize("digest", [False, True])
def test_zeep_username_token_with_a_wrong_password_is_refused(digest: bool) -> None:
    calls = Calls()
    token = UsernameToken(
        "alice", "wrong", use_digest=digest, created=T0, timestamp_token=_timestamp_token()
    )
    app = service(calls, mode=Mode.TRANSPORT_WITH_MESSAGE_CREDENTIAL, password_text_over_http=True)
    with serve(app) as url, client(url, wsse=token) as api:
        with pytest.raises(zeep.exceptions.Fault) as caught:
            api.GetSalary(3)
    assert caught.value.code is not None and caught.value.code.endswith("FailedAuthentication")
    assert calls.salaries == []


def test_zeep_replayed_nonce_is_refused() -> None:
    calls = Calls()
    app = service(calls, mode=Mode.TRANSPORT_WITH_MESSAGE_CREDENTIAL)

    def token(created: datetime) -> UsernameToken:
        # A fixed nonce: what a replaying client (or a proxy) sends twice.
        stamp = zeep_wsse_utils.WSU.Timestamp(zeep_wsse_utils.WSU.Created(format_datetime(created)))
        return UsernameToken(
            "alice", "s3cret", use_digest=True, nonce="fixed-nonce", created=created,
            timestamp_token=stamp,
        )  # fmt: skip

    with serve(app) as url:
        with client(url, wsse=token(T0)) as api:
            assert api.GetSalary(1) == Decimal(1001)
        with client(url, wsse=token(T0 + timedelta(seconds=1))) as api:
            with pytest.raises(zeep.exceptions.Fault) as caught:
                api.GetSalary(2)
    assert caught.value.code is not None and caught.value.code.endswith("InvalidSecurity")
    assert "nonce was used before" in caught.value.message
    assert calls.salaries == [1]


# --- we sign, python-xmlsec verifies ---------------------------------------


def xmlsec_verify(data: bytes, cert_pem: bytes) -> None:
    """Verify the Security header's signature with python-xmlsec only (raises xmlsec.Error)."""
    assert xmlsec is not None
    root = etree.fromstring(data)
    signature = xmlsec.tree.find_node(root, xmlsec.constants.NodeSignature)
    assert signature is not None
    ctx = xmlsec.SignatureContext()
    for reference in signature.iterfind(f".//{{{ns.DS}}}Reference"):
        ctx.register_id(element_by_id(root, reference.get("URI")[1:]), "Id", ns.WSU)
    ctx.key = xmlsec.Key.from_memory(cert_pem, xmlsec.constants.KeyDataFormatCertPem)
    ctx.verify(signature)


def our_signed_request(version: SoapVersion, style: KeyInfoStyle) -> bytes:
    root = build_envelope(version, [etree.Element("{urn:payroll}GetSalary")])
    AddressingHook(to="http://relay/payroll", action="urn:payroll/GetSalary").egress(root, {})
    TimestampHook(clock=at(T0)).egress(root, {})
    EnvelopeSigner(pki().leaf.identity, key_info=style).sign(Envelope.from_element(root))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


@needs_xmlsec
@pytest.mark.parametrize("style", list(KeyInfoStyle))
@pytest.mark.parametrize("version", list(SoapVersion))
def test_our_signatures_verify_with_python_xmlsec(
    version: SoapVersion, style: KeyInfoStyle
) -> None:
    data = our_signed_request(version, style)
    assert data.count(b"<ds:Reference ") == 6  # Body, Timestamp and four wsa headers
    xmlsec_verify(data, pki().leaf.cert_pem)
    with pytest.raises(xmlsec.Error):
        xmlsec_verify(data, pki().server.cert_pem)
    with pytest.raises(xmlsec.Error):
        xmlsec_verify(
            data.replace(b"urn:payroll/GetSalary<", b"urn:payroll/Evil<"), pki().leaf.cert_pem
        )


@needs_xmlsec
def test_our_zeep_plugin_round_trip_verifies_with_python_xmlsec() -> None:
    """Our zeep plugin signs and checks replies; both directions' bytes also verify
    with python-xmlsec."""
    history = HistoryPlugin()
    settings = MessageSecurity(
        identity=pki().leaf.identity, trust=pki().pinned(pki().server), clock=at(T0)
    )
    plugin = security_plugin(Mode.MESSAGE, settings)
    assert plugin is not None
    calls = Calls()
    with serve(service(calls)) as url, client(url, plugins=[plugin, history]) as api:
        assert api.GetSalary(5) == Decimal(1005)
    sent = etree.tostring(history.last_sent["envelope"])
    xmlsec_verify(sent, pki().leaf.cert_pem)
    assert history.last_received is not None
    received = etree.tostring(history.last_received["envelope"])
    xmlsec_verify(received, pki().server.cert_pem)


# --- zeep's own signature through the real relay ---------------------------


@needs_xmlsec
def test_zeep_binary_signature_survives_the_relay_cutting_out_the_token_header(
    pem_files: Callable[[Party], tuple[str, str]],
) -> None:
    calls = Calls()
    key, cert = pem_files(pki().leaf)
    _, server_cert = pem_files(pki().server)
    outgoing = BinarySignature(key, cert, **_sha256())
    incoming = Signature(key, server_cert)

    class SignAndVerify:
        def apply(self, envelope: Any, headers: Any) -> Any:
            return outgoing.apply(envelope, headers)

        def verify(self, envelope: Any) -> Any:
            return incoming.verify(envelope)

    settings = MessageSecurity(
        identity=pki().server.identity, trust=pki().pinned(pki().leaf), clock=at(T0)
    )
    with (
        relay_thread() as relay,
        RelayServiceHost(
            payroll_service(calls),
            connection_string=f"{relay.connection_string};EntityPath=payroll",
            binding=BasicHttpRelayBinding(security=Mode.MESSAGE),
            message_security=settings,
            open_timeout=10,
        ) as host,
    ):
        # The client side is zeep's: our binding only puts the relay token in the envelope.
        client = relay_client(
            f"{host.public_address}?wsdl",
            binding=BasicHttpRelayBinding(token_in_soap_header=True),
            connection_string=f"{relay.connection_string};EntityPath=payroll",
            plugins=[ZeepTimestamp(), history := HistoryPlugin()],
            wsse=SignAndVerify(),
        )
        assert client.service.GetSalary(7) == Decimal(1007)
    sent = etree.tostring(history.last_sent["envelope"])  # the element, as zeep finished it
    assert b"RelayAccessToken" in sent and b"BinarySecurityToken" in sent
    assert calls.salaries == [7]
    assert b"RelayAccessToken" not in calls.bodies[0]
    assert calls.environs[0]["soaprelay.wssecurity"].signer == pki().leaf.cert
