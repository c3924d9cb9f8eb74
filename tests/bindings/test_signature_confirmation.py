"""WS-Security 1.1 SignatureConfirmation: a signed reply is tied to the request it answers.

On BasicHttp there is no WS-Addressing to say which request a reply answers, so a
reply the service signed for another call verified as well. Now the service echoes
the request's SignatureValue in a signed ``wsse11:SignatureConfirmation`` and the
client refuses a reply confirming a signature it did not send.
"""

from __future__ import annotations

import pytest
from lxml import etree

from bindings.binding import EndToEndSecurityMode as Mode
from soap import ns
from soap.envelope import Envelope
from soap.exceptions import InvalidSecurity
from soap.security import EnvelopeSigner, TimestampHook, verify_envelope
from soap.security.confirmation import SIGNATURE_CONFIRMATION, add_confirmations, signature_value
from soap.security.header import find_security_header
from soap.security.policy import WsSecurityHook
from tests.bindings.test_wssecurity import TNS, Calls, call, client_settings, secured
from tests.soap.test_security_trust import pki

REQUEST = (f'<s:Envelope xmlns:s="{ns.SOAP11_ENV}" xmlns:p="{TNS}"><s:Body><p:GetSalary>'
           "<p:employee_id>{}</p:employee_id></p:GetSalary></s:Body></s:Envelope>")


def client_hook(**changes: object) -> WsSecurityHook:
    hook = client_settings(**changes).client_hook(Mode.MESSAGE)
    assert hook is not None
    return hook


def request(hook: WsSecurityHook, employee: int) -> tuple[bytes, str | None]:
    root, _ = hook.egress(etree.fromstring(REQUEST.format(employee).encode()), {})
    return etree.tostring(root), signature_value(find_security_header(Envelope.from_element(root)))


def test_the_signed_reply_confirms_the_requests_signature() -> None:
    hook = client_hook()
    body, value = request(hook, 7)
    reply = call(secured(Calls()), body=body)
    policy = client_settings().policy(Mode.MESSAGE, service=False)
    assert policy is not None and value
    result = verify_envelope(Envelope.from_bytes(reply.body), policy)
    assert result.confirmations == (value,)  # present, and covered by the signature
    hook.ingress(etree.fromstring(reply.body), {})


def test_a_reply_made_for_another_clients_request_is_refused() -> None:
    app = secured(Calls())
    first, second = client_hook(), client_hook()
    body, _ = request(first, 7)
    reply_to_first = call(app, body=body).body
    request(second, 8)  # the second client is waiting for its own answer...
    with pytest.raises(InvalidSecurity, match="did not send"):
        second.ingress(etree.fromstring(reply_to_first), {})  # ...and gets the first one's
    first.ingress(etree.fromstring(reply_to_first), {})  # its own client takes it


def _signed_reply(confirm: str | None, *, after_signing: bool = False) -> bytes:
    """A reply signed by the service, with a confirmation of ``confirm`` (or none)."""
    envelope = Envelope.from_bytes(call(secured(Calls(), identity=None),
                                        body=request(client_hook(), 1)[0]).body)
    signer = EnvelopeSigner(pki().server.identity)
    if confirm is not None and not after_signing:
        add_confirmations(envelope, [confirm])
    TimestampHook(clock=lambda: client_settings().clock()).egress(envelope.root, {})
    signer.sign(Envelope.from_element(envelope.root))
    if confirm is not None and after_signing:
        add_confirmations(Envelope.from_element(envelope.root), [confirm])
    return Envelope.from_element(envelope.root).to_bytes()


def test_a_reply_without_confirmation_is_refused_unless_the_client_allows_ws_security_10() -> None:
    strict = client_hook()
    request(strict, 5)
    with pytest.raises(InvalidSecurity, match="confirms no request signature"):
        strict.ingress(etree.fromstring(_signed_reply(None)), {})
    lenient = client_hook(require_signature_confirmation=False)
    request(lenient, 5)
    lenient.ingress(etree.fromstring(_signed_reply(None)), {})


def test_an_unsigned_confirmation_is_refused() -> None:
    hook = client_hook()
    _, value = request(hook, 6)
    forged = _signed_reply(value, after_signing=True)
    assert forged.count(SIGNATURE_CONFIRMATION.split("}")[1].encode()) == 1
    with pytest.raises(InvalidSecurity, match="SignatureConfirmation is not signed"):
        hook.ingress(etree.fromstring(forged), {})
