"""How a signature names its certificate: ``ds:KeyInfo`` and ``wsse:BinarySecurityToken``.

Two styles are written (:class:`KeyInfoStyle`). As a BinarySecurityToken in
the Security header, referenced from the KeyInfo (WCF and WSS4J)::

    <wsse:BinarySecurityToken wsu:Id="X509-1" ValueType="...#X509v3"
        EncodingType="...#Base64Binary">MIIC...</wsse:BinarySecurityToken>
    <ds:Signature>...
      <ds:KeyInfo><wsse:SecurityTokenReference>
        <wsse:Reference URI="#X509-1" ValueType="...#X509v3"/>
      </wsse:SecurityTokenReference></ds:KeyInfo>
    </ds:Signature>

or inline as X509Data, as zeep's ``Signature`` writes it::

    <ds:KeyInfo><wsse:SecurityTokenReference><ds:X509Data>
      <ds:X509IssuerSerial>...</ds:X509IssuerSerial>
      <ds:X509Certificate>MIIC...</ds:X509Certificate>
    </ds:X509Data></wsse:SecurityTokenReference></ds:KeyInfo>

:func:`signing_chain` reads both, and a bare ``ds:KeyInfo/ds:X509Data``; a
reference must point at a token in this message's own Security header, and
an X509IssuerSerial without the certificate is looked up among the pinned
certificates only. What it returns is still untrusted: see
:meth:`~soap.security.trust.TrustStore.trusted`.
"""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from soap import ns
from soap.exceptions import InvalidSecurity, InvalidSecurityToken
from soap.security.header import NSMAP, WSU_ID, element_by_id
from soap.security.trust import SigningIdentity, TrustStore

__all__ = [
    "BINARY_SECURITY_TOKEN",
    "BinarySecurityToken",
    "KeyInfoStyle",
    "key_info_element",
    "signing_chain",
]

#: Clark name of ``wsse:BinarySecurityToken``.
BINARY_SECURITY_TOKEN = f"{{{ns.WSSE}}}BinarySecurityToken"
_STR = f"{{{ns.WSSE}}}SecurityTokenReference"
_REFERENCE = f"{{{ns.WSSE}}}Reference"
_DS_NSMAP = {"ds": ns.DS}


def _ds(local: str) -> str:
    return f"{{{ns.DS}}}{local}"


class KeyInfoStyle(enum.Enum):
    """Where a signature written here puts its certificate."""

    BINARY_SECURITY_TOKEN = "binary_security_token"
    X509_DATA = "x509_data"


def _load_der(text: str | None, what: str) -> x509.Certificate:
    try:
        der = base64.b64decode("".join((text or "").split()), validate=True)
        return x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        raise InvalidSecurityToken(f"{what} is not a base64 X.509 certificate") from None


def _base64(certificate: x509.Certificate) -> str:
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()


@dataclass(frozen=True)
class BinarySecurityToken:
    """An X.509 v3 ``wsse:BinarySecurityToken``.

    Attributes:
        certificate: The certificate it carries.
        id: Its ``wsu:Id``.
    """

    certificate: x509.Certificate
    id: str

    @classmethod
    def from_element(cls, element: etree._Element) -> BinarySecurityToken:
        """Read a token element.

        Raises:
            InvalidSecurityToken: Not an X.509 v3 token in Base64Binary.
        """
        if element.tag != BINARY_SECURITY_TOKEN:
            raise InvalidSecurityToken("the key reference does not name a BinarySecurityToken")
        if element.get("ValueType") != ns.X509V3_TOKEN:
            raise InvalidSecurityToken("only X.509 v3 BinarySecurityTokens are supported")
        if element.get("EncodingType", ns.BASE64_BINARY) != ns.BASE64_BINARY:
            raise InvalidSecurityToken("BinarySecurityToken must be Base64Binary")
        certificate = _load_der(element.text, "BinarySecurityToken")
        return cls(certificate, element.get(WSU_ID) or "")

    def to_element(self) -> etree._Element:
        """Write the token element."""
        element = etree.Element(BINARY_SECURITY_TOKEN, nsmap=NSMAP)
        element.set(WSU_ID, self.id)
        element.set("ValueType", ns.X509V3_TOKEN)
        element.set("EncodingType", ns.BASE64_BINARY)
        element.text = _base64(self.certificate)
        return element


def key_info_element(
    style: KeyInfoStyle, identity: SigningIdentity, token_id: str | None = None
) -> etree._Element:
    """The ``ds:KeyInfo`` of a signature made with ``identity``.

    Args:
        style: Where the certificate goes.
        identity: The signer.
        token_id: The BinarySecurityToken's Id (BINARY_SECURITY_TOKEN style).
    """
    key_info = etree.Element(_ds("KeyInfo"), nsmap=_DS_NSMAP)
    reference = etree.SubElement(key_info, _STR, nsmap=NSMAP)
    if style is KeyInfoStyle.BINARY_SECURITY_TOKEN:
        etree.SubElement(reference, _REFERENCE, URI=f"#{token_id}", ValueType=ns.X509V3_TOKEN)
        return key_info
    data = etree.SubElement(reference, _ds("X509Data"))
    issuer_serial = etree.SubElement(data, _ds("X509IssuerSerial"))
    issuer = identity.certificate.issuer.rfc4514_string()
    etree.SubElement(issuer_serial, _ds("X509IssuerName")).text = issuer
    serial = str(identity.certificate.serial_number)
    etree.SubElement(issuer_serial, _ds("X509SerialNumber")).text = serial
    for certificate in (identity.certificate, *identity.chain):
        etree.SubElement(data, _ds("X509Certificate")).text = _base64(certificate)
    return key_info


def signing_chain(
    signature: etree._Element, security: etree._Element, trust: TrustStore
) -> list[x509.Certificate]:
    """The certificates (leaf first) the signature's KeyInfo names.

    Args:
        signature: The ``ds:Signature`` element, in the message's tree.
        security: The Security header it belongs to.
        trust: Where an X509IssuerSerial alone is looked up (pinned only).

    Raises:
        InvalidSecurityToken: No KeyInfo, an unsupported kind of key reference, a
            reference to a missing or duplicated Id or to a token outside this
            Security header, or an unreadable token.
    """
    key_info = signature.find(_ds("KeyInfo"))
    if key_info is None:
        raise InvalidSecurityToken("the signature has no KeyInfo")
    for holder in (key_info, key_info.find(_STR)):
        if holder is None:
            continue
        data = holder.find(_ds("X509Data"))
        if data is not None:
            return _x509_data(data, trust)
    reference = key_info.find(f"{_STR}/{_REFERENCE}")
    if reference is not None:
        return [_referenced_token(reference, security).certificate]
    raise InvalidSecurityToken("the signature's KeyInfo names no supported X.509 token")


def _referenced_token(reference: etree._Element, security: etree._Element) -> BinarySecurityToken:
    uri = reference.get("URI") or ""
    if not uri.startswith("#"):
        raise InvalidSecurityToken("only same-message token references are supported")
    try:
        target = element_by_id(security.getroottree().getroot(), uri[1:])
    except InvalidSecurity as exc:  # a dangling or ambiguous reference names no token
        raise InvalidSecurityToken(f"the signature's key reference {uri!r}: {exc}") from None
    if target.getparent() is not security:
        raise InvalidSecurityToken("the referenced token is not in this Security header")
    return BinarySecurityToken.from_element(target)


def _x509_data(data: etree._Element, trust: TrustStore) -> list[x509.Certificate]:
    certs = [_load_der(c.text, "X509Certificate") for c in data.findall(_ds("X509Certificate"))]
    if certs:
        return _leaf_first(certs)
    issuer = data.findtext(f"{_ds('X509IssuerSerial')}/{_ds('X509IssuerName')}")
    serial = data.findtext(f"{_ds('X509IssuerSerial')}/{_ds('X509SerialNumber')}")
    if issuer is None or serial is None:
        raise InvalidSecurityToken("X509Data holds neither a certificate nor an IssuerSerial")
    try:
        found = trust.find(x509.Name.from_rfc4514_string(issuer.strip()), int(serial.strip()))
    except ValueError:
        raise InvalidSecurityToken("X509IssuerSerial is malformed") from None
    if found is None:
        raise InvalidSecurityToken("no pinned certificate matches the X509IssuerSerial")
    return [found]


def _leaf_first(certs: list[x509.Certificate]) -> list[x509.Certificate]:
    """Order a bag of certificates (XML Signature implies no order) leaf first.

    The leaf is the one that issued none of the others; with no single such
    certificate the given order is kept.
    """
    leaves = [
        cert
        for cert in certs
        if not any(other is not cert and other.issuer == cert.subject for other in certs)
    ]
    if len(certs) == 1 or len(leaves) != 1:
        return certs
    return [leaves[0], *(cert for cert in certs if cert is not leaves[0])]
