"""Reconnect decisions and handshake refusals: pure, with injected randomness."""

from __future__ import annotations

import json

import pytest

from bindings.exceptions import (
    ListenerQuotaExceeded,
    ListenerRejected,
    RelayUnreachable,
)
from bindings.reconnect import Backoff, ReconnectPolicy, rejection

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    top = Backoff(base=0.5, cap=30.0, rng=lambda: 0.999999)
    assert [round(top.delay(n), 3) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert Backoff(rng=lambda: 0.0).delay(5) == 0.0
    assert Backoff(rng=lambda: 0.5).delay(2) == 1.0
    assert top.delay(10_000) <= 30.0  # no overflow for a listener that retried all year


def test_policy_gives_up_on_permanent_refusals_only() -> None:
    policy = ReconnectPolicy(Backoff(rng=lambda: 1.0))
    for status in (400, 401, 403, 404):
        assert policy.connect_failed(ListenerRejected(status, "", "no")) is None
    assert policy.connect_failed(ListenerQuotaExceeded(403, "", "quota")) is None
    delays = [policy.connect_failed(RelayUnreachable("refused")) for _ in range(3)]
    delays.append(policy.connect_failed(ListenerRejected(503, "", "busy")))
    assert delays == [0.5, 1.0, 2.0, 4.0]


def test_a_stable_connection_resets_the_backoff_and_1008_reconnects_at_once() -> None:
    policy = ReconnectPolicy(Backoff(rng=lambda: 1.0), stable_after=5.0)
    for _ in range(4):
        policy.connect_failed(RelayUnreachable("x"))
    assert policy.disconnected(1008, uptime=3600.0) == 0.0  # token expired: fresh token now
    assert policy.disconnected(1008, uptime=0.1) == 0.5  # again at once: back off
    assert policy.disconnected(1008, uptime=0.1) == 1.0
    assert policy.disconnected(1001, uptime=60.0) == 0.5  # entity gone: back off from the start
    assert policy.disconnected(None, uptime=0.0) == 1.0


def test_rejection_reads_the_relays_json_error() -> None:
    body = json.dumps({"error": {"code": "Unauthorized", "message": "token expired"}}).encode()
    error = rejection(401, "Unauthorized", body)
    assert type(error) is ListenerRejected and error.permanent
    assert (error.status, error.code, error.relay_message) == (401, "Unauthorized", "token expired")
    assert "401" in str(error) and "token expired" in str(error)


@pytest.mark.parametrize(
    "reason, body",
    [
        ("Forbidden", json.dumps({"error": {"code": "ListenerQuotaExceeded", "message": "x"}})),
        ("Forbidden", json.dumps({"error": {"code": "Forbidden", "message": "listener quota 25"}})),
        ("Quota exceeded", ""),
    ],
)
def test_quota_is_recognised_from_code_message_or_reason(reason: str, body: str) -> None:
    error = rejection(403, reason, body.encode())
    assert isinstance(error, ListenerQuotaExceeded) and error.permanent


def test_rejection_survives_bodies_that_are_not_json() -> None:
    assert rejection(502, "Bad Gateway", b"<html>oops</html>").relay_message == "<html>oops</html>"
    assert rejection(500, "", b"").relay_message == "no reason given"
    assert rejection(403, "Forbidden", b"\x00\xff" * 10).relay_message == "Forbidden"
    assert not rejection(503, "busy", b"[1, 2]").permanent
