"""The console's own calls (replay, WSDL, test client) to the relay's entities, in process.

A call from the console never leaves the relay: it is handed to
``relay.http_senders.relay_http`` as a :class:`LoopbackRequest` with a
:class:`Collected` reply, exactly as a sender's request arrives, so it can only
reach an entity of this relay (there is no URL to point elsewhere), it is
counted and inspected like any call, and listeners see an ordinary request.
The console's user proved Manage; the call carries a Send token the relay signs
with a namespace rule that grants Send (none: the call goes without a token).
An answer body is kept up to :data:`MAX_ANSWER` bytes (the rest is counted, not kept).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import unquote

from multidict import CIMultiDict

from hc.entities import Rights
from hc.messages import Headers
from hc.sas import create_token
from relay.boundary import error_answer
from relay.http_senders import relay_http
from relay.state import RelayState

__all__ = ["MAX_ANSWER", "Answer", "send"]

MAX_ANSWER = 4 * 1024 * 1024


@dataclass
class Answer:
    """What came back: status, headers, body (cut at :data:`MAX_ANSWER`), and time taken."""

    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    truncated: bool = False
    seconds: float = 0.0


class LoopbackRequest:
    """A :class:`relay.sender_io.SenderRequest` made by the console."""

    def __init__(self, method: str, target: str, host: str, headers: list[tuple[str, str]],
                 body: bytes) -> None:
        raw_path, _, raw_query = target.partition("?")
        self.method, self.raw_path, self.raw_query = method, raw_path, raw_query
        self.path = unquote(raw_path)
        self.headers: CIMultiDict[str] = CIMultiDict(headers)
        self.headers["Content-Length"] = str(len(body))
        self.content_length: int | None = len(body)
        self.body_exists = bool(body)
        self.secure = False
        self.host = host
        self.remote: tuple[str, int] | None = ("console", 0)
        self._body = body

    async def read(self) -> bytes:
        return self._body

    async def iter_body(self) -> AsyncIterator[bytes]:
        if self._body:
            yield self._body


class Collected:
    """A :class:`relay.sender_io.SenderReply` that keeps the answer."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer

    def whole(self, status: int, reason: str | None, headers: Headers, body: bytes) -> None:
        self.answer.status, self.answer.headers = status, list(headers)
        self._keep(body)

    async def stream(self, status: int, reason: str | None, headers: Headers,
                     chunks: AsyncIterator[bytes]) -> None:
        self.answer.status, self.answer.headers = status, list(headers)
        async for chunk in chunks:
            self._keep(chunk)

    def _keep(self, data: bytes) -> None:
        room = MAX_ANSWER - len(self.answer.body)
        if len(data) > room:
            self.answer.truncated = True
        self.answer.body += data[:max(room, 0)]

    def abort(self) -> None:
        self.answer.truncated = True


def _token(state: RelayState, host: str, entity: str) -> str | None:
    for rule in state.config.rules:
        if Rights.SEND in rule.rights:
            return create_token(f"http://{host}/{entity}", rule.name, rule.key, ttl=300)
    return None


async def send(
    state: RelayState, entity: str, method: str, target: str, host: str,
    headers: list[tuple[str, str]], body: bytes,
) -> Answer:
    """Send one request to ``entity`` (``target``: the path and query, under it)."""
    answer = Answer()
    token = _token(state, host, entity)
    if token is not None:
        headers = [*headers, ("ServiceBusAuthorization", token)]
    request = LoopbackRequest(method, target, host, headers, body)
    started = time.perf_counter()
    try:
        await relay_http(state, request, Collected(answer))
    except Exception as exc:  # noqa: BLE001 - the relay's own answer, as a sender gets it
        refused = error_answer(exc, request, state)
        answer.status, answer.headers, answer.body = (
            refused.status, list(refused.headers), refused.body)
    answer.seconds = time.perf_counter() - started
    return answer
