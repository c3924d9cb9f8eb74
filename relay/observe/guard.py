"""Who may see inside the relay: a Manage token for the namespace. No I/O.

The console, its API, ``/$metrics`` and ``/$events`` answer only a request that
carries a SAS token granting **Manage** on the whole namespace (signed with a
namespace rule, scoped to its root), in the ``Authorization`` or
``ServiceBusAuthorization`` header or the ``sb-hc-token`` query parameter.  Send
and Listen tokens, entity-scoped tokens and anonymous requests are refused with
401 (no token, or one that does not verify) or 403 (a valid token without
Manage).  On the separate admin address (``[admin]``) no token is asked unless
``require_token`` is set: reaching that address is the credential.
"""

from __future__ import annotations

from collections.abc import Collection

from hc.entities import Rights
from hc.exceptions import HcError
from hc.headers import find_token
from hc.sas import Resource, SasVerifier
from relay.exceptions import AccessDenied, AuthError, RelayError, from_hc
from relay.namespace import NamespaceConfig
from relay.request_head import host_name

__all__ = ["check_manage"]


def check_manage(
    query: Collection[tuple[str, str]], headers: Collection[tuple[str, str]], host: str,
    namespace: NamespaceConfig, verifier: SasVerifier,
) -> None:
    """Raise ``AuthError``/``AccessDenied`` unless the request carries a Manage token."""
    token, _ = find_token(query, headers)
    if token is None:
        raise AuthError("a Manage token for the namespace is required")
    try:
        grant = verifier.verify(token, Resource(host_name(host), "/"), Rights.MANAGE,
                                namespace.rules)
    except HcError as exc:
        error = from_hc(exc)
        raise error from exc
    except RelayError:
        raise
    if Rights.MANAGE not in grant.rights:  # pragma: no cover - verify checks it
        raise AccessDenied("a Manage token is required")
