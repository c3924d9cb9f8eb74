"""Entity kinds and SAS rights: the vocabulary both sides of the protocol share. No I/O.

PROTOCOL.md §2 (rights) and §6 (entity kinds, discovery, client authorization).
The relay's configuration model (:mod:`relay.namespace`) and the bindings'
binding types (:mod:`bindings.binding`) are both written in these terms.
"""

from __future__ import annotations

import enum

__all__ = ["ClientAuthorization", "Discovery", "EntityKind", "Rights"]


class Rights(enum.Flag):
    """SAS rights; ``MANAGE`` implies both others (PROTOCOL.md §2)."""

    NONE = 0
    LISTEN = enum.auto()
    SEND = enum.auto()
    MANAGE = enum.auto()

    @classmethod
    def parse(cls, names: list[str] | tuple[str, ...]) -> Rights:
        """``["Listen", "Send"]`` -> ``LISTEN | SEND``; raises ``ValueError`` on unknown names."""
        rights = cls.NONE
        for name in names:
            member = cls.__members__.get(name.strip().upper(), cls.NONE)
            if member is cls.NONE:  # "None" is not a right a rule can grant
                raise ValueError(f"unknown right {name!r} (expected Listen, Send or Manage)")
            rights |= member
        return rights

    def grants(self, needed: Rights) -> bool:
        """True when these rights include ``needed`` (Manage counts as Listen and Send)."""
        effective = self | (Rights.LISTEN | Rights.SEND) if Rights.MANAGE in self else self
        return needed in effective


class EntityKind(enum.Enum):
    REQUEST_RESPONSE = "request-response"
    ONEWAY = "oneway"
    EVENT = "event"


class Discovery(enum.Enum):
    PUBLIC = "public"
    PRIVATE = "private"


class ClientAuthorization(enum.Enum):
    """``sb-relay-client-auth`` on a dynamic entity's first listener (PROTOCOL.md §6)."""

    REQUIRED = "required"
    NONE = "none"
