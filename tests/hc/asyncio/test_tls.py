"""The SDK over TLS (https/wss) to a relay with a self-signed certificate."""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import threading
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
from hc.asyncio.connection import open_websocket, tcp_connector
from hc.framing import Side, WebSocketEndpoint
from hc.handshake import accept_key
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


class HoldingPeer:
    """A TLS WebSocket server that answers the Upgrade and the Close, then keeps its TLS
    session and socket open (no close_notify) until ``release`` is set."""

    def __init__(self, cert: str, key: str) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn, _ = self.server.accept()
        with self.context.wrap_socket(conn, server_side=True) as tls:
            tls.settimeout(10)
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                head += tls.recv(1)
            key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key:"))
            tls.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                        + accept_key(key.decode()).encode() + b"\r\n\r\n")
            frame = tls.recv(2)  # the client's Close: masked, a short payload
            tls.recv(4 + (frame[1] & 0x7F))
            tls.sendall(b"\x88\x02\x03\xe8")  # our Close, 1000
            self.release.wait(10)

    def stop(self) -> None:
        self.release.set()
        self.thread.join(10)
        self.server.close()


async def test_close_returns_with_the_socket_closed_when_the_peer_keeps_tls_open(
    tmp_path: Path,
) -> None:
    """The closing handshake done, the TLS session's own close waits for the peer's
    close_notify; a peer that never sends it has the socket dropped within close()'s
    timeout (before, close() returned at once, the socket left open after the loop)."""
    cert, key = self_signed(tmp_path)
    peer = HoldingPeer(cert, key)
    try:
        connector = functools.partial(tcp_connector, ssl_context=ssl.create_default_context(cafile=cert),
                                      proxy=False)
        protocol = await open_websocket(f"wss://127.0.0.1:{peer.port}/x", WebSocketEndpoint(Side.CLIENT),
                                        connector=connector)
        assert protocol.transport is not None
        raw = protocol.transport.get_extra_info("socket")
        closed = await asyncio.wait_for(protocol.close(timeout=0.5), 5)
        assert closed.code == 1000
        assert raw.fileno() == -1
    finally:
        await asyncio.to_thread(peer.stop)
