"""Call slots through a real relay: a body trickling in holds no slot, a broken one ends quietly.

With ``max_concurrent_calls=2``, senders that drip their chunked bodies used to
take both slots until their last byte, and every normal call queued behind them.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
import requests

from bindings import BasicHttpRelayBinding, RelayServiceHost
from bindings.tokens import TokenProvider
from relay.namespace import EntityConfig
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, Relays, RelayThread

TRICKLERS = 6
CHUNKS = 12
PACE = 0.5  # seconds between a trickler's chunks: 6 s per trickled body


def echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body or b"-"]


@pytest.fixture
def relay(relays: Relays) -> RelayThread:
    return relays.in_thread(EntityConfig("slots"))


@pytest.fixture
def host(relay: RelayThread) -> Iterator[RelayServiceHost]:
    provider = TokenProvider.shared_access_key(TEST_KEY_NAME, TEST_KEY)
    binding = BasicHttpRelayBinding(max_concurrent_calls=2)
    with RelayServiceHost(echo, f"sb://127.0.0.1:{relay.port}/slots", binding=binding,
                          token_provider=provider) as opened:
        yield opened


def open_chunked(relay: RelayThread) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", relay.port), timeout=30)
    head = (f"POST /slots HTTP/1.1\r\nHost: 127.0.0.1:{relay.port}\r\n"
            f"ServiceBusAuthorization: {relay.token('slots')}\r\n"
            "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
    sock.sendall(head.encode())
    return sock


def trickle(relay: RelayThread, started: threading.Event, answers: list[bytes]) -> None:
    """Send CHUNKS one-byte chunks PACE apart; ``started`` after the second one."""
    with open_chunked(relay) as sock:
        for index in range(CHUNKS):
            sock.sendall(b"1\r\nt\r\n")
            if index == 1:
                started.set()
            time.sleep(PACE)  # the trickle's pace, not a synchronisation
        sock.sendall(b"0\r\n\r\n")
        answer = b""
        while not answer.endswith(b"0\r\n\r\n") and (data := sock.recv(65536)):
            answer += data
        answers.append(answer)


def test_trickling_bodies_do_not_hold_the_call_slots(
    relay: RelayThread, host: RelayServiceHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    started = [threading.Event() for _ in range(TRICKLERS)]
    answers: list[bytes] = []
    threads = [threading.Thread(target=trickle, args=(relay, event, answers)) for event in started]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    assert all(event.wait(10) for event in started)
    durations = []
    for n in range(10):
        sent = time.monotonic()
        response = requests.post(f"{relay.base_url}/slots", data=b"normal %d" % n, timeout=30,
                                 headers={"ServiceBusAuthorization": relay.token("slots")})
        durations.append(time.monotonic() - sent)
        assert response.status_code == 200 and response.content == b"normal %d" % n
    normal_done = time.monotonic() - began
    for thread in threads:
        thread.join(30)
    trickle_time = CHUNKS * PACE
    print(f"normal calls: max {max(durations):.3f} s, all done {normal_done:.2f} s after the"
          f" tricklers started; a trickle takes {trickle_time:.1f} s")
    assert max(durations) < 1.0 and normal_done < trickle_time / 2
    assert len(answers) == TRICKLERS
    assert all(a.startswith(b"HTTP/1.1 200") and b"t" * CHUNKS in a for a in answers)
    assert "handler failed" not in caplog.text


def test_a_body_that_breaks_off_ends_the_call_with_one_quiet_line(
    relay: RelayThread, host: RelayServiceHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sock = open_chunked(relay)
    sock.sendall(b"4\r\npart\r\n")
    sock.sendall(b"1\r\n")  # the second chunk's head, and no more
    # The relay must have dispatched the call before the sender goes: wait for the listener's
    # rendezvous to be open (the listener logs nothing until then), i.e. a normal call
    # through the same entity proves the relay is past this request's dispatch.
    assert requests.post(f"{relay.base_url}/slots", data=b"x", timeout=10,
                         headers={"ServiceBusAuthorization": relay.token("slots")}).ok
    sock.close()
    deadline = time.monotonic() + 10
    while "broke off" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the log for the line under test
    broke = [r for r in caplog.records if "broke off" in r.getMessage()]
    assert len(broke) == 1 and broke[0].levelno <= logging.WARNING
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("bindings")]
    assert "handler failed" not in caplog.text
    ok = requests.post(f"{relay.base_url}/slots", data=b"after", timeout=10,
                       headers={"ServiceBusAuthorization": relay.token("slots")})
    assert ok.status_code == 200 and ok.content == b"after"
