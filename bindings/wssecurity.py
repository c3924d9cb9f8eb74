"""Message security for the bindings: a zeep plugin and a WSGI middleware over :mod:`soap.security`.

``EndToEndSecurityMode`` (WCF's name) decides what the two sides do with the
settings in one :class:`MessageSecurity`:

| mode                              | client (zeep plugin)                      | service (WSGI middleware)                    |
|-----------------------------------|-------------------------------------------|----------------------------------------------|
| NONE, TRANSPORT                   | nothing at the message level              | nothing at the message level                 |
| MESSAGE                           | Timestamp, signature (+ UsernameToken);   | requires a signed Body and Timestamp;        |
|                                   | verifies signed replies                   | signs replies when it has an identity        |
| TRANSPORT_WITH_MESSAGE_CREDENTIAL | Timestamp + UsernameToken, or signature   | requires that credential; replies unsigned   |

The service side, :class:`WsSecurityMiddleware`, checks every request that has
a body before the wrapped application sees it. A request that fails gets the
WS-Security SOAP fault (HTTP 500) and the application never runs; one that
passes reaches it with its bytes unchanged (the signature stays verifiable
further on), the :class:`~soap.security.policy.SecurityResult` in
``environ["soaprelay.wssecurity"]`` and a UsernameToken's user in
``REMOTE_USER``. With a signer, SOAP replies get a Timestamp and a signature::

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

Security faults are not signed (as in WCF): a request that failed the checks
has not earned a signed answer, and the client plugin lets unsigned faults
through to zeep, which raises them as :class:`zeep.exceptions.Fault`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any

from lxml import etree
from zeep.exceptions import SignatureVerificationFailed
from zeep.plugins import Plugin

from bindings.binding import EndToEndSecurityMode
from bindings.exceptions import BindingError, ConfigurationError
from soap.envelope import Envelope, SoapVersion
from soap.exceptions import RemoteSoapError, SecurityFault, SoapError
from soap.fault import Fault, FaultCode, fault_envelope
from soap.security import (
    EnvelopeSigner,
    Freshness,
    KeyInfoStyle,
    MemoryReplayCache,
    ReplayCache,
    SecurityPolicy,
    SigningIdentity,
    TimestampHook,
    TrustStore,
    UsernameTokenHook,
    WsSecurityHook,
    security_fault,
    utc_now,
    verify_envelope,
)
from soap.security.timestamp import Clock
from soap.security.username import Credentials

__all__ = [
    "ENVIRON_KEY",
    "MessageSecurity",
    "UntrustedResponse",
    "WsSecurityMiddleware",
    "WsSecurityPlugin",
    "secure_service",
    "security_plugin",
]

log = logging.getLogger("bindings.wssecurity")

#: The environ key holding the :class:`SecurityResult` of a verified request.
ENVIRON_KEY = "soaprelay.wssecurity"

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]
_ExcInfo = tuple[type[BaseException], BaseException, TracebackType]
_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})
_MESSAGE_MODES = frozenset(
    {EndToEndSecurityMode.MESSAGE, EndToEndSecurityMode.TRANSPORT_WITH_MESSAGE_CREDENTIAL}
)


class UntrustedResponse(SignatureVerificationFailed, BindingError):
    """A reply failed the client's WS-Security checks (its cause is the SecurityFault).

    Also a :class:`zeep.exceptions.SignatureVerificationFailed`, what zeep's
    own ``Signature`` raises for a bad reply.

    Attributes:
        fault: The :class:`~soap.exceptions.SecurityFault` that was raised.
    """

    def __init__(self, fault: SecurityFault) -> None:
        super().__init__(f"the service's reply failed WS-Security checks: {fault}")
        self.fault = fault


@dataclass(frozen=True)
class MessageSecurity:
    """One side's message-security settings; the binding's mode decides how they are used.

    Attributes:
        identity: This side's key and certificate (signs requests or replies).
        trust: Whose signatures this side accepts (the peer's certificates or CAs).
        username: Client: the UsernameToken user name.
        password: Client: its password (never shown by ``repr``).
        password_digest: Client: send a PasswordDigest rather than the clear text.
        verify_replies: Client, MESSAGE mode: require signed replies (needs ``trust``).
        credentials: Service: user name -> password lookup for UsernameTokens.
        key_info: Where signatures put their certificate.
        allow_sha1: Explicit opt-in to accept RSA-SHA1/SHA-1 from legacy peers.
        require_signed_addressing: Service: WS-Addressing headers must be signed.
        freshness: Clock skew and maximum message age.
        timestamp_ttl: Lifetime written in outgoing Timestamps.
        clock: The time source.
        replay_cache: Where nonces and signatures are remembered.
    """

    identity: SigningIdentity | None = None
    trust: TrustStore | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_digest: bool = True
    verify_replies: bool = True
    credentials: Credentials | None = field(default=None, repr=False)
    key_info: KeyInfoStyle = KeyInfoStyle.BINARY_SECURITY_TOKEN
    allow_sha1: bool = False
    require_signed_addressing: bool = False
    freshness: Freshness = field(default_factory=Freshness)
    timestamp_ttl: timedelta = timedelta(minutes=5)
    clock: Clock = field(default=utc_now)
    replay_cache: ReplayCache = field(default_factory=MemoryReplayCache)

    def signer(self) -> EnvelopeSigner | None:
        """The signer for this side's identity, or None without one."""
        if self.identity is None:
            return None
        return EnvelopeSigner(self.identity, key_info=self.key_info)

    def policy(self, mode: EndToEndSecurityMode, *, service: bool) -> SecurityPolicy | None:
        """What this side requires of the messages it receives in ``mode``.

        Returns:
            The policy, or None when nothing is checked: in NONE and TRANSPORT,
            and on a client in TRANSPORT_WITH_MESSAGE_CREDENTIAL or with
            ``verify_replies`` off.

        Raises:
            ConfigurationError: The settings cannot meet the mode.
        """
        if mode not in _MESSAGE_MODES:
            return None
        if not service:
            if mode is not EndToEndSecurityMode.MESSAGE or not self.verify_replies:
                return None
            if self.trust is None:
                raise ConfigurationError(
                    "MESSAGE security needs the service's certificate (trust) on the client,"
                    " or verify_replies=False"
                )
            return self._policy(require_signature=True)
        if mode is EndToEndSecurityMode.MESSAGE:
            if self.trust is None:
                raise ConfigurationError("MESSAGE security needs a trust store on the service")
            return self._policy(require_signature=True)
        if self.credentials is None and self.trust is None:
            raise ConfigurationError(
                "TRANSPORT_WITH_MESSAGE_CREDENTIAL needs credentials or a trust store"
            )
        return self._policy(
            require_signature=self.credentials is None,
            require_username_token=self.credentials is not None,
        )

    def _policy(self, **requirements: bool) -> SecurityPolicy:
        return SecurityPolicy(
            trust=self.trust,
            credentials=self.credentials,
            allow_sha1=self.allow_sha1,
            require_signed_addressing=self.require_signed_addressing,
            freshness=self.freshness,
            clock=self.clock,
            replay_cache=self.replay_cache,
            **requirements,
        )

    def client_hook(self, mode: EndToEndSecurityMode) -> WsSecurityHook | None:
        """The client's hook in ``mode`` (None when there is no message security).

        Raises:
            ConfigurationError: MESSAGE without an identity, or a credential mode
                with neither a user name and password nor an identity.
        """
        if mode not in _MESSAGE_MODES:
            return None
        token = None
        if self.username is not None:
            if self.password is None:
                raise ConfigurationError("a UsernameToken needs a password")
            token = UsernameTokenHook(
                self.username, self.password, digest=self.password_digest, clock=self.clock
            )
        signer = self.signer()
        if mode is EndToEndSecurityMode.MESSAGE and signer is None:
            raise ConfigurationError("MESSAGE security needs a signing identity on the client")
        if mode is EndToEndSecurityMode.TRANSPORT_WITH_MESSAGE_CREDENTIAL:
            if token is None and signer is None:
                raise ConfigurationError(
                    "TRANSPORT_WITH_MESSAGE_CREDENTIAL needs a username and password or an identity"
                )
            signer = None if token is not None else signer
        return WsSecurityHook(
            timestamp=TimestampHook(ttl=self.timestamp_ttl, clock=self.clock),
            username_token=token,
            signer=signer,
            policy=self.policy(mode, service=False),
        )


class WsSecurityPlugin(Plugin):
    """A zeep plugin running a :class:`~soap.security.policy.WsSecurityHook`.

    Put it **last** among the client's plugins, so that the WS-Addressing
    headers other plugins add exist when it signs.

    Args:
        hook: Signs requests on egress, checks replies on ingress.
    """

    def __init__(self, hook: WsSecurityHook) -> None:
        self.hook = hook

    def __repr__(self) -> str:
        return f"WsSecurityPlugin({self.hook!r})"

    def egress(
        self,
        envelope: etree._Element,
        http_headers: dict[str, str],
        operation: Any,
        binding_options: dict[str, Any],
    ) -> tuple[etree._Element, dict[str, str]]:
        """Add the Timestamp and UsernameToken and sign, as configured."""
        return self.hook.egress(envelope, http_headers)

    def ingress(
        self, envelope: etree._Element, http_headers: dict[str, str], operation: Any
    ) -> tuple[etree._Element, dict[str, str]]:
        """Check the reply.

        Raises:
            UntrustedResponse: The reply fails the client's policy.
        """
        try:
            return self.hook.ingress(envelope, http_headers)
        except SecurityFault as exc:
            raise UntrustedResponse(exc) from exc


def security_plugin(
    mode: EndToEndSecurityMode, security: MessageSecurity | None
) -> WsSecurityPlugin | None:
    """The client plugin a binding's security mode needs, or None.

    Raises:
        ConfigurationError: A message mode without settings, or unusable ones.
    """
    if mode not in _MESSAGE_MODES:
        return None
    if security is None:
        raise ConfigurationError(f"security mode {mode.name} needs MessageSecurity settings")
    hook = security.client_hook(mode)
    return None if hook is None else WsSecurityPlugin(hook)


def secure_service(
    app: WsgiApp, mode: EndToEndSecurityMode, security: MessageSecurity | None
) -> WsgiApp:
    """``app`` behind a :class:`WsSecurityMiddleware` when ``mode`` asks for one.

    Raises:
        ConfigurationError: A message mode without settings, or unusable ones.
    """
    if mode not in _MESSAGE_MODES:
        return app
    if security is None:
        raise ConfigurationError(f"security mode {mode.name} needs MessageSecurity settings")
    policy = security.policy(mode, service=True)
    assert policy is not None  # a service in a message mode always has one
    signer = security.signer() if mode is EndToEndSecurityMode.MESSAGE else None
    ttl = security.timestamp_ttl
    return WsSecurityMiddleware(
        app, policy, signer=signer, timestamp=TimestampHook(ttl=ttl, clock=security.clock)
    )


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
    ) -> None:
        self.app, self.policy, self.signer, self.max_body = app, policy, signer, max_body
        self.timestamp = timestamp or TimestampHook(clock=policy.clock)

    def __repr__(self) -> str:
        return f"WsSecurityMiddleware({self.app!r}, signs={self.signer is not None})"

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET").upper() in _NO_BODY:
            return self.app(environ, start_response)
        version = SoapVersion.from_content_type(environ.get("CONTENT_TYPE", ""))
        try:
            body = self._read(environ)
            envelope = Envelope.from_bytes(body)
            version = envelope.version
            result = verify_envelope(envelope, self.policy)
        except _TooLarge:
            text = f"The request body is over this service's limit of {self.max_body} bytes."
            return _fault(start_response, version, Fault(FaultCode.CLIENT, text), "413")
        except SecurityFault as exc:
            log.warning("refused a request from %s: %s", _peer(environ), exc)
            return _fault(start_response, version, security_fault(exc))
        except RemoteSoapError as exc:
            log.info("refused a malformed request from %s: %s", _peer(environ), exc)
            reason = f"The request is not a readable SOAP envelope: {exc}"
            return _fault(start_response, version, Fault(FaultCode.CLIENT, reason))
        inner = dict(environ, **{"wsgi.input": io.BytesIO(body), ENVIRON_KEY: result})
        inner["CONTENT_LENGTH"] = str(len(body))
        if result.username is not None:
            inner["REMOTE_USER"] = result.username
        if self.signer is None:
            return self.app(inner, start_response)
        return self._signed_reply(inner, start_response, self.signer)

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

    def _signed_reply(
        self, environ: Environ, start_response: StartResponse, signer: EnvelopeSigner
    ) -> Iterable[bytes]:
        captured = _Captured()
        result = self.app(environ, captured.start_response)
        try:
            body = b"".join([*captured.chunks, *(bytes(chunk) for chunk in result)])
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        body = _sign(body, captured.headers, self.timestamp, signer)
        headers = [(k, v) for k, v in captured.headers if k.lower() != "content-length"]
        start_response(captured.status, [*headers, ("Content-Length", str(len(body)))])
        return [body]


def _sign(
    body: bytes, headers: list[tuple[str, str]], timestamp: TimestampHook, signer: EnvelopeSigner
) -> bytes:
    """A SOAP reply with a fresh Timestamp and a signature; other replies unchanged."""
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    if not body or SoapVersion.from_content_type(content_type) is None:
        return body
    try:
        envelope = Envelope.from_bytes(body)
    except SoapError:
        log.warning("left a reply unsigned: it is not a SOAP envelope")
        return body
    timestamp.egress(envelope.root, {})
    signer.sign(Envelope.from_element(envelope.root))
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
