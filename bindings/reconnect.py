"""Reconnect decisions for the bindings' listeners, and the error of a refused handshake.

The policy itself (capped, fully jittered exponential backoff; give up on a
permanent refusal; reconnect at once after a 1008 on a stable connection) is
the SDK's, :mod:`hc.asyncio.reconnect`, re-exported here.
"""

from __future__ import annotations

from bindings.exceptions import ListenerQuotaExceeded, ListenerRejected
from hc.asyncio.errors import error_fields
from hc.asyncio.reconnect import POLICY_VIOLATION, Backoff, ReconnectPolicy

__all__ = ["POLICY_VIOLATION", "Backoff", "ReconnectPolicy", "rejection"]


def rejection(status: int, reason: str, body: bytes) -> ListenerRejected:
    """The error for a refused handshake, from the relay's response.

    The relay's error body is ``{"error": {"code": ..., "message": ...}}``; a 403
    whose code, message or reason mentions the quota is :class:`ListenerQuotaExceeded`.
    """
    code, message = error_fields(body)
    message = message or reason or "no reason given"
    if status == 403 and "quota" in f"{code} {message} {reason}".lower():
        return ListenerQuotaExceeded(status, code, message)
    return ListenerRejected(status, code, message)
