"""One error boundary (``relay.boundary``) for both shells that serve senders.

A small ``Content-Length`` POST is served by the lean front, a chunked one by
aiohttp: the same failure must give the same status, headers and body through
either, a bug of ours included (500, a tracking id, one ERROR line with the
traceback).  The mapping itself is tested from plain values first.
"""

from __future__ import annotations

import asyncio
import logging
import re
from types import SimpleNamespace

import pytest

from hc.exceptions import LocalProtocolError, RemoteProtocolError
from relay import cors
from relay.boundary import TRACKING_HEADER, error_answer
from relay.exceptions import (
    AuthError,
    EntityNotFound,
    MalformedMessage,
    RequestTimeout,
    Throttled,
)
from relay.namespace import EntityConfig
from relay.state import RelayState
from tests.conftest import RelayFactory
from tests.support.relay import RelayHandle, make_namespace

SOAP11 = "text/xml; charset=utf-8"
Response = tuple[str, list[tuple[str, str]], bytes]


def plain_request(content_type: str | None = None, **headers: str) -> SimpleNamespace:
    if content_type is not None:
        headers["Content-Type"] = content_type
    return SimpleNamespace(method="POST", path="/orders", host="relay.example.com:9350",
                           headers=headers)


@pytest.fixture
def state() -> RelayState:
    return RelayState.of(make_namespace(EntityConfig("web", cors_origins=("https://app.example",))))


# -- the mapping, from plain values --------------------------------------------------------


def test_a_relay_error_keeps_its_status_and_code_and_gets_a_tracking_id(
    state: RelayState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay")
    answer = error_answer(EntityNotFound("no entity at '/orders'"), plain_request(), state, "t-1")
    assert (answer.status, answer.reason) == (404, "no entity at '/orders'")
    assert dict(answer.headers) == {
        "Content-Type": "application/json; charset=utf-8", TRACKING_HEADER: "t-1",
    }
    assert b'"code": "EntityNotFound"' in answer.body and b'"trackingId": "t-1"' in answer.body
    assert not answer.close
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "t-1" in caplog.text and not any(r.exc_info for r in caplog.records)


def test_a_soap_sender_gets_a_soap_fault_of_its_version(state: RelayState) -> None:
    answer = error_answer(AuthError("a SAS token is required"), plain_request(SOAP11), state)
    assert answer.status == 401
    headers = dict(answer.headers)
    assert headers["Content-Type"] == SOAP11
    assert headers["WWW-Authenticate"] == 'SharedAccessSignature realm="relay.example.com"'
    assert b"Fault" in answer.body and b"a SAS token is required" in answer.body
    assert headers[TRACKING_HEADER].encode() in answer.body


def test_throttled_says_when_to_retry_and_a_slow_body_closes(state: RelayState) -> None:
    throttled = error_answer(Throttled("slow down"), plain_request(), state)
    assert throttled.status == 429 and ("Retry-After", "1") in throttled.headers
    timeout = error_answer(RequestTimeout("too slow"), plain_request(), state)
    assert timeout.status == 408 and timeout.close


def test_a_page_from_an_allowed_origin_can_read_the_error_and_its_preflight_is_answered(
    state: RelayState,
) -> None:
    request = SimpleNamespace(method="POST", path="/web", host="h", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
    })
    answer = error_answer(AuthError("no token"), request, state)
    assert ("Access-Control-Allow-Origin", "https://app.example") in answer.headers
    assert ("Vary", "Origin") in answer.headers
    preflight = error_answer(cors.CorsPreflight("https://app.example"), request, state)
    assert (preflight.status, preflight.body) == (204, b"")
    assert ("Access-Control-Allow-Methods", "POST") in preflight.headers


def test_core_errors_take_the_relays_status_or_their_hint(state: RelayState) -> None:
    malformed = error_answer(MalformedMessage("bad frame"), plain_request(), state)
    assert (malformed.status, malformed.error.code) == (400, "MalformedMessage")
    remote = error_answer(RemoteProtocolError("nope", status=409), plain_request(), state)
    assert (remote.status, remote.error.code, remote.reason) == (409, "ProtocolViolation", "nope")


def test_a_connection_that_broke_off_is_a_502_without_a_traceback(
    state: RelayState, caplog: pytest.LogCaptureFixture
) -> None:
    answer = error_answer(ConnectionResetError("reset by peer"), plain_request(), state)
    assert answer.status == 502 and answer.error.code == "ListenerGone"
    assert not any(r.exc_info for r in caplog.records)


@pytest.mark.parametrize("bug", [KeyError("listeners"), LocalProtocolError("sent twice")])
def test_a_bug_of_ours_is_a_500_with_one_traceback_line_naming_the_tracking_id(
    state: RelayState, caplog: pytest.LogCaptureFixture, bug: Exception
) -> None:
    try:
        raise bug
    except Exception as exc:  # noqa: BLE001 - what a handler would raise
        answer = error_answer(exc, plain_request(SOAP11), state, "t-bug")
    assert answer.status == 500 and answer.error.code == "InternalError"
    assert b"t-bug" in answer.body and b"Fault" in answer.body
    assert str(bug) not in answer.body.decode()  # our internals stay in our log
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "t-bug" in errors[0].getMessage()


# -- the same failure through the front and through aiohttp ---------------------------------


class BrokenClock:
    """A wall clock that fails: verifying a token then raises what no handler expects."""

    def __call__(self) -> float:
        raise RuntimeError("the clock broke")


@pytest.fixture
async def broken(make_relay: RelayFactory) -> RelayHandle:
    return await make_relay(EntityConfig("guarded"), clock=BrokenClock())


async def post(relay: RelayHandle, path: str, body: bytes, *, chunked: bool,
               headers: str = "") -> Response:
    """POST ``body``, with a ``Content-Length`` (the front serves it) or chunked (aiohttp)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    payload = b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body) if chunked else body
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{relay.port}\r\n{headers}"
            f"Content-Type: {SOAP11}\r\n{framing}\r\nConnection: close\r\n\r\n")
    writer.write(head.encode() + payload)
    try:
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head_bytes, _, rest = raw.partition(b"\r\n\r\n")
    status, *lines = head_bytes.decode("latin-1").split("\r\n")
    fields = [tuple(line.split(": ", 1)) for line in lines]
    return status, [(k, v) for k, v in fields], rest  # type: ignore[misc]


def comparable(response: Response) -> Response:
    """The response with its tracking id and date made constant."""
    status, headers, body = response
    tracking = dict(headers)[TRACKING_HEADER]
    kept = sorted((k, "<id>" if k == TRACKING_HEADER else v) for k, v in headers if k != "Date")
    return status, kept, re.sub(re.escape(tracking).encode(), b"<id>", body)


async def test_a_bug_gives_the_same_500_through_the_front_and_aiohttp(
    broken: RelayHandle, caplog: pytest.LogCaptureFixture
) -> None:
    token = f"ServiceBusAuthorization: {broken.token('guarded')}\r\n"
    small = await post(broken, "/guarded", b"<x/>", chunked=False, headers=token)
    chunked = await post(broken, "/guarded", b"<x/>", chunked=True, headers=token)
    assert small[0] == "HTTP/1.1 500 internal error"
    assert comparable(small) == comparable(chunked)
    assert b"InternalError" in small[2] and b"Fault" in small[2]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2 and all(r.exc_info for r in errors)  # one line per failed request
    for response, record in zip((small, chunked), errors, strict=True):
        assert dict(response[1])[TRACKING_HEADER] in record.getMessage()
    assert "Traceback" in caplog.text and "the clock broke" in caplog.text


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/nowhere", "", "HTTP/1.1 404 no entity at '/nowhere'"),
        ("/guarded", "", "HTTP/1.1 401 a SAS token is required"),
        ("/guarded", "ServiceBusAuthorization: SharedAccessSignature sr=x\r\n", "HTTP/1.1 401 "),
    ],
)
async def test_a_refusal_is_the_same_through_the_front_and_aiohttp(
    make_relay: RelayFactory, path: str, headers: str, status: str,
) -> None:
    relay = await make_relay(EntityConfig("guarded"))
    small = await post(relay, path, b"<x/>", chunked=False, headers=headers)
    chunked = await post(relay, path, b"<x/>", chunked=True, headers=headers)
    assert small[0].startswith(status)
    assert comparable(small) == comparable(chunked)
    assert "Server" not in dict(chunked[1])  # aiohttp's own default is not added
