"""Demo credentials for the signed payroll service: two key pairs, each pinning the other.

::

    python -m samples.payroll.credentials DIR     # writes the four files below

``DIR`` then holds ``service.key``/``service.crt`` (the on-premises service
signs its replies with them) and ``client.key``/``client.crt`` (the caller
signs its requests). Each side trusts exactly the other's certificate
(pinning), which is what WCF's ``PeerTrust`` validation does; with a company
CA, build the :class:`~soap.security.TrustStore` from the CA bundle instead.

The certificates are self-signed, valid for a day from when they are made,
and only for this demo. Private keys are written readable by the owner only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bindings.wssecurity import MessageSecurity
from soap.security import SigningIdentity, TrustStore

__all__ = ["client_security", "service_security", "write_demo_credentials"]

SERVICE, CLIENT = "service", "client"
#: The subjects the demo's certificates are made for.
COMMON_NAMES = {SERVICE: "payroll-demo-service", CLIENT: "payroll-demo-client"}


def _self_signed(common_name: str, now: datetime, valid_for: timedelta) -> tuple[bytes, bytes]:
    """A new RSA key and its self-signed certificate, both PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + valid_for)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def write_demo_credentials(
    folder: Path, *, now: datetime | None = None, valid_for: timedelta = timedelta(days=1)
) -> Path:
    """Make the service's and the client's key and certificate in ``folder``.

    Args:
        folder: Where the four PEM files go (created if missing).
        now: When the certificates start being valid (default: now).
        valid_for: How long they stay valid.

    Returns:
        ``folder``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    now = now or datetime.now(UTC)
    for side, common_name in COMMON_NAMES.items():
        key_pem, cert_pem = _self_signed(common_name, now, valid_for)
        _write_private(folder / f"{side}.key", key_pem)
        (folder / f"{side}.crt").write_bytes(cert_pem)
    return folder


def _settings(folder: Path, me: str, peer: str) -> MessageSecurity:
    identity = SigningIdentity.from_pem(
        (folder / f"{me}.key").read_bytes(), (folder / f"{me}.crt").read_bytes()
    )
    trust = TrustStore.from_pem(pinned=(folder / f"{peer}.crt").read_bytes())
    return MessageSecurity(identity=identity, trust=trust)


def service_security(folder: Path) -> MessageSecurity:
    """The service's settings: sign replies as the service, trust only the client."""
    return _settings(folder, SERVICE, CLIENT)


def client_security(folder: Path) -> MessageSecurity:
    """The client's settings: sign requests as the client, trust only the service."""
    return _settings(folder, CLIENT, SERVICE)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m samples.payroll.credentials DIR", file=sys.stderr)
        return 2
    folder = write_demo_credentials(Path(args[0]))
    names = [f"{side}.{kind}" for side in COMMON_NAMES for kind in ("key", "crt")]
    print(f"wrote {', '.join(names)} to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
