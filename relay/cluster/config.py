"""The ``[cluster]`` table / ``--cluster`` flags: NATS servers, this node's URL and name.

No I/O.  NATS URLs may carry credentials (``nats://user:password@host:4222`` or
``nats://token@host:4222``); :meth:`ClusterConfig.redacted` is what logs and
errors show, never the URLs themselves.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from relay.exceptions import ConfigError

__all__ = ["ClusterConfig", "Route", "parse_nats_urls", "parse_node_url", "redact_url"]

_NATS_SCHEMES = ("nats", "tls")
_NODE_SCHEMES = ("http", "https")
#: A node name is one NATS subject token's worth of safe characters.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def redact_url(url: str) -> str:
    """``url`` without its user information: ``nats://***@host:4222``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"***@{host}").geturl()


def parse_nats_urls(text: str) -> tuple[str, ...]:
    """``nats://h:4222[,nats://h2:4222]`` as a tuple; ConfigError names the bad one (redacted)."""
    urls = tuple(u.strip() for u in text.split(",") if u.strip())
    if not urls:
        raise ConfigError("cluster: no NATS server URL given")
    for url in urls:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"cluster: malformed NATS URL {redact_url(url)!r}") from exc
        if parts.scheme not in _NATS_SCHEMES or not parts.hostname or port == 0:
            raise ConfigError(
                f"cluster: {redact_url(url)!r} is not a nats://HOST[:PORT] or tls://HOST[:PORT] URL"
            )
    return urls


def parse_node_url(text: str) -> str:
    """The URL listeners use to reach this node: ``http(s)://host:port``, no path."""
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(f"cluster: malformed node URL {text!r}") from exc
    if parts.scheme not in _NODE_SCHEMES or not parts.hostname or parts.username:
        raise ConfigError(f"cluster: node URL {text!r} must be http(s)://HOST[:PORT]")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"cluster: node URL {text!r} must not have a path or query")
    return f"{parts.scheme}://{parts.netloc}"


class Route(enum.Enum):
    """How a small (inline, at most 64 KiB) request crosses to the listener's node.

    ``NATS``: inside the NATS request, the listener's inline answer inside the NATS
    reply (no connection is opened per call).  ``RENDEZVOUS``: address-only, the
    listener opens a rendezvous on the sender's node for it (like a large body).
    Chosen by measurement (bench S7, docs/cluster.md): NATS is the default.
    """

    NATS = "nats"
    RENDEZVOUS = "rendezvous"


@dataclass(frozen=True)
class ClusterConfig:
    """Where the cluster's NATS is, and who this node is.

    Attributes:
        nats: NATS server URLs (credentials allowed; never shown, see :meth:`redacted`).
        node_url: how listeners reach this node for a rendezvous, ``http(s)://host:port``;
            the port may be 0 while unknown (``--workers`` fills it in once bound).
        node_name: this node's name in the cluster (default: host name and port).
        creds_file: a NATS credentials file (JWT + NKey seed), if the servers want one.
        small_requests: how small requests cross nodes (:class:`Route`).
        direct: ask nodes holding listeners over direct links (``relay.cluster.direct``),
            NATS being the fallback; False: every ask over NATS.
    """

    nats: tuple[str, ...]
    node_url: str
    node_name: str = ""
    creds_file: str | None = None
    small_requests: Route = Route.NATS
    direct: bool = True
    extra: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.node_name and not _NAME.match(self.node_name):
            raise ConfigError(
                f"cluster: node_name {self.node_name!r} must be 1..64 letters, digits, '-' or '_'"
            )

    def __repr__(self) -> str:
        return f"ClusterConfig(nats={self.redacted()!r}, node_url={self.node_url!r}, node_name={self.name!r})"

    @property
    def name(self) -> str:
        """The node's name: the configured one, or ``HOSTNAME-PORT`` of the node URL."""
        if self.node_name:
            return self.node_name
        parts = urlsplit(self.node_url)
        raw = f"{socket.gethostname()}-{parts.port or 0}"
        return re.sub(r"[^A-Za-z0-9_-]", "-", raw)[:64]

    def redacted(self) -> str:
        """The NATS URLs for logs: user information replaced by ``***``."""
        return ",".join(redact_url(url) for url in self.nats)

    def with_port(self, port: int) -> ClusterConfig:
        """The same, with ``node_url``'s port set (``--workers``: known once bound)."""
        parts = urlsplit(self.node_url)
        netloc = f"{parts.hostname}:{port}" if ":" not in (parts.hostname or "") else f"[{parts.hostname}]:{port}"
        return dataclasses.replace(self, node_url=f"{parts.scheme}://{netloc}")
