"""Who signs (:class:`SigningIdentity`) and whose signatures count (:class:`TrustStore`).

Trust is decided here, not by the message: a certificate a message carries is
only used once it is one of the pinned certificates or chains to one of the
configured certificate authorities at the time of checking. signxml then
verifies the signature with exactly that certificate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification

from soap.exceptions import InvalidSecurityToken, SecuritySetupError

__all__ = ["PrivateKey", "SigningIdentity", "TrustStore", "load_certificates"]

#: Private keys signxml signs SOAP with here.
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
_DER = serialization.Encoding.DER
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def load_certificates(pem: bytes) -> tuple[x509.Certificate, ...]:
    """Every certificate in a PEM bundle.

    Raises:
        SecuritySetupError: No certificate, or one that does not load.
    """
    try:
        certificates = tuple(x509.load_pem_x509_certificates(pem))
    except ValueError as exc:
        raise SecuritySetupError(f"cannot load PEM certificates: {exc}") from exc
    if not certificates:  # pragma: no cover - cryptography raises for an empty bundle
        raise SecuritySetupError("no certificate in the PEM data")
    return certificates


@dataclass(frozen=True)
class SigningIdentity:
    """A private key with its certificate (and optional intermediates).

    Attributes:
        key: The private key (never shown by ``repr``).
        certificate: The certificate of ``key``.
        chain: Intermediate certificates sent along, leaf first excluded.
    """

    key: PrivateKey = field(repr=False)
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise SecuritySetupError("only RSA and EC keys can sign SOAP messages here")
        mine = self.key.public_key().public_bytes(_DER, _SPKI)
        if mine != self.certificate.public_key().public_bytes(_DER, _SPKI):
            raise SecuritySetupError("the private key does not match the certificate")

    @classmethod
    def from_pem(
        cls, key_pem: bytes, cert_pem: bytes, password: bytes | None = None
    ) -> SigningIdentity:
        """Load a PEM private key and a PEM certificate (leaf first, then intermediates).

        Raises:
            SecuritySetupError: Unloadable key or certificate, or they do not match.
        """
        try:
            key = serialization.load_pem_private_key(key_pem, password=password)
        except (ValueError, TypeError) as exc:
            raise SecuritySetupError("cannot load the PEM private key") from exc
        leaf, *chain = load_certificates(cert_pem)
        return cls(key, leaf, tuple(chain))  # type: ignore[arg-type]


def _key_usage_allows_signing(
    policy: verification.Policy, cert: x509.Certificate, usage: x509.KeyUsage | None
) -> None:
    if usage is not None and not (usage.digital_signature or usage.content_commitment):
        raise ValueError("the certificate's KeyUsage does not allow digital signatures")


@dataclass(frozen=True)
class TrustStore:
    """The certificates a verifier trusts.

    Attributes:
        pinned: Accepted as they are (exact match), while valid.
        authorities: CAs a message's certificate may chain to.
    """

    pinned: tuple[x509.Certificate, ...] = ()
    authorities: tuple[x509.Certificate, ...] = ()

    @classmethod
    def from_pem(cls, pinned: bytes | None = None, ca_bundle: bytes | None = None) -> TrustStore:
        """Build a store from PEM bundles of pinned certificates and/or CAs.

        Raises:
            SecuritySetupError: A bundle does not load, or both are None.
        """
        if pinned is None and ca_bundle is None:
            raise SecuritySetupError("a TrustStore needs pinned certificates or a CA bundle")
        return cls(
            pinned=() if pinned is None else load_certificates(pinned),
            authorities=() if ca_bundle is None else load_certificates(ca_bundle),
        )

    def find(self, issuer: x509.Name, serial: int) -> x509.Certificate | None:
        """The pinned certificate with this issuer and serial number, if any."""
        for cert in self.pinned:
            if cert.issuer == issuer and cert.serial_number == serial:
                return cert
        return None

    def trusted(self, chain: Sequence[x509.Certificate], at: datetime) -> x509.Certificate:
        """Return the leaf of ``chain`` if it is trusted at ``at``.

        Args:
            chain: The message's certificates, leaf first.
            at: The time to check validity at.

        Raises:
            InvalidSecurityToken: No certificate, not valid at ``at``, or neither
                pinned nor chaining to a configured CA.
        """
        if not chain:
            raise InvalidSecurityToken("the signature names no certificate")
        leaf = chain[0]
        if not leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc:
            raise InvalidSecurityToken("the signing certificate is expired or not yet valid")
        der = leaf.public_bytes(_DER)
        if any(der == cert.public_bytes(_DER) for cert in self.pinned):
            return leaf
        if self.authorities and self._chains(leaf, list(chain[1:]), at):
            return leaf
        raise InvalidSecurityToken("the signing certificate is not trusted")

    def _chains(
        self, leaf: x509.Certificate, intermediates: list[x509.Certificate], at: datetime
    ) -> bool:
        ee_policy = verification.ExtensionPolicy.permit_all().may_be_present(
            x509.KeyUsage, verification.Criticality.AGNOSTIC, _key_usage_allows_signing
        )
        builder = (
            verification.PolicyBuilder()
            .store(verification.Store(list(self.authorities)))
            .time(at)
            .extension_policies(
                ee_policy=ee_policy,
                ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            )
        )
        try:
            builder.build_client_verifier().verify(leaf, intermediates)
        except verification.VerificationError:
            return False
        return True
