"""Message security for the bindings: one settings object, wired per ``EndToEndSecurityMode``.

``EndToEndSecurityMode`` (WCF's name, the ``security`` field of every binding)
decides what the two sides do with the settings in one :class:`MessageSecurity`:

| mode                              | client (zeep plugin)                      | service (pipeline step / WSGI middleware)    |
|-----------------------------------|-------------------------------------------|----------------------------------------------|
| NONE, TRANSPORT                   | nothing at the message level              | nothing at the message level                 |
| MESSAGE                           | Timestamp, signature (+ UsernameToken);   | requires a signed Body and Timestamp, and    |
|                                   | verifies signed replies                   | signed WS-Addressing headers; signs replies  |
|                                   |                                           | when it has an identity                      |
| TRANSPORT_WITH_MESSAGE_CREDENTIAL | Timestamp + UsernameToken, or signature   | requires that credential; replies unsigned   |

Hosting and clients wire it for you::

    host = RelayServiceHost(app, address, binding=BasicHttpRelayBinding(security=MESSAGE),
                            message_security=MessageSecurity(identity=service_id,
                                                             trust=client_certs))
    client = relay_client(wsdl_url, binding=BasicHttpRelayBinding(security=MESSAGE),
                          message_security=MessageSecurity(identity=client_id,
                                                           trust=service_cert))

One concept per module: this one holds the settings and the two factories,
:func:`security_stage` (the service side: the Spyne pipeline's step,
:class:`~bindings.wsgi_security.SecurityStage`), :func:`secure_service` (the
same step around any other WSGI app,
:class:`~bindings.wsgi_security.WsSecurityMiddleware`) and
:func:`security_plugin` (the client side,
:class:`~bindings.zeep_security.WsSecurityPlugin`). The zeep pieces,
``WsSecurityPlugin`` and ``UntrustedResponse``, are importable from here too,
but only imported on first use, so that hosting never loads zeep.

A legacy peer that only speaks RSA-SHA1 is served with ``allow_sha1=True``
(accept SHA-1) plus ``signature_method=SignatureMethod.RSA_SHA1`` and
``digest_method=DigestAlgorithm.SHA1`` (sign with it).

Settings given with a mode that has no message security (NONE, TRANSPORT)
are refused rather than silently ignored: a service meant to check signatures
must not quietly run without the checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from signxml.algorithms import DigestAlgorithm, SignatureMethod

from bindings.binding import EndToEndSecurityMode
from bindings.exceptions import ConfigurationError
from bindings.wsgi_security import ENVIRON_KEY, SecurityStage, WsgiApp, WsSecurityMiddleware
from soap.exceptions import SecuritySetupError
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
    utc_now,
)
from soap.security.timestamp import Clock
from soap.security.username import Credentials

if TYPE_CHECKING:
    from bindings.zeep_security import UntrustedResponse, WsSecurityPlugin

__all__ = [
    "ENVIRON_KEY",
    "MESSAGE_MODES",
    "MessageSecurity",
    "SecurityStage",
    "UntrustedResponse",
    "WsSecurityMiddleware",
    "WsSecurityPlugin",
    "secure_service",
    "security_plugin",
    "security_stage",
]

#: The modes with message-level security (the others leave it to the transport).
MESSAGE_MODES = frozenset(
    {EndToEndSecurityMode.MESSAGE, EndToEndSecurityMode.TRANSPORT_WITH_MESSAGE_CREDENTIAL}
)


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
        allow_sha1: Explicit opt-in to accept RSA-SHA1/SHA-1 from legacy peers,
            and to sign with them (``signature_method``, ``digest_method``).
        signature_method: What this side signs with (RSA-SHA256 by default).
        digest_method: The reference digests this side writes (SHA-256 by default).
        require_signed_addressing: WS-Addressing headers beside a signature
            must be signed (the default). ``False`` lets unsigned ones through,
            for peers such as zeep's own ``Signature`` that sign only the Body
            and Timestamp; an unsigned header with the name of a signed one is
            refused either way.
        freshness: Clock skew and maximum message age.
        timestamp_ttl: Lifetime written in outgoing Timestamps.
        clock: The time source.
        replay_cache: Where nonces and signatures are remembered.
        password_text_over_http: Service: accept a clear-text UsernameToken password
            on requests that reached the relay over plain HTTP (off: refused, as WCF's
            TransportWithMessageCredential requires TLS; a PasswordDigest is accepted).
        require_signature_confirmation: Client, MESSAGE mode: refuse a signed reply
            that does not confirm this request's signature (WS-Security 1.1
            SignatureConfirmation; soap-relay's services add it). Off for services
            that only speak WS-Security 1.0.
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
    signature_method: SignatureMethod = SignatureMethod.RSA_SHA256
    digest_method: DigestAlgorithm = DigestAlgorithm.SHA256
    require_signed_addressing: bool = True
    freshness: Freshness = field(default_factory=Freshness)
    timestamp_ttl: timedelta = timedelta(minutes=5)
    clock: Clock = field(default=utc_now)
    replay_cache: ReplayCache = field(default_factory=MemoryReplayCache)
    password_text_over_http: bool = False
    require_signature_confirmation: bool = True

    def signer(self) -> EnvelopeSigner | None:
        """The signer for this side's identity, or None without one.

        Raises:
            ConfigurationError: The methods do not fit the key, or name SHA-1
                without ``allow_sha1``.
        """
        if self.identity is None:
            return None
        try:
            return EnvelopeSigner(
                self.identity,
                key_info=self.key_info,
                signature_method=self.signature_method,
                digest_method=self.digest_method,
                allow_sha1=self.allow_sha1,
            )
        except SecuritySetupError as exc:
            raise ConfigurationError(f"cannot sign as configured: {exc}") from exc

    def policy(self, mode: EndToEndSecurityMode, *, service: bool) -> SecurityPolicy | None:
        """What this side requires of the messages it receives in ``mode``.

        Returns:
            The policy, or None when nothing is checked: in NONE and TRANSPORT,
            and on a client in TRANSPORT_WITH_MESSAGE_CREDENTIAL or with
            ``verify_replies`` off.

        Raises:
            ConfigurationError: The settings cannot meet the mode.
        """
        if mode not in MESSAGE_MODES:
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
        if mode not in MESSAGE_MODES:
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
            require_confirmation=self.require_signature_confirmation,
        )


def _check_settings(mode: EndToEndSecurityMode, security: MessageSecurity | None) -> bool:
    """Whether ``mode`` has message security; refuse settings that would go unused.

    Raises:
        ConfigurationError: A message mode without settings, or settings with a
            mode that has no message security.
    """
    if mode not in MESSAGE_MODES:
        if security is not None:
            raise ConfigurationError(
                f"MessageSecurity settings were given but the binding's security is {mode.name};"
                " use security=EndToEndSecurityMode.MESSAGE (or TRANSPORT_WITH_MESSAGE_CREDENTIAL)"
            )
        return False
    if security is None:
        raise ConfigurationError(f"security mode {mode.name} needs MessageSecurity settings")
    return True


def security_plugin(
    mode: EndToEndSecurityMode, security: MessageSecurity | None
) -> WsSecurityPlugin | None:
    """The client plugin a binding's security mode needs, or None.

    Put it last among the client's plugins (see :mod:`bindings.zeep_security`).

    Raises:
        ConfigurationError: A message mode without settings, settings without a
            message mode, or settings that cannot meet the mode.
    """
    if not _check_settings(mode, security):
        return None
    assert security is not None  # checked above
    from bindings.zeep_security import WsSecurityPlugin

    hook = security.client_hook(mode)
    return None if hook is None else WsSecurityPlugin(hook)


def security_stage(
    mode: EndToEndSecurityMode, security: MessageSecurity | None
) -> SecurityStage | None:
    """The service's WS-Security step for ``mode``, or None when it has none.

    The Spyne pipeline runs it on the parsed request (:mod:`bindings.spyne_host`);
    :func:`secure_service` wraps any other WSGI app in it.

    Raises:
        ConfigurationError: A message mode without settings, settings without a
            message mode, or settings that cannot meet the mode.
    """
    if not _check_settings(mode, security):
        return None
    assert security is not None  # checked above
    policy = security.policy(mode, service=True)
    assert policy is not None  # a service in a message mode always has one
    signer = security.signer() if mode is EndToEndSecurityMode.MESSAGE else None
    timestamp = TimestampHook(ttl=security.timestamp_ttl, clock=security.clock)
    return SecurityStage(policy, signer=signer, timestamp=timestamp,
                         password_text_over_http=security.password_text_over_http)


def secure_service(
    app: WsgiApp,
    mode: EndToEndSecurityMode,
    security: MessageSecurity | None,
    *,
    max_body: int = 64 * 1024 * 1024,
) -> WsgiApp:
    """``app`` behind a :class:`WsSecurityMiddleware` when ``mode`` asks for one.

    Args:
        app: The WSGI application.
        mode: The binding's security mode; NONE and TRANSPORT return ``app``.
        security: The service's settings (required in the message modes).
        max_body: Largest request body the middleware reads, in bytes.

    Raises:
        ConfigurationError: A message mode without settings, settings without a
            message mode, or settings that cannot meet the mode.
    """
    stage = security_stage(mode, security)
    if stage is None:
        return app
    return WsSecurityMiddleware(
        app, stage.policy, signer=stage.signer, timestamp=stage.timestamp, max_body=max_body,
        password_text_over_http=stage.password_text_over_http,
    )


def __getattr__(name: str) -> Any:
    # The zeep plugin and its error import zeep (~0.3 s): only on first use.
    if name in ("UntrustedResponse", "WsSecurityPlugin"):
        from bindings import zeep_security

        return getattr(zeep_security, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
