"""One error mapping for the requests and httpx transports: what a relay answer means.

Both zeep transports send two kinds of request, and read their answers alike:

- a **fetch** (``GET`` of a WSDL or XSD): any status from 400 up is a
  :class:`~bindings.relay_errors.RelayTransportError` with the relay's error
  code, message and tracking id (JSON or SOAP fault body);
- a **call** (``POST`` of an envelope): a JSON error body (the relay's own
  answer: no listener, a bad token...) is a ``RelayTransportError``; a SOAP
  fault is left to zeep, which raises :class:`zeep.exceptions.Fault`.

A request that gets no answer at all (refused, reset, timed out) is a
``RelayTransportError`` with ``status_code=0``, its cause the HTTP library's
own exception. An HTTP proxy's failure (unreachable, its 407 or refused tunnel)
is a :class:`~bindings.relay_errors.ProxyTransportError`, never the relay's::

    with library_errors(RequestKind.CALL, address, httpx.HTTPError):
        response = await client.post(address, content=message, headers=headers)
    raise_for_answer(RequestKind.CALL, address, response.status_code,
                     response.headers.get("Content-Type"), lambda: response.content)
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bindings.relay_errors import (
    ProxyTransportError,
    RelayTransportError,
    is_json,
    proxy_transport_error,
    relay_transport_error,
)

__all__ = ["RequestKind", "library_errors", "raise_for_answer"]


class RequestKind(enum.Enum):
    """What a transport asked the relay for (the verb in the error message)."""

    #: A WSDL or XSD document: every error status is an error.
    FETCH = "fetch"
    #: An operation call: only the relay's JSON errors are; SOAP faults are zeep's.
    CALL = "reach"


@contextmanager
def library_errors(
    kind: RequestKind,
    url: str,
    errors: type[BaseException] | tuple[type[BaseException], ...],
    proxy_errors: type[BaseException] | tuple[type[BaseException], ...] = (),
) -> Iterator[None]:
    """Turn the HTTP library's ``errors`` (no answer at all) into a RelayTransportError,
    its ``proxy_errors`` into a ProxyTransportError.

    Raises:
        RelayTransportError: With ``status_code=0``, from the library's error.
        ProxyTransportError: The proxy on the way failed.
    """
    try:
        yield
    except proxy_errors as exc:
        raise proxy_transport_error(url, exc) from exc
    except errors as exc:
        raise RelayTransportError(f"cannot {kind.value} {url}: {exc}") from exc


def raise_for_answer(
    kind: RequestKind,
    url: str,
    status: int,
    content_type: str | None,
    content: Callable[[], bytes],
) -> None:
    """Raise the RelayTransportError an answer means, if any (see the module docstring).

    Args:
        kind: A fetch or a call.
        url: The address that was requested.
        status: The HTTP status.
        content_type: The response's ``Content-Type``.
        content: Returns the response body (read only for an error).

    Raises:
        RelayTransportError: The answer is an error of the relay or the service.
    """
    if status < 400:
        return
    if status == 407:  # only a proxy says this (a plain-HTTP request it forwards)
        raise ProxyTransportError(f"cannot {kind.value} {url}: the HTTP proxy wants other "
                                  "credentials (HTTP 407)", status_code=407, content=content())
    if kind is RequestKind.CALL and not is_json(content_type or ""):
        return  # a SOAP fault (or another body): zeep reads it
    raise relay_transport_error(url, status, content_type, content())
