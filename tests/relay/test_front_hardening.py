"""The relay's front door against unauthenticated and malformed input (issue 10, items 1-3, 8).

Raw bytes on a socket to a real relay on port 0: what comes back (a status line
or a clean close, never a hang), what the log says (never a traceback), and
that a refusal leaves no reference cycle behind.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest

from relay.client_errors import ClientErrorLog
from relay.exceptions import BadRequest
from relay.request_head import host_name
from tests.conftest import RelayFactory
from tests.relay.test_front import read_response
from tests.support.raw_listener import RawListener
from tests.support.relay import RelayHandle

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def echo(arelay: RelayHandle) -> AsyncIterator[RelayHandle]:
    async with RawListener(arelay.ws_url, "echo", arelay.token("echo")):
        yield arelay


def head(relay: RelayHandle, *lines: str, target: str = "/echo", method: str = "POST",
         host: str | None = None, body: bytes = b"") -> bytes:
    """A request with a valid token; ``host`` replaces the Host header ("" omits none)."""
    entity = target.strip("/") if target.startswith("/") and "?" not in target else "echo"
    fields = [f"Host: {host if host is not None else f'127.0.0.1:{relay.port}'}",
              f"ServiceBusAuthorization: {relay.token(entity)}", *lines]
    if method == "POST" and not any(line.lower().startswith("transfer-encoding") for line in lines):
        fields.append(f"Content-Length: {len(body)}")
    return (f"{method} {target} HTTP/1.1\r\n" + "\r\n".join(fields) + "\r\n\r\n").encode() + body


async def exchange(relay: RelayHandle, data: bytes, *, first: bytes = b"",
                   timeout: float = 10) -> tuple[bytes, bytes]:
    """Send ``first`` (answered), then ``data``: the reply's status line and the rest of
    that one response (b"", b"" for a clean close without an answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    try:
        if first:
            writer.write(first)
            await asyncio.wait_for(read_response(reader), timeout)
        writer.write(data)
        try:
            await writer.drain()
        except ConnectionError:
            pass
        try:
            return await asyncio.wait_for(_one_response(reader), timeout)
        except ConnectionResetError:
            return b"", b""
    finally:
        writer.close()


async def _one_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    status_line = (await reader.readline()).rstrip(b"\r\n")
    if not status_line:
        return b"", b""
    head = bytearray()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        head += line
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status_line, bytes(head) + b"\r\n" + await reader.readexactly(length)


def status_of(status_line: bytes) -> int:
    # aiohttp answers what its parser refuses as HTTP/1.0 (the version it assumes).
    assert status_line.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), status_line
    return int(status_line.split()[1])


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]
    assert "Traceback" not in caplog.text


# -- item 1: oversized heads --------------------------------------------------------


async def test_an_oversized_head_gets_431_and_close_without_reading_it_all(
    echo: RelayHandle, caplog: pytest.LogCaptureFixture
) -> None:
    limit = echo.server.config.max_header_size
    big = head(echo, "X-Big: " + "a" * (1024 * 1024))
    status_line, rest = await exchange(echo, big)
    assert status_of(status_line) == 431
    assert b"Connection: close" in rest and b"over 16384 bytes" in rest
    front = echo.server.front
    assert front is not None  # nothing left buffered on the front:
    assert all(c.buffered <= limit + 256 * 1024 for c in front.connections)
    no_tracebacks(caplog)


async def test_a_head_one_field_over_the_count_gets_431_and_at_the_count_is_served(
    make_relay: RelayFactory,
) -> None:
    relay = await make_relay(max_headers=20)
    async with RawListener(relay.ws_url, "echo", relay.token("echo")):
        # 16 + Host, ServiceBusAuthorization, Connection and Content-Length = 20
        fields = [f"X-F{i}: v" for i in range(16)]
        status_line, _ = await exchange(relay, head(relay, *fields, "Connection: close"))
        assert status_of(status_line) == 200
        status_line, rest = await exchange(relay, head(relay, *fields, "X-One-More: v", "X: w"))
        assert status_of(status_line) == 431 and b"more than 20 header fields" in rest
        # The same cap on a connection aiohttp owns (after a chunked request).
        chunked = head(relay, "Transfer-Encoding: chunked") + b"0\r\n\r\n"
        over = head(relay, *fields, "X-One-More: v", "X: w")
        status_line, _ = await exchange(relay, over, first=chunked)
        assert status_of(status_line) in (400, 431)


async def _bad_requests_leave_no_cycles(relay: RelayHandle, request: bytes, first: bytes) -> int:
    gc.collect()
    gc.disable()
    try:
        for _ in range(30):
            await exchange(relay, request, first=first)
        return gc.collect()
    finally:
        gc.enable()


@pytest.mark.parametrize("path", ["front", "aiohttp"])
async def test_refused_requests_leave_no_reference_cycles_holding_their_bytes(
    echo: RelayHandle, path: str
) -> None:
    """Each refusal is freed by reference counting: the cyclic GC finds next to nothing.

    (asyncio's own selector transport is a cycle of a few small objects per
    connection, on both sides of this test; the old aiohttp path left a frame,
    traceback and error per refusal, each holding up to 256 KiB of input.)
    """
    first = b"" if path == "front" else head(echo, method="GET", target="/", host="127.0.0.1")
    big = head(echo, "X-Big: " + "a" * (300 * 1024))
    baseline = await _bad_requests_leave_no_cycles(echo, head(echo, "Connection: close"), first)
    refused = await _bad_requests_leave_no_cycles(echo, big, first)
    assert refused <= baseline + 30, (baseline, refused)
    garbage = []
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.disable()
        for _ in range(5):
            await exchange(echo, big, first=first)
        gc.collect()
        garbage = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert "frame" not in garbage and "traceback" not in garbage


# -- item 2: Host -------------------------------------------------------------------

BAD_HOSTS = ["a:99999", "127.0.0.1:1:2", "", "a b", "a@b", "a/b", "[::1", "a:-1", "a:", "é.com"]


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_host_name_refuses_what_is_not_host_port(host: str) -> None:
    with pytest.raises(BadRequest, match="malformed Host header"):
        host_name(host)


def test_host_name_accepts_names_addresses_and_ports() -> None:
    assert host_name("Relay.Example.COM:443") == "relay.example.com"
    assert host_name("127.0.0.1") == "127.0.0.1"
    assert host_name("[::1]:9350") == "::1"
    assert host_name("my_host:0") == "my_host"


@pytest.mark.parametrize("host", ["a:99999", "127.0.0.1:1:2", ""])
async def test_a_malformed_host_is_a_400_on_every_path(
    echo: RelayHandle, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = quote(echo.token("echo"), safe="")
    requests = {
        "front": head(echo, host=host),
        "aiohttp sender": head(echo, "Transfer-Encoding: chunked", host=host) + b"0\r\n\r\n",
        "listen": head(echo, "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", method="GET", host=host,
                       target=f"/$hc/echo?sb-hc-action=listen&sb-hc-token={token}"),
        "connect": head(echo, "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", method="GET", host=host,
                        target=f"/$hc/echo?sb-hc-action=connect&sb-hc-token={token}"),
        "feed": head(echo, method="GET", target="/", host=host),
    }
    handed_off = head(echo, method="GET", target="/")  # later requests: aiohttp parses them
    for name, request in requests.items():
        for first in (b"", handed_off):
            status_line, rest = await exchange(echo, request, first=first)
            assert status_of(status_line) == 400, (name, first, status_line)
            assert b"malformed Host header" in rest, (name, rest)
    no_tracebacks(caplog)


# -- item 8: absolute form, bare LF, HTTP/0.9 -----------------------------------------


async def test_an_absolute_form_target_naming_another_host_is_refused_and_never_reaches_the_feed(
    echo: RelayHandle,
) -> None:
    for first in (b"", head(echo, method="GET", target="/")):
        status_line, rest = await exchange(
            echo, head(echo, method="GET", target="http://evil.example/"), first=first
        )
        assert status_of(status_line) == 400 and b"evil" not in rest
        assert b"<link" not in rest
    # The same authority as Host is accepted, and the feed's self link is the Host's.
    own = f"http://127.0.0.1:{echo.port}/"
    status_line, rest = await exchange(echo, head(echo, "Connection: close", method="GET", target=own))
    assert status_of(status_line) == 200
    assert f'href="http://127.0.0.1:{echo.port}/"'.encode() in rest
    assert b"evil" not in rest


async def test_bare_lf_line_endings_get_a_prompt_400(make_relay: RelayFactory) -> None:
    relay = await make_relay(header_timeout=60.0, idle_timeout=60.0)
    for request in (b"POST /echo HTTP/1.1\nHost: 127.0.0.1\nContent-Length: 0\n\n",
                    b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\nX: y\n\n"):
        for first in (b"", head(relay, method="GET", target="/")):
            status_line, _ = await exchange(relay, request, first=first, timeout=5)
            assert status_of(status_line) == 400, (request, first)


@pytest.mark.parametrize("line", [b"GET /echo HTTP/0.9", b"GET /echo", b"GET /echo HTTP/2.0"])
async def test_a_request_line_of_another_version_is_answered_as_http_1_1(
    echo: RelayHandle, line: bytes
) -> None:
    for first in (b"", head(echo, method="GET", target="/")):
        status_line, _ = await exchange(echo, line + b"\r\nHost: 127.0.0.1\r\n\r\n", first=first)
        assert status_line.startswith(b"HTTP/1.1 ") and status_of(status_line) == 505, first


# -- item 3: fuzzing: a status line or a clean close, never a hang or a traceback -----

VALID = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\nhi"
MUTATIONS = [
    VALID.replace(b"POST", b"P@ST"),
    VALID.replace(b"POST", b"FOOBAR"),
    VALID.replace(b"POST", b""),
    VALID.replace(b"HTTP/1.1", b"HTTP/1.2"),
    VALID.replace(b"HTTP/1.1", b"HTTP/9.9"),
    VALID.replace(b"HTTP/1.1", b"HTTX/1.1"),
    VALID.replace(b"HTTP/1.1", b"HTTP/1.1 extra"),
    VALID.replace(b"HTTP/1.1", b""),
    VALID.replace(b"/echo", b"/ec\x00ho"),
    VALID.replace(b"/echo", b"/ec ho"),
    VALID.replace(b"/echo", b"*"),
    VALID.replace(b"127.0.0.1", b"127.0.0.1\x00"),
    VALID.replace(b"\r\n", b"\n"),
    VALID.replace(b"\r\n", b"\r"),
    VALID.replace(b"\r\n\r\n", b"\r\n\n"),
    VALID.replace(b"Content-Length: 2", b"Content-Length: 2\r\nContent-Length: 3"),
    VALID.replace(b"Content-Length: 2", b"Content-Length: -2"),
    VALID.replace(b"Content-Length: 2", b"Content-Length: 2x"),
    VALID.replace(b"Content-Length: 2", b"Content-Length: 99999999999999999999999"),
    VALID.replace(b"Content-Length: 2", b"Content-Length: 2\r\nTransfer-Encoding: chunked"),
    VALID.replace(b"Content-Length: 2", b"Transfer-Encoding: gzip"),
    VALID.replace(b"Content-Length: 2\r\n\r\nhi", b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhi\r\n0\r\n\r\n"),
    VALID.replace(b"Host: 127.0.0.1", b"Host: 127.0.0.1\r\n folded"),
    VALID.replace(b"Host: 127.0.0.1", b"Host : 127.0.0.1"),
    VALID.replace(b"Host: 127.0.0.1", b"Ho\x7fst: 127.0.0.1"),
    VALID.replace(b"Host: 127.0.0.1", b"Host: 127.0.0.1\r\nHost: 127.0.0.2"),
    VALID.replace(b"Host: 127.0.0.1", b": nameless"),
    VALID.replace(b"Host: 127.0.0.1", b"X-Long: " + b"l" * 20_000),
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64)),  # a TLS ClientHello
    b"\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 500 + b"\r\n",
    bytes(range(256)) * 4,
]


@pytest.mark.parametrize("handed_off", [False, True], ids=["front", "aiohttp"])
async def test_mutated_requests_get_a_status_or_a_clean_close_and_no_traceback(
    make_relay: RelayFactory, handed_off: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # Short timeouts: a mutation that leaves a head incomplete ("\r\n\r\n" is only the
    # blank lines RFC 9112 §2.2 lets a server skip) ends within them.
    echo = await make_relay(header_timeout=2.0, idle_timeout=2.0)
    async with RawListener(echo.ws_url, "echo", echo.token("echo")):
        await _fuzz(echo, handed_off, caplog)


async def _fuzz(echo: RelayHandle, handed_off: bool, caplog: pytest.LogCaptureFixture) -> None:
    first = head(echo, method="GET", target="/") if handed_off else b""
    for request in MUTATIONS:
        status_line, _ = await exchange(echo, request, first=first, timeout=6)
        if status_line:
            # aiohttp answers what its parser refuses as HTTP/1.0 (the version it assumes).
            assert status_line.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), (request[:60], status_line)
            assert int(status_line.split()[1]) >= 400, (request[:60], status_line)
    no_tracebacks(caplog)
    # The relay still serves.
    status_line, _ = await exchange(echo, head(echo, "Connection: close", body=b"ok"))
    assert status_of(status_line) == 200


# -- the rate-limited WARNING --------------------------------------------------------


def test_client_errors_are_at_most_n_lines_per_window_then_a_suppressed_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    errors = ClientErrorLog(logging.getLogger("test.client"), limit=3, window=10.0,
                            clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "test.client"):
        for i in range(10):
            errors.warning("bad %d", i)
        assert [r.getMessage() for r in caplog.records] == ["bad 0", "bad 1", "bad 2"]
        now[0] = 10.5
        errors.warning("bad %d", 10)
    assert caplog.records[-1].getMessage() == (
        "bad 10 (and 7 similar lines suppressed in the last 10 s)"
    )
    assert all(r.levelno == logging.WARNING for r in caplog.records)


async def test_a_flood_of_bad_requests_logs_a_bounded_number_of_lines(
    echo: RelayHandle, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        for _ in range(40):
            await exchange(echo, b"NOT HTTP\r\n\r\n")
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 <= len(lines) <= 10


class _ResetTransport(asyncio.Transport):
    """A connection the peer has already reset: half-closing it fails as on Linux."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 40000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        raise OSError(107, "Transport endpoint is not connected")

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def test_refusing_a_connection_the_peer_already_reset_is_quiet(arelay: RelayHandle) -> None:
    """Found by the chaos suite: the front half-closes after a refusal, and on a connection
    the client had just reset that raised, as an unretrieved task exception."""
    front = arelay.server.front
    assert front is not None
    protocol = front()
    transport = _ResetTransport()
    protocol.connection_made(transport)
    protocol.data_received(b"\x00BAD / HTTP/1.1\r\n\r\n")  # refused at once: a 400, then the FIN
    assert transport.written.startswith(b"HTTP/1.1 400 ")
    assert transport.closed
    protocol.connection_lost(None)  # (as a real transport would, once closed)


async def test_connections_past_max_connections_get_503_and_a_freed_place_is_taken_again(
    make_relay: RelayFactory,
) -> None:
    """Each connection is bounded; max_connections bounds how many, listeners (handed to
    aiohttp) included, so a flood of them cannot make the relay hold without limit."""
    relay = await make_relay(max_connections=3)
    async with RawListener(relay.ws_url, "echo", relay.token("echo")):  # one, via aiohttp
        idle = [await asyncio.open_connection("127.0.0.1", relay.port) for _ in range(2)]
        front = relay.server.front
        assert front is not None
        while front.open_connections < 3:  # the server side has taken them
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        refused = await asyncio.wait_for(reader.read(), 5)
        assert refused.startswith(b"HTTP/1.1 503 ") and b"ServerBusy" in refused
        writer.close()
        idle[0][1].close()  # a place frees up
        while front.open_connections > 2:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(head(relay, method="GET", target="/echo"))
        assert status_of(await reader.readuntil(b"\r\n")) == 200
        writer.close()
        idle[1][1].close()
    while front.open_connections:  # the listener's place too, once aiohttp lost it
        await asyncio.sleep(0.01)
