"""Hybrid mode's direct connection: the host's endpoint and the client's attempt.

The direct WebSocket is served and opened with the ``websockets`` library (a
dependency already): :class:`DirectEndpoint` listens on the host (``hybrid_host``, port
0), :func:`connect_direct` is the client's attempt.  Both run the proof of
:mod:`bindings.nettcp.hybrid` before the link is handed to the session's
:class:`~bindings.nettcp.channel.SessionChannel` (``attach``), which then sends on it and
falls back to the relayed link when it ends.

When the relayed session is encrypted (a TLS relay), the endpoint is ``wss://`` with a
certificate made for it at start (a fresh EC key, self-signed) whose SHA-256 fingerprint
travels in the greeting, over the encrypted relayed session: the client pins it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import ipaddress
import logging
import os
import secrets
import socket
import ssl
import tempfile
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, WebSocketException

from bindings.nettcp.framing import CloseCode, MalformedMessage, parse_message
from bindings.nettcp.hybrid import (
    READY_ACTION,
    DirectOffer,
    challenge_message,
    check_proof,
    nonce_of,
    proof_message,
    ready_message,
)
from bindings.nettcp.peer_log import PeerLog, peer_log
from soap.quotas import ReaderQuotas

__all__ = ["DirectEndpoint", "WebSocketLink", "connect_direct", "outgoing_address"]

log = logging.getLogger("bindings.nettcp")

#: Seconds the proof exchange may take on a new direct connection.
PROOF_TIMEOUT = 5.0
#: Direct connections awaiting their proof at once; more are closed at once (1008).
MAX_UNPROVEN = 32
_QUOTAS = ReaderQuotas()
_SMALL = 16 * 1024  # the proof messages are tiny

Attach = Callable[[str, "WebSocketLink"], "asyncio.Future[None] | None"]


class WebSocketLink:
    """A ``websockets`` connection as a channel :class:`~bindings.nettcp.channel.Link`."""

    def __init__(self, connection: ServerConnection | ClientConnection) -> None:
        self.connection = connection

    def __repr__(self) -> str:
        return f"<WebSocketLink {self.connection.remote_address}>"

    async def receive(self) -> str | bytes | None:
        try:
            return await self.connection.recv()
        except ConnectionClosed:
            return None

    async def write(self, data: bytes | str) -> None:
        try:
            await self.connection.send(data)
        except ConnectionClosed as exc:
            raise ConnectionResetError(f"the direct connection closed: {exc}") from exc

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.connection.close(code, reason)

    @property
    def close_code(self) -> int | None:
        return self.connection.close_code

    @property
    def close_reason(self) -> str:
        return self.connection.close_reason or ""


def outgoing_address(host: str, port: int) -> str:
    """The local address this machine uses to reach ``host:port`` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        return str(probe.getsockname()[0])


def _self_signed(host: str) -> tuple[ssl.SSLContext, str]:
    """A server TLS context with a fresh self-signed certificate for ``host``; its fingerprint."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "soap-relay direct endpoint")])
    now = datetime.datetime.now(datetime.UTC)
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as folder:  # ssl loads chains from files only
        path = os.path.join(folder, "direct.pem")
        with open(path, "wb") as file:
            file.write(pem)
        context.load_cert_chain(path)
    return context, hashlib.sha256(der).hexdigest()


class _HoldsReading(Connection):
    """A direct connection that stops reading a peer who does not read what it is sent.

    websockets answers each Ping with a Pong written at once, and a peer that sends
    Pings and reads nothing would grow the write buffer without end (73 MB in 4 s,
    measured on a bare websockets server) -- anyone who can reach the host's endpoint,
    before any proof.  So after a read, while the write buffer is over its high-water
    mark, nothing more is read until it drains.
    """

    held = False

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        transport = self.transport
        if self.paused and not transport.is_closing():
            self.held = True
            transport.pause_reading()  # again after websockets' own resume: it holds until drained

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.held:
            self.held = False  # read again, unless websockets' message queue is full
            if not getattr(self.recv_messages, "paused", False) and not self.transport.is_closing():
                self.transport.resume_reading()


class _HostConnection(_HoldsReading, ServerConnection):
    """The endpoint's side of a direct connection."""


class _ClientConnection(_HoldsReading, ClientConnection):
    """The client's side of a direct connection."""


class DirectEndpoint:
    """The host's direct endpoint, shared by its sessions.

    Args:
        host: the address to bind and offer.
        tls: serve ``wss://`` (the relayed sessions are encrypted).
        max_size: the largest message taken.
        warnings: where warnings about peers go (rate-limited).
    """

    def __init__(self, host: str, *, tls: bool, max_size: int, warnings: PeerLog = peer_log) -> None:
        self.host, self.tls, self.max_size, self.warnings = host, tls, max_size, warnings
        self.keys: dict[str, bytes] = {}
        self._attach: dict[str, Attach] = {}
        self._server: Server | None = None
        self._fingerprint: str | None = None
        self.address = ""
        self.unproven = 0

    async def start(self) -> None:
        context = None
        if self.tls:
            context, self._fingerprint = _self_signed(self.host)
        self._server = await serve(self._serve, self.host, 0, ssl=context, max_size=self.max_size,
                                   compression=None, ping_interval=None,
                                   create_connection=_HostConnection)
        port = next(iter(self._server.sockets)).getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.address = f"{'wss' if self.tls else 'ws'}://{host}:{port}/"
        log.info("direct endpoint at %s", self.address)

    def offer(self, session_id: str, attach: Attach) -> DirectOffer:
        """A new offer for ``session_id``; ``attach(session_id, link)`` takes a proven link."""
        offer = DirectOffer.new(self.address, self._fingerprint)
        self.keys[session_id], self._attach[session_id] = offer.key, attach
        return offer

    def withdraw(self, session_id: str) -> None:
        self.keys.pop(session_id, None)
        self._attach.pop(session_id, None)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, connection: ServerConnection) -> None:
        link = WebSocketLink(connection)
        if self.unproven >= MAX_UNPROVEN:
            self.warnings.warning("direct endpoint: %d connections await their proof; one more refused",
                             self.unproven)
            await link.close(CloseCode.POLICY, "too many connections awaiting a proof")
            return
        self.unproven += 1
        try:
            session_id = await self._proof(link)
        finally:
            self.unproven -= 1
        attach = self._attach.get(session_id or "")
        if session_id is None or attach is None:
            return
        ended = attach(session_id, link)
        with contextlib.suppress(ConnectionError):
            await link.write(ready_message())
        if ended is not None:
            await ended  # the connection lives as long as the session uses it

    async def _proof(self, link: WebSocketLink) -> str | None:
        """The session the connection proves it holds, or None (then it was closed)."""
        nonce = secrets.token_bytes(32)
        try:
            async with asyncio.timeout(PROOF_TIMEOUT):
                await link.write(challenge_message(nonce))
                answer = await link.receive()
            message = None if answer is None else parse_message(answer, _QUOTAS, _SMALL)
        except (TimeoutError, ConnectionError, MalformedMessage, WebSocketException) as exc:
            log.info("a direct connection gave no proof: %s", exc or type(exc).__name__)
            await link.close(CloseCode.POLICY, "no proof of the session")
            return None
        session_id = None if message is None else check_proof(message, nonce, self.keys)
        if session_id is None:
            self.warnings.warning("a direct connection from %s failed the session proof",
                             link.connection.remote_address)
            await link.close(CloseCode.POLICY, "the proof of the session does not hold")
        return session_id


async def connect_direct(offer: DirectOffer, session_id: str, timeout: float = 3.0) -> WebSocketLink | None:
    """The client's attempt: a proven direct link, or None (the session stays relayed)."""
    context = None
    if offer.address.startswith("wss://"):
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # pinned below
    try:
        async with asyncio.timeout(timeout):
            connection = await connect(offer.address, ssl=context, proxy=None, compression=None,
                                       ping_interval=None, max_size=None,
                                       create_connection=_ClientConnection)
            link = WebSocketLink(connection)
            if not _pinned(connection, offer):
                await link.close(CloseCode.POLICY, "unexpected certificate")
                raise ConnectionError("the direct endpoint's certificate is not the offered one")
            challenge = parse_message(await link.receive() or b"", _QUOTAS, _SMALL)
            nonce = nonce_of(challenge)
            if nonce is None:
                raise ConnectionError("the direct endpoint sent no challenge")
            await link.write(proof_message(challenge, session_id, offer.key, nonce))
            ready = parse_message(await link.receive() or b"", _QUOTAS, _SMALL)
            if ready.headers.action != READY_ACTION:
                raise ConnectionError("the direct endpoint did not accept the proof")
            return link
    except (TimeoutError, OSError, MalformedMessage, WebSocketException) as exc:
        log.info("no direct connection to %s (%s); the session stays relayed", offer.address,
                 exc or type(exc).__name__)
        return None


def _pinned(connection: ClientConnection, offer: DirectOffer) -> bool:
    if offer.fingerprint is None:
        return not offer.address.startswith("wss://")
    tls = connection.transport.get_extra_info("ssl_object")
    der = tls.getpeercert(binary_form=True) if tls is not None else None
    return der is not None and hashlib.sha256(der).hexdigest() == offer.fingerprint
