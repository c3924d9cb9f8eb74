"""What a relayed call puts on the wire at each end, and the end of its timer.

The ``request`` command a listener gets, the status, reason and headers the
sender gets for the listener's answer, and the timeout that fails a call its
listener did not answer: per call, for the front's calls (``relay.front_calls``)
and ``relay.http_senders`` alike.  Kept apart from ``relay.http_senders`` so that
the accelerated build compiles them (that module stays Python).
"""

from __future__ import annotations

import itertools
import logging

from hc.headers import forwarded_response_headers, oversized_head, reason_phrase
from hc.messages import Headers, RequestCommand
from relay.exceptions import InvalidListenerResponse, ListenerTimeout
from relay.listeners import ListenerConnection
from relay.pending import PendingRequest, RelayedReply
from relay.sender_io import SenderRequest

__all__ = ["reply_head", "request_command", "request_ids", "time_out"]

log = logging.getLogger("relay.http")
#: The ids of the requests this relay sends to its listeners (events' copies too).
request_ids = itertools.count(1)


def request_command(
    request: SenderRequest, listener: ListenerConnection, ident: str, target: str,
    headers: Headers, has_body: bool, origin: str | None = None,
) -> RequestCommand:
    """The full ``request`` command for ``listener``, its rendezvous id ``ident``.

    ``origin`` is this node's own ``ws(s)://host:port`` in a cluster (the rendezvous
    must reach this node, not whichever the load balancer picks); by default the
    address the sender used.
    """
    if origin is None:
        origin = f"{'wss' if request.secure else 'ws'}://{request.host}"
    return RequestCommand(
        address=(
            f"{origin}/$hc/{listener.entity_path}"
            f"?sb-hc-action=request&sb-hc-id={ident}"
        ),
        id=str(next(request_ids)),
        request_target=target,
        method=request.method,
        request_headers=headers,
        body=has_body,
        remote_endpoint=request.remote,
    )


def reply_head(
    answer: RelayedReply, relay_host: str, path: str
) -> tuple[int, str | None, Headers]:
    """The status, reason and headers the sender gets for the listener's ``answer``.

    Raises:
        InvalidListenerResponse: the response head is too large to forward.
    """
    command = answer.command
    too_big = oversized_head(command.response_headers)
    if too_big is not None:
        raise InvalidListenerResponse(f"the listener's response has {too_big}")
    dropped: list[str] = []
    headers = forwarded_response_headers(command.response_headers, relay_host, dropped)
    if dropped:
        log.warning("dropped response headers no HTTP message may carry on %s: %r", path, dropped)
    return command.status_code, reason_phrase(command.status_description), headers


def time_out(pending: PendingRequest, timeout: float) -> None:
    """The timer's end of a request its listener did not answer in time."""
    pending.fail(ListenerTimeout(f"the listener did not answer within {timeout:g} s"))



