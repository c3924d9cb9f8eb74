"""Service-side message security: a WSGI middleware that checks requests before the app runs.

:class:`WsSecurityMiddleware` checks every request that has a body against a
:class:`~soap.security.policy.SecurityPolicy` before the wrapped application
sees it. A request that fails gets the WS-Security SOAP fault (HTTP 500) and
the application never runs; one that passes reaches it with its bytes
unchanged (the signature stays verifiable further on), the
:class:`~soap.security.policy.SecurityResult` in ``environ["soaprelay.wssecurity"]``
(:data:`ENVIRON_KEY`) and a UsernameToken's user in ``REMOTE_USER``. Only a
``GET``, ``HEAD`` or ``OPTIONS`` without a body (WSDL and XSD fetches) passes
through unchecked, and with an empty ``wsgi.input``: whatever the method, the
application never reads bytes that were not checked.

The application must read the bytes as they were verified. Spyne decodes a
request with the ``Content-Type`` charset, XML with its own declaration; a
request whose charset names another encoding than the document's (UTF-7
markup hidden in an unsigned header, say) is refused with a Client fault by
:func:`~soap.security.charset.check_charset` before any signature is checked.

With a signer, SOAP replies get a Timestamp and a signature::

    before (the application's reply):
    <soap:Envelope><soap:Body><tns:GetSalaryResponse>...</tns:GetSalaryResponse></soap:Body>
    </soap:Envelope>

    after:
    <soap:Envelope>
      <soap:Header><wsse:Security soap:mustUnderstand="1">
        <wsu:Timestamp wsu:Id="TS-1">...</wsu:Timestamp>
        <wsse:BinarySecurityToken wsu:Id="X509-3">...</wsse:BinarySecurityToken>
        <ds:Signature>... #id-2, #TS-1 ...</ds:Signature>
      </wsse:Security></soap:Header>
      <soap:Body wsu:Id="id-2"><tns:GetSalaryResponse>...</tns:GetSalaryResponse></soap:Body>
    </soap:Envelope>

The application's result is not closed when the reply is signed: the
returned iterable passes ``close()`` (PEP 3333) and ``discard()`` (the relay
host's extension, :mod:`bindings.wsgi_host`) on to it, so Spyne's one-way work
still starts only once the ``202`` was written, and is dropped when it was not.

Security faults are not signed (as in WCF): a request that failed the checks
has not earned a signed answer. Replies that are not SOAP (no SOAP media type,
or unreadable) are passed on unchanged.

The checks and the signing are :class:`SecurityStage`, which the Spyne
pipeline (:mod:`bindings.spyne_host`) runs as its first step on the tree the
host parsed, before the one-way decision (so a one-way operation is checked
before its ``202 Accepted``), and whose reply tree it signs before serialising
it. This middleware is the same stage for any other WSGI application: it takes
the tree the relay host parsed (``environ["soaprelay.envelope"]``) instead of
parsing the body again, and it parses the application's reply to sign it.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from bindings.wsgi_host import request_envelope
from soap.envelope import Envelope, SoapVersion
from soap.exceptions import RemoteSoapError, SecurityFault, SoapError
from soap.fault import Fault, FaultCode, fault_envelope
from soap.security import (
    EnvelopeSigner,
    SecurityPolicy,
    SecurityResult,
    TimestampHook,
    check_charset,
    security_fault,
    verify_envelope,
)
from soap.security.confirmation import add_confirmations

__all__ = ["ENVIRON_KEY", "SecurityStage", "WsSecurityMiddleware"]

log = logging.getLogger("bindings.wssecurity")

#: The environ key holding the :class:`SecurityResult` of a verified request.
ENVIRON_KEY = "soaprelay.wssecurity"

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]
_ExcInfo = tuple[type[BaseException], BaseException, TracebackType]
_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})


class _Captured:
    """The wrapped app's ``start_response`` and ``write``, buffered."""

    def __init__(self) -> None:
        self.status = "500 Internal Server Error"
        self.headers: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: _ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        self.status, self.headers = status, list(headers)
        return self.chunks.append


class _TooLarge(Exception):
    pass


class SecurityStage:
    """The WS-Security step of a service pipeline: check requests, sign replies.

    Args:
        policy: What requests must carry.
        signer: Signs SOAP replies when given; a signed reply confirms the request's
            signature (WS-Security 1.1 SignatureConfirmation).
        timestamp: Adds the reply's Timestamp before signing.
        password_text_over_http: Accept a UsernameToken's clear-text password on a
            request that came over plain HTTP (``wsgi.url_scheme`` http: the relay's
            address); off by default, as WCF's TransportWithMessageCredential needs TLS.
    """

    def __init__(
        self,
        policy: SecurityPolicy,
        *,
        signer: EnvelopeSigner | None = None,
        timestamp: TimestampHook | None = None,
        password_text_over_http: bool = False,
    ) -> None:
        self.policy, self.signer = policy, signer
        self.timestamp = timestamp or TimestampHook(clock=policy.clock)
        self.password_text_over_http = password_text_over_http
        self._plain_http_policy = policy
        if policy.allow_password_text and not password_text_over_http:
            self._plain_http_policy = dataclasses.replace(policy, allow_password_text=False)

    def __repr__(self) -> str:
        return f"SecurityStage(signs={self.signer is not None})"

    def check(self, environ: Environ, envelope: Envelope, body: bytes) -> SecurityResult:
        """Verify a request's tree; on success note the result in ``environ`` (in place).

        ``environ`` gets the result under :data:`ENVIRON_KEY` and a
        UsernameToken's user as ``REMOTE_USER``.

        Raises:
            SecurityFault: The request fails the policy or its charset is ambiguous.
        """
        check_charset(str(environ.get("CONTENT_TYPE") or ""), body, envelope.root)
        plain = environ.get("wsgi.url_scheme") == "http"
        result = verify_envelope(envelope, self._plain_http_policy if plain else self.policy)
        environ[ENVIRON_KEY] = result
        if result.username is not None:
            environ["REMOTE_USER"] = result.username
        return result

    def refusal(self, environ: Environ, exc: SoapError) -> Fault:
        """The fault answering a request :meth:`check` (or parsing) refused, logged once."""
        if isinstance(exc, SecurityFault):
            log.warning("refused a request from %s: %s", _peer(environ), exc)
            return security_fault(exc)
        log.info("refused a malformed request from %s: %s", _peer(environ), exc)
        reason = f"The request is not a readable SOAP envelope: {exc}"
        return Fault(FaultCode.CLIENT, reason)

    def sign(self, reply: Envelope, environ: Environ | None = None) -> None:
        """Add a fresh Timestamp to a reply tree, a SignatureConfirmation of the request
        :meth:`check` verified in ``environ``, and sign it (in place); no-op without a signer."""
        if self.signer is None:
            return
        self.timestamp.egress(reply.root, {})
        stamped = Envelope.from_element(reply.root)  # the Timestamp may have added the Header
        request = None if environ is None else environ.get(ENVIRON_KEY)
        if isinstance(request, SecurityResult):
            add_confirmations(stamped, [request.signature_value])
        self.signer.sign(Envelope.from_element(reply.root))


class WsSecurityMiddleware:
    """WSGI middleware: verify requests before ``app`` runs; optionally sign its replies.

    Args:
        app: The WSGI application (e.g. a Spyne ``WsgiApplication``).
        policy: What requests must carry.
        signer: Signs SOAP replies when given.
        timestamp: Adds the reply's Timestamp before signing.
        max_body: Largest request body read, in bytes.
    """

    def __init__(
        self,
        app: WsgiApp,
        policy: SecurityPolicy,
        *,
        signer: EnvelopeSigner | None = None,
        timestamp: TimestampHook | None = None,
        max_body: int = 64 * 1024 * 1024,
        password_text_over_http: bool = False,
    ) -> None:
        self.app, self.max_body = app, max_body
        self.stage = SecurityStage(policy, signer=signer, timestamp=timestamp,
                                   password_text_over_http=password_text_over_http)

    @property
    def policy(self) -> SecurityPolicy:
        return self.stage.policy

    @property
    def signer(self) -> EnvelopeSigner | None:
        return self.stage.signer

    @property
    def timestamp(self) -> TimestampHook:
        return self.stage.timestamp

    def __repr__(self) -> str:
        return f"WsSecurityMiddleware({self.app!r}, signs={self.signer is not None})"

    def close(self) -> None:
        """Close the wrapped application, if it has ``close()`` (Spyne's one-way pool)."""
        close = getattr(self.app, "close", None)
        if callable(close):
            close()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        content_type = str(environ.get("CONTENT_TYPE") or "")
        version = SoapVersion.from_content_type(content_type)
        try:
            body = self._read(environ)
        except _TooLarge:
            text = f"The request body is over this service's limit of {self.max_body} bytes."
            return _fault(start_response, version, Fault(FaultCode.CLIENT, text), "413")
        if not body and environ.get("REQUEST_METHOD", "GET").upper() in _NO_BODY:
            # A WSDL or XSD fetch; the input is emptied so that nothing unchecked is read.
            return self.app(dict(environ, **{"wsgi.input": io.BytesIO()}), start_response)
        inner = dict(environ, **{"wsgi.input": io.BytesIO(body)})
        inner["CONTENT_LENGTH"] = str(len(body))
        try:
            envelope = request_envelope(environ, body)
            version = envelope.version
            self.stage.check(inner, envelope, body)
        except (SecurityFault, RemoteSoapError) as exc:
            return _fault(start_response, version, self.stage.refusal(environ, exc))
        if self.signer is None:
            return self.app(inner, start_response)
        return self._signed_reply(inner, start_response)

    def _read(self, environ: Environ) -> bytes:
        stream = environ.get("wsgi.input") or io.BytesIO()
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if length > self.max_body:
            raise _TooLarge
        if length < 0 and not environ.get("wsgi.input_terminated"):
            return b""  # PEP 3333: without a length, do not read past the body
        body: bytes = stream.read(length) if length >= 0 else stream.read(self.max_body + 1)
        if len(body) > self.max_body:
            raise _TooLarge
        return body

    def _signed_reply(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        captured = _Captured()
        result = self.app(environ, captured.start_response)
        try:
            body = b"".join([*captured.chunks, *(bytes(chunk) for chunk in result)])
            body = _sign(body, captured.headers, self.stage, environ)
            headers = [(k, v) for k, v in captured.headers if k.lower() != "content-length"]
            start_response(captured.status, [*headers, ("Content-Length", str(len(body)))])
        except BaseException:
            _drop(result)  # the app's reply will never go out
            raise
        return _SignedReply(body, result)


class _SignedReply:
    """The signed body, with the wrapped app's result kept open until the server is done.

    ``close()`` and ``discard()`` reach that result: the relay host calls them
    once the response was written (or could not be), and that is when Spyne's
    one-way work starts (or is dropped) — never while the reply is being signed.
    """

    def __init__(self, body: bytes, inner: Iterable[bytes]) -> None:
        self._body, self._inner = body, inner

    def __iter__(self) -> Iterator[bytes]:
        return iter((self._body,))

    def discard(self) -> None:
        discard = getattr(self._inner, "discard", None)
        if discard is not None:
            discard()

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


def _drop(result: object) -> None:
    """``discard()`` and ``close()`` a result whose reply will not be sent; failures are logged."""
    try:
        try:
            discard = getattr(result, "discard", None)
            if discard is not None:
                discard()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except Exception:
        log.exception("closing the application's result failed")


def _sign(body: bytes, headers: list[tuple[str, str]], stage: SecurityStage,
          environ: Environ) -> bytes:
    """A SOAP reply with a fresh Timestamp and a signature; other replies unchanged.

    The application gave bytes: they are parsed here, the one reply parse of this path.
    """
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    if not body or SoapVersion.from_content_type(content_type) is None:
        return body
    try:
        envelope = Envelope.from_bytes(body)
    except SoapError:
        log.warning("left a reply unsigned: it is not a SOAP envelope")
        return body
    stage.sign(envelope, environ)
    return envelope.to_bytes()


def _fault(
    start_response: StartResponse,
    version: SoapVersion | None,
    fault: Fault,
    status: str = "500",
) -> list[bytes]:
    version = version or SoapVersion.SOAP11
    body = fault_envelope(version, fault)
    reason = "Payload Too Large" if status == "413" else "Internal Server Error"
    start_response(
        f"{status} {reason}",
        [
            ("Content-Type", f"{version.content_type}; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


def _peer(environ: Environ) -> str:
    return str(environ.get("REMOTE_ADDR") or "an unknown peer")
