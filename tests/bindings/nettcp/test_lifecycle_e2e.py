"""A session's life end to end: it dies (every call in flight fails at once), it is
reopened, it is closed gracefully (in-flight calls finish)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait

import pytest

from bindings import NetTcpRelayBinding
from bindings.nettcp.client import SessionClient
from bindings.nettcp.errors import CallTimeout, SessionClosed, SessionOpenFailed
from tests.bindings.nettcp.conftest import PROVIDER, Stage
from tests.support.relay import RelayHandle, Relays

MULTIPLE = NetTcpRelayBinding(concurrency_mode="multiple")


def test_when_the_relay_goes_every_call_in_flight_fails_at_once(relays: Relays, stage: Stage) -> None:
    """The relay's stop closes the session's joined WebSocket with 1001 (no keep-alive
    has to notice anything: the client's is the default, 30 s), and every call in
    flight fails together with that."""
    stage.host(binding=MULTIPLE)
    client = stage.client()
    assert client.service.Echo("up") == "up"
    stage.board.gate.clear()
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(client.service.Gated, f"g{i}") for i in range(3)]
        for _ in futures:
            assert stage.board.entered.acquire(timeout=10)
        started = time.monotonic()
        relays.stop(stage.relay)
        done, _ = wait(futures, timeout=10)
        assert len(done) == 3 and time.monotonic() - started < 5
        errors = {str(future.exception()) for future in futures}
        assert errors == {"the session ended (1001: relay shutting down)"}  # one for all
        assert all(isinstance(future.exception(), SessionClosed) for future in futures)
        stage.board.gate.set()
    with pytest.raises(SessionOpenFailed, match="cannot open a session"):  # no relay: a clear error
        client.service.Echo("again")


def test_a_call_past_its_timeout_fails_alone_and_the_session_goes_on(stage: Stage) -> None:
    stage.host(binding=MULTIPLE)
    client = stage.client(operation_timeout=0.3)  # the binding's call_timeout, for zeep users
    first = client.service.SessionId()
    stage.board.gate.clear()
    started = time.monotonic()
    with pytest.raises(CallTimeout, match=r"no reply to urn:uuid:\S+ within 0.3 s"):
        client.service.Gated("slow")
    assert 0.25 < time.monotonic() - started < 5
    stage.board.gate.set()  # its late reply is dropped: nobody waits for it any more
    assert client.service.Echo("still") == "still"
    assert client.service.SessionId() == first and client.transport.nettcp.sessions_opened == 1


def test_the_next_call_after_a_session_ended_opens_a_new_one(stage: Stage) -> None:
    stage.host()
    client = stage.client()
    first = client.service.SessionId()
    client.transport.background.run(client.transport.nettcp.end_session())
    assert stage.board.wait_for(lambda b: ("close", first) in b.events)
    second = client.service.SessionId()
    assert second != first and client.transport.nettcp.sessions_opened == 2


def test_closing_the_client_lets_calls_in_flight_finish(stage: Stage) -> None:
    stage.host(binding=MULTIPLE)
    client = stage.client()
    stage.board.gate.clear()
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(client.service.Gated, f"g{i}") for i in range(2)]
        for _ in futures:
            assert stage.board.entered.acquire(timeout=10)
        closing = pool.submit(client.transport.close)
        assert not closing.done()
        stage.board.gate.set()
        closing.result(10)
        assert [f.result(10) for f in futures] == ["g0", "g1"]


def test_closing_the_host_lets_calls_in_flight_finish_then_ends_sessions(stage: Stage) -> None:
    host = stage.host(binding=MULTIPLE)
    client = stage.client()
    stage.board.gate.clear()
    with ThreadPoolExecutor(2) as pool:
        call = pool.submit(client.service.Gated, "last")
        assert stage.board.entered.acquire(timeout=10)
        closing = pool.submit(host.close)
        stage.board.gate.set()
        assert call.result(10) == "last"
        closing.result(15)
    with pytest.raises((SessionClosed, SessionOpenFailed)):
        client.service.Echo("gone")


async def test_a_refused_session_says_why(arelay: RelayHandle) -> None:
    client = SessionClient(f"{arelay.base_url}/nobody-listens", token_provider=PROVIDER)
    with pytest.raises(SessionOpenFailed, match="the relay refused the session") as raised:
        await client.open()
    assert raised.value.status == 404
