"""The zeep client's own WS-Addressing plugin (bindings.zeep_addressing), on a WSDL file."""

from __future__ import annotations

from pathlib import Path

import pytest
import zeep
from lxml import etree

from bindings.binding import EndToEndSecurityMode, WS2007HttpRelayBinding
from bindings.spyne_host import spyne_wsgi
from bindings.zeep_addressing import AddressingPlugin
from bindings.zeep_transport import security_plugins
from samples.payroll.services import payroll12_app
from soap import ns
from soap.addressing import ANONYMOUS, AddressingHeaders
from soap.envelope import Envelope
from soap.exceptions import MissingAction
from soap.security import SecurityPolicy, verify_envelope
from tests.bindings.test_wssecurity import client_settings
from tests.soap.test_security_trust import T0, pki

ADDRESS = "http://relay.test/payroll12"


@pytest.fixture
def client(tmp_path: Path) -> zeep.Client:
    hosted = spyne_wsgi(payroll12_app(), WS2007HttpRelayBinding())
    path = tmp_path / "payroll12.wsdl"
    path.write_bytes(hosted.wsdl(ADDRESS))
    hosted.close()
    return zeep.Client(str(path))


def stamped(client: zeep.Client, *plugins: object) -> Envelope:
    """The GetSalary(7) request after ``plugins``' egress, as zeep runs them."""
    [binding] = client.wsdl.bindings.values()
    operation = binding.get("GetSalary")
    root = client.create_message(client.service, "GetSalary", 7)
    headers: dict[str, str] = {}
    for plugin in plugins:
        root, headers = plugin.egress(root, headers, operation, {"address": ADDRESS})  # type: ignore[attr-defined]
    return Envelope.from_element(etree.fromstring(etree.tostring(root)))


def test_requests_get_to_action_message_id_and_reply_to(client: zeep.Client) -> None:
    ids = iter(["urn:uuid:1", "urn:uuid:2"])
    plugin = AddressingPlugin(id_factory=lambda: next(ids))
    first, second = stamped(client, plugin), stamped(client, plugin)
    assert AddressingHeaders.from_header(first.header) == AddressingHeaders(
        to=ADDRESS, action="GetSalary", message_id="urn:uuid:1", reply_to=ANONYMOUS  # soapAction
    )
    assert AddressingHeaders.from_header(second.header).message_id == "urn:uuid:2"
    assert first.header is not None
    must = {etree.QName(h).localname for h in first.header
            if h.get(f"{{{ns.SOAP12_ENV}}}mustUnderstand") == "1"}
    assert must == {"Action", "To"}  # as WCF writes them


def test_a_fixed_to_and_no_action_at_all(client: zeep.Client) -> None:
    fixed = stamped(client, AddressingPlugin(to="http://public.example/payroll12"))
    assert AddressingHeaders.from_header(fixed.header).to == "http://public.example/payroll12"

    class NoAction:
        name, soapaction, abstract = "Anonymous", None, None

    root = client.create_message(client.service, "GetSalary", 7)
    with pytest.raises(MissingAction, match="Anonymous"):
        AddressingPlugin().egress(root, {}, NoAction(), {"address": ADDRESS})


def test_addressing_goes_before_the_signature_which_covers_it(client: zeep.Client) -> None:
    [signing] = security_plugins(
        WS2007HttpRelayBinding(security=EndToEndSecurityMode.MESSAGE), client_settings()
    )
    envelope = stamped(client, AddressingPlugin(), signing)
    policy = SecurityPolicy(trust=pki().pinned(pki().leaf), clock=lambda: T0)
    signed = set(verify_envelope(envelope, policy).signed_parts)
    assert {f"{{{ns.WSA}}}{name}" for name in ("Action", "MessageID", "ReplyTo", "To")} <= signed
