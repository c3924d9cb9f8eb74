"""The relay's error answers (PROTOCOL.md section 5) as an exception zeep users can catch.

The relay answers a SOAP request's failure with a SOAP fault, which zeep raises as
:class:`zeep.exceptions.Fault`; everything else (a WSDL fetch answered 401/404/502,
a JSON body, no answer at all) becomes a :class:`RelayTransportError`::

    {"error": {"code": "EntityNotFound", "message": "...", "trackingId": "3f2a..."}}

    RelayTransportError("http://relay/payroll?wsdl answered HTTP 404 (EntityNotFound):
                         ... TrackingId:3f2a...", status_code=404, code="EntityNotFound",
                         relay_message="...", tracking_id="3f2a...")
"""

from __future__ import annotations

import json
import re

from zeep.exceptions import TransportError

from bindings.exceptions import BindingError
from soap import ns
from soap.envelope import Envelope, SoapVersion
from soap.exceptions import SoapError
from soap.fault import Fault, find_fault

__all__ = ["ProxyTransportError", "RelayTransportError", "is_json", "proxy_transport_error",
           "relay_transport_error"]


class RelayTransportError(TransportError, BindingError):  # type: ignore[misc]
    """A request through the relay failed without a SOAP fault to show for it.

    Raised by the zeep transport for a WSDL/XSD fetch the relay (or the
    service) refused, a JSON error body, or a relay that cannot be reached.

    Attributes:
        status_code: HTTP status, or 0 when there was no response.
        code: The relay's machine-readable error code (``NoListener`` ...), if any.
        relay_message: The relay's error message, if any.
        tracking_id: The tracking id the relay log also shows, if any.
        content: The response body, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 0,
        code: str | None = None,
        relay_message: str | None = None,
        tracking_id: str | None = None,
        content: bytes | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, content=content)
        self.code = code
        self.relay_message = relay_message
        self.tracking_id = tracking_id


class ProxyTransportError(RelayTransportError):
    """The HTTP proxy between the client and the relay refused or failed: the relay
    was never reached. ``status_code`` is the proxy's status (407: it wants other
    credentials in the proxy URL), or 0 when the proxy could not be reached."""


#: The proxy's status in the libraries' messages: requests (urllib3) says "Tunnel
#: connection failed: 407 ...", httpx starts with the status line's "407 ...".
_TUNNEL_STATUS = re.compile(r"(?:Tunnel connection failed: |^)([1-5][0-9]{2})\b")


def proxy_transport_error(url: str, exc: BaseException) -> ProxyTransportError:
    """The error for a request that the HTTP library says the proxy failed."""
    found = _TUNNEL_STATUS.search(str(exc))
    status = int(found.group(1)) if found else 0
    what = f"refused the request (HTTP {status})" if status else "could not be used"
    return ProxyTransportError(f"cannot reach {url}: the HTTP proxy {what}: {exc}", status_code=status)


def is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def relay_transport_error(
    url: str, status: int, content_type: str | None, body: bytes
) -> RelayTransportError:
    """Read an error answer (PROTOCOL.md section 5) into a :class:`RelayTransportError`.

    Understands the relay's JSON ``{"error": {"code", "message", "trackingId"}}``
    and SOAP faults with a ``RelayError`` detail; any other body is summarised.

    Args:
        url: The address that was requested.
        status: The HTTP status.
        content_type: The response's ``Content-Type``.
        body: The response body.
    """
    code, message, tracking_id = _read_error_body(content_type or "", body)
    text = f"{url} answered HTTP {status}"
    if code:
        text += f" ({code})"
    if message:
        text += f": {message}"
    if tracking_id and "TrackingId:" not in text:
        text += f" TrackingId:{tracking_id}"
    return RelayTransportError(
        text,
        status_code=status,
        code=code,
        relay_message=message,
        tracking_id=tracking_id,
        content=body,
    )


def _read_error_body(content_type: str, body: bytes) -> tuple[str | None, str | None, str | None]:
    """(code, message, tracking id) from a JSON or SOAP error body."""
    if is_json(content_type):
        try:
            error = json.loads(body)["error"]
            return error.get("code"), error.get("message"), error.get("trackingId")
        except (ValueError, KeyError, TypeError, AttributeError):
            return None, None, None
    if SoapVersion.from_content_type(content_type) is not None:
        try:
            fault = find_fault(Envelope.from_bytes(body))
        except SoapError:
            return None, None, None
        if fault is not None:
            return _detail_text(fault, "Code"), fault.reason, _detail_text(fault, "TrackingId")
    return None, None, None


def _detail_text(fault: Fault, name: str) -> str | None:
    if fault.detail is None or fault.detail.tag != f"{{{ns.RELAY_ERROR}}}RelayError":
        return None
    return fault.detail.findtext(f"{{{ns.RELAY_ERROR}}}{name}")
