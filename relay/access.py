"""Who may do what on the relay: access decisions from plain values. No I/O.

Every path that acts for a client asks here before it acts::

    send    an HTTP sender (relay.http_senders) or a WebSocket sender (relay.ws_senders):
            the Send right on the entity, or no token at all when the entity does not
            require client authorization; a CORS preflight from one of the entity's
            origins is the relay's to answer (204), never the listener's
    listen  a listener's handshake (relay.listen): Listen on a configured or existing
            entity, in the kind and client authorization it asks for, within the
            entity's listener quota; on a path with no entity, a Manage token creates
            one when the namespace allows dynamic entities (PROTOCOL.md §6)
    renew   a listener's renewToken: Listen on its entity again, now
    feed    the discovery feed (GET /): public entities with a listener, no token

The inputs are plain values: an :class:`AccessRequest` (method, ``Host``, query
and header pairs, remote address), the entity's state, the namespace config and
its rules, and the :class:`hc.sas.SasVerifier` whose clock is "now".  The answer
is a :class:`Decision`: the rights granted and until when, or the
:class:`relay.exceptions.RelayError` naming why not.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection, Iterable
from typing import Any, TypeVar

from hc.entities import ClientAuthorization, Discovery, EntityKind, Rights
from hc.exceptions import HcError
from hc.headers import TokenLocation, find_token
from hc.sas import SasVerifier
from relay import cors
from relay.exceptions import AuthError, BadRequest, EntityNotFound, RelayError, from_hc
from relay.namespace import EntityConfig, NamespaceConfig, SasRule
from relay.request_head import host_name
from relay.routing import EntityState

__all__ = ["AccessRequest", "Decision", "feed", "listen", "renew", "send"]

_E = TypeVar("_E", bound=enum.Enum)
#: No right: what an anonymous sender on an entity without client authorization has.
NO_RIGHTS = Rights(0)


@dataclasses.dataclass(frozen=True)
class AccessRequest:
    """What access decisions read of a request (one is made per relayed call).

    Attributes:
        method: the HTTP method.
        host: the ``Host`` the client used, validated (the SAS resource's host).
        query: the query's (name, value) pairs, decoded.
        headers: the header (name, value) pairs, in order; read more than once.
        remote: the client's address, when known.
    """

    method: str
    host: str
    query: Collection[tuple[str, str]]
    headers: Collection[tuple[str, str]]
    remote: str | None = None

    # Written out, not generated: compiled by mypyc, a dataclass's generated __init__
    # (or a NamedTuple's __new__) stays interpreted, ~0.5 us a call; this one compiles.
    # Same parameters and defaults as the fields (tests/relay/test_access.py checks).
    def __init__(
        self, method: str, host: str, query: Collection[tuple[str, str]],
        headers: Collection[tuple[str, str]], remote: str | None = None,
    ) -> None:
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "query", query)
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "remote", remote)


@dataclasses.dataclass(frozen=True)
class Decision:
    """The answer to one access question.

    Attributes:
        error: why not; ``None`` when allowed.
        rights: what the token grants (``NO_RIGHTS`` without a token).
        expiry: the token's expiry (seconds since the epoch), ``None`` without one.
        token_location: where the token was found, so that it is not forwarded.
        create: for a listener on a path with no entity, the dynamic entity to make.
    """

    error: RelayError | None = None
    rights: Rights = NO_RIGHTS
    expiry: int | None = None
    token_location: TokenLocation | None = None
    create: EntityConfig | None = None

    # Written out, as AccessRequest's (tests/relay/test_access.py checks).
    def __init__(
        self, error: RelayError | None = None, rights: Rights = NO_RIGHTS,
        expiry: int | None = None, token_location: TokenLocation | None = None,
        create: EntityConfig | None = None,
    ) -> None:
        object.__setattr__(self, "error", error)
        object.__setattr__(self, "rights", rights)
        object.__setattr__(self, "expiry", expiry)
        object.__setattr__(self, "token_location", token_location)
        object.__setattr__(self, "create", create)

    @property
    def allowed(self) -> bool:
        return self.error is None

    def check(self) -> Decision:
        """This decision if allowed; else raises its error."""
        if self.error is not None:
            raise self.error
        return self


def send(
    request: AccessRequest,
    entity: EntityState[Any],
    namespace: NamespaceConfig,
    verifier: SasVerifier,
    *,
    soap_token: str | None = None,
    scan_refused: bool = False,
) -> Decision:
    """May this sender send to ``entity``?

    Args:
        request: the sender's request.
        entity: the entity its path names.
        namespace: the namespace (its rules count on every entity).
        verifier: verifies tokens against the clock's "now".
        soap_token: a RelayAccessToken from the SOAP body (PROTOCOL.md §6); used
            only when neither the query nor an HTTP header carries a token.
        scan_refused: the body was not read for a SOAP token (the relay's scan
            budget was spent), so a missing token may be in it.
    """
    config = entity.config
    if request.method == "OPTIONS" and config.cors_origins:
        preflight = _preflight(request, config.cors_origins)
        if preflight is not None:
            return Decision(preflight)
    token, where = find_token(request.query, request.headers)
    if token is None and soap_token is not None:
        token, where = soap_token, TokenLocation.SOAP_HEADER
    if token is None:
        if not config.requires_client_authorization:
            return Decision()
        if scan_refused:
            return Decision(AuthError(
                "a SAS token is required; the relay is too busy to look for a RelayAccessToken"
                " in a body this large now: send it in the ServiceBusAuthorization header"
            ))
        return Decision(
            AuthError("a SAS token is required (ServiceBusAuthorization header or sb-hc-token)")
        )
    rules = (*config.rules, *namespace.rules)
    return _verified(verifier, token, where, request.host, config.path, Rights.SEND, rules)


def listen(
    request: AccessRequest,
    path: str,
    entity: EntityState[Any] | None,
    namespace: NamespaceConfig,
    verifier: SasVerifier,
) -> Decision:
    """May this listener listen on ``path``, whose entity is ``entity`` (``None``: none yet)?

    Allowed on a path with no entity, the decision's ``create`` is the dynamic
    entity to make, shaped as the listener asked (``sb-relay-kind``,
    ``sb-relay-discovery``, ``sb-relay-client-auth``, ``sb-relay-max-message-size``).
    """
    token, where = find_token(request.query, request.headers)
    if entity is None:
        return _dynamic(request, path, token, where, namespace, verifier)
    rules = (*entity.config.rules, *namespace.rules)
    decision = _verified(verifier, token, where, request.host, path, Rights.LISTEN, rules)
    if decision.error is not None:
        return decision
    error = _shape_mismatch(request.query, entity.config) or entity.quota_exceeded()
    return dataclasses.replace(decision, error=error) if error is not None else decision


def renew(
    token: str, host: str, entity: EntityState[Any], namespace: NamespaceConfig,
    verifier: SasVerifier,
) -> Decision:
    """A listener's ``renewToken``: does ``token`` grant Listen on its entity now?"""
    rules = (*entity.config.rules, *namespace.rules)
    return _verified(verifier, token, None, host, entity.path, Rights.LISTEN, rules)


def feed(entities: Iterable[EntityState[Any]]) -> list[EntityConfig]:
    """The entities anyone may see in the discovery feed: public, with a listener."""
    return [
        state.config for state in entities
        if state.config.discovery is Discovery.PUBLIC and state.listeners
    ]


def _verified(
    verifier: SasVerifier, token: str | None, where: TokenLocation | None, host: str,
    path: str, needed: Rights, rules: tuple[SasRule, ...],
) -> Decision:
    if token is None:
        what = "listen" if needed is Rights.LISTEN else "send"
        return Decision(AuthError(f"a SAS token is required to {what}"))
    try:
        grant = verifier.verify_at(token, host_name(host), "/" + path, needed, rules)
    except HcError as exc:
        error = from_hc(exc)
        error.__cause__ = exc
        return Decision(error)
    except RelayError as exc:  # a malformed Host
        return Decision(exc)
    return Decision(None, grant.rights, grant.expiry, where)


def _preflight(request: AccessRequest, origins: tuple[str, ...]) -> RelayError | None:
    """A CORS preflight from one of ``origins``, as the relay's own answer (204)."""
    headers = {name.title(): value for name, value in reversed(list(request.headers))}
    if cors.is_preflight(request.method, headers):
        origin = cors.allowed_origin(origins, headers.get("Origin"))
        if origin is not None:
            return cors.CorsPreflight(origin)
    return None


def _dynamic(
    request: AccessRequest, path: str, token: str | None, where: TokenLocation | None,
    namespace: NamespaceConfig, verifier: SasVerifier,
) -> Decision:
    """PROTOCOL.md §6: a Manage listener creates an unconfigured entity by listening."""
    if not namespace.dynamic_entities:
        return Decision(EntityNotFound(f"no entity {path!r} in this namespace"))
    decision = _verified(verifier, token, where, request.host, path, Rights.LISTEN, namespace.rules)
    if decision.error is not None:
        return decision
    if Rights.MANAGE not in decision.rights:
        return Decision(EntityNotFound(
            f"no entity {path!r} in this namespace (a Manage token may create it by listening)"
        ))
    try:
        create = _requested_entity(request.query, path)
    except BadRequest as exc:
        return Decision(exc)
    return dataclasses.replace(decision, create=create)


def _requested_entity(query: Collection[tuple[str, str]], path: str) -> EntityConfig:
    """The dynamic entity a Manage listener asks for in its query."""
    kind = _enum_query(query, "sb-relay-kind", EntityKind.REQUEST_RESPONSE)
    discovery = _enum_query(query, "sb-relay-discovery", Discovery.PRIVATE)
    auth = _enum_query(query, "sb-relay-client-auth", ClientAuthorization.REQUIRED)
    advertised = _query_value(query, "sb-relay-max-message-size")
    if advertised is not None and not _positive_int(advertised):
        raise BadRequest(
            f"sb-relay-max-message-size={advertised[:40]!r} is not a positive number of bytes"
        )
    config = EntityConfig.for_kind(
        path, kind, discovery=discovery, dynamic=True,
        requires_client_authorization=auth is ClientAuthorization.REQUIRED,
    )
    if advertised is not None:
        # A new entity refuses, at the edge, what its listener's binding would refuse.
        limit = min(config.max_message_size, int(advertised))
        config = dataclasses.replace(config, max_message_size=limit)
    return config


def _shape_mismatch(query: Collection[tuple[str, str]], config: EntityConfig) -> RelayError | None:
    """A listener that names a kind or client authorization must get the entity it named."""
    try:
        kind = _enum_query(query, "sb-relay-kind", config.kind)
        required = config.requires_client_authorization
        auth = _enum_query(
            query, "sb-relay-client-auth",
            ClientAuthorization.REQUIRED if required else ClientAuthorization.NONE,
        )
    except BadRequest as exc:
        return exc
    if kind is not config.kind:
        return BadRequest(f"entity {config.path!r} exists with kind {config.kind.value}")
    if (auth is ClientAuthorization.REQUIRED) is not required:
        return BadRequest(
            f"entity {config.path!r} exists with sb-relay-client-auth="
            f"{'required' if required else 'none'}"
        )
    return None


def _query_value(query: Collection[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in query if key == name), None)


def _positive_int(text: str) -> bool:
    """Whether ``text`` is a positive decimal integer of at most 19 ASCII digits."""
    return 0 < len(text) <= 19 and text.isascii() and text.isdigit() and int(text) > 0


def _enum_query(query: Collection[tuple[str, str]], name: str, default: _E) -> _E:
    """An enum value from the query (``sb-relay-kind=oneway``), or ``default``."""
    value = _query_value(query, name)
    if value is None:
        return default
    enum_type = type(default)
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum_type)
        raise BadRequest(f"{name}={value!r} is not one of {allowed}") from None
