"""NetTcp sessions end to end: zeep clients, a real relay, a RelayServiceHost (priorities 1-3)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import zeep.exceptions

from bindings import ConcurrencyMode, NetTcpRelayBinding
from hc.asyncio.thread_writer import ThreadWriter
from tests.bindings.nettcp.conftest import Stage


def test_calls_travel_on_one_session(stage: Stage) -> None:
    stage.host()
    client = stage.client()
    assert client.service.Echo("hello") == "hello"
    assert [client.service.Add(n) for n in (1, 2, 3)] == [1, 3, 6]  # the session's own state
    session_id = client.service.SessionId()
    assert session_id.startswith("urn:uuid:")
    assert client.transport.nettcp.session_id == session_id  # told by the host's greeting
    assert client.transport.nettcp.sessions_opened == 1


def test_each_client_has_its_own_session_and_state(stage: Stage) -> None:
    stage.host()
    one, two = stage.client(), stage.client()
    assert one.service.Add(5) == 5
    assert two.service.Add(7) == 7
    assert one.service.Add(1) == 6
    assert one.service.SessionId() != two.service.SessionId()


def test_calls_are_multiplexed_and_matched_by_relates_to(stage: Stage) -> None:
    stage.host(binding=NetTcpRelayBinding(concurrency_mode=ConcurrencyMode.MULTIPLE))
    client = stage.client()
    stage.board.gate.clear()
    texts = [f"call-{i}" for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client.service.Gated, text) for text in texts]
        for _ in texts:  # all eight run at once on the one session
            assert stage.board.entered.acquire(timeout=10)
        stage.board.gate.set()
        assert [f.result(10) for f in futures] == texts  # each caller its own reply
    assert stage.board.most_running == 8
    assert client.transport.nettcp.sessions_opened == 1


def test_a_session_runs_its_calls_in_order_by_default(stage: Stage) -> None:
    stage.host()
    client = stage.client()
    stage.board.gate.clear()
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(client.service.Gated, f"c{i}") for i in range(4)]
        assert stage.board.entered.acquire(timeout=10)
        assert not stage.board.entered.acquire(timeout=0.3)  # the others wait their turn
        stage.board.gate.set()
        for future in futures:
            future.result(10)
    assert stage.board.most_running == 1


def test_one_way_calls_run_in_order_and_return_none(stage: Stage) -> None:
    stage.host()
    client = stage.client()
    assert [client.service.Record(f"r{i}") for i in range(5)] == [None] * 5
    assert client.service.Echo("after") == "after"  # ordered: the records ran before it
    assert stage.board.records == [f"r{i}" for i in range(5)]


def test_a_fault_comes_back_as_zeep_fault_and_the_session_goes_on(stage: Stage) -> None:
    stage.host()
    client = stage.client()
    with pytest.raises(zeep.exceptions.Fault) as raised:
        client.service.Add("not a number")
    assert raised.value.code is not None
    assert client.service.Echo("still up") == "still up"
    assert client.transport.nettcp.sessions_opened == 1


def test_sessions_are_announced_when_they_open_and_end(stage: Stage) -> None:
    stage.host()
    client = stage.client()
    session_id = client.service.SessionId()
    assert ("open", session_id) in stage.board.events
    client.transport.close()
    assert stage.board.wait_for(lambda b: ("close", session_id) in b.events)
    assert not stage.board.sessions[session_id].is_open


def test_the_async_client_shares_the_session_machinery(stage: Stage) -> None:
    import asyncio

    from bindings.zeep_async import relay_async_client
    from tests.bindings.nettcp.conftest import PROVIDER

    stage.host()

    async def main() -> list[str]:
        client = relay_async_client(f"{stage.relay.base_url}/svc?wsdl",
                                    binding=NetTcpRelayBinding(), token_provider=PROVIDER)
        async with client:
            results = await asyncio.gather(*(client.service.Echo(f"a{i}") for i in range(5)))
            assert client.transport.nettcp.sessions_opened == 1
            return list(results)

    assert asyncio.run(main()) == [f"a{i}" for i in range(5)]


def test_callbacks_reach_the_clients_implementation_during_a_call(stage: Stage) -> None:
    from tests.bindings.nettcp.services import Progress, ShowProgress

    stage.host()
    progress = ShowProgress()
    client = stage.client(callback=(Progress, progress))
    assert client.service.Run(3) == "yes after 3 steps"  # one-way steps came before the question
    assert progress.steps == [(1, 3), (2, 3), (3, 3)]
    assert progress.questions == ["done 3?"]


def test_one_way_callbacks_sent_before_a_reply_are_seen_before_it(stage: Stage) -> None:
    from tests.bindings.nettcp.services import Progress, ShowProgress

    stage.host()
    progress = ShowProgress()
    client = stage.client(callback=(Progress, progress))
    for _ in range(3):
        progress.steps.clear()
        assert client.service.Count(5) == 5
        assert progress.steps == [(done, 5) for done in range(1, 6)]  # all ran, in order


def test_the_service_calls_back_later_while_the_session_lives(stage: Stage) -> None:
    from bindings.nettcp.errors import SessionClosed
    from tests.bindings.nettcp.services import Progress, ShowProgress

    stage.host()
    progress = ShowProgress()
    client = stage.client(callback=(Progress, progress))
    session = stage.board.sessions[client.service.SessionId()]
    answers: list[object] = []
    worker = threading.Thread(target=lambda: answers.append(
        session.callback(Progress).Ask("later?")))
    worker.start()
    worker.join(10)
    assert answers == ["yes after 0 steps"]
    client.transport.close()
    assert stage.board.wait_for(lambda b: not session.is_open)
    with pytest.raises(SessionClosed):  # callbacks stop with the session
        session.callback(Progress).Step(1, 1)


def test_callbacks_work_on_a_reopened_session(stage: Stage) -> None:
    from tests.bindings.nettcp.services import Progress, ShowProgress

    stage.host()
    progress = ShowProgress()
    client = stage.client(callback=(Progress, progress))
    assert client.service.Count(1) == 1
    client.transport.background.run(client.transport.nettcp.end_session())
    assert client.service.Count(2) == 2  # a new session, the same implementation
    assert progress.steps == [(1, 1), (1, 2), (2, 2)]
    assert client.transport.nettcp.sessions_opened == 2


def test_a_client_queues_calls_over_its_bound_instead_of_failing(stage: Stage) -> None:
    bounded = NetTcpRelayBinding(concurrency_mode=ConcurrencyMode.MULTIPLE, max_calls_per_session=2)
    stage.host(binding=bounded)
    client = stage.client(binding=bounded)
    stage.board.gate.clear()
    with ThreadPoolExecutor(5) as pool:
        calls = [pool.submit(client.service.Gated, f"q{i}") for i in range(5)]
        for _ in range(2):
            assert stage.board.entered.acquire(timeout=10)
        assert not stage.board.entered.acquire(timeout=0.3)  # the other three wait in the client
        stage.board.gate.set()
        assert sorted(call.result(10) for call in calls) == [f"q{i}" for i in range(5)]
    assert stage.board.most_running == 2


def test_a_call_sent_once_a_reply_arrives_is_within_the_hosts_bound(
        stage: Stage, monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's worker writes a reply itself; the client may send its next call the
    moment it reads it.  The call must be over for the host's bound before its reply
    leaves, however late the worker gets to its bookkeeping (slowed here)."""
    send = ThreadWriter.send

    def send_then_dawdle(writer: ThreadWriter, data: bytes) -> bool:
        sent = send(writer, data)
        if threading.current_thread().name.startswith("nettcp-call"):
            time.sleep(0.2)
        return sent

    monkeypatch.setattr(ThreadWriter, "send", send_then_dawdle)
    bounded = NetTcpRelayBinding(concurrency_mode=ConcurrencyMode.MULTIPLE, max_calls_per_session=1)
    stage.host(binding=bounded)
    client = stage.client(binding=bounded)
    assert [client.service.Echo(f"e{n}") for n in range(4)] == [f"e{n}" for n in range(4)]


def test_sync_callers_over_the_clients_bound_wait_their_turn(stage: Stage) -> None:
    stage.host(binding=NetTcpRelayBinding(concurrency_mode=ConcurrencyMode.MULTIPLE))
    client = stage.client(binding=NetTcpRelayBinding(max_calls_per_session=2))
    stage.board.gate.clear()
    texts = [f"t{i}" for i in range(5)]
    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(client.service.Gated, text) for text in texts]
        for _ in range(2):
            assert stage.board.entered.acquire(timeout=10)
        assert not stage.board.entered.acquire(timeout=0.3)  # the other three wait for a place
        stage.board.gate.set()
        assert [f.result(10) for f in futures] == texts
    assert stage.board.most_running == 2
    assert client.service.Echo("after") == "after"
