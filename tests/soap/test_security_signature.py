"""Tests for soap.security.signature and keyinfo: signing, verifying, and XSW defence."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.signer import SignatureReference, XMLSigner

from soap import ns
from soap.addressing import AddressingHook
from soap.envelope import Envelope, SoapVersion, build_envelope
from soap.exceptions import (
    FailedCheck,
    InvalidSecurity,
    InvalidSecurityToken,
    SecurityFault,
    SecuritySetupError,
    UnsupportedAlgorithm,
)
from soap.security.header import SECURITY, WSU_ID, ensure_id, find_security_header
from soap.security.keyinfo import BinarySecurityToken, KeyInfoStyle, key_info_element
from soap.security.signature import (
    EnvelopeSigner,
    SignedParts,
    find_signature,
    verify_signature,
)
from soap.security.timestamp import TimestampHook, find_timestamp
from soap.security.trust import TrustStore
from tests.soap.test_security_trust import T0, Party, pki

ENV11, ENV12 = SoapVersion.SOAP11, SoapVersion.SOAP12
DS = ns.DS
EXC = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0


def payload(value: str = "7") -> etree._Element:
    element = etree.Element("{urn:payroll}GetSalary", nsmap={"m": "urn:payroll"})
    etree.SubElement(element, "{urn:payroll}employeeId").text = value
    return element


def signed(
    version: SoapVersion = ENV11,
    *,
    party: Party | None = None,
    addressing: bool = False,
    **signer: object,
) -> bytes:
    """A request with a Timestamp (made at T0), signed by ``party`` (the CA's leaf)."""
    root = build_envelope(version, [payload()])
    if addressing:
        AddressingHook(to="http://relay/payroll", action="urn:payroll/GetSalary").egress(root, {})
    TimestampHook(clock=lambda: T0).egress(root, {})
    identity = (party or pki().leaf).identity
    EnvelopeSigner(identity, **signer).sign(Envelope.from_element(root))  # type: ignore[arg-type]
    return bytes(etree.tostring(root))


def check(data: bytes, trust: TrustStore | None = None, *, allow_sha1: bool = False) -> SignedParts:
    """Verify the signature in ``data`` as a service trusting the test CA would."""
    envelope = Envelope.from_bytes(data)
    security = find_security_header(envelope)
    assert security is not None
    signature = find_signature(security)
    assert signature is not None
    return verify_signature(
        envelope, signature, trust or pki().authority(), now=T0, allow_sha1=allow_sha1
    )


def parts_of(data: bytes) -> tuple[etree._Element, Envelope, etree._Element]:
    envelope = Envelope.from_bytes(data)
    security = find_security_header(envelope)
    assert security is not None
    return envelope.root, envelope, security


# --- signing and verifying -------------------------------------------------


@pytest.mark.parametrize("version", [ENV11, ENV12])
@pytest.mark.parametrize("style", list(KeyInfoStyle))
def test_round_trip(version: SoapVersion, style: KeyInfoStyle) -> None:
    envelope = Envelope.from_bytes(signed(version, key_info=style))
    security = find_security_header(envelope)
    signature = find_signature(security)  # type: ignore[arg-type]
    assert signature is not None
    parts = verify_signature(envelope, signature, pki().authority(), now=T0)
    timestamp = find_timestamp(security)  # type: ignore[arg-type]
    assert parts.certificate == pki().leaf.cert
    assert [e.tag for e in parts.elements] == [version.qname("Body"), timestamp.tag]  # type: ignore[union-attr]
    assert parts.covers(envelope.body) and parts.covers(timestamp)  # type: ignore[arg-type]
    assert not parts.covers(security)


def test_layout_of_a_signed_envelope() -> None:
    _, envelope, security = parts_of(signed())
    names = [etree.QName(child).localname for child in security]
    assert names == ["Timestamp", "BinarySecurityToken", "Signature"]
    signature = security[2]
    signed_info = signature.find(f"{{{DS}}}SignedInfo")
    assert signed_info is not None
    algorithms = [e.get("Algorithm") for e in signed_info.iter() if e.get("Algorithm")]
    assert algorithms == [
        EXC.value, SignatureMethod.RSA_SHA256.value,
        EXC.value, DigestAlgorithm.SHA256.value,
        EXC.value, DigestAlgorithm.SHA256.value,
    ]  # fmt: skip
    uris = [r.get("URI") for r in signed_info.iter(f"{{{DS}}}Reference")]
    assert uris == [f"#{envelope.body.get(WSU_ID)}", f"#{security[0].get(WSU_ID)}"]
    reference = signature.find(f"{{{DS}}}KeyInfo/{{{ns.WSSE}}}SecurityTokenReference/")
    assert reference is not None and reference.get("URI") == f"#{security[1].get(WSU_ID)}"
    assert reference.get("ValueType") == ns.X509V3_TOKEN


def test_addressing_headers_are_signed() -> None:
    root, envelope, _ = parts_of(signed(ENV12, addressing=True))
    parts = check(etree.tostring(root))
    wsa = [b for b in envelope.header_blocks if etree.QName(b).namespace == ns.WSA]
    assert len(wsa) == 4
    assert [p.tag for p in parts.elements[2:]] == [b.tag for b in wsa]


def test_addressing_can_be_left_unsigned() -> None:
    parts = check(signed(ENV12, addressing=True, sign_addressing=False))
    assert len(parts.elements) == 2


def test_ec_keys_sign_with_ecdsa() -> None:
    data = signed(party=pki().ec_leaf, signature_method=SignatureMethod.ECDSA_SHA256)
    assert check(data).certificate == pki().ec_leaf.cert


def test_pinned_trust_and_issuer_serial_only() -> None:
    data = signed(key_info=KeyInfoStyle.X509_DATA)
    root = etree.fromstring(data)
    for cert in root.iter(f"{{{DS}}}X509Certificate"):
        cert.getparent().remove(cert)  # type: ignore[union-attr]
    stripped = etree.tostring(root)
    assert check(stripped, pki().pinned(pki().leaf)).certificate == pki().leaf.cert
    with pytest.raises(InvalidSecurityToken, match="no pinned certificate"):
        check(stripped)  # CA-only store: an IssuerSerial names nothing it can check


def test_x509_data_with_a_chain() -> None:
    leaf = pki().leaf
    identity = type(leaf.identity)(leaf.key, leaf.cert, (pki().ca.cert,))
    root = build_envelope(ENV11, [payload()])
    TimestampHook(clock=lambda: T0).egress(root, {})
    EnvelopeSigner(identity, key_info=KeyInfoStyle.X509_DATA).sign(Envelope.from_element(root))
    certs = list(root.iter(f"{{{DS}}}X509Certificate"))
    certs[0].addprevious(certs[1])  # the CA first: no order is implied
    assert check(etree.tostring(root)).certificate == leaf.cert


# --- algorithms ------------------------------------------------------------


def test_sha1_needs_the_opt_in_to_sign() -> None:
    with pytest.raises(SecuritySetupError, match="allow_sha1"):
        EnvelopeSigner(pki().leaf.identity, signature_method=SignatureMethod.RSA_SHA1)
    with pytest.raises(SecuritySetupError, match="allow_sha1"):
        EnvelopeSigner(pki().leaf.identity, digest_method=DigestAlgorithm.SHA1)


def test_sha1_is_refused_unless_opted_in() -> None:
    data = signed(
        signature_method=SignatureMethod.RSA_SHA1,
        digest_method=DigestAlgorithm.SHA1,
        allow_sha1=True,
    )
    with pytest.raises(UnsupportedAlgorithm, match="SHA-1 is refused unless the legacy"):
        check(data)
    assert check(data, allow_sha1=True).certificate == pki().leaf.cert


def test_sha1_digest_under_a_sha256_signature_is_refused() -> None:
    data = signed(digest_method=DigestAlgorithm.SHA1, allow_sha1=True)
    with pytest.raises(UnsupportedAlgorithm, match="DigestMethod"):
        check(data)
    check(data, allow_sha1=True)


def test_key_and_method_must_match() -> None:
    with pytest.raises(SecuritySetupError, match="key type"):
        EnvelopeSigner(pki().ec_leaf.identity)
    with pytest.raises(SecuritySetupError, match="key type"):
        EnvelopeSigner(pki().leaf.identity, signature_method=SignatureMethod.ECDSA_SHA256)


def sign_raw(
    data: bytes,
    targets: Callable[[Envelope, etree._Element], list[etree._Element]],
    *,
    party: Party | None = None,
    c14n: CanonicalizationMethod = EXC,
) -> bytes:
    """Sign chosen elements of an unsigned envelope with signxml directly (a peer's signer)."""
    root, envelope, security = parts_of(data)
    party = party or pki().leaf
    uris = [f"#{ensure_id(t)}" for t in targets(envelope, security)]
    security.insert(0, BinarySecurityToken(party.cert, "X509-raw").to_element())
    signer = XMLSigner(
        method=SignatureConstructionMethod.detached,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=c14n,
    )
    signer.namespaces = {"ds": DS}
    signature = signer.sign(
        root,
        key=party.key,
        reference_uri=[SignatureReference(URI=u, c14n_method=c14n) for u in uris],
        key_info=key_info_element(KeyInfoStyle.BINARY_SECURITY_TOKEN, party.identity, "X509-raw"),
    )
    security.append(signature)
    return bytes(etree.tostring(root))


def unsigned(version: SoapVersion = ENV11) -> bytes:
    root = build_envelope(version, [payload()])
    TimestampHook(clock=lambda: T0).egress(root, {})
    return bytes(etree.tostring(root))


def test_a_peer_signature_over_body_and_timestamp_verifies() -> None:
    data = sign_raw(unsigned(), lambda env, sec: [env.body, sec[0]])
    assert len(check(data).elements) == 2


def test_inclusive_c14n_is_refused() -> None:
    c14n = CanonicalizationMethod.CANONICAL_XML_1_0
    data = sign_raw(unsigned(), lambda env, sec: [env.body], c14n=c14n)
    with pytest.raises(UnsupportedAlgorithm, match="CanonicalizationMethod"):
        check(data)


@pytest.mark.parametrize(
    "transforms",
    [
        [],
        [SignatureConstructionMethod.enveloped.value, EXC.value],
        [EXC.value, EXC.value],
        ["http://www.w3.org/TR/1999/REC-xpath-19991116"],
    ],
)
def test_other_transforms_are_refused(transforms: list[str]) -> None:
    root = etree.fromstring(signed())
    node = root.find(f".//{{{DS}}}Reference/{{{DS}}}Transforms")
    assert node is not None
    node.clear()
    for algorithm in transforms:
        etree.SubElement(node, f"{{{DS}}}Transform", Algorithm=algorithm)
    with pytest.raises(UnsupportedAlgorithm, match="exactly one exclusive c14n"):
        check(etree.tostring(root))


# --- tampering, trust and key info -----------------------------------------


def test_changed_body_fails_the_check() -> None:
    data = signed().replace(b">7<", b">8<")
    with pytest.raises(FailedCheck, match="changed after signing"):
        check(data)


def test_changed_signature_value_fails_the_check() -> None:
    root = etree.fromstring(signed())
    value = root.find(f".//{{{DS}}}SignatureValue")
    assert value is not None and value.text is not None
    value.text = ("B" if value.text[0] == "A" else "A") + value.text[1:]
    with pytest.raises(FailedCheck, match="does not verify"):
        check(etree.tostring(root))


@pytest.mark.parametrize("who", ["stranger", "self_signed"])
def test_untrusted_signers_are_refused(who: str) -> None:
    with pytest.raises(InvalidSecurityToken, match="not trusted"):
        check(signed(party=getattr(pki(), who)))


def test_expired_signer_is_refused() -> None:
    with pytest.raises(InvalidSecurityToken, match="expired"):
        check(signed(party=pki().expired))


def test_swapped_certificate_is_refused() -> None:
    # A trusted certificate put in place of the signer's: the signature no longer verifies.
    data = signed(party=pki().stranger)
    root = etree.fromstring(data)
    token = root.find(f".//{{{ns.WSSE}}}BinarySecurityToken")
    assert token is not None
    token.text = BinarySecurityToken(pki().server.cert, "x").to_element().text
    with pytest.raises(FailedCheck):
        check(etree.tostring(root))


def _key_info(data: bytes) -> tuple[etree._Element, etree._Element]:
    root = etree.fromstring(data)
    key_info = root.find(f".//{{{DS}}}KeyInfo")
    assert key_info is not None
    return root, key_info


_STR = f'wsse:SecurityTokenReference xmlns:wsse="{ns.WSSE}"'
_STR_END = "</wsse:SecurityTokenReference>"
_X509 = f'ds:X509Data xmlns:ds="{DS}"'
_SERIAL = (
    "<ds:X509IssuerSerial><ds:X509IssuerName>==</ds:X509IssuerName>"
    "<ds:X509SerialNumber>x</ds:X509SerialNumber></ds:X509IssuerSerial>"
)
BAD_KEY_INFO = {
    "empty": ("", "names no supported"),
    "remote": (f'<{_STR}><wsse:Reference URI="http://x/cert"/>{_STR_END}',
               "same-message"),
    "key-identifier": (f"<{_STR}><wsse:KeyIdentifier>AAAA</wsse:KeyIdentifier>{_STR_END}",
                       "names no supported"),
    "not-base64": (f"<{_X509}><ds:X509Certificate>not base64!</ds:X509Certificate></ds:X509Data>",
                   "not a base64 X.509"),
    "not-der": (f"<{_X509}><ds:X509Certificate>AAAA</ds:X509Certificate></ds:X509Data>",
                "not a base64 X.509"),
    "ski-only": (f"<{_X509}><ds:X509SKI>AAAA</ds:X509SKI></ds:X509Data>", "neither a certificate"),
    "bad-serial": (f"<{_X509}>{_SERIAL}</ds:X509Data>", "malformed"),
}  # fmt: skip


@pytest.mark.parametrize(("content", "message"), BAD_KEY_INFO.values(), ids=BAD_KEY_INFO.keys())
def test_bad_key_info(content: str, message: str) -> None:
    root, key_info = _key_info(signed())
    key_info.clear()
    if content:
        key_info.append(etree.fromstring(content))
    with pytest.raises(InvalidSecurityToken, match=message):
        check(etree.tostring(root))


def test_missing_key_info() -> None:
    root, key_info = _key_info(signed())
    key_info.getparent().remove(key_info)  # type: ignore[union-attr]
    with pytest.raises(InvalidSecurityToken, match="no KeyInfo"):
        check(etree.tostring(root))


def test_token_outside_the_security_header_is_refused() -> None:
    root, envelope, security = parts_of(signed())
    token = security.find(f"{{{ns.WSSE}}}BinarySecurityToken")
    assert token is not None and envelope.header is not None
    envelope.header.append(token)
    with pytest.raises(InvalidSecurityToken, match="not in this Security header"):
        check(etree.tostring(root))


@pytest.mark.parametrize(
    ("attribute", "value", "message"),
    [
        ("ValueType", "urn:x", "only X.509 v3"),
        ("EncodingType", "urn:hex", "Base64Binary"),
    ],
)
def test_bad_binary_security_token(attribute: str, value: str, message: str) -> None:
    root, _, security = parts_of(signed())
    security[1].set(attribute, value)
    with pytest.raises(InvalidSecurityToken, match=message):
        check(etree.tostring(root))


def test_key_reference_to_a_non_token() -> None:
    root, envelope, security = parts_of(signed())
    reference = security.find(f".//{{{ns.WSSE}}}Reference")
    assert reference is not None
    reference.set("URI", f"#{security[0].get(WSU_ID)}")  # the Timestamp
    with pytest.raises(InvalidSecurityToken, match="does not name a BinarySecurityToken"):
        check(etree.tostring(root))
    reference.set("URI", f"#{envelope.body.get(WSU_ID)}")
    with pytest.raises(InvalidSecurityToken, match="not in this Security header"):
        check(etree.tostring(root))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda sig: sig.remove(sig[0]),  # no SignedInfo
        lambda sig: sig[0].remove(sig[0].find(f"{{{DS}}}SignatureMethod")),
        lambda sig: [sig[0].remove(r) for r in sig[0].findall(f"{{{DS}}}Reference")],
        lambda sig: sig.find(f"{{{DS}}}SignatureValue").__setattr__("text", "%%%"),
        lambda sig: sig.remove(sig.find(f"{{{DS}}}SignatureValue")),
        lambda sig: sig[0].find(f"{{{DS}}}Reference").set("URI", ""),
        lambda sig: sig[0].find(f"{{{DS}}}Reference").set("URI", "#"),
        lambda sig: sig[0].find(f"{{{DS}}}Reference").set("URI", "#nowhere"),
        lambda sig: sig[0].find(f".//{{{DS}}}DigestValue").__setattr__("text", "!!"),
    ],
)
def test_garbled_signatures_fail_cleanly(mutate: Callable[[etree._Element], object]) -> None:
    root, _, security = parts_of(signed())
    signature = find_signature(security)
    assert signature is not None
    mutate(signature)
    with pytest.raises(SecurityFault):
        check(etree.tostring(root))


def test_signature_outside_security_is_refused() -> None:
    envelope = Envelope.from_bytes(signed())
    signature = envelope.root.find(f".//{{{DS}}}Signature")
    assert signature is not None
    envelope.body.append(signature)
    with pytest.raises(InvalidSecurity, match="not in the Security header"):
        verify_signature(envelope, signature, pki().authority(), now=T0)


def test_two_signatures_are_refused() -> None:
    _, _, security = parts_of(signed())
    security.append(copy.deepcopy(security[-1]))
    with pytest.raises(InvalidSecurity, match="more than one ds:Signature"):
        find_signature(security)


# --- signature wrapping (XSW) ----------------------------------------------


def _evil_body(envelope: Envelope) -> etree._Element:
    body = etree.Element(envelope.version.qname("Body"))
    body.append(payload("1"))
    return body


def _wrap_in_header(envelope: Envelope, element: etree._Element) -> None:
    assert envelope.header is not None
    wrapper = etree.SubElement(envelope.header, "{urn:evil}Wrapper")
    wrapper.append(element)


def xsw_body_moved_to_header(envelope: Envelope, security: etree._Element) -> None:
    original = envelope.body
    evil = _evil_body(envelope)
    original.addprevious(evil)
    _wrap_in_header(envelope, original)


def xsw_body_moved_same_id(envelope: Envelope, security: etree._Element) -> None:
    original = envelope.body
    evil = _evil_body(envelope)
    evil.set(WSU_ID, str(original.get(WSU_ID)))
    original.addprevious(evil)
    _wrap_in_header(envelope, original)


def xsw_body_moved_plain_id(envelope: Envelope, security: etree._Element) -> None:
    original = envelope.body
    evil = _evil_body(envelope)
    evil.set("Id", str(original.get(WSU_ID)))  # another Id attribute, same value
    original.addprevious(evil)
    _wrap_in_header(envelope, original)


def xsw_body_hidden_inside_new_body(envelope: Envelope, security: etree._Element) -> None:
    original = envelope.body
    evil = _evil_body(envelope)
    original.addprevious(evil)
    etree.SubElement(evil, "{urn:evil}Hidden").append(original)


def xsw_body_hidden_in_security(envelope: Envelope, security: etree._Element) -> None:
    original = envelope.body
    original.addprevious(_evil_body(envelope))
    security.append(original)


def xsw_body_id_on_evil_payload(envelope: Envelope, security: etree._Element) -> None:
    # The signed Body stays, but an element inside it claims the Body's Id.
    envelope.body[0].set(f"{{{ns.XML}}}id", str(envelope.body.get(WSU_ID)))


def xsw_timestamp_moved(envelope: Envelope, security: etree._Element) -> None:
    stamp = find_timestamp(security)
    assert stamp is not None
    fresh = copy.deepcopy(stamp)
    del fresh.attrib[WSU_ID]
    stamp.addprevious(fresh)
    _wrap_in_header(envelope, stamp)


def xsw_comment_in_signed_text(envelope: Envelope, security: etree._Element) -> None:
    # <employeeId>7</employeeId> -> <employeeId><!---->7</employeeId>: c14n drops the
    # comment, so the digest still matches, but the application reading .text of
    # these very bytes would see no employee id at all (the SAML comment attack).
    employee = envelope.body[0][0]
    comment = etree.Comment("")
    comment.tail, employee.text = employee.text, None
    employee.append(comment)


@pytest.mark.parametrize(
    ("attack", "message"),
    [
        (xsw_body_moved_to_header, "points outside"),
        (xsw_body_moved_same_id, "used more than once"),
        (xsw_body_moved_plain_id, "used more than once"),
        (xsw_body_hidden_inside_new_body, "points outside"),
        (xsw_body_hidden_in_security, "points outside"),
        (xsw_body_id_on_evil_payload, "used more than once"),
        (xsw_timestamp_moved, "points outside"),
        (xsw_comment_in_signed_text, "differs from this envelope"),
    ],
)
@pytest.mark.parametrize("version", [ENV11, ENV12])
def test_signature_wrapping_is_refused(
    attack: Callable[[Envelope, etree._Element], None], message: str, version: SoapVersion
) -> None:
    root, envelope, security = parts_of(signed(version))
    attack(envelope, security)
    tampered = etree.tostring(root)
    with pytest.raises(InvalidSecurity, match=message):
        check(tampered)


def test_a_signed_element_inside_the_body_is_not_the_body() -> None:
    # A genuine signature over the payload element only, not the Body: refused,
    # since the Body (and anything added beside the payload) would be unsigned.
    data = sign_raw(unsigned(), lambda env, sec: [env.body[0], sec[0]])
    with pytest.raises(InvalidSecurity, match="points outside"):
        check(data)


def test_a_signed_header_that_is_not_addressing_is_refused() -> None:
    root, envelope, _ = parts_of(unsigned())
    assert envelope.header is not None
    etree.SubElement(envelope.header, "{urn:custom}Audit").text = "x"
    data = sign_raw(etree.tostring(root), lambda env, sec: [env.body, env.header[-1]])  # type: ignore[index]
    with pytest.raises(InvalidSecurity, match="points outside"):
        check(data)


def test_security_header_lookup() -> None:
    root, envelope, security = parts_of(signed())
    assert security.tag == SECURITY
    envelope.header.append(copy.deepcopy(security))  # type: ignore[union-attr]
    with pytest.raises(InvalidSecurity, match="more than one wsse:Security"):
        find_security_header(Envelope.from_element(root))


def test_too_many_references_are_refused_before_any_digest() -> None:
    root, _, security = parts_of(signed())
    signed_info = security[-1][0]
    reference = signed_info.find(f"{{{DS}}}Reference")
    assert reference is not None
    for _ in range(17):
        signed_info.append(copy.deepcopy(reference))
    with pytest.raises(InvalidSecurity, match="more than 16 references"):
        check(etree.tostring(root))
