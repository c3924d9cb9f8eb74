"""Hybrid mode's offer and proof, pure: how a client shows it holds the session it asks
to move onto a direct connection (docs/nettcp.md, "Hybrid mode").

The host's greeting (over the relayed session) offers a direct endpoint and a fresh
per-session key; the key never travels anywhere else::

    <n:Session><n:Id>urn:uuid:S</n:Id>
      <n:Direct><n:Address>ws://10.0.0.5:40123/</n:Address><n:Key>base64 (32 bytes)</n:Key>
                <n:Fingerprint>sha-256 of the endpoint's certificate (wss only)</n:Fingerprint>
      </n:Direct></n:Session>

On the direct WebSocket the host speaks first, with a fresh nonce; the client answers
with the session id and ``HMAC-SHA256(key, nonce || session id)``; the host compares
(in constant time) and says ``DirectReady``, or closes with 1008::

    host   ── DirectChallenge [MessageID=C]  <n:Nonce>…</n:Nonce> ──────────────► client
    client ── reply [RelatesTo=C]  <n:DirectProof><n:Session>S</n:Session><n:Proof>…</n:Proof> ► host
    host   ── DirectReady [MessageID=R] ─────────────────────────────────────────► client

A nonce per connection makes a recorded proof useless on another connection.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from lxml import etree

from bindings.nettcp.framing import (
    CONTROL_NS,
    CONTROL_PREFIX,
    ChannelMessage,
    reply_message,
    request_message,
)
from soap.addressing import new_message_id

__all__ = [
    "CHALLENGE_ACTION",
    "READY_ACTION",
    "DirectOffer",
    "challenge_message",
    "check_proof",
    "nonce_of",
    "proof_message",
    "ready_message",
]

CHALLENGE_ACTION = CONTROL_PREFIX + "DirectChallenge"
PROOF_ACTION = CONTROL_PREFIX + "DirectProof"
READY_ACTION = CONTROL_PREFIX + "DirectReady"


def _q(local: str) -> str:
    return f"{{{CONTROL_NS}}}{local}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class DirectOffer:
    """A host's direct endpoint for one session.

    Attributes:
        address: ``ws://host:port/`` (``wss://`` when the relayed session is encrypted).
        key: the session's secret (32 bytes).
        fingerprint: hex SHA-256 of the endpoint's certificate (wss), pinned by the client.
    """

    address: str
    key: bytes
    fingerprint: str | None = None

    @classmethod
    def new(cls, address: str, fingerprint: str | None = None) -> DirectOffer:
        return cls(address, secrets.token_bytes(32), fingerprint)

    def to_element(self) -> etree._Element:
        direct = etree.Element(_q("Direct"), nsmap={"n": CONTROL_NS})
        etree.SubElement(direct, _q("Address")).text = self.address
        etree.SubElement(direct, _q("Key")).text = _b64(self.key)
        if self.fingerprint:
            etree.SubElement(direct, _q("Fingerprint")).text = self.fingerprint
        return direct

    @classmethod
    def from_greeting(cls, message: ChannelMessage) -> DirectOffer | None:
        """The offer in a host's greeting, or None (none, or unreadable: stay relayed)."""
        direct = message.envelope.body.find(f"{_q('Session')}/{_q('Direct')}")
        if direct is None:
            return None
        address, key = direct.findtext(_q("Address")), direct.findtext(_q("Key"))
        if not address or not key or not address.startswith(("ws://", "wss://")):
            return None
        try:
            secret = base64.b64decode(key, validate=True)
        except ValueError:
            return None
        return cls(address, secret, direct.findtext(_q("Fingerprint")) or None)


def proof(key: bytes, nonce: bytes, session_id: str) -> bytes:
    return hmac.new(key, nonce + session_id.encode("utf-8"), hashlib.sha256).digest()


def challenge_message(nonce: bytes) -> bytes:
    body = etree.Element(_q("Nonce"), nsmap={"n": CONTROL_NS})
    body.text = _b64(nonce)
    return request_message(CHALLENGE_ACTION, new_message_id(), [body])


def nonce_of(message: ChannelMessage) -> bytes | None:
    """The challenge's nonce, or None when ``message`` is no readable challenge."""
    if message.headers.action != CHALLENGE_ACTION:
        return None
    text = message.envelope.body.findtext(_q("Nonce"))
    try:
        nonce = base64.b64decode(text or "", validate=True)
    except ValueError:
        return None
    return nonce if len(nonce) >= 16 else None


def proof_message(challenge: ChannelMessage, session_id: str, key: bytes, nonce: bytes) -> bytes:
    body = etree.Element(_q("DirectProof"), nsmap={"n": CONTROL_NS})
    etree.SubElement(body, _q("Session")).text = session_id
    etree.SubElement(body, _q("Proof")).text = _b64(proof(key, nonce, session_id))
    assert challenge.headers.message_id is not None
    return reply_message(PROOF_ACTION, challenge.headers.message_id, [body])


def check_proof(message: ChannelMessage, nonce: bytes, keys: dict[str, bytes]) -> str | None:
    """The session id ``message`` proves it holds (its key in ``keys``), or None."""
    session_id = message.envelope.body.findtext(f"{_q('DirectProof')}/{_q('Session')}")
    claimed = message.envelope.body.findtext(f"{_q('DirectProof')}/{_q('Proof')}")
    key = keys.get(session_id or "")
    if session_id is None or claimed is None or key is None:
        return None
    try:
        given = base64.b64decode(claimed, validate=True)
    except ValueError:
        return None
    return session_id if hmac.compare_digest(given, proof(key, nonce, session_id)) else None


def ready_message() -> bytes:
    return request_message(READY_ACTION, new_message_id())
