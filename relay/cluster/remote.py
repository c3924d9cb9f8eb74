"""A listener on another node, as the sender's node sees it.

It stands where a local :class:`relay.listeners.ListenerConnection` would, so the
relay's exchange code runs unchanged: the sender's node keeps the request (its
rendezvous id, its body, the reply) and this object only *asks* the cluster
(``ClusterNode.start_ask``, no task: ``relay.cluster.asking``) to hand the command
to a listener; the ask's outcome settles the request.  Address-only:
the listener opens the rendezvous on THIS node (the command's address is this
node's ``node_url``), and the request body and the reply meet here.  Whole
(``Route.NATS``): a small request travels inside the NATS request and the
listener's inline answer comes back in the NATS reply.

Request ids are prefixed with this node's name, so they never collide with the
ids the other node gives its own senders' requests.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from hc.messages import AcceptCommand, RequestCommand
from relay.cluster.asking import NO_SERVICE, Asking, Outcome
from relay.cluster.config import Route
from relay.cluster.messages import Answer, AnswerStatus, Ask, AskKind
from relay.exceptions import ListenerGone, NoListener, RelayError
from relay.listeners import ListenerConnection, PendingRequest, RelayedReply, parse_relay_command

__all__ = ["RemoteListener", "Route"]

log = logging.getLogger("relay.cluster")


#: Starts an ask (``ClusterNode.start_ask``): its outcome goes to the callback.
Start = Callable[[Ask, Callable[[Outcome], None]], Asking]


def _refused(token: str) -> float:
    raise RelayError("a remote listener renews no token here")


class RemoteListener(ListenerConnection):
    """The listeners of ``path`` on the other nodes, reached through ``ask``."""

    def __init__(
        self, path: str, node_name: str, namespace: str,
        start: Start, ask: Callable[[Ask], Awaitable[Answer]], route: Route, timeout: float,
    ) -> None:
        super().__init__(path, token_expiry=math.inf, check_renewal=_refused, clock=time.time)
        self.id = f"cluster:{path}"
        self._node, self._namespace, self._route = node_name, namespace, route
        self._begin, self._ask = start, ask
        self._asking: dict[str, Asking] = {}
        #: Seconds the listener's node may take (the entity's timeout).
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<RemoteListener {self.entity_path}>"

    def new_request(self, command: RequestCommand, body: bytes | AsyncIterator[bytes] | None) -> PendingRequest:
        # Made field by field, not by dataclasses.replace (which looks the fields up
        # again for every call): every field of RequestCommand, the id prefixed.
        c = command
        ours = RequestCommand(c.address, f"{self._node}.{c.id}", c.request_target, c.method,
                              c.request_headers, c.body, c.remote_endpoint)
        return super().new_request(ours, body)

    def forget(self, pending: PendingRequest) -> None:
        super().forget(pending)
        asking = self._asking.pop(pending.id, None)
        if asking is not None:
            asking.cancel()

    def post_inline(self, pending: PendingRequest, body: bytes | None) -> None:
        if self._route is Route.NATS:
            pending.delivered = True  # it cannot go to another listener once sent whole
            self._post(pending, pending.command, body or b"")
        else:  # the rendezvous on this node sends the command and body (not delivered yet)
            self.post_address_only(pending)

    def post_address_only(self, pending: PendingRequest) -> None:
        command = pending.command
        self._post(pending, RequestCommand(address=command.address, id=command.id), None)

    def _post(self, pending: PendingRequest, command: RequestCommand, body: bytes | None) -> None:
        ask = Ask(AskKind.REQUEST, self._namespace, self.entity_path, self._node, self.timeout,
                  command, body)
        # raises NoListener when NATS is unreachable: the caller answers the sender
        self._asking[pending.id] = self._begin(ask, lambda outcome: self._settle(pending, outcome))

    def _settle(self, pending: PendingRequest, outcome: Outcome) -> None:
        """The ask's outcome settles the request (from the NATS connection's data_received, or a timer)."""
        self._asking.pop(pending.id, None)
        if isinstance(outcome, RelayError):
            pending.fail(outcome)
        elif outcome.status is AnswerStatus.REPLIED and outcome.response is not None:
            if outcome.response.status_code < 200:
                pending.fail(RelayError("the listener answered with a 1xx status"))
            else:
                pending.resolve(RelayedReply.whole(outcome.response, outcome.body or b""))
        elif outcome.status is AnswerStatus.GONE:
            pending.fail(ListenerGone("the listener disconnected before it answered"))
        elif outcome.status is not AnswerStatus.POSTED:
            pending.fail(NoListener(NO_SERVICE))

    async def drain(self) -> None:
        """Nothing to drain here: the ask is under way (its failure fails the request)."""

    async def send_accept(self, command: AcceptCommand | str) -> None:
        accept = command if isinstance(command, AcceptCommand) else parse_relay_command(command)
        if not isinstance(accept, AcceptCommand):
            raise TypeError("send_accept takes an accept command")
        ask = Ask(AskKind.ACCEPT, self._namespace, self.entity_path, self._node, 30.0, accept)
        answer = await self._ask(ask)
        if answer.status is not AnswerStatus.POSTED:
            raise NoListener(NO_SERVICE)

    def suspect(self, now: float) -> bool:
        return False

    def probe(self, now: float) -> None:
        """Liveness is the other node's business."""

