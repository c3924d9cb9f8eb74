"""What the inspector and the metrics read of a SOAP call, cheaply, from bytes. No I/O.

The relay does not parse the envelopes it relays (that would cost every call an
XML parse and open a second reading of attacker-controlled bytes); these are
bounded byte scans:

- the SOAP version from the ``Content-Type`` (``text/xml``: 1.1,
  ``application/soap+xml``: 1.2);
- the operation from the ``SOAPAction`` header (SOAP 1.1) or the ``action``
  parameter (SOAP 1.2), its last segment (``http://tempuri.org/IPayroll/GetPay``
  -> ``GetPay``); without one, the local name of the Body's first child;
- a fault's code and string from a reply body (``faultcode``/``faultstring``, or
  SOAP 1.2's ``Code/Value`` and ``Reason/Text``), the code without its prefix.

A scan looks at no more than :data:`SCAN_LIMIT` bytes; what it cannot find is "".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from html import unescape

__all__ = ["SCAN_LIMIT", "fault_of", "operation_of", "soap_version"]

SCAN_LIMIT = 64 * 1024
_NAME = re.compile(r"[A-Za-z_][\w.-]{0,127}")
_BODY_CHILD = re.compile(rb"<(?:[\w.-]+:)?Body\b[^>]{0,512}>\s*<(?:[\w.-]+:)?([A-Za-z_][\w.-]{0,127})")
_FAULT11 = re.compile(rb"<(?:[\w.-]+:)?faultcode\b[^>]{0,256}>\s*([^<\s]{1,256})")
_STRING11 = re.compile(rb"<(?:[\w.-]+:)?faultstring\b[^>]{0,256}>([^<]{0,1024})")
_FAULT12 = re.compile(rb"<(?:[\w.-]+:)?Code\b[^>]{0,256}>\s*<(?:[\w.-]+:)?Value\b[^>]{0,256}>\s*([^<\s]{1,256})")
_STRING12 = re.compile(rb"<(?:[\w.-]+:)?Text\b[^>]{0,256}>([^<]{0,1024})")
_ACTION = re.compile(r'action\s*=\s*"?([^";]*)', re.IGNORECASE)


def soap_version(content_type: str) -> str:
    """``"1.1"``, ``"1.2"`` or ``""`` for a ``Content-Type`` value."""
    media = content_type.partition(";")[0].strip().lower()
    if media == "text/xml":
        return "1.1"
    if media == "application/soap+xml":
        return "1.2"
    return ""


def operation_of(headers: Mapping[str, str], body: bytes | None) -> str:
    """The operation a SOAP request calls, or "" (not SOAP, or not found)."""
    action = headers.get("SOAPAction")
    if action is None:
        content_type = headers.get("Content-Type", "")
        if "action" in content_type:
            found = _ACTION.search(content_type)
            action = found.group(1) if found else None
    if action:
        action = action.strip().strip('"')
        last = re.split(r"[/#:]", action)[-1]
        name = _NAME.fullmatch(last)
        if name is not None:
            return name.group()
    if body:
        child = _BODY_CHILD.search(body, 0, SCAN_LIMIT)
        if child is not None:
            return child.group(1).decode("ascii", "replace")
    return ""


def fault_of(body: bytes) -> tuple[str, str]:
    """A SOAP fault's code (local part) and string in ``body``, or ``("", "")``."""
    if b"ault" not in body[:SCAN_LIMIT]:  # Fault, faultcode: no fault without it
        return "", ""
    code = _FAULT11.search(body, 0, SCAN_LIMIT) or _FAULT12.search(body, 0, SCAN_LIMIT)
    if code is None:
        return "", ""
    text = (_STRING11 if code.re is _FAULT11 else _STRING12).search(body, 0, SCAN_LIMIT)
    name = code.group(1).decode("utf-8", "replace").rpartition(":")[2]
    reason = unescape(text.group(1).decode("utf-8", "replace").strip()) if text else ""
    return name[:128], reason
