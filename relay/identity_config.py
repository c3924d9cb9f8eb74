"""The ``[[identity]]`` tables of the TOML config: identity providers and role assignments.

::

    [[identity]]                          # at most 8
    issuer = "https://login.microsoftonline.com/TENANT-ID/v2.0"   # the tokens' iss, exactly
    audience = "https://relay.azure.net/"  # or a list; one must be the token's aud
    jwks_uri = "https://login.microsoftonline.com/TENANT-ID/discovery/v2.0/keys"
                                          # optional: default from OIDC discovery
    role_claim = "roles"                  # claim with role names (Owner, Listener, Sender)
    groups_claim = "groups"               # claim with group ids, for group assignments
    clock_skew = 60                       # seconds of leeway on exp and nbf
    refresh_floor = 30                    # seconds between two fetches of its keys, at least

    [[identity.assignment]]               # at most 256 per provider
    subject = "5f1e..."                   # the token's sub; or group = "GROUP-ID"
    role = "Listener"                     # Owner | Listener | Sender
    scope = "payroll"                     # an entity path; "" or absent: the namespace

Errors are :class:`~relay.exceptions.ConfigError` naming the key path, e.g.
``relay.toml: identity[0].assignment[1].role: unknown role 'Reader' (expected
Owner, Listener or Sender)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from relay.exceptions import ConfigError
from relay.identity import IdentityProvider, Role, RoleAssignment, role_named

__all__ = ["MAX_ASSIGNMENTS", "MAX_IDENTITIES", "identities"]

MAX_IDENTITIES = 8
MAX_ASSIGNMENTS = 256
_KEYS = ("issuer", "audience", "jwks_uri", "role_claim", "groups_claim", "clock_skew",
         "refresh_floor", "assignment")
_ASSIGNMENT_KEYS = ("subject", "group", "role", "scope")
#: error(key path, reason) -> the ConfigError to raise.
Error = Callable[[str, str], ConfigError]


def identities(data: object, error: Error) -> tuple[IdentityProvider, ...]:
    """The providers of ``[[identity]]`` (``data`` is its parsed value, None when absent)."""
    if data is None:
        return ()
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise error("identity", "must be an array of tables ([[identity]])")
    if len(data) > MAX_IDENTITIES:
        raise error("identity", f"at most {MAX_IDENTITIES} identity providers, found {len(data)}")
    providers = [_provider(item, f"identity[{i}]", error) for i, item in enumerate(data)]
    seen = [provider.issuer for provider in providers]
    for i, issuer in enumerate(seen):
        if issuer in seen[:i]:
            raise error(f"identity[{i}].issuer", f"duplicate issuer {issuer!r}")
    return tuple(providers)


def _provider(table: dict[str, Any], where: str, error: Error) -> IdentityProvider:
    _known(table, _KEYS, where, error)
    issuer = _url(table, "issuer", where, error, required=True)
    audience = table.get("audience")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or not audiences or not all(
            isinstance(a, str) and a.strip() for a in audiences):
        raise error(f"{where}.audience", "is required: a non-empty string or list of strings")
    assignments = table.get("assignment", [])
    if not isinstance(assignments, list) or not all(isinstance(a, dict) for a in assignments):
        raise error(f"{where}.assignment", "must be an array of tables ([[identity.assignment]])")
    if len(assignments) > MAX_ASSIGNMENTS:
        raise error(f"{where}.assignment", f"at most {MAX_ASSIGNMENTS} assignments")
    return IdentityProvider(
        issuer=issuer,
        audiences=tuple(audiences),
        jwks_uri=_url(table, "jwks_uri", where, error, required=False) or None,
        role_claim=_name(table, "role_claim", "roles", where, error),
        groups_claim=_name(table, "groups_claim", "groups", where, error),
        clock_skew=_seconds(table, "clock_skew", 60.0, 0.0, 3600.0, where, error),
        refresh_floor=_seconds(table, "refresh_floor", 30.0, 0.1, 86400.0, where, error),
        assignments=tuple(_assignment(item, f"{where}.assignment[{i}]", error)
                          for i, item in enumerate(assignments)),
    )


def _assignment(table: dict[str, Any], where: str, error: Error) -> RoleAssignment:
    _known(table, _ASSIGNMENT_KEYS, where, error)
    subject, group = table.get("subject"), table.get("group")
    if (subject is None) == (group is None):
        raise error(where, "give exactly one of subject or group")
    for key, value in (("subject", subject), ("group", group)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise error(f"{where}.{key}", "must be a non-empty string")
    name = table.get("role")
    role = role_named(name) if isinstance(name, str) else None
    if role is None:
        expected = ", ".join(r.value for r in Role)
        raise error(f"{where}.role", f"unknown role {name!r} (expected one of: {expected})")
    scope = table.get("scope", "")
    if not isinstance(scope, str):
        raise error(f"{where}.scope", "must be an entity path (a string)")
    return RoleAssignment(role, subject, group, scope.strip("/"))


def _known(table: dict[str, Any], keys: tuple[str, ...], where: str, error: Error) -> None:
    for key in table:
        if key not in keys:
            raise error(f"{where}.{key}", f"unknown key (expected: {', '.join(keys)})")


def _url(table: dict[str, Any], key: str, where: str, error: Error, *, required: bool) -> str:
    value = table.get(key)
    if value is None and not required:
        return ""
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise error(f"{where}.{key}", "must be an https:// (or http://) URL")
    return str(value)


def _name(table: dict[str, Any], key: str, default: str, where: str, error: Error) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise error(f"{where}.{key}", "must be a claim name")
    return value


def _seconds(table: dict[str, Any], key: str, default: float, low: float, high: float,
             where: str, error: Error) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise error(f"{where}.{key}", f"must be a number of seconds from {low:g} to {high:g}")
    return float(value)
