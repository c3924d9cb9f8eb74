"""``wsse:UsernameToken`` (UsernameToken Profile 1.0/1.1): a user name and password.

With ``PasswordText`` the password travels in clear (use it only over TLS,
as TransportWithMessageCredential does). With ``PasswordDigest`` it never
travels; the token proves knowledge of it::

    Password = Base64( SHA-1( nonce + created + password ) )

where ``nonce`` is the decoded ``wsse:Nonce`` bytes and ``created`` the
literal ``wsu:Created`` text. :class:`UsernameTokenHook` adds one on egress::

    before:
    <wsse:Security soap:mustUnderstand="1"/>

    after egress (digest):
    <wsse:Security soap:mustUnderstand="1">
      <wsse:UsernameToken wsu:Id="UT-...">
        <wsse:Username>alice</wsse:Username>
        <wsse:Password Type="...#PasswordDigest">weYI3nXd8LjMNVksCKFV8t3rgHh3Rw==</wsse:Password>
        <wsse:Nonce EncodingType="...#Base64Binary">WScqanjCEAC4mQoBE07sAQ==</wsse:Nonce>
        <wsu:Created>2024-05-01T12:00:00.000Z</wsu:Created>
      </wsse:UsernameToken>
    </wsse:Security>

:func:`authenticate` checks one against a credential lookup: a digest's
``Created`` must be fresh and its nonce unseen (the replay cache remembers it),
and passwords are compared in constant time. Unknown users and wrong passwords
get the same :class:`~soap.exceptions.FailedAuthentication`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

from soap import ns
from soap.envelope import Envelope
from soap.exceptions import FailedAuthentication, InvalidSecurity, InvalidSecurityToken
from soap.security.header import NSMAP, WSU_ID, ensure_security_header, new_id
from soap.security.replay import ReplayCache
from soap.security.timestamp import Clock, Freshness, format_datetime, parse_datetime, utc_now

__all__ = [
    "USERNAME_TOKEN",
    "Credentials",
    "PasswordType",
    "UsernameToken",
    "UsernameTokenHook",
    "authenticate",
    "password_digest",
]

#: Clark name of ``wsse:UsernameToken``.
USERNAME_TOKEN = f"{{{ns.WSSE}}}UsernameToken"
_USERNAME = f"{{{ns.WSSE}}}Username"
_PASSWORD = f"{{{ns.WSSE}}}Password"
_NONCE = f"{{{ns.WSSE}}}Nonce"
_CREATED = f"{{{ns.WSU}}}Created"
_MAX_NONCE_BYTES = 256

#: Looks up a user's password; None for an unknown user.
Credentials = Callable[[str], str | None]


class PasswordType(enum.Enum):
    """How ``wsse:Password`` carries the password."""

    TEXT = ns.PASSWORD_TEXT
    DIGEST = ns.PASSWORD_DIGEST


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """Base64(SHA-1(nonce + created + password)), the profile's PasswordDigest."""
    digest = hashlib.sha1(nonce + created.encode("utf-8") + password.encode("utf-8"))
    return base64.b64encode(digest.digest()).decode("ascii")


@dataclass(frozen=True)
class UsernameToken:
    """A ``wsse:UsernameToken``.

    Attributes:
        username: ``wsse:Username``.
        password: The password text or digest (never shown by ``repr``).
        password_type: Text or digest.
        nonce: Decoded ``wsse:Nonce`` bytes, or None.
        created: ``wsu:Created`` exactly as written, or None.
        id: ``wsu:Id``, or None.
    """

    username: str
    password: str | None = field(default=None, repr=False)
    password_type: PasswordType = PasswordType.TEXT
    nonce: bytes | None = field(default=None, repr=False)
    created: str | None = None
    id: str | None = None

    @classmethod
    def with_digest(
        cls, username: str, password: str, now: datetime, nonce: bytes | None = None
    ) -> UsernameToken:
        """A digest token made at ``now`` with a random 16-byte nonce (or ``nonce``)."""
        nonce = os.urandom(16) if nonce is None else nonce
        created = format_datetime(now)
        digest = password_digest(nonce, created, password)
        return cls(username, digest, PasswordType.DIGEST, nonce, created, new_id("UT"))

    @classmethod
    def from_element(cls, element: etree._Element) -> UsernameToken:
        """Read a ``wsse:UsernameToken``.

        Raises:
            InvalidSecurityToken: Missing or repeated parts, an unknown password
                type or nonce encoding, or a nonce that is not base64.
        """
        parts: dict[str, etree._Element] = {}
        for child in element:
            if child.tag in (_USERNAME, _PASSWORD, _NONCE, _CREATED):
                if child.tag in parts:
                    raise InvalidSecurityToken("UsernameToken repeats an element")
                parts[str(child.tag)] = child
        if _USERNAME not in parts or not (parts[_USERNAME].text or "").strip():
            raise InvalidSecurityToken("UsernameToken has no Username")
        password = parts.get(_PASSWORD)
        return cls(
            username=(parts[_USERNAME].text or "").strip(),
            password=None if password is None else (password.text or ""),
            password_type=_password_type(password),
            nonce=_nonce(parts.get(_NONCE)),
            created=None if _CREATED not in parts else (parts[_CREATED].text or "").strip(),
            id=element.get(WSU_ID),
        )

    def to_element(self) -> etree._Element:
        """Write the token element."""
        token = etree.Element(USERNAME_TOKEN, nsmap=NSMAP)
        if self.id is not None:
            token.set(WSU_ID, self.id)
        etree.SubElement(token, _USERNAME).text = self.username
        if self.password is not None:
            password = etree.SubElement(token, _PASSWORD, Type=self.password_type.value)
            password.text = self.password
        if self.nonce is not None:
            nonce = etree.SubElement(token, _NONCE, EncodingType=ns.BASE64_BINARY)
            nonce.text = base64.b64encode(self.nonce).decode("ascii")
        if self.created is not None:
            etree.SubElement(token, _CREATED).text = self.created
        return token


def _password_type(password: etree._Element | None) -> PasswordType:
    if password is None:
        return PasswordType.TEXT
    try:
        return PasswordType(password.get("Type", ns.PASSWORD_TEXT))
    except ValueError:
        raise InvalidSecurityToken("unsupported wsse:Password Type") from None


def _nonce(element: etree._Element | None) -> bytes | None:
    if element is None:
        return None
    if element.get("EncodingType", ns.BASE64_BINARY) != ns.BASE64_BINARY:
        raise InvalidSecurityToken("wsse:Nonce must be Base64Binary")
    try:
        nonce = base64.b64decode("".join((element.text or "").split()), validate=True)
    except binascii.Error:
        raise InvalidSecurityToken("wsse:Nonce is not base64") from None
    if not nonce or len(nonce) > _MAX_NONCE_BYTES:
        raise InvalidSecurityToken("wsse:Nonce is empty or too long")
    return nonce


def authenticate(
    token: UsernameToken,
    credentials: Credentials,
    *,
    now: datetime,
    freshness: Freshness,
    replay_cache: ReplayCache,
    allow_text: bool = True,
) -> str:
    """Check a UsernameToken; return the authenticated user name.

    A token with ``Created`` must be fresh; one with a ``Nonce`` must carry
    ``Created`` too, and the nonce is remembered (after the password checks
    out, so only authenticated senders fill the cache).

    Raises:
        InvalidSecurityToken: A digest without Nonce and Created, or a text
            password when ``allow_text`` is False.
        MessageExpired: ``Created`` too old or in the future.
        FailedAuthentication: Unknown user or wrong password.
        InvalidSecurity: The nonce was seen before (a replay).
    """
    if token.password_type is PasswordType.TEXT and not allow_text:
        raise InvalidSecurityToken(
            "this service does not accept a clear-text password (PasswordText) here:"
            " send a PasswordDigest, or call it over https")
    if token.password_type is PasswordType.DIGEST and (
        token.nonce is None or token.created is None
    ):
        raise InvalidSecurityToken("a PasswordDigest needs a Nonce and a Created")
    if token.nonce is not None and token.created is None:
        raise InvalidSecurityToken("a UsernameToken Nonce needs a Created")
    if token.created is not None:
        created = parse_datetime(token.created, "UsernameToken Created")
        freshness.check_created(created, now, "UsernameToken Created")
    if not _password_matches(token, credentials(token.username)):
        raise FailedAuthentication("the user name or password is wrong")
    if token.nonce is not None:
        key = "nonce:" + base64.b64encode(token.nonce).decode("ascii")
        if not replay_cache.add(key, now, freshness.remember_until(now)):
            raise InvalidSecurity("the UsernameToken nonce was used before")
    return token.username


def _password_matches(token: UsernameToken, expected: str | None) -> bool:
    """Constant-time check; an unknown user costs the same as a wrong password."""
    if token.password is None:
        return False
    known = expected is not None
    secret = expected if expected is not None else "\x00unknown user"
    if token.password_type is PasswordType.DIGEST:
        assert token.nonce is not None and token.created is not None
        secret = password_digest(token.nonce, token.created, secret)
        given = "".join(token.password.split())
    else:
        given = token.password
    same = hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8"))
    return known and same


@dataclass(frozen=True)
class UsernameTokenHook:
    """Adds a UsernameToken on egress (client side).

    Attributes:
        username: The user name.
        password: The password (never shown by ``repr``).
        digest: Send a PasswordDigest (default) instead of the clear text.
        clock: The time source for ``Created``.
    """

    username: str
    password: str = field(repr=False)
    digest: bool = True
    clock: Clock = field(default=utc_now)

    def token(self) -> UsernameToken:
        """A fresh token: a new nonce and Created for each digest."""
        if self.digest:
            return UsernameToken.with_digest(self.username, self.password, self.clock())
        return UsernameToken(self.username, self.password, id=new_id("UT"))

    def egress(
        self, envelope: etree._Element, http_headers: dict[str, str]
    ) -> tuple[etree._Element, dict[str, str]]:
        """Append a token to the Security header (replacing an earlier one)."""
        security = ensure_security_header(Envelope.from_element(envelope))
        for old in security.findall(USERNAME_TOKEN):
            security.remove(old)
        security.append(self.token().to_element())
        return envelope, http_headers
