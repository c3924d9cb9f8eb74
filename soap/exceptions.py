"""Exceptions raised by the ``soap`` package.

One tree, rooted at :class:`SoapError`. Errors are split by who broke the
rules: :class:`LocalSoapError` when this process asked for something that
cannot be built, :class:`RemoteSoapError` when a document received from a peer
is unacceptable::

    SoapError
     ├── LocalSoapError          we were asked to build something invalid
     │    ├── MissingAction      no WS-Addressing action could be determined
     │    └── SecuritySetupError unusable keys, certificates or options (bad PEM, SHA-1 not opted in)
     └── RemoteSoapError         a received document is unacceptable
          ├── MalformedXml       not well-formed, DTD/entities present, bad encoding
          ├── NotAnEnvelope      wrong root element or unknown SOAP version
          ├── InvalidHeader      a header block (RelayAccessToken, WS-Addressing) is wrong
          ├── InvalidFault       a Fault element cannot be read
          ├── InvalidWsdl        a WSDL/XSD document cannot be processed
          └── SecurityFault      a WS-Security check failed; .namespace/.local_name: subcode
               ├── InvalidSecurity        wsse:InvalidSecurity   bad Security header, XSW, replay
               ├── UnsupportedAlgorithm   wsse:UnsupportedAlgorithm   SHA-1 refused, unknown c14n
               ├── InvalidSecurityToken   wsse:InvalidSecurityToken   unreadable or untrusted token
               ├── FailedAuthentication   wsse:FailedAuthentication   wrong username or password
               ├── FailedCheck            wsse:FailedCheck   signature or digest does not verify
               └── MessageExpired         wsu:MessageExpired   Timestamp expired or in the future

Errors from lxml and signxml are translated at the boundary (``raise ... from exc``).
:mod:`soap.security.faults` turns a :class:`SecurityFault` into the SOAP fault
WS-Security 1.1 section 12 names.
"""

from __future__ import annotations

from typing import ClassVar

from soap import ns

__all__ = [
    "FailedAuthentication",
    "FailedCheck",
    "InvalidFault",
    "InvalidHeader",
    "InvalidSecurity",
    "InvalidSecurityToken",
    "InvalidWsdl",
    "LocalSoapError",
    "MalformedXml",
    "MessageExpired",
    "MissingAction",
    "NotAnEnvelope",
    "RemoteSoapError",
    "SecurityFault",
    "SecuritySetupError",
    "SoapError",
    "UnsupportedAlgorithm",
]


class SoapError(Exception):
    """Root of every error raised by the ``soap`` package."""


class LocalSoapError(SoapError):
    """This process asked for a message that cannot be built."""


class MissingAction(LocalSoapError):
    """No WS-Addressing action was given or found in the HTTP headers."""


class RemoteSoapError(SoapError):
    """A document received from a peer is unacceptable."""


class MalformedXml(RemoteSoapError):
    """The bytes are not well-formed XML, carry a DTD, or use an unsupported encoding."""


class NotAnEnvelope(RemoteSoapError):
    """The document is XML but not a SOAP 1.1 or 1.2 envelope."""


class InvalidHeader(RemoteSoapError):
    """A SOAP header block is malformed, duplicated or unreadable."""


class InvalidFault(RemoteSoapError):
    """A SOAP Fault element does not follow the SOAP 1.1 or 1.2 schema."""


class InvalidWsdl(RemoteSoapError):
    """A WSDL or XSD document cannot be processed."""


class SecuritySetupError(LocalSoapError):
    """Keys, certificates or security options given to this process cannot be used.

    A PEM that does not load, a key that does not match its certificate, or
    signing with SHA-1 without the legacy opt-in. Messages never contain keys.
    """


class SecurityFault(RemoteSoapError):
    """A received message fails a WS-Security check.

    The message (``str(exc)``) says what was wrong in words safe to send back
    to the peer: it never contains keys, passwords or nonces.

    Attributes:
        namespace: Namespace of the fault subcode (``wsse`` or ``wsu``).
        local_name: Local name of the fault subcode.
        description: The fault string WS-Security 1.1 section 12 gives it.
    """

    namespace: ClassVar[str] = ns.WSSE
    local_name: ClassVar[str] = "InvalidSecurity"
    description: ClassVar[str] = (
        "An error was discovered processing the <wsse:Security> header"
    )


class InvalidSecurity(SecurityFault):
    """The Security header is missing, garbled, wrapped, or the message is a replay."""


class UnsupportedAlgorithm(SecurityFault):
    """A signature or digest algorithm this policy does not accept (SHA-1 by default)."""

    local_name = "UnsupportedAlgorithm"
    description = "An unsupported signature or encryption algorithm was used"


class InvalidSecurityToken(SecurityFault):
    """A security token is unreadable, of an unknown type, or not trusted."""

    local_name = "InvalidSecurityToken"
    description = "An invalid security token was provided"


class FailedAuthentication(SecurityFault):
    """A UsernameToken names an unknown user or carries the wrong password."""

    local_name = "FailedAuthentication"
    description = "The security token could not be authenticated or authorized"


class FailedCheck(SecurityFault):
    """A signature value or a reference digest does not verify."""

    local_name = "FailedCheck"
    description = "The signature or decryption was invalid"


class MessageExpired(SecurityFault):
    """A Timestamp (or a UsernameToken's Created) is expired or in the future."""

    namespace = ns.WSU
    local_name = "MessageExpired"
    description = "The message has expired"
