"""The body of an error the relay itself returns (PROTOCOL.md §5). No I/O.

A SOAP request (``text/xml`` -> 1.1, ``application/soap+xml`` -> 1.2) gets a SOAP
Fault of its own version, Client/Sender for 4xx and Server/Receiver for 5xx, so
zeep and suds raise a Fault carrying the message; anything else gets JSON::

    {"error": {"code": "NoListener", "message": "...", "trackingId": "..."}}
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from relay.exceptions import RelayError
from soap.envelope import SoapVersion
from soap.fault import relay_error_envelope

__all__ = ["ErrorBody", "new_tracking_id", "render_error"]


def new_tracking_id() -> str:
    """A short random id that the error body and the relay log both show."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class ErrorBody:
    status: int
    content_type: str
    body: bytes


def render_error(error: RelayError, request_content_type: str | None, tracking_id: str) -> ErrorBody:
    """The status, content type and body answering ``error`` to a sender."""
    message = str(error) or error.code
    version = SoapVersion.from_content_type(request_content_type or "")
    if version is not None:
        body = relay_error_envelope(
            version,
            sender_side=error.status < 500,
            message=message,
            code=error.code,
            tracking_id=tracking_id,
        )
        return ErrorBody(error.status, f"{version.content_type}; charset=utf-8", body)
    payload = {"error": {"code": error.code, "message": message, "trackingId": tracking_id}}
    body = json.dumps(payload, ensure_ascii=False).encode()
    return ErrorBody(error.status, "application/json; charset=utf-8", body)
