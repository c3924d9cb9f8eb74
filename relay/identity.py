"""Identity providers and roles: who a JWT's holder is, and what that lets them do. No I/O.

Azure Relay accepts Microsoft Entra ID tokens besides SAS, with three built-in roles
at namespace or entity scope; so does this relay, from any issuer configured as an
:class:`IdentityProvider` (``[[identity]]`` in the TOML, :mod:`relay.config`)::

    role      rights                          also accepted as (claim values)
    Owner     Manage + Listen + Send          "Azure Relay Owner", "Relay.Owner"
    Listener  Listen                          "Azure Relay Listener", "Relay.Listener"
    Sender    Send                            "Azure Relay Sender", "Relay.Sender"

A token's roles come from its role claim (``roles`` by default; they apply to the
whole namespace) and from the provider's :class:`RoleAssignment` entries, which map a
subject (``sub``) or a group (from the groups claim) to a role at namespace scope
(``scope = ""``) or on one entity (``scope = "payroll"``, which covers ``payroll``
and the paths under it), as Azure's role assignments do.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hc.entities import Rights

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "IdentityProvider",
    "Role",
    "RoleAssignment",
    "rights_for",
    "role_named",
]

#: The signature algorithms a token may use: public-key ones only. ``none`` and the
#: HMAC family are refused, so a token "signed" with a provider's public key as an
#: HMAC secret never verifies.
ASYMMETRIC_ALGORITHMS = frozenset({
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
})


class Role(enum.Enum):
    """Azure Relay's built-in roles."""

    OWNER = "Owner"
    LISTENER = "Listener"
    SENDER = "Sender"

    @property
    def rights(self) -> Rights:
        return _RIGHTS[self]


_RIGHTS = {
    Role.OWNER: Rights.MANAGE | Rights.LISTEN | Rights.SEND,
    Role.LISTENER: Rights.LISTEN,
    Role.SENDER: Rights.SEND,
}
_PREFIXES = ("azure relay ", "relay.", "relay ")


def role_named(text: str) -> Role | None:
    """The role a claim value names (``Listener``, ``Azure Relay Listener``...), or None."""
    name = text.strip().lower()
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return next((role for role in Role if role.value.lower() == name), None)


@dataclass(frozen=True)
class RoleAssignment:
    """A role given to a subject or a group, at namespace scope ("") or on an entity path."""

    role: Role
    subject: str | None = None
    group: str | None = None
    scope: str = ""

    def covers(self, path: str) -> bool:
        """Whether this assignment's scope includes the entity ``path`` (no leading '/')."""
        scope = self.scope.strip("/").lower()
        path = path.strip("/").lower()
        return not scope or path == scope or path.startswith(scope + "/")

    def applies_to(self, subject: str | None, groups: Iterable[str]) -> bool:
        if self.subject is not None:
            return subject == self.subject
        return self.group is not None and self.group in groups


@dataclass(frozen=True)
class IdentityProvider:
    """An issuer whose tokens the relay accepts.

    Attributes:
        issuer: the ``iss`` its tokens carry, exactly.
        audiences: the ``aud`` values accepted (one must match).
        jwks_uri: where its signing keys are; None: from OIDC discovery
            (``{issuer}/.well-known/openid-configuration``).
        role_claim: the claim holding role names (a string or a list of them).
        groups_claim: the claim holding group ids, for group assignments.
        clock_skew: seconds of leeway on ``exp`` and ``nbf``.
        refresh_floor: at least this many seconds between two fetches of its keys
            (a token with an unknown ``kid`` asks for a fetch; a flood of them may not
            make the relay hammer the provider).
        assignments: role assignments by subject or group.
    """

    issuer: str
    audiences: tuple[str, ...]
    jwks_uri: str | None = None
    role_claim: str = "roles"
    groups_claim: str = "groups"
    clock_skew: float = 60.0
    refresh_floor: float = 30.0
    assignments: tuple[RoleAssignment, ...] = ()

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)][:256]
    return []


def rights_for(claims: Mapping[str, object], provider: IdentityProvider, path: str) -> Rights:
    """The rights a token's claims give on the entity ``path``, from both sources."""
    rights = Rights.NONE
    for value in _strings(claims.get(provider.role_claim)):
        role = role_named(value)
        if role is not None:
            rights |= role.rights
    subject = claims.get("sub")
    subject = subject if isinstance(subject, str) else None
    groups = _strings(claims.get(provider.groups_claim))
    for assignment in provider.assignments:
        if assignment.covers(path) and assignment.applies_to(subject, groups):
            rights |= assignment.role.rights
    return rights
