"""The one narrow seam between the relay's hot path and the cluster.

``relay.state.RelayState.cluster`` is None on a single node (nothing changes, no
NATS needed) or an object with these methods (``relay.cluster.node.ClusterNode``).
The relay calls it only where a single node would have answered "no listener
here", plus the listener handshake (quota, subscribing) and the event fan-out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from hc.messages import Headers
from relay.listeners import ListenerConnection
from relay.namespace import EntityConfig
from relay.routing import EntityState
from relay.sender_io import SenderRequest

__all__ = ["LINK_PATH", "ClusterSeam", "EventParts"]

#: Where a node takes the other nodes' direct links (``relay.cluster.direct``).
LINK_PATH = "/$cluster/link"


class EventParts(Protocol):
    """What an event fan-out needs of the sender's request (``http_senders._Exchange``)."""

    request: SenderRequest
    headers: Headers
    target: str


class ClusterSeam(Protocol):
    def remote(self, state: EntityState[ListenerConnection]) -> ListenerConnection:
        """A listener of ``state`` on another node (raises NoListener when the cluster
        is unreachable)."""

    async def scatter_event(
        self, state: EntityState[ListenerConnection], parts: EventParts, body: bytes
    ) -> int:
        """Deliver an event to every other node's listeners; how many acknowledged."""

    async def check_quota(self, path: str, local: int, limit: int) -> None:
        """Raise ListenerQuotaExceeded when the namespace holds ``limit`` listeners on ``path``."""

    async def listener_added(self, state: EntityState[ListenerConnection]) -> None:
        """A listener is online here: make sure the cluster routes ``state`` to this node."""

    def listener_removed(self, state: EntityState[ListenerConnection]) -> None:
        """A listener left: stop routing ``state`` here when it was the last one."""

    async def serve_link(self, request: web.BaseRequest) -> web.StreamResponse:
        """Another node's direct link on ``relay.cluster.direct.LINK_PATH``, until it closes
        (refused 401/403 without this node's ticket)."""

    def feed(self) -> list[EntityConfig]:
        """Public entities with listeners on other nodes (the discovery feed's rest)."""

    def health(self) -> dict[str, Any]:
        """The node's view of the cluster, for the health endpoint."""

    async def console_parts(
        self, kind: str, after: Mapping[str, int] | None = None
    ) -> dict[str, dict[str, Any] | None]:
        """The other nodes' parts of console view ``kind`` ("namespace", "charts",
        "calls"), by node name; None for a node that did not answer in time."""

    async def console_call(self, node: str, seq: int) -> tuple[bool, dict[str, Any] | None]:
        """Whether ``node`` answered in time, and its inspector's call ``seq``."""
