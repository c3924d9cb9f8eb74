"""A NetTcp host with ``inline_calls``: calls run in the host's event loop, no worker thread."""

from __future__ import annotations

import pytest
import zeep.exceptions

from bindings import NetTcpRelayBinding
from tests.bindings.nettcp.conftest import Stage
from tests.bindings.nettcp.services import Progress, ShowProgress

INLINE = NetTcpRelayBinding(inline_calls=True)


def test_a_default_host_runs_calls_in_worker_threads(stage: Stage) -> None:
    stage.host()
    name = stage.client().service.ThreadName()  # the pool's, or the session's own thread
    assert name.startswith(("nettcp-call", "nettcp-session")), name


def test_an_inline_host_serves_calls_state_and_oneway_in_its_loop(stage: Stage) -> None:
    stage.host(binding=INLINE)
    client = stage.client()
    name = client.service.ThreadName()
    assert not name.startswith("nettcp-call")  # the listener's loop thread
    assert [client.service.Add(n) for n in (2, 3)] == [2, 5]  # the session's state
    client.service.Record("inline one-way")
    assert stage.board.wait_for(lambda b: b.records == ["inline one-way"])
    session_id = client.service.SessionId()
    assert stage.board.wait_for(lambda b: ("open", session_id) in b.events)
    client.transport.background.run(client.transport.nettcp.end_session())
    assert stage.board.wait_for(lambda b: ("close", session_id) in b.events)


def test_a_callback_from_an_inline_call_is_a_fault_naming_the_option(stage: Stage) -> None:
    stage.host(binding=INLINE)
    show = ShowProgress()
    client = stage.client(binding=INLINE, callback=(Progress, show))
    with pytest.raises(zeep.exceptions.Fault) as caught:
        client.service.Count(2)
    assert "inline_calls" in str(caught.value.message)
    assert show.steps == []
    assert client.service.Echo("still up") == "still up"  # the session goes on
    assert client.transport.nettcp.sessions_opened == 1
