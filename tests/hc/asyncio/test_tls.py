"""The SDK over TLS (https/wss) to a relay with a self-signed certificate."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import pytest

from hc.asyncio import (
    HybridConnectionClient,
    HybridConnectionListener,
    RelayedHttpListenerContext,
    RelayUnreachableError,
    TokenProvider,
)
from tests.support.certs import self_signed
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayFactory

TOKENS = TokenProvider.create_shared_access_signature_token_provider(TEST_KEY_NAME, TEST_KEY)



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
