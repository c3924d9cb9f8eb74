"""Message security as a whole: what a receiver requires, and the composed hook.

:func:`verify_envelope` checks a received envelope against a
:class:`SecurityPolicy` in this order, cheapest first, so that expensive and
stateful work only happens for messages that could be genuine:

1. exactly one ``wsse:Security`` header (when anything is required), holding
   only supported items (encrypted content is refused);
2. the ``wsu:Timestamp``: well-formed, fresh (:class:`~soap.security.timestamp.Freshness`);
3. the ``ds:Signature`` (:func:`~soap.security.signature.verify_signature`):
   a trusted certificate, accepted algorithms, every reference resolving to
   this envelope's own parts; the Body, the Timestamp and the WS-Addressing
   headers must be among them (an unsigned header with the name of a signed
   one is refused even when the policy lets unsigned addressing through);
4. the ``wsse:UsernameToken`` against the credential lookup, its nonce
   remembered;
5. the signature remembered, so the same signed message is refused twice.

:class:`WsSecurityHook` composes the pieces as one ``egress``/``ingress``
hook. A request leaving a client with a Timestamp, a UsernameToken and a
signature::

    before:
    <soap:Envelope><soap:Body><m:GetSalary>7</m:GetSalary></soap:Body></soap:Envelope>

    after egress:
    <soap:Envelope>
      <soap:Header>
        <wsse:Security soap:mustUnderstand="1">
          <wsu:Timestamp wsu:Id="TS-1">...</wsu:Timestamp>
          <wsse:BinarySecurityToken wsu:Id="X509-3">...</wsse:BinarySecurityToken>
          <wsse:UsernameToken wsu:Id="UT-4">...</wsse:UsernameToken>
          <ds:Signature>... #id-2, #TS-1 ...</ds:Signature>
        </wsse:Security>
      </soap:Header>
      <soap:Body wsu:Id="id-2"><m:GetSalary>7</m:GetSalary></soap:Body>
    </soap:Envelope>

and ``ingress`` runs :func:`verify_envelope`, leaving the envelope unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from lxml import etree

from soap import ns
from soap.envelope import Envelope
from soap.exceptions import InvalidSecurity, SecuritySetupError, UnsupportedAlgorithm
from soap.security.confirmation import (
    SignatureConfirmations,
    confirmation_elements,
    signature_value,
)
from soap.security.correlation import ReplyCorrelation
from soap.security.header import find_security_header
from soap.security.keyinfo import BINARY_SECURITY_TOKEN
from soap.security.replay import MemoryReplayCache, ReplayCache
from soap.security.signature import (
    SIGNATURE,
    EnvelopeSigner,
    SignedParts,
    find_signature,
    verify_signature,
)
from soap.security.timestamp import (
    TIMESTAMP,
    Clock,
    Freshness,
    Timestamp,
    TimestampHook,
    find_timestamp,
    utc_now,
)
from soap.security.trust import TrustStore
from soap.security.username import (
    USERNAME_TOKEN,
    Credentials,
    UsernameToken,
    UsernameTokenHook,
    authenticate,
)

__all__ = ["SecurityPolicy", "SecurityResult", "WsSecurityHook", "verify_envelope"]

_KNOWN_ITEMS = frozenset({TIMESTAMP, USERNAME_TOKEN, BINARY_SECURITY_TOKEN, SIGNATURE})


@dataclass(frozen=True)
class SecurityPolicy:
    """What a receiver requires of incoming messages.

    Attributes:
        trust: Certificates whose signatures are accepted; None accepts none
            (a signature is then ignored, never trusted).
        require_signature: Refuse messages whose Body is not signed.
        require_timestamp: Refuse messages without a Timestamp (it bounds replays).
        require_signed_addressing: Refuse unsigned WS-Addressing headers in a
            signed message (the default: an attacker could otherwise add a
            ``wsa:To`` or ``wsa:ReplyTo``). An unsigned header with the name
            of a signed one is refused even when this is off.
        credentials: UsernameToken lookup (user name -> password or None).
        require_username_token: Refuse messages without a UsernameToken.
        allow_password_text: Accept PasswordText (clear text) tokens.
        allow_sha1: Explicit legacy opt-in for RSA-SHA1 and SHA-1 digests.
        freshness: Clock skew and maximum message age.
        clock: The time source.
        replay_cache: Where nonces and signatures are remembered.
    """

    trust: TrustStore | None = None
    require_signature: bool = True
    require_timestamp: bool = True
    require_signed_addressing: bool = True
    credentials: Credentials | None = field(default=None, repr=False)
    require_username_token: bool = False
    allow_password_text: bool = True
    allow_sha1: bool = False
    freshness: Freshness = field(default_factory=Freshness)
    clock: Clock = field(default=utc_now)
    replay_cache: ReplayCache = field(default_factory=MemoryReplayCache)

    def __post_init__(self) -> None:
        if self.require_signature and self.trust is None:
            raise SecuritySetupError("require_signature needs a TrustStore")
        if self.require_username_token and self.credentials is None:
            raise SecuritySetupError("require_username_token needs a credentials lookup")

    @property
    def requires_anything(self) -> bool:
        """Whether a message without a Security header is refused."""
        return self.require_signature or self.require_timestamp or self.require_username_token


@dataclass(frozen=True)
class SecurityResult:
    """What :func:`verify_envelope` established about a message.

    Attributes:
        signer: The trusted certificate that signed it, or None.
        username: The authenticated UsernameToken user, or None.
        timestamp: The checked Timestamp, or None.
        signed_parts: Clark names of the parts the signature covers.
        signature_value: the message's own ``SignatureValue`` (what a reply confirms).
        confirmations: the ``Value`` of each signed WS-Security 1.1
            SignatureConfirmation (None for one without a value).
    """

    signer: x509.Certificate | None = None
    username: str | None = None
    timestamp: Timestamp | None = None
    signed_parts: tuple[str, ...] = ()
    signature_value: str | None = None
    confirmations: tuple[str | None, ...] = ()


def verify_envelope(envelope: Envelope, policy: SecurityPolicy) -> SecurityResult:
    """Check a received envelope's WS-Security header against ``policy``.

    The envelope is not changed.

    Raises:
        SecurityFault: One of its subclasses, naming the WS-Security fault to
            answer (see :mod:`soap.security.faults`).
    """
    security = find_security_header(envelope)
    if security is None:
        if policy.requires_anything:
            raise InvalidSecurity("the message has no wsse:Security header")
        return SecurityResult()
    _check_items(security)
    now = policy.clock()
    timestamp = _timestamp(security, policy, now)
    parts = _signature(envelope, security, policy, now)
    username = _username(security, policy, now)
    confirmed: tuple[str | None, ...] = ()
    if parts is not None:
        until = policy.freshness.remember_until(now)
        if not policy.replay_cache.add(f"signature:{parts.replay_key}", now, until):
            raise InvalidSecurity("this signed message was received before (a replay)")
        confirmed = _confirmations(security, parts)
    return SecurityResult(
        signer=None if parts is None else parts.certificate,
        username=username,
        timestamp=timestamp,
        signed_parts=() if parts is None else tuple(str(e.tag) for e in parts.elements),
        signature_value=signature_value(security) if parts is not None else None,
        confirmations=confirmed,
    )


def _confirmations(security: etree._Element, parts: SignedParts) -> tuple[str | None, ...]:
    """The values of the SignatureConfirmations, each of which must be signed."""
    elements = confirmation_elements(security)
    if any(not parts.covers(element) for element in elements):
        raise InvalidSecurity("a wsse11:SignatureConfirmation is not signed")
    return tuple(element.get("Value") for element in elements)


def _check_items(security: etree._Element) -> None:
    if (security.text or "").strip() or any((c.tail or "").strip() for c in security):
        raise InvalidSecurity("the Security header holds stray text")
    for item in security:
        if not isinstance(item.tag, str):
            continue
        if etree.QName(item).namespace == ns.XENC:
            raise UnsupportedAlgorithm("encrypted messages are not supported")
        if etree.QName(item).namespace in (ns.WSSE, ns.WSU, ns.DS) and item.tag not in _KNOWN_ITEMS:
            raise InvalidSecurity(f"unsupported Security header item {etree.QName(item).localname}")


def _timestamp(security: etree._Element, policy: SecurityPolicy, now: datetime) -> Timestamp | None:
    element = find_timestamp(security)
    if element is None:
        if policy.require_timestamp:
            raise InvalidSecurity("the message has no wsu:Timestamp")
        return None
    timestamp = Timestamp.from_element(element)
    timestamp.check(now, policy.freshness)
    return timestamp


def _signature(
    envelope: Envelope, security: etree._Element, policy: SecurityPolicy, now: datetime
) -> SignedParts | None:
    signature = find_signature(security)
    if signature is None or policy.trust is None:
        if policy.require_signature:
            raise InvalidSecurity("the message is not signed")
        return None
    parts = verify_signature(
        envelope, signature, policy.trust, now=now, allow_sha1=policy.allow_sha1
    )
    if not parts.covers(envelope.body):
        raise InvalidSecurity("the signature does not cover this envelope's Body")
    timestamp = find_timestamp(security)
    if timestamp is not None and not parts.covers(timestamp):
        raise InvalidSecurity("the signature does not cover the wsu:Timestamp")
    _check_addressing(envelope, parts, policy.require_signed_addressing)
    return parts


def _check_addressing(envelope: Envelope, parts: SignedParts, require_signed: bool) -> None:
    """Refuse unsigned WS-Addressing headers beside a signature.

    An unsigned header with the name of a signed one (a second ``wsa:To``,
    say) is always refused: which of the two a consumer reads is anyone's
    guess. Any other unsigned one is refused when ``require_signed``.
    """
    blocks = [b for b in envelope.header_blocks if etree.QName(b).namespace == ns.WSA]
    signed = {block.tag for block in blocks if parts.covers(block)}
    for block in blocks:
        if parts.covers(block):
            continue
        name = etree.QName(block).localname
        if block.tag in signed:
            raise InvalidSecurity(f"an unsigned wsa:{name} stands beside the signed one")
        if require_signed:
            raise InvalidSecurity(f"the signature does not cover wsa:{name}")


def _username(security: etree._Element, policy: SecurityPolicy, now: datetime) -> str | None:
    elements = security.findall(USERNAME_TOKEN)
    if len(elements) > 1:
        raise InvalidSecurity("the Security header has more than one UsernameToken")
    if not elements:
        if policy.require_username_token:
            raise InvalidSecurity("the message has no wsse:UsernameToken")
        return None
    if policy.credentials is None:
        return None
    return authenticate(
        UsernameToken.from_element(elements[0]),
        policy.credentials,
        now=now,
        freshness=policy.freshness,
        replay_cache=policy.replay_cache,
        allow_text=policy.allow_password_text,
    )


@dataclass(frozen=True)
class WsSecurityHook:
    """Timestamp, UsernameToken and signature as one ``egress``/``ingress`` hook.

    Attributes:
        timestamp: Adds the Timestamp on egress; None adds none.
        username_token: Adds a UsernameToken on egress; None adds none.
        signer: Signs on egress (after the others, so it covers the Timestamp).
        policy: Checks messages on ingress; None checks nothing.
        unsigned_faults: On ingress, let an unsigned SOAP Fault through (the
            service's security faults are not signed, as in WCF).
        correlation: With a policy, binds replies to requests: egress
            remembers each request's ``wsa:MessageID``, ingress refuses a
            verified reply whose ``wsa:RelatesTo`` names none of them
            (:mod:`soap.security.correlation`). None checks nothing.
        confirmations: With a policy and a signer, binds replies to signed
            requests by WS-Security 1.1 SignatureConfirmation: egress remembers
            each request's ``SignatureValue``, ingress refuses a reply whose signed
            confirmations name none of them (:mod:`soap.security.confirmation`).
        require_confirmation: Refuse a signed reply with no confirmation at all
            (the service must speak WS-Security 1.1; soap-relay's services do).
    """

    timestamp: TimestampHook | None = field(default_factory=TimestampHook)
    username_token: UsernameTokenHook | None = None
    signer: EnvelopeSigner | None = None
    policy: SecurityPolicy | None = None
    unsigned_faults: bool = True
    correlation: ReplyCorrelation | None = field(default_factory=ReplyCorrelation)
    confirmations: SignatureConfirmations | None = field(default_factory=SignatureConfirmations)
    require_confirmation: bool = False

    def egress(
        self, envelope: etree._Element, http_headers: dict[str, str]
    ) -> tuple[etree._Element, dict[str, str]]:
        """Add the Timestamp and UsernameToken, then sign (each when configured)."""
        for hook in (self.timestamp, self.username_token, self.signer):
            if hook is not None:
                envelope, http_headers = hook.egress(envelope, http_headers)
        if self.policy is not None and self.correlation is not None:
            self.correlation.sent(Envelope.from_element(envelope))
        if self.policy is not None and self.signer is not None and self.confirmations is not None:
            security = find_security_header(Envelope.from_element(envelope))
            self.confirmations.sent(signature_value(security))
        return envelope, http_headers

    def ingress(
        self, envelope: etree._Element, http_headers: dict[str, str]
    ) -> tuple[etree._Element, dict[str, str]]:
        """Verify the message with :func:`verify_envelope`, then its ``wsa:RelatesTo``.

        The envelope is unchanged.

        Raises:
            SecurityFault: The message fails the policy, or answers no request
                sent through this hook.
        """
        if self.policy is None:
            return envelope, http_headers
        parsed = Envelope.from_element(envelope)
        if self.unsigned_faults and _is_unsigned_fault(parsed):
            return envelope, http_headers
        result = verify_envelope(parsed, self.policy)
        if self.correlation is not None:
            self.correlation.check(parsed)
        if self.signer is not None and self.confirmations is not None:
            self.confirmations.check(result.confirmations, required=self.require_confirmation)
        return envelope, http_headers


def _is_unsigned_fault(envelope: Envelope) -> bool:
    payload = envelope.body_payload
    if payload is None or payload.tag != envelope.version.qname("Fault"):
        return False
    security = find_security_header(envelope)
    return security is None or find_signature(security) is None
