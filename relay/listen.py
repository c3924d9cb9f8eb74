"""A listener's handshake on the relay (``sb-hc-action=listen``, PROTOCOL.md §3, §6).

Which entity the listener gets (configured, or dynamic for a Manage token, with
the kind, discovery, client authorization and size it asks for), the failed
handshake throttle, and then its control channel (``relay.listeners``) until it
closes.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web

from hc.entities import ClientAuthorization, Discovery, EntityKind, Rights
from hc.headers import find_token, query_pairs
from hc.sas import Grant
from relay.exceptions import AuthError, BadRequest, EntityNotFound, RelayError, Throttled
from relay.listeners import ListenerConnection
from relay.routing import EntityState, normalize_path
from relay.wire import upgrade

if TYPE_CHECKING:
    from relay.server import RelayServer

__all__ = ["serve"]

_E = TypeVar("_E", bound=enum.Enum)
log = logging.getLogger("relay")


async def serve(server: RelayServer, request: web.Request, raw_path: str) -> web.StreamResponse:
    """Serve a listener's control channel (``sb-hc-action=listen``) until it closes."""
    path = normalize_path(raw_path)
    token, _ = find_token(query_pairs(request.rel_url.raw_query_string), request.headers.items())
    flood_key = f"{request.remote}|{path}|{token}"
    address = request.remote or ""
    if not (server.limiter.allowed(flood_key) and server.address_limiter.allowed(address)):
        raise Throttled("too many failed listener connections; slow down")
    try:
        state, grant = _listener_entity(server, request, path, token)
    except (AuthError, RelayError) as exc:
        if isinstance(exc, AuthError) or exc.status == 403:
            server.limiter.record_failure(flood_key)
            server.address_limiter.record_failure(address)
        raise
    connection = ListenerConnection(
        path,
        token_expiry=float(grant.expiry) + server.config.token_grace,
        check_renewal=lambda t: (
            float(_renewal_grant(server, request, state, t).expiry) + server.config.token_grace
        ),
        clock=server.clock,
    )
    state.add(connection)
    try:
        response = await upgrade(request)  # no permessage-deflate: PROTOCOL.md §3
        log.info("listener %s online on %s", connection.id, path)
        await connection.run(request)
        return response
    finally:
        state.remove(connection)
        server.registry.release(state)
        log.info("listener %s on %s gone", connection.id, path)
        connection.disconnect()  # TCP closes once the entity no longer lists it

def _renewal_grant(
    server: RelayServer, request: web.BaseRequest, state: EntityState[ListenerConnection], token: str | None
) -> Grant:
    grant = server.authorize(request, state, Rights.LISTEN, token)
    assert grant is not None
    return grant

def _listener_entity(
    server: RelayServer, request: web.Request, path: str, token: str | None
) -> tuple[EntityState[ListenerConnection], Grant]:
    state = server.registry.get(path)
    if state is not None:
        grant = _renewal_grant(server, request, state, token)
    else:
        state, grant = _create_dynamic(server, request, path, token)
    _check_requested_shape(request, state)
    return state, grant

def _create_dynamic(
    server: RelayServer, request: web.Request, path: str, token: str | None
) -> tuple[EntityState[ListenerConnection], Grant]:
    """PROTOCOL.md §6: a Manage listener creates an unconfigured entity by listening."""
    if not server.config.dynamic_entities:
        raise EntityNotFound(f"no entity {path!r} in this namespace")
    if token is None:
        raise AuthError("a SAS token is required to listen")
    grant = server.verify(
        token, server.resource(request, path), Rights.LISTEN, server.config.rules
    )
    if Rights.MANAGE not in grant.rights:
        raise EntityNotFound(
            f"no entity {path!r} in this namespace (a Manage token may create it by listening)"
        )
    kind = _enum_query(request, "sb-relay-kind", EntityKind.REQUEST_RESPONSE)
    discovery = _enum_query(request, "sb-relay-discovery", Discovery.PRIVATE)
    auth = _enum_query(request, "sb-relay-client-auth", ClientAuthorization.REQUIRED)
    advertised = request.query.get("sb-relay-max-message-size")
    if advertised is not None and not _positive_int(advertised):
        raise BadRequest(
            f"sb-relay-max-message-size={advertised[:40]!r} is not a positive number of bytes"
        )
    state = server.registry.create_dynamic(
        path, kind, discovery, requires_client_authorization=auth is ClientAuthorization.REQUIRED
    )
    if advertised is not None and not state.listeners:
        # A new entity refuses, at the edge, what its listener's binding would refuse.
        limit = min(state.config.max_message_size, int(advertised))
        state.config = dataclasses.replace(state.config, max_message_size=limit)
    return state, grant


def _check_requested_shape(request: web.Request, state: EntityState[ListenerConnection]) -> None:
    """A listener that names a kind or client authorization must get the entity it named."""
    kind = _enum_query(request, "sb-relay-kind", state.config.kind)
    if kind is not state.config.kind:
        raise BadRequest(f"entity {state.path!r} exists with kind {state.config.kind.value}")
    required = state.config.requires_client_authorization
    auth = _enum_query(
        request, "sb-relay-client-auth",
        ClientAuthorization.REQUIRED if required else ClientAuthorization.NONE,
    )
    if (auth is ClientAuthorization.REQUIRED) is not required:
        raise BadRequest(
            f"entity {state.path!r} exists with sb-relay-client-auth="
            f"{'required' if required else 'none'}"
        )


def _positive_int(text: str) -> bool:
    """Whether ``text`` is a positive decimal integer of at most 19 ASCII digits."""
    return 0 < len(text) <= 19 and text.isascii() and text.isdigit() and int(text) > 0


def _enum_query(request: web.Request, name: str, default: _E) -> _E:
    """An enum value from the query (``sb-relay-kind=oneway``), or ``default``."""
    value = request.query.get(name)
    if value is None:
        return default
    enum_type = type(default)
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum_type)
        raise BadRequest(f"{name}={value!r} is not one of {allowed}") from None
