"""Secrets are masked before the inspector keeps anything. Pure."""

from __future__ import annotations

import pytest

from relay.observe.mask import mask_body, mask_headers, mask_query

pytestmark = pytest.mark.usefixtures("no_sockets")

TOKEN = "SharedAccessSignature sr=http%3a%2f%2fr%2fpay&sig=c2VjcmV0&se=1893456000&skn=Root"


def test_credential_headers_and_tokens_inside_others_are_masked() -> None:
    masked = dict(mask_headers([
        ("Authorization", TOKEN), ("ServiceBusAuthorization", TOKEN), ("Cookie", "s=1"),
        ("X-Forwarded", "token " + TOKEN), ("SOAPAction", '"urn:GetPay"'),
    ]))
    assert masked["Authorization"] == masked["ServiceBusAuthorization"] == "***"
    assert masked["Cookie"] == "***" and "c2VjcmV0" not in masked["X-Forwarded"]
    assert masked["SOAPAction"] == '"urn:GetPay"'


def test_query_tokens_are_masked() -> None:
    assert mask_query("a=1&sb-hc-token=abc&b=2") == "a=1&sb-hc-token=***&b=2"


@pytest.mark.parametrize("element", [
    b"<RelayAccessToken xmlns='urn:r'>%s</RelayAccessToken>" % TOKEN.encode(),
    b"<wsse:Password Type='#PasswordText'>hunter2-secret</wsse:Password>",
    b"<o:Nonce>c2VjcmV0</o:Nonce>",
])
def test_secret_elements_keep_their_tags_and_lose_their_content(element: bytes) -> None:
    body = b"<s:Envelope><s:Header>" + element + b"</s:Header><s:Body><x>keep</x></s:Body></s:Envelope>"
    masked = mask_body(body)
    assert b"hunter2" not in masked and b"c2VjcmV0" not in masked and b"***" in masked
    assert b"<x>keep</x>" in masked


def test_a_token_anywhere_in_a_body_loses_its_signature() -> None:
    masked = mask_body(b"<note>Endpoint=sb://r/;SharedAccessKey=abc123;x " + TOKEN.encode() + b"</note>")
    assert b"abc123" not in masked and b"c2VjcmV0" not in masked
    assert mask_body(b"<plain>nothing here</plain>") == b"<plain>nothing here</plain>"
