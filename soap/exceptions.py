"""Exceptions raised by the ``soap`` package.

One tree, rooted at :class:`SoapError`. Errors are split by who broke the
rules: :class:`LocalSoapError` when this process asked for something that
cannot be built, :class:`RemoteSoapError` when a document received from a peer
is unacceptable::

    SoapError
     ├── LocalSoapError          we were asked to build something invalid
     │    └── MissingAction      no WS-Addressing action could be determined
     └── RemoteSoapError         a received document is unacceptable
          ├── MalformedXml       not well-formed, DTD/entities present, bad encoding
          ├── NotAnEnvelope      wrong root element or unknown SOAP version
          ├── InvalidHeader      a header block (RelayAccessToken, WS-Addressing) is wrong
          ├── InvalidFault       a Fault element cannot be read
          └── InvalidWsdl        a WSDL/XSD document cannot be processed

Errors from lxml are translated at the boundary (``raise ... from exc``).
"""

from __future__ import annotations

__all__ = [
    "InvalidFault",
    "InvalidHeader",
    "InvalidWsdl",
    "LocalSoapError",
    "MalformedXml",
    "MissingAction",
    "NotAnEnvelope",
    "RemoteSoapError",
    "SoapError",
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
