"""Tests for soap.security.trust, and the tiny PKI every WS-Security test uses.

The PKI is made once per session with ``cryptography``: a CA, a leaf it
issued, a second CA with its own leaf (a stranger), a self-signed leaf, an
expired leaf, and an EC leaf. Validity is centred on :data:`T0`, and every
check takes its time from an injected clock, so the tests never depend on
the wall clock.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from soap.exceptions import InvalidSecurityToken, SecuritySetupError
from soap.security.trust import PrivateKey, SigningIdentity, TrustStore, load_certificates

#: The instant the tests run "at".
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
_YEAR = timedelta(days=365)
_PEM = serialization.Encoding.PEM


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _usage(*, signer: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signer, content_commitment=False, key_encipherment=signer,
        data_encipherment=False, key_agreement=False, key_cert_sign=not signer,
        crl_sign=not signer, encipher_only=False, decipher_only=False,
    )  # fmt: skip


@dataclass(frozen=True)
class Party:
    """A key and its certificate."""

    key: PrivateKey
    cert: x509.Certificate

    @property
    def identity(self) -> SigningIdentity:
        return SigningIdentity(self.key, self.cert)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            _PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(_PEM)


def issue(
    common_name: str,
    issuer: Party | None = None,
    *,
    ca: bool = False,
    valid_from: datetime = T0 - _YEAR,
    valid_until: datetime = T0 + _YEAR,
    key: PrivateKey | None = None,
    key_usage: x509.KeyUsage | None = None,
) -> Party:
    """A certificate for a new key, signed by ``issuer`` (self-signed when None)."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer_name = _name(common_name) if issuer is None else issuer.cert.subject
    signing_key = key if issuer is None else issuer.key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_until)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(key_usage or _usage(signer=not ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer is not None:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())
        builder = builder.add_extension(aki, critical=False)
    return Party(key, builder.sign(signing_key, hashes.SHA256()))


@dataclass(frozen=True)
class Pki:
    """Everyone the WS-Security tests need."""

    ca: Party
    leaf: Party
    server: Party
    other_ca: Party
    stranger: Party
    self_signed: Party
    expired: Party
    ec_leaf: Party

    def pinned(self, *parties: Party) -> TrustStore:
        return TrustStore(pinned=tuple(p.cert for p in parties))

    def authority(self) -> TrustStore:
        return TrustStore(authorities=(self.ca.cert,))


@functools.cache
def pki() -> Pki:
    """The session's PKI (RSA key generation is slow, so it is made once)."""
    ca = issue("Test CA", ca=True)
    other_ca = issue("Other CA", ca=True)
    return Pki(
        ca=ca,
        leaf=issue("payroll-client", ca),
        server=issue("payroll-service", ca),
        other_ca=other_ca,
        stranger=issue("stranger", other_ca),
        self_signed=issue("self-signed"),
        expired=issue("expired", ca, valid_from=T0 - 3 * _YEAR, valid_until=T0 - _YEAR),
        ec_leaf=issue("ec-client", ca, key=ec.generate_private_key(ec.SECP256R1())),
    )


@pytest.fixture
def keys() -> Pki:
    """The shared test PKI."""
    return pki()


def test_identity_from_pem_round_trip(keys: Pki) -> None:
    identity = SigningIdentity.from_pem(keys.leaf.key_pem, keys.leaf.cert_pem + keys.ca.cert_pem)
    assert identity.certificate == keys.leaf.cert
    assert identity.chain == (keys.ca.cert,)


def test_identity_repr_never_shows_the_key(keys: Pki) -> None:
    text = repr(keys.leaf.identity)
    assert "RSAPrivateKey" not in text and "key=" not in text


def test_identity_refuses_a_key_that_is_not_the_certificates(keys: Pki) -> None:
    with pytest.raises(SecuritySetupError, match="does not match"):
        SigningIdentity(keys.leaf.key, keys.server.cert)


@pytest.mark.parametrize(
    ("key_pem", "cert_pem"),
    [
        (b"not a key", None),
        (None, b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
    ],
)
def test_identity_from_bad_pem(keys: Pki, key_pem: bytes | None, cert_pem: bytes | None) -> None:
    with pytest.raises(SecuritySetupError):
        SigningIdentity.from_pem(key_pem or keys.leaf.key_pem, cert_pem or keys.leaf.cert_pem)


def test_identity_refuses_other_key_types() -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(SecuritySetupError, match="RSA and EC"):
        SigningIdentity(key, pki().leaf.cert)  # type: ignore[arg-type]


def test_load_certificates_errors() -> None:
    with pytest.raises(SecuritySetupError):
        load_certificates(b"garbage")


def test_trust_store_needs_something() -> None:
    with pytest.raises(SecuritySetupError):
        TrustStore.from_pem()


def test_pinned_certificate_is_trusted(keys: Pki) -> None:
    store = TrustStore.from_pem(pinned=keys.self_signed.cert_pem + keys.leaf.cert_pem)
    assert store.trusted([keys.self_signed.cert], T0) == keys.self_signed.cert
    assert store.trusted([keys.leaf.cert], T0) == keys.leaf.cert


def test_ca_issued_certificate_is_trusted(keys: Pki) -> None:
    store = TrustStore.from_pem(ca_bundle=keys.ca.cert_pem)
    assert store.trusted([keys.leaf.cert], T0) == keys.leaf.cert
    assert store.trusted([keys.ec_leaf.cert], T0) == keys.ec_leaf.cert


@pytest.mark.parametrize("who", ["stranger", "self_signed", "other_ca"])
def test_untrusted_certificates_are_refused(keys: Pki, who: str) -> None:
    party: Party = getattr(keys, who)
    for store in (keys.authority(), keys.pinned(keys.leaf)):
        with pytest.raises(InvalidSecurityToken, match="not trusted"):
            store.trusted([party.cert], T0)


def test_a_chain_in_the_message_does_not_add_trust(keys: Pki) -> None:
    # The stranger brings its own CA along: still not one of ours.
    with pytest.raises(InvalidSecurityToken):
        keys.authority().trusted([keys.stranger.cert, keys.other_ca.cert], T0)


def test_expired_and_not_yet_valid_certificates_are_refused(keys: Pki) -> None:
    store = TrustStore(pinned=(keys.expired.cert, keys.leaf.cert), authorities=(keys.ca.cert,))
    with pytest.raises(InvalidSecurityToken, match="expired"):
        store.trusted([keys.expired.cert], T0)
    with pytest.raises(InvalidSecurityToken, match="expired or not yet valid"):
        store.trusted([keys.leaf.cert], T0 - 2 * _YEAR)


def test_key_usage_without_digital_signature_is_refused_by_the_ca_path(keys: Pki) -> None:
    usage = x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=True,
        data_encipherment=False, key_agreement=False, key_cert_sign=False,
        crl_sign=False, encipher_only=False, decipher_only=False,
    )  # fmt: skip
    encipher_only = issue("encipher-only", keys.ca, key_usage=usage)
    with pytest.raises(InvalidSecurityToken):
        keys.authority().trusted([encipher_only.cert], T0)


def test_empty_chain_is_refused(keys: Pki) -> None:
    with pytest.raises(InvalidSecurityToken, match="no certificate"):
        keys.authority().trusted([], T0)


def test_find_by_issuer_and_serial(keys: Pki) -> None:
    store = keys.pinned(keys.leaf, keys.server)
    assert store.find(keys.server.cert.issuer, keys.server.cert.serial_number) == keys.server.cert
    assert store.find(keys.server.cert.issuer, 1) is None
