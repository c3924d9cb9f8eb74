"""X.509 signatures over the Body, the Timestamp and the WS-Addressing headers, with signxml.

:class:`EnvelopeSigner` makes one detached XML signature (RSA-SHA256 and
exclusive c14n by default) whose references point by ``wsu:Id`` at the parts
it signs, and puts it in the Security header::

    before:
    <soap:Envelope>
      <soap:Header>
        <wsa:To>http://relay/payroll</wsa:To>
        <wsse:Security soap:mustUnderstand="1"><wsu:Timestamp>...</wsu:Timestamp></wsse:Security>
      </soap:Header>
      <soap:Body><m:GetSalary>...</m:GetSalary></soap:Body>
    </soap:Envelope>

    after egress:
    <soap:Envelope>
      <soap:Header>
        <wsa:To wsu:Id="id-3">http://relay/payroll</wsa:To>
        <wsse:Security soap:mustUnderstand="1">
          <wsu:Timestamp wsu:Id="TS-1">...</wsu:Timestamp>
          <wsse:BinarySecurityToken wsu:Id="X509-4" ValueType="...#X509v3">MII...</wsse:BinarySecurityToken>
          <ds:Signature>
            <ds:SignedInfo>
              <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
              <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
              <ds:Reference URI="#id-2">...</ds:Reference>   (Body)
              <ds:Reference URI="#TS-1">...</ds:Reference>
              <ds:Reference URI="#id-3">...</ds:Reference>   (wsa:To)
            </ds:SignedInfo>
            <ds:SignatureValue>...</ds:SignatureValue>
            <ds:KeyInfo><wsse:SecurityTokenReference>
              <wsse:Reference URI="#X509-4" ValueType="...#X509v3"/>
            </wsse:SecurityTokenReference></ds:KeyInfo>
          </ds:Signature>
        </wsse:Security>
      </soap:Header>
      <soap:Body wsu:Id="id-2"><m:GetSalary>...</m:GetSalary></soap:Body>
    </soap:Envelope>

:func:`verify_signature` is the signature-wrapping (XSW) defence. It trusts
only what signxml reports as signed (``VerifyResult.signed_xml``), and only
when every reference resolves, by a unique Id, to one of this envelope's own
parts: the Body, a Timestamp or token in the Security header, a WS-Addressing
header; and when each of those parts, canonicalised with its comments, equals
what signxml returned (so a comment slipped into signed text, which the digest
ignores, is refused too). A Body moved into a wrapper, hidden inside a new
Body, or shadowed by a twin with the same Id is refused. The certificate comes from the trust store
(:mod:`soap.security.trust`), never from the message alone. Algorithms are
checked before signxml runs: exclusive c14n only, no other transforms, and
SHA-1 only when the policy opts in for legacy peers.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidSignature, SignXMLException
from signxml.signer import SignatureReference, XMLSigner
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from soap import ns
from soap.envelope import Envelope
from soap.exceptions import (
    FailedCheck,
    InvalidSecurity,
    InvalidSecurityToken,
    SecuritySetupError,
    UnsupportedAlgorithm,
)
from soap.security.header import SECURITY, element_by_id, ensure_id, ensure_security_header, new_id
from soap.security.keyinfo import (
    BINARY_SECURITY_TOKEN,
    BinarySecurityToken,
    KeyInfoStyle,
    key_info_element,
    signing_chain,
)
from soap.security.timestamp import TIMESTAMP, find_timestamp
from soap.security.trust import SigningIdentity, TrustStore
from soap.security.username import USERNAME_TOKEN

__all__ = [
    "MAX_REFERENCES",
    "SIGNATURE",
    "EnvelopeSigner",
    "SignedParts",
    "accepted_algorithms",
    "find_signature",
    "verify_signature",
]

#: Clark name of ``ds:Signature``.
SIGNATURE = f"{{{ns.DS}}}Signature"
EXC_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
#: The most references one signature may have (Body, Timestamp, tokens, addressing).
MAX_REFERENCES = 16
_SECURE_METHODS = frozenset({
    SignatureMethod.RSA_SHA256, SignatureMethod.RSA_SHA384, SignatureMethod.RSA_SHA512,
    SignatureMethod.ECDSA_SHA256, SignatureMethod.ECDSA_SHA384, SignatureMethod.ECDSA_SHA512,
})  # fmt: skip
_SECURE_DIGESTS = frozenset(
    {DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}
)
_SHA1_METHODS = frozenset({SignatureMethod.RSA_SHA1, SignatureMethod.ECDSA_SHA1})
#: Parts a signature may cover besides the Body and WS-Addressing headers.
_SECURITY_PARTS = frozenset({TIMESTAMP, BINARY_SECURITY_TOKEN, USERNAME_TOKEN,
                             f"{{{ns.WSSE11}}}SignatureConfirmation"})


def _ds(local: str) -> str:
    return f"{{{ns.DS}}}{local}"


def accepted_algorithms(
    allow_sha1: bool,
) -> tuple[frozenset[SignatureMethod], frozenset[DigestAlgorithm]]:
    """The signature methods and digests accepted, with or without the SHA-1 opt-in."""
    if allow_sha1:
        return _SECURE_METHODS | _SHA1_METHODS, _SECURE_DIGESTS | {DigestAlgorithm.SHA1}
    return _SECURE_METHODS, _SECURE_DIGESTS


class _LegacySigner(XMLSigner):
    """signxml's signer without its SHA-1 refusal; used only after the explicit opt-in."""

    def check_deprecated_methods(self) -> None:
        """Allow SHA-1 (the opt-in is checked by :class:`EnvelopeSigner`)."""


def _exc_c14n(element: etree._Element, *, with_comments: bool = False) -> bytes:
    return bytes(
        etree.tostring(element, method="c14n", exclusive=True, with_comments=with_comments)
    )


def _addressing_headers(envelope: Envelope) -> list[etree._Element]:
    return [b for b in envelope.header_blocks if etree.QName(b).namespace == ns.WSA]


@dataclass(frozen=True)
class EnvelopeSigner:
    """Signs envelopes with an X.509 identity (the egress half of message security).

    Attributes:
        identity: The key and certificate.
        key_info: Where the certificate goes (:class:`KeyInfoStyle`).
        signature_method: RSA-SHA256 by default.
        digest_method: SHA-256 by default.
        sign_addressing: Also sign the WS-Addressing headers present.
        allow_sha1: Explicit opt-in to sign with SHA-1 for legacy peers.
        id_factory: Returns the ``wsu:Id`` values added.
    """

    identity: SigningIdentity
    key_info: KeyInfoStyle = KeyInfoStyle.BINARY_SECURITY_TOKEN
    signature_method: SignatureMethod = SignatureMethod.RSA_SHA256
    digest_method: DigestAlgorithm = DigestAlgorithm.SHA256
    sign_addressing: bool = True
    allow_sha1: bool = False
    id_factory: Callable[[], str] = field(default=new_id)

    def __post_init__(self) -> None:
        methods, digests = accepted_algorithms(allow_sha1=True)
        if self.signature_method not in methods or self.digest_method not in digests:
            raise SecuritySetupError(
                f"cannot sign with {self.signature_method.name} and {self.digest_method.name}"
            )
        sha1 = "SHA1" in self.signature_method.name or "SHA1" in self.digest_method.name
        if sha1 and not self.allow_sha1:
            raise SecuritySetupError("signing with SHA-1 needs allow_sha1=True")
        rsa_method = self.signature_method.name.startswith("RSA_")
        if rsa_method != isinstance(self.identity.key, rsa.RSAPrivateKey):
            raise SecuritySetupError("the signature method does not fit the key type")

    def sign(self, envelope: Envelope) -> etree._Element:
        """Sign the Body, the Timestamp (if any), the WS-Addressing headers and the
        WS-Security 1.1 SignatureConfirmations (if any).

        The envelope is changed in place: ``wsu:Id`` attributes, the token (in
        BINARY_SECURITY_TOKEN style) and the ``ds:Signature`` are added.

        Returns:
            The ``ds:Signature`` element, now in the Security header.
        """
        security = ensure_security_header(envelope)
        parts = [envelope.body]
        timestamp = find_timestamp(security)
        if timestamp is not None:
            parts.append(timestamp)
        if self.sign_addressing:
            parts.extend(_addressing_headers(envelope))
        parts.extend(security.findall(f"{{{ns.WSSE11}}}SignatureConfirmation"))
        references = [
            SignatureReference(URI=f"#{ensure_id(part, self.id_factory)}", c14n_method=EXC_C14N)
            for part in parts
        ]
        token_id = None
        if self.key_info is KeyInfoStyle.BINARY_SECURITY_TOKEN:
            token_id = self.id_factory()
            token = BinarySecurityToken(self.identity.certificate, token_id)
            security.insert(0 if timestamp is None else 1, token.to_element())
        signature = self._signer().sign(
            envelope.root,
            key=self.identity.key,
            reference_uri=references,
            key_info=key_info_element(self.key_info, self.identity, token_id),
        )
        security.append(signature)
        return signature

    def _signer(self) -> XMLSigner:
        kind = _LegacySigner if self.allow_sha1 else XMLSigner
        signer = kind(
            method=SignatureConstructionMethod.detached,
            signature_algorithm=self.signature_method,
            digest_algorithm=self.digest_method,
            c14n_algorithm=EXC_C14N,
        )
        signer.namespaces = {"ds": ns.DS}
        return signer

    def egress(
        self, envelope: etree._Element, http_headers: dict[str, str]
    ) -> tuple[etree._Element, dict[str, str]]:
        """Hook form of :meth:`sign`."""
        self.sign(Envelope.from_element(envelope))
        return envelope, http_headers


@dataclass(frozen=True)
class SignedParts:
    """What a verified signature covers.

    Attributes:
        certificate: The trusted certificate that verified it.
        elements: This envelope's own elements whose signed form signxml
            returned, in reference order.
        replay_key: A digest of the signed SignedInfo, the same for a replay.
    """

    certificate: x509.Certificate
    elements: tuple[etree._Element, ...]
    replay_key: str

    def covers(self, element: etree._Element) -> bool:
        """Whether ``element`` (this very node) is among the signed parts."""
        return any(part is element for part in self.elements)


def find_signature(security: etree._Element) -> etree._Element | None:
    """The Security header's ``ds:Signature``, or None.

    Raises:
        InvalidSecurity: More than one.
    """
    found = [child for child in security if child.tag == SIGNATURE]
    if len(found) > 1:
        raise InvalidSecurity("the Security header has more than one ds:Signature")
    return found[0] if found else None


def verify_signature(
    envelope: Envelope,
    signature: etree._Element,
    trust: TrustStore,
    *,
    now: datetime,
    allow_sha1: bool = False,
) -> SignedParts:
    """Verify the Security header's signature and map what it signed onto this envelope.

    Args:
        envelope: The received envelope.
        signature: Its ``ds:Signature``, a child of its one Security header.
        trust: Pinned certificates and/or CAs.
        now: The time certificates must be valid at.
        allow_sha1: Accept RSA-SHA1 and SHA-1 digests (legacy peers).

    Raises:
        UnsupportedAlgorithm: An algorithm or transform not accepted here.
        InvalidSecurityToken: No usable certificate, or one not trusted.
        InvalidSecurity: A reference that is missing, ambiguous, or points
            outside this envelope's Body, Security header and addressing headers.
        FailedCheck: The signature or a digest does not verify.
    """
    security = signature.getparent()
    if security is None or security.tag != SECURITY:
        raise InvalidSecurity("ds:Signature is not in the Security header")
    references = _check_signed_info(signature, allow_sha1)
    certificate = trust.trusted(signing_chain(signature, security, trust), now)
    targets = [_reference_target(envelope, security, uri) for uri in references]
    results = _signxml_verify(envelope, certificate, now, allow_sha1)
    if len(results) != len(targets):
        raise InvalidSecurity("signxml verified a different number of references")
    for target, result in zip(targets, results, strict=True):
        # With comments on our side: a comment splitting signed text (which
        # c14n drops, so the digest still matches) would change what the
        # application reads from these very bytes.
        signed = None if result.signed_xml is None else _exc_c14n(result.signed_xml)
        if signed != _exc_c14n(target, with_comments=True):
            raise InvalidSecurity("a signed part differs from this envelope's own")
    signed_info = signature.find(_ds("SignedInfo"))
    assert signed_info is not None  # checked by _check_signed_info
    replay_key = hashlib.sha256(_exc_c14n(signed_info)).hexdigest()
    return SignedParts(certificate, tuple(targets), replay_key)


def _check_signed_info(signature: etree._Element, allow_sha1: bool) -> list[str]:
    """Check algorithms and transforms; return the reference URIs."""
    methods, digests = accepted_algorithms(allow_sha1)
    signed_info = signature.find(_ds("SignedInfo"))
    if signed_info is None:
        raise InvalidSecurity("ds:Signature has no SignedInfo")
    _require(signed_info, "CanonicalizationMethod", {EXC_C14N.value})
    _require(signed_info, "SignatureMethod", {m.value for m in methods})
    references = signed_info.findall(_ds("Reference"))
    if len(references) > MAX_REFERENCES:
        # signxml re-reads the whole document for each reference: bound the work.
        raise InvalidSecurity(f"the signature has more than {MAX_REFERENCES} references")
    uris = []
    for reference in references:
        transforms = [t.get("Algorithm") for t in reference.iterfind(f"{_ds('Transforms')}/*")]
        if transforms != [EXC_C14N.value]:
            raise UnsupportedAlgorithm(
                "each reference must use exactly one exclusive c14n transform"
            )
        _require(reference, "DigestMethod", {d.value for d in digests})
        uris.append(reference.get("URI") or "")
    if not uris:
        raise InvalidSecurity("the signature has no references")
    return uris


def _require(parent: etree._Element, local: str, accepted: set[str]) -> None:
    element = parent.find(_ds(local))
    algorithm = None if element is None else element.get("Algorithm")
    if algorithm not in accepted:
        sha1 = algorithm is not None and "sha1" in algorithm.lower()
        hint = " (SHA-1 is refused unless the legacy option is on)" if sha1 else ""
        raise UnsupportedAlgorithm(f"{local} {algorithm!r} is not accepted{hint}")


def _reference_target(envelope: Envelope, security: etree._Element, uri: str) -> etree._Element:
    """The element a reference URI names, if it is one of this envelope's signable parts."""
    if not uri.startswith("#") or len(uri) < 2:
        raise InvalidSecurity("only same-document '#id' references are supported")
    target = element_by_id(envelope.root, uri[1:])
    parent = target.getparent()
    if target is envelope.body:
        return target
    if parent is security and target.tag in _SECURITY_PARTS:
        return target
    if parent is envelope.header and etree.QName(target).namespace == ns.WSA:
        return target
    raise InvalidSecurity(f"reference {uri!r} points outside this envelope's signable parts")


def _signxml_verify(
    envelope: Envelope, certificate: x509.Certificate, now: datetime, allow_sha1: bool
) -> list[VerifyResult]:
    methods, digests = accepted_algorithms(allow_sha1)
    location = f"./{envelope.version.qname('Header')}/{SECURITY}/"
    config = SignatureConfiguration(
        location=location,
        expect_references=True,
        signature_methods=methods,
        digest_algorithms=digests,
        verification_time=now,
    )
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        results = XMLVerifier().verify(
            envelope.root, x509_cert=certificate, parser=parser, expect_config=config
        )
    except InvalidDigest as exc:
        raise FailedCheck("a signed part was changed after signing") from exc
    except InvalidCertificate as exc:
        raise InvalidSecurityToken("the signing certificate is not valid now") from exc
    except InvalidSignature as exc:
        raise FailedCheck("the signature value does not verify") from exc
    except etree.DocumentInvalid as exc:
        raise InvalidSecurity("ds:Signature does not follow the XML Signature schema") from exc
    except (SignXMLException, ValueError, TypeError, binascii.Error, etree.LxmlError) as exc:
        raise InvalidSecurity(f"the signature cannot be processed: {type(exc).__name__}") from exc
    return results if isinstance(results, list) else [results]
