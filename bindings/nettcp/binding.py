"""``NetTcpRelayBinding``: persistent duplex session channels (WCF's ``NetTcpRelayBinding``).

One relayed WebSocket per client carries many calls (SOAP 1.2 + WS-Addressing, one
envelope per WebSocket message, replies matched by ``RelatesTo``), the service's
callbacks to the client, and, in :attr:`ConnectionMode.HYBRID`, moves to a direct
connection when both sides can reach each other (docs/nettcp.md).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from bindings.binding import RelayBinding

__all__ = ["ConcurrencyMode", "ConnectionMode", "NetTcpRelayBinding"]


class ConnectionMode(enum.Enum):
    """WCF's ``TcpRelayConnectionMode``."""

    #: Every message travels through the relay.
    RELAYED = "relayed"
    #: Relayed first; moved to a direct connection when the listener offers one that works.
    HYBRID = "hybrid"


class ConcurrencyMode(enum.Enum):
    """WCF's ``ConcurrencyMode`` for the calls of one session."""

    #: One call at a time per session, in the order they arrived.
    SINGLE = "single"
    #: Calls of a session run at once (up to ``max_calls_per_session``).
    MULTIPLE = "multiple"


@dataclass(frozen=True)
class NetTcpRelayBinding(RelayBinding):
    """Sessions over one relayed WebSocket per client, with callbacks (docs/nettcp.md).

    Attributes:
        connection_mode: RELAYED, or HYBRID (the direct-connection upgrade).
        concurrency_mode: SINGLE (a session's calls in order) or MULTIPLE.
        max_sessions: sessions one host serves at once; the next is closed with 1013.
        max_calls_per_session: calls of one session in flight at once, on either
            side; a call over it is answered with a ``ServerTooBusy`` fault.
        call_timeout: seconds a client waits for a reply before the call fails
            (the zeep client's ``operation_timeout`` when given).
        hybrid_host: the address the listener's direct endpoint binds to
            (HYBRID; ``None`` takes the address the relay connection goes out from).
        inline_calls: the host runs each call in its event loop's thread, not in a
            worker thread (WCF's ``UseSynchronizationContext``): no thread hand-off
            per call (which the default host also avoids for a serial session over
            plain TCP: its own thread reads it and runs its calls), for services
            whose methods never block
            (no I/O, no sleeps, no callbacks to the client: those fail with an
            error naming this option).
            Calls then run one at a time per host, whatever ``concurrency_mode`` says.
            Off by default, as a Spyne method may block.

    ``keepalive_interval`` / ``keepalive_timeout`` apply to the channel too: each side
    sends a KeepAlive message every interval, and a session whose peer does not answer
    within the timeout is ended (every call in flight fails at once).
    """

    connection_mode: ConnectionMode | str = ConnectionMode.RELAYED
    concurrency_mode: ConcurrencyMode | str = ConcurrencyMode.SINGLE
    max_sessions: int = 100
    max_calls_per_session: int = 32
    call_timeout: float = 120.0
    hybrid_host: str | None = None
    inline_calls: bool = False

    soap_version: ClassVar[str | None] = "1.2"
    addressing: ClassVar[bool] = True
    #: Calls travel on a session channel, not as HTTP requests (the WSDL is still fetched).
    session_channel: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "connection_mode", ConnectionMode(self.connection_mode))
        object.__setattr__(self, "concurrency_mode", ConcurrencyMode(self.concurrency_mode))
        if self.max_sessions < 1 or self.max_calls_per_session < 1:
            raise ValueError("max_sessions and max_calls_per_session must be at least 1")
        if self.call_timeout <= 0:
            raise ValueError("call_timeout must be a positive number of seconds")
