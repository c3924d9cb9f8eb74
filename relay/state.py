"""What the relay's handlers read and share while it serves: one small object.

:class:`relay.server.RelayServer` owns the life cycle (sockets, sweeps, start and
stop) and makes one :class:`RelayState`; every handler (``relay.front``,
``relay.http_senders``, ``relay.ws_senders``, ``relay.listen``,
``relay.rendezvous``) gets that state and never the server, so no module of
``relay`` imports the server (``tests/relay/test_import_graph.py`` keeps it so).

Tests inject what they need through :meth:`RelayState.of`'s arguments (a clock,
randomness) or by replacing a field (``state.rng``, ``state.limiter``): every
field is public and handlers read them on each call.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hc.sas import SasVerifier
from relay.accepts import JoinedStreams, PendingAccept
from relay.budget import ByteBudget
from relay.client_errors import ClientErrorLog
from relay.cluster.seam import ClusterSeam
from relay.drain import CallGate
from relay.front_wire import FrontLimits
from relay.jwks import verifier_for
from relay.listeners import ListenerConnection, PendingRequest
from relay.namespace import NamespaceConfig
from relay.observe.observer import Observer
from relay.routing import EntityRegistry, FailureLimiter, RendezvousTable

__all__ = ["SOAP_TOKEN_SCAN_BUDGET", "SOAP_TOKEN_SCAN_LIMIT", "RelayState"]

#: Largest body the relay reads to look for a RelayAccessToken SOAP header.
SOAP_TOKEN_SCAN_LIMIT = 1024 * 1024
#: Bytes of such bodies held at once across all senders (``relay.budget``): 64 scans.
SOAP_TOKEN_SCAN_BUDGET = 64 * SOAP_TOKEN_SCAN_LIMIT

log = logging.getLogger("relay")


@dataclass(eq=False)
class RelayState:
    """The namespace, its entities and listeners, and the relay's shared limits.

    Attributes:
        config: the namespace (rules, entities, limits).
        clock: wall clock for token expiry (what ``verifier`` and listeners read).
        rng: randomness for choosing among listeners.
        registry: configured and dynamic entities, and their listeners.
        verifier: token verification with its caches: SAS (``hc.sas``), and JWTs of
            the configured identity providers (``relay.jwt_tokens``, ``relay.jwks``).
        rendezvous: single-use ids of address-only requests and accept addresses.
        limiter: failed listener handshakes per (address, path, token).
        address_limiter: failed listener handshakes per address alone, so that a
            client that changes its token on every attempt is held back too.
        calls: calls in flight, and whether new ones are taken (graceful shutdown).
        scan_budget: bytes of SOAP bodies read to look for a RelayAccessToken.
        limits: what a client may send, and how slowly (``relay.front_wire``).
        client_errors: the rate-limited WARNING lines about clients' mistakes.
        observer: metrics, inspector and diagnostic events (``relay.observe``).
        streams: the WebSocket sender-listener pairs joined now (``relay.accepts``).
        cluster: the node's cluster (``relay.cluster.seam``), or None.
        rendezvous_origin: this node's own origin for rendezvous addresses, or None.
        loop: the event loop the relay serves on (set by ``RelayServer.start``).
    """

    config: NamespaceConfig
    clock: Callable[[], float]
    rng: random.Random
    registry: EntityRegistry[ListenerConnection]
    verifier: SasVerifier
    rendezvous: RendezvousTable[PendingRequest | PendingAccept]
    limiter: FailureLimiter
    address_limiter: FailureLimiter
    calls: CallGate
    scan_budget: ByteBudget
    limits: FrontLimits
    client_errors: ClientErrorLog
    observer: Observer
    loop: asyncio.AbstractEventLoop | None = None
    streams: JoinedStreams = field(default_factory=JoinedStreams)
    #: A cluster node (``relay.cluster``): None on a single node.
    cluster: ClusterSeam | None = None
    #: ``ws(s)://host:port`` of THIS node for rendezvous addresses (a cluster's
    #: ``node_url``); None: the address the sender used.
    rendezvous_origin: str | None = None

    @classmethod
    def of(
        cls,
        config: NamespaceConfig,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> RelayState:
        """A fresh state for ``config``: no listener, nothing in flight."""
        registry: EntityRegistry[ListenerConnection] = EntityRegistry(config)
        return cls(
            config=config,
            clock=clock,
            rng=rng or random.Random(),
            registry=registry,
            verifier=verifier_for(config, clock),
            rendezvous=RendezvousTable(config.rendezvous_timeout),
            limiter=FailureLimiter(),
            address_limiter=FailureLimiter(burst=100, per_second=20),
            calls=CallGate(),
            scan_budget=ByteBudget(SOAP_TOKEN_SCAN_BUDGET),
            limits=FrontLimits.of(config),
            client_errors=ClientErrorLog(log),
            observer=Observer(config.observe, registry),
        )

    @property
    def running_loop(self) -> asyncio.AbstractEventLoop:
        """The loop the relay serves on; read instead of ``get_running_loop()``, which
        costs a ``getpid()`` per call on Python 3.11."""
        loop = self.loop
        if loop is None:
            raise RuntimeError("the relay is not started")
        return loop
