"""The relay's exception tree.

Every error the relay reports to a peer knows the HTTP status it maps to
(PROTOCOL.md §5) and a short machine-readable ``code``::

    RelayError                         root of everything raised by ``relay``
    ├── ConfigError                    a namespace config the relay refuses to start with
    ├── AuthError                      401: token missing, malformed, bad signature, expired
    │   └── MalformedToken             the token text could not be parsed
    ├── AccessDenied                   403: valid token, wrong right or wrong entity
    ├── EntityNotFound                 404: no entity at that path
    ├── ListenerQuotaExceeded          403 on the listener handshake: max_listeners reached
    ├── NoListener                     502: the entity has no listener connected
    ├── ListenerGone                   502: the listener vanished mid-request
    ├── InvalidListenerResponse        502: the listener's answer cannot be forwarded
    ├── ListenerTimeout                504: the listener did not answer in time
    ├── MessageTooLarge                413: body over the entity's max_message_size
    ├── BadRequest                     400: malformed URL, query or request
    ├── RequestTimeout                 408: a request head or body arrived too slowly
    ├── HeaderFieldsTooLarge           431: request head over max_header_size or max_headers
    ├── VersionNotSupported            505: a request line not HTTP/1.1 or HTTP/1.0
    ├── RendezvousRejected             403: expired, reused or unknown rendezvous id
    ├── Throttled                      429: too many failed handshakes from one client
    ├── ShuttingDown                   503: the relay is stopping and takes no new work
    ├── TooManyConnections             503: max_connections are open; the new one is closed
    ├── KeysUnavailable                503: a JWT's signing key is being fetched from its issuer
    └── ProtocolViolation              the peer broke the control-channel protocol
        └── MalformedMessage           a control frame that is not a valid command

The protocol rules themselves live in the sans-I/O core, which raises
:mod:`hc.exceptions`.  Three classes here are also the core's, so that an
``except`` written against either tree catches them: ``ProtocolViolation`` is an
``hc.exceptions.RemoteProtocolError``, ``MalformedMessage`` and ``MalformedToken``
are ``hc.exceptions.MalformedMessage`` and ``hc.exceptions.MalformedToken``.
What the core raises becomes a relay error at the boundary, where the relay
calls it: :func:`from_hc` (same message, the relay's status and code).
"""

from __future__ import annotations

from hc import exceptions as hc_errors

__all__ = [
    "AccessDenied",
    "AuthError",
    "BadRequest",
    "ConfigError",
    "EntityNotFound",
    "HeaderFieldsTooLarge",
    "InvalidListenerResponse",
    "KeysUnavailable",
    "ListenerGone",
    "ListenerQuotaExceeded",
    "ListenerTimeout",
    "MalformedMessage",
    "MalformedToken",
    "MessageTooLarge",
    "NoListener",
    "ProtocolViolation",
    "RelayError",
    "RendezvousRejected",
    "RequestTimeout",
    "ShuttingDown",
    "Throttled",
    "TooManyConnections",
    "VersionNotSupported",
    "from_hc",
]


class RelayError(Exception):
    """Root of the relay's errors; ``status`` and ``code`` describe it on the wire."""

    status: int = 500
    code: str = "InternalError"


class ConfigError(RelayError):
    """A config the relay refuses to start with; the message names file, key and reason."""

    code = "ConfigError"


class AuthError(RelayError):
    status = 401
    code = "Unauthorized"


class MalformedToken(AuthError, hc_errors.MalformedToken):
    code = "MalformedToken"


class AccessDenied(RelayError):
    status = 403
    code = "Forbidden"


class EntityNotFound(RelayError):
    status = 404
    code = "EntityNotFound"


class ListenerQuotaExceeded(RelayError):
    status = 403
    code = "ListenerQuotaExceeded"


class NoListener(RelayError):
    status = 502
    code = "NoListener"


class ListenerGone(RelayError):
    status = 502
    code = "ListenerGone"


class InvalidListenerResponse(RelayError):
    status = 502
    code = "InvalidListenerResponse"


class ListenerTimeout(RelayError):
    status = 504
    code = "ListenerTimeout"


class MessageTooLarge(RelayError):
    status = 413
    code = "MessageTooLarge"


class BadRequest(RelayError):
    status = 400
    code = "BadRequest"


class RequestTimeout(RelayError):
    """The sender's head or body arrived slower than the namespace's timeouts allow."""

    status = 408
    code = "RequestTimeout"


class HeaderFieldsTooLarge(RelayError):
    status = 431
    code = "RequestHeaderFieldsTooLarge"


class VersionNotSupported(RelayError):
    status = 505
    code = "HttpVersionNotSupported"


class RendezvousRejected(RelayError):
    status = 403
    code = "RendezvousRejected"


class Throttled(RelayError):
    status = 429
    code = "Throttled"


class TooManyConnections(RelayError):
    status = 503
    code = "ServerBusy"


class ShuttingDown(RelayError):
    status = 503
    code = "ServiceUnavailable"


class KeysUnavailable(RelayError):
    """A JWT's signing key is not known yet and is being fetched from its issuer."""

    status = 503
    code = "ServiceUnavailable"


class ProtocolViolation(RelayError, hc_errors.RemoteProtocolError):
    """The peer (a listener) broke the control-channel protocol."""

    status = 400
    code = "ProtocolViolation"


class MalformedMessage(ProtocolViolation, hc_errors.MalformedMessage):
    code = "MalformedMessage"


#: The core's errors and the relay's for them, most specific first.
_FROM_HC: tuple[tuple[type[hc_errors.HcError], type[RelayError]], ...] = (
    (hc_errors.MalformedToken, MalformedToken),
    (hc_errors.TokenRejected, AuthError),
    (hc_errors.AccessDenied, AccessDenied),
    (hc_errors.MalformedMessage, MalformedMessage),
    (hc_errors.RemoteProtocolError, ProtocolViolation),
    (hc_errors.InvalidConnectionString, BadRequest),
)


def from_hc(error: hc_errors.HcError) -> RelayError:
    """The relay's error for one the core raised; the relay's own errors pass unchanged.

    Anything unmapped (a ``LocalProtocolError``: a bug of ours) is a plain 500.
    Raise it ``from`` the original so that the cause stays in the chain.
    """
    if isinstance(error, RelayError):
        return error
    for core, relay in _FROM_HC:
        if isinstance(error, core):
            return relay(str(error))
    return RelayError(str(error))
