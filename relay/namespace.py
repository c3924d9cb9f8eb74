"""The namespace model: SAS rules, entities and the namespace that holds them.

Plain frozen dataclasses with no I/O; ``relay.config`` builds them from TOML and
the server consults them on every connection.  The words they are written in
(entity kinds, discovery, rights) are the protocol's and live in :mod:`hc.entities`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hc.entities import Discovery, EntityKind, Rights
from relay.cluster.config import ClusterConfig
from relay.identity import IdentityProvider
from relay.observe.settings import ObserveSettings

__all__ = [
    "DEFAULT_EVENT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_LISTENERS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_TIMEOUT",
    "EntityConfig",
    "NamespaceConfig",
    "SasRule",
]

DEFAULT_MAX_LISTENERS = 25
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
#: PROTOCOL.md §6: "Default max_message_size 64 KiB for oneway and event".
DEFAULT_EVENT_MAX_MESSAGE_SIZE = 64 * 1024
#: Longest entity path (Azure's limit for a Hybrid Connection name is 260 characters).
MAX_PATH_LENGTH = 260


@dataclass(frozen=True)
class SasRule:
    """A named shared access key and the rights it grants."""

    name: str
    key: str
    rights: Rights

    def __repr__(self) -> str:  # never show the key
        return f"SasRule(name={self.name!r}, rights={self.rights!r})"


@dataclass(frozen=True)
class EntityConfig:
    """One rendezvous address (a Hybrid Connection in Azure's terms)."""

    path: str
    kind: EntityKind = EntityKind.REQUEST_RESPONSE
    requires_client_authorization: bool = True
    discovery: Discovery = Discovery.PRIVATE
    max_listeners: int = DEFAULT_MAX_LISTENERS
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    timeout: float = DEFAULT_TIMEOUT
    rules: tuple[SasRule, ...] = ()
    dynamic: bool = False
    #: Origins (``https://app.example.com``, or ``*``) whose pages may read the relay's
    #: own answers on this entity (``relay.cors``); config only, never dynamic.
    cors_origins: tuple[str, ...] = ()

    @classmethod
    def for_kind(cls, path: str, kind: EntityKind, **options: object) -> EntityConfig:
        """An entity with the defaults of its kind (a smaller body limit for oneway/event)."""
        if kind is not EntityKind.REQUEST_RESPONSE:
            options.setdefault("max_message_size", DEFAULT_EVENT_MAX_MESSAGE_SIZE)
        return cls(path=path, kind=kind, **options)  # type: ignore[arg-type]


@dataclass(frozen=True)
class NamespaceConfig:
    """A namespace: its rules, its configured entities and where it listens."""

    name: str = "soaprelay"
    host: str = "127.0.0.1"
    port: int = 9350
    tls_cert: str | None = None
    tls_key: str | None = None
    rules: tuple[SasRule, ...] = ()
    entities: tuple[EntityConfig, ...] = ()
    dynamic_entities: bool = False
    #: Issuers whose JWTs are accepted besides SAS tokens (``relay.identity``).
    identities: tuple[IdentityProvider, ...] = ()
    #: Seconds of silence after which the relay pings a listener, and seconds a ping
    #: may go unanswered before the listener is dropped (``relay.listeners``, Liveness).
    ping_interval: float = 5.0
    pong_timeout: float = 3.0
    #: Seconds ``stop()`` lets calls in flight finish before it closes the listeners.
    shutdown_grace: float = 30.0
    rendezvous_timeout: float = 30.0
    #: Seconds a listener stays open past its token's expiry: hyco-https sends its
    #: renewToken every 3600 s whatever the token's lifetime, so with the default
    #: one-hour token it arrives just after ``se``.
    token_grace: float = 10.0
    max_header_size: int = 16 * 1024
    #: Most header fields in a request head (more: 431).
    max_headers: int = 100
    #: Open TCP connections at once (listeners, senders, rendezvous); past it a new one
    #: is answered 503 and closed.  Each is bounded (head, body, timeouts): this bounds
    #: their number, and so what a flood of them can make the relay hold.
    max_connections: int = 20_000
    #: Seconds from a connection's opening, or a request's first byte, to its complete head.
    header_timeout: float = 10.0
    #: Seconds a keep-alive connection may wait for its next request.
    idle_timeout: float = 15.0
    #: Seconds a request body may take, plus one per ``min_body_rate`` bytes received.
    body_timeout: float = 10.0
    #: Bytes per second a request body must keep up (on average) beyond ``body_timeout``.
    min_body_rate: int = 1000
    #: Metrics, inspector, events, webhooks and the admin address (``relay.observe``).
    observe: ObserveSettings = field(default_factory=ObserveSettings)
    #: The ``[cluster]`` table: NATS and this node (``relay.cluster``); None: one node.
    cluster: ClusterConfig | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False, repr=False)
