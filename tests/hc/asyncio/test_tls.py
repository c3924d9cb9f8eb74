"""The SDK over TLS (https/wss) to a relay with a self-signed certificate."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hc.asyncio import (
    HybridConnectionClient,
    HybridConnectionListener,
    RelayedHttpListenerContext,
    RelayUnreachableError,
    TokenProvider,
)
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayFactory

TOKENS = TokenProvider.create_shared_access_signature_token_provider(TEST_KEY_NAME, TEST_KEY)


def self_signed(folder: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(cert_path), str(key_path)


async def reply(context: RelayedHttpListenerContext) -> None:
    await context.response.write(b"secure " + await context.request.read())


async def test_listener_and_client_work_over_tls_with_the_given_trust(
    tmp_path: Path, make_relay: RelayFactory
) -> None:
    cert, key = self_signed(tmp_path)
    relay = await make_relay(tls_cert=cert, tls_key=key)
    trust = ssl.create_default_context(cafile=cert)
    base = f"https://127.0.0.1:{relay.port}/secure"
    listener = HybridConnectionListener(base, TOKENS, ssl_context=trust)
    listener.request_handler = reply
    try:
        await listener.open()
        headers = {"ServiceBusAuthorization": relay.token("secure")}
        async with aiohttp.ClientSession(headers=headers) as http, \
                http.post(base, data=b"hello", ssl=trust) as answer:
            assert answer.status == 200 and await answer.read() == b"secure hello"
        client = HybridConnectionClient(base, TOKENS, ssl_context=trust)
        async with await client.create_connection() as sent:
            taken = await asyncio.wait_for(listener.accept_connection(), 5)
            assert taken is not None
            await sent.write(b"over tls")
            assert await taken.read() == b"over tls"
            await taken.close()
        untrusting = HybridConnectionClient(base, TOKENS)  # the system store lacks this CA
        with pytest.raises(RelayUnreachableError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.create_connection()
    finally:
        await listener.close()
