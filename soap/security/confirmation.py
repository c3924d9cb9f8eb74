"""WS-Security 1.1 SignatureConfirmation: a signed reply names the request it answers.

A signature proves who wrote a reply, not which request it answers; on bindings
without WS-Addressing (BasicHttp) nothing else ties the two. WS-Security 1.1 §8.5
has the service echo each request signature's ``SignatureValue`` in its signed
reply::

    request: <ds:SignatureValue>kM9x...</ds:SignatureValue>
    reply:   <wsse11:SignatureConfirmation wsu:Id="SC-1" Value="kM9x..."/>   (signed)

(a request without a signature gets one ``SignatureConfirmation`` without ``Value``).
The service side adds them (:func:`add_confirmations`, before signing: the signer
covers them); :class:`SignatureConfirmations` remembers, on the client, the
signature values of requests sent and not yet answered, and refuses a reply whose
signed confirmations name none of them; each is accepted once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

from lxml import etree

from soap import ns
from soap.envelope import Envelope
from soap.exceptions import InvalidSecurity
from soap.security.header import ensure_id, ensure_security_header, new_id

__all__ = [
    "SIGNATURE_CONFIRMATION",
    "SignatureConfirmations",
    "add_confirmations",
    "confirmation_elements",
    "signature_value",
]

SIGNATURE_CONFIRMATION = f"{{{ns.WSSE11}}}SignatureConfirmation"
_SIGNATURE_VALUE = f"{{{ns.DS}}}Signature/{{{ns.DS}}}SignatureValue"


def signature_value(security: etree._Element | None) -> str | None:
    """The ``SignatureValue`` of the Security header's signature (whitespace removed), or None."""
    if security is None:
        return None
    element = security.find(_SIGNATURE_VALUE)
    return None if element is None else "".join((element.text or "").split())


def confirmation_elements(security: etree._Element | None) -> list[etree._Element]:
    return [] if security is None else security.findall(SIGNATURE_CONFIRMATION)


def add_confirmations(envelope: Envelope, values: Sequence[str | None],
                      id_factory: Callable[[], str] = new_id) -> None:
    """Add one ``SignatureConfirmation`` per request signature value (None: the request
    was unsigned) to the reply's Security header, with ``wsu:Id`` for the signer."""
    security = ensure_security_header(envelope)
    for value in values or (None,):
        element = etree.SubElement(security, SIGNATURE_CONFIRMATION, nsmap={"wsse11": ns.WSSE11})
        if value is not None:
            element.set("Value", value)
        ensure_id(element, id_factory)


class SignatureConfirmations:
    """The signature values of requests awaiting replies (thread-safe, at most ``limit``)."""

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self._outstanding: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SignatureConfirmations(outstanding={len(self._outstanding)})"

    def sent(self, value: str | None) -> None:
        """Remember a signed request's ``SignatureValue``."""
        if value:
            with self._lock:
                self._outstanding[value] = None
                while len(self._outstanding) > self.limit:
                    self._outstanding.popitem(last=False)

    def check(self, confirmed: Sequence[str | None], *, required: bool) -> None:
        """Accept a reply whose signed confirmations name an outstanding request (once).

        Args:
            confirmed: the ``Value`` of each signed SignatureConfirmation of the reply.
            required: a reply without any is refused (the service must speak WS-Security 1.1).

        Raises:
            InvalidSecurity: none when required, or none naming a request this client sent.
        """
        values = [value for value in confirmed if value]
        if not values:
            if required:
                raise InvalidSecurity("the signed reply confirms no request signature"
                                      " (WS-Security 1.1 SignatureConfirmation)")
            return
        with self._lock:
            known = next((value for value in values if value in self._outstanding), None)
            if known is not None:
                del self._outstanding[known]
        if known is None:
            raise InvalidSecurity("the reply confirms a signature this client did not send"
                                  " (a reply made for another request)")
