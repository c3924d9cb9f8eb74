"""The live inspector's memory: the last calls as cheap tuples, bodies only when asked.

Each finished call is one :class:`CallRow` (a tuple) appended to a ring of
``inspector_calls``; rendering it for the console (:meth:`CallRow.summary`) is
done only when the console asks.  Bodies are **not** kept unless capture is on
for the call's entity (``[observe] capture``, or switched from the console); a
:class:`Captured` record holds the headers and bodies, masked first
(``relay.observe.mask``), each body cut at ``capture_body_limit``, and all of
them together within ``capture_bytes``: the oldest captures go first.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Iterator
from typing import Any, NamedTuple

from relay.observe.mask import mask_body, mask_headers, mask_query
from relay.observe.settings import ObserveSettings
from relay.observe.soapinfo import soap_version

__all__ = ["CallRow", "Captured", "Inspector"]


class CallRow(NamedTuple):
    """One call as the inspector keeps it (made on the hot path: a plain tuple)."""

    seq: int
    time: float
    entity: str
    method: str
    path: str
    content_type: str
    operation: str
    status: int
    fault_code: str
    fault_string: str
    request_bytes: int
    response_bytes: int
    relay_time: float
    listener_time: float
    listener: str
    tracking: str

    def summary(self, captured: bool) -> dict[str, Any]:
        """The row as the console's JSON."""
        return {
            "seq": self.seq, "time": self.time, "entity": self.entity, "method": self.method,
            "path": self.path, "soapVersion": soap_version(self.content_type),
            "operation": self.operation, "status": self.status, "faultCode": self.fault_code,
            "faultString": self.fault_string, "requestBytes": self.request_bytes,
            "responseBytes": self.response_bytes, "relayMs": round(self.relay_time * 1000, 3),
            "listenerMs": round(self.listener_time * 1000, 3), "listener": self.listener,
            "trackingId": self.tracking, "captured": captured,
        }


class Captured(NamedTuple):
    """What capture kept of one call, masked."""

    query: str
    request_headers: list[tuple[str, str]]
    request_body: bytes | None
    response_headers: list[tuple[str, str]]
    response_body: bytes | None

    @property
    def size(self) -> int:
        return len(self.request_body or b"") + len(self.response_body or b"") + 512

    def detail(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "requestHeaders": self.request_headers,
            "requestBody": _text(self.request_body),
            "responseHeaders": self.response_headers,
            "responseBody": _text(self.response_body),
        }


def _text(body: bytes | None) -> str | None:
    return None if body is None else body.decode("utf-8", "replace")


class Inspector:
    """The ring of recent calls and the captures of the entities that asked for them."""

    def __init__(self, settings: ObserveSettings) -> None:
        #: Plain tuples in :class:`CallRow`'s order, made into rows when read.
        self.rows: deque[tuple[Any, ...]] = deque(maxlen=max(1, settings.inspector_calls))
        self.capture = set(settings.capture)
        self.body_limit = settings.capture_body_limit
        self.byte_limit = settings.capture_bytes
        self._captured: OrderedDict[int, Captured] = OrderedDict()
        self.captured_bytes = 0
        self._seq = itertools.count(1)

    def next_seq(self) -> int:
        return next(self._seq)

    def add(self, row: tuple[Any, ...]) -> None:
        """Remember one call: a tuple of :class:`CallRow`'s fields, in order."""
        self.rows.append(row)

    def keep(
        self, seq: int, query: str, request_headers: Any, request_body: bytes | None,
        response_headers: Any, response_body: bytes | None,
    ) -> None:
        """Mask and keep one call's headers and bodies, within the byte bound."""
        limit = self.body_limit
        captured = Captured(
            mask_query(query),
            mask_headers(request_headers),
            None if request_body is None else mask_body(request_body[:limit]),
            mask_headers(response_headers),
            None if response_body is None else mask_body(response_body[:limit]),
        )
        if captured.size > self.byte_limit:
            return
        self._captured[seq] = captured
        self.captured_bytes += captured.size
        while self.captured_bytes > self.byte_limit:
            _, oldest = self._captured.popitem(last=False)
            self.captured_bytes -= oldest.size

    def captured(self, seq: int) -> Captured | None:
        return self._captured.get(seq)

    def row(self, seq: int) -> CallRow | None:
        return next((CallRow._make(r) for r in self.rows if r[0] == seq), None)

    def after(self, seq: int) -> Iterator[CallRow]:
        """The rows newer than ``seq``, oldest first."""
        return (CallRow._make(r) for r in self.rows if r[0] > seq)

    def summaries(self, after: int = 0) -> list[dict[str, Any]]:
        return [r.summary(r.seq in self._captured) for r in self.after(after)]
