"""The WS-Security faults (WS-Security 1.1 section 12) in SOAP 1.1 and 1.2.

A :class:`~soap.exceptions.SecurityFault` raised while checking a message
becomes a sender fault whose subcode names the failure. For
``InvalidSecurity("Body is not signed")`` in SOAP 1.1::

    <soap:Fault>
      <faultcode xmlns:c="...oasis-200401-wss-wssecurity-secext-1.0.xsd">c:InvalidSecurity</faultcode>
      <faultstring xml:lang="en">An error was discovered processing the
        &lt;wsse:Security&gt; header: Body is not signed</faultstring>
    </soap:Fault>

and in SOAP 1.2 (the spec: "the SOAP 1.2 Code is env:Sender with the
WS-Security fault as its Subcode")::

    <soap:Fault>
      <soap:Code><soap:Value>soap:Sender</soap:Value>
        <soap:Subcode><soap:Value xmlns:c="...">c:InvalidSecurity</soap:Value></soap:Subcode>
      </soap:Code>
      <soap:Reason><soap:Text xml:lang="en">An error was discovered ...</soap:Text></soap:Reason>
    </soap:Fault>

``wsu:MessageExpired`` lives in the utility namespace (the ``tTimestampFault``
type of the WS-Security 1.0 utility schema); the others in ``wsse``.
"""

from __future__ import annotations

from lxml import etree

from soap.envelope import SoapVersion
from soap.exceptions import SecurityFault
from soap.fault import Fault, FaultCode, fault_envelope

__all__ = ["security_fault", "security_fault_envelope", "subcode"]


def subcode(error: SecurityFault | type[SecurityFault]) -> etree.QName:
    """The fault subcode QName of ``error`` (``wsse:FailedCheck`` ...)."""
    return etree.QName(error.namespace, error.local_name)


def security_fault(error: SecurityFault) -> Fault:
    """The version-neutral :class:`~soap.fault.Fault` for ``error``.

    The reason is the spec's fault string followed by what exactly failed.
    """
    detail = str(error)
    reason = f"{error.description}: {detail}" if detail else error.description
    return Fault(FaultCode.CLIENT, reason, subcode=subcode(error))


def security_fault_envelope(version: SoapVersion, error: SecurityFault) -> bytes:
    """A complete fault envelope of ``version`` for ``error`` (UTF-8 bytes)."""
    return fault_envelope(version, security_fault(error))
