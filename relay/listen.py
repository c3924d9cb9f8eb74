"""A listener's handshake on the relay (``sb-hc-action=listen``, PROTOCOL.md §3, §6).

Which entity the listener gets (configured, or dynamic for a Manage token, with
the kind, discovery, client authorization and size it asks for), the failed
handshake throttle, and then its control channel (``relay.listeners``) until it
closes.
"""

from __future__ import annotations

import logging

from aiohttp import web

from hc.headers import find_token, query_pairs
from relay import access
from relay.exceptions import AuthError, ListenerQuotaExceeded, RelayError, Throttled
from relay.listeners import ListenerConnection
from relay.namespace import EntityConfig
from relay.routing import EntityState, normalize_path
from relay.state import RelayState
from relay.wire import upgrade

__all__ = ["serve"]

log = logging.getLogger("relay")


async def serve(relay: RelayState, request: web.Request, raw_path: str) -> web.StreamResponse:
    """Serve a listener's control channel (``sb-hc-action=listen``) until it closes."""
    path = normalize_path(raw_path)
    asked = access.AccessRequest(
        request.method, request.host, query_pairs(request.rel_url.raw_query_string),
        request.headers.items(), request.remote,
    )
    token, _ = find_token(asked.query, asked.headers)
    flood_key = f"{request.remote}|{path}|{token}"
    address = request.remote or ""
    if not (relay.limiter.allowed(flood_key) and relay.address_limiter.allowed(address)):
        raise Throttled("too many failed listener connections; slow down")
    state = relay.registry.get(path)
    decision = access.listen(asked, path, state, relay.config, relay.verifier)
    if _counts_as_failure(decision.error):
        relay.limiter.record_failure(flood_key)
        relay.address_limiter.record_failure(address)
    if decision.error is not None:
        relay.observer.listener_refused(path, decision.error)
    decision.check()
    if relay.cluster is not None:  # the quota counts the listeners of every node
        limit = (state.config if state is not None else _created(decision)).max_listeners
        await relay.cluster.check_quota(path, len(state.listeners) if state else 0, limit)
    entity = state if state is not None else relay.registry.create_dynamic(_created(decision))
    assert decision.expiry is not None
    grace = relay.config.token_grace
    connection = ListenerConnection(
        path,
        token_expiry=float(decision.expiry) + grace,
        check_renewal=lambda t: _renewed_expiry(relay, asked.host, entity, t) + grace,
        clock=relay.clock,
    )
    entity.add(connection)
    online = False
    try:
        if relay.cluster is not None:  # routed here cluster-wide before it is told ONLINE
            await relay.cluster.listener_added(entity)
        response = await upgrade(request)  # no permessage-deflate: PROTOCOL.md §3
        log.info("listener %s online on %s", connection.id, path)
        relay.observer.listener_registered(
            entity.path, connection.id, address, request.headers.get("User-Agent", ""))
        online = True
        await connection.run(request)
        return response
    finally:
        entity.remove(connection)
        relay.registry.release(entity)
        if relay.cluster is not None:
            relay.cluster.listener_removed(entity)
        log.info("listener %s on %s gone", connection.id, path)
        if online:
            relay.observer.listener_unregistered(
                entity.path, connection.id, address, connection.left_because)
        connection.disconnect()  # TCP closes once the entity no longer lists it


def _counts_as_failure(error: RelayError | None) -> bool:
    """A refused handshake that drains the client's bucket: a bad token or a 403, not
    a full entity (its listeners are not the client's mistake)."""
    if error is None or isinstance(error, ListenerQuotaExceeded):
        return False
    return isinstance(error, AuthError) or error.status == 403


def _created(decision: access.Decision) -> EntityConfig:
    if decision.create is None:
        raise RuntimeError("allowed on a path with no entity, yet no entity to create")
    return decision.create


def _renewed_expiry(
    relay: RelayState, host: str, state: EntityState[ListenerConnection], token: str
) -> float:
    """The renewed token's expiry; raises why it does not grant Listen on the entity now."""
    decision = access.renew(token, host, state, relay.config, relay.verifier).check()
    assert decision.expiry is not None
    return float(decision.expiry)
