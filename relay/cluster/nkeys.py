"""NATS credentials files and NKey seeds: read, check, sign the server's nonce. No I/O.

A creds file holds a user JWT and the user's NKey seed between armour lines::

    -----BEGIN NATS USER JWT-----
    eyJ0eXAiOi...
    ------END NATS USER JWT------
    ...
    -----BEGIN USER NKEY SEED-----
    SUAM...
    ------END USER NKEY SEED------

A seed is base32 (no padding) of two prefix bytes, the 32-byte Ed25519 seed and a
CRC-16/XMODEM of those 34 bytes (little-endian).  The client answers the nonce in
the server's INFO with the Ed25519 signature of it, base64url without padding.
Nothing here ever puts a seed, a JWT or a signature into an error text.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["Creds", "CredsError", "parse_creds", "public_key", "sign"]

_ARMOURED = re.compile(r"-{3,}BEGIN ([A-Z ]+)-{3,}\s*(\S+?)\s*-{3,}END \1-{3,}")
_PREFIX_SEED = 18 << 3
_PREFIX_USER = 20 << 3


class CredsError(ValueError):
    """A creds file or seed that is not one (its content is never quoted)."""


class Creds:
    """A creds file's JWT and seed."""

    __slots__ = ("jwt", "seed")

    def __init__(self, jwt: str, seed: str) -> None:
        self.jwt, self.seed = jwt, seed

    def __repr__(self) -> str:
        return "<Creds>"


def parse_creds(text: str) -> Creds:
    """The JWT and seed of a creds file's text (CredsError if either is missing)."""
    found = {name.strip(): value for name, value in _ARMOURED.findall(text)}
    jwt, seed = found.get("NATS USER JWT"), found.get("USER NKEY SEED")
    if not jwt or not seed:
        raise CredsError("not a NATS creds file (a user JWT and an NKey seed)")
    _raw_seed(seed)
    return Creds(jwt, seed)


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (polynomial 0x1021, initial 0), as NKeys use it."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _decode(text: str) -> bytes:
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError) as exc:
        raise CredsError("an NKey that is not base32") from exc
    if len(raw) < 4 or crc16(raw[:-2]) != int.from_bytes(raw[-2:], "little"):
        raise CredsError("an NKey whose checksum is wrong")
    return raw[:-2]


def _raw_seed(seed: str) -> bytes:
    raw = _decode(seed)
    if len(raw) != 34 or raw[0] & 0xF8 != _PREFIX_SEED:
        raise CredsError("not an NKey seed")
    return raw[2:]


def sign(seed: str, nonce: str) -> str:
    """The signature of the server's ``nonce`` with ``seed``, base64url, no padding."""
    signature = Ed25519PrivateKey.from_private_bytes(_raw_seed(seed)).sign(nonce.encode())
    return base64.urlsafe_b64encode(signature).decode().rstrip("=")


def encode_key(prefix: int, raw: bytes) -> str:
    """``raw`` as an NKey of type ``prefix`` (a public key: one prefix byte)."""
    body = bytes([prefix]) + raw
    return base64.b32encode(body + crc16(body).to_bytes(2, "little")).decode().rstrip("=")


def encode_seed(raw: bytes, kind: int = _PREFIX_USER) -> str:
    """A 32-byte Ed25519 seed as an NKey seed of ``kind`` (users by default)."""
    body = bytes([_PREFIX_SEED | kind >> 5, (kind & 31) << 3]) + raw
    return base64.b32encode(body + crc16(body).to_bytes(2, "little")).decode().rstrip("=")


def public_key(seed: str) -> str:
    """The user's public NKey (``U...``) of ``seed``."""
    key = Ed25519PrivateKey.from_private_bytes(_raw_seed(seed)).public_key()
    return encode_key(_PREFIX_USER, key.public_bytes(Encoding.Raw, PublicFormat.Raw))
