"""relay.front on the wire: raw HTTP/1.1 bytes in, what a client must get back out."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from tests.support.raw_listener import RawListener
from tests.support.relay import RelayHandle


@pytest.fixture
async def echo(arelay: RelayHandle) -> AsyncIterator[RelayHandle]:
    async with RawListener(arelay.ws_url, "echo", arelay.token("echo")):
        yield arelay


def post(relay: RelayHandle, body: bytes, *extra: str, method: str = "POST") -> bytes:
    lines = [
        f"{method} /echo HTTP/1.1", f"Host: 127.0.0.1:{relay.port}",
        f"ServiceBusAuthorization: {relay.token('echo')}", f"Content-Length: {len(body)}", *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader, *, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    if head_only or status in (100, 204):
        return status, headers, b""
    if "content-length" in headers:
        return status, headers, await reader.readexactly(int(headers["content-length"]))
    body = bytearray()
    while True:  # chunked
        size = int((await reader.readline()).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, headers, bytes(body)
        body += chunk[:-2]


async def connect(relay: RelayHandle) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", relay.port)


async def test_pipelined_requests_are_answered_in_order(echo: RelayHandle) -> None:
    reader, writer = await connect(echo)
    writer.write(post(echo, b"one") + post(echo, b"two") + post(echo, b"three"))
    bodies = [(await read_response(reader))[2] for _ in range(3)]
    assert bodies == [b"one", b"two", b"three"]
    writer.close()


async def test_a_head_arriving_byte_by_byte_is_served(echo: RelayHandle) -> None:
    reader, writer = await connect(echo)
    for byte in post(echo, b"slow"):
        writer.write(bytes([byte]))
        await writer.drain()
    status, _, body = await read_response(reader)
    assert (status, body) == (200, b"slow")
    writer.close()


async def test_a_chunked_request_after_small_ones_is_handed_to_aiohttp_on_the_same_connection(
    echo: RelayHandle,
) -> None:
    reader, writer = await connect(echo)
    writer.write(post(echo, b"small"))
    assert (await read_response(reader))[2] == b"small"
    chunked = post(echo, b"", "Transfer-Encoding: chunked").replace(b"Content-Length: 0\r\n", b"")
    writer.write(chunked + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert (await read_response(reader))[2] == b"hello world"
    writer.write(post(echo, b"after"))  # aiohttp keeps the connection and serves it
    assert (await read_response(reader))[2] == b"after"
    writer.close()


async def test_expect_100_continue_gets_its_interim_answer(echo: RelayHandle) -> None:
    reader, writer = await connect(echo)
    writer.write(post(echo, b"", "Expect: 100-continue").replace(b"Content-Length: 0", b"Content-Length: 4"))
    status, _, _ = await read_response(reader)
    assert status == 100
    writer.write(b"body")
    assert (await read_response(reader))[2] == b"body"
    writer.close()


async def test_connection_close_and_http_1_0_end_the_connection(echo: RelayHandle) -> None:
    for request in (post(echo, b"bye", "Connection: close"),
                    post(echo, b"old").replace(b"HTTP/1.1", b"HTTP/1.0")):
        reader, writer = await connect(echo)
        writer.write(request)
        status, _, body = await read_response(reader)
        assert status == 200 and body in (b"bye", b"old")
        assert await reader.read() == b""  # the relay closed it
        writer.close()


async def test_head_gets_headers_and_no_body(echo: RelayHandle) -> None:
    reader, writer = await connect(echo)
    writer.write(post(echo, b"", method="HEAD") + post(echo, b"next"))
    status, headers, _ = await read_response(reader, head_only=True)
    assert status == 200 and "via" in headers
    assert (await read_response(reader))[2] == b"next"  # nothing stray between the two
    writer.close()


async def test_garbage_gets_a_400_and_others_are_still_served(echo: RelayHandle) -> None:
    reader, writer = await connect(echo)
    writer.write(b"THIS IS NOT HTTP\r\n\r\n")
    status, _, _ = await read_response(reader)
    assert status == 400
    writer.close()
    reader, writer = await connect(echo)
    writer.write(post(echo, b"fine"))
    assert (await read_response(reader))[2] == b"fine"
    writer.close()


async def test_an_answer_from_the_front_carries_date_via_and_a_length(echo: RelayHandle) -> None:
    reader, writer = await connect(echo)
    writer.write(post(echo, b"x" * 1000))
    status, headers, body = await read_response(reader)
    assert status == 200 and len(body) == 1000
    assert headers["content-length"] == "1000" and "date" in headers
    assert headers["via"].startswith("1.1 127.0.0.1:")
    writer.close()


@pytest.mark.parametrize("status", [204, 304])
async def test_a_204_or_304_carries_no_framing_and_keeps_the_connection(
    arelay: RelayHandle, status: int
) -> None:
    """RFC 9110 §8.6, §15.3.5: no Content-Length on a 204, no content after either; a
    listener's body there is dropped so that the next response is read right."""

    async def answer(command: object, body: bytes) -> tuple[int, dict[str, str], bytes]:
        return (status, {}, b"") if body != b"two" else (200, {}, b"two")

    async with RawListener(arelay.ws_url, "echo", arelay.token("echo"), serve=answer):
        reader, writer = await connect(arelay)
        writer.write(post(arelay, b"one") + post(arelay, b"two"))
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d " % status)
        assert b"content-length" not in head.lower() and b"transfer-encoding" not in head.lower()
        assert (await read_response(reader))[::2] == (200, b"two")
        writer.close()


#: More than a client may get the relay to read while it does not read its answers: the
#: kernel's buffers, the front's read mark (256 KiB) and one write buffer's worth.  Before,
#: the front read on and buffered the requests (or the answers) without end (1.2 GB in 15 s).
UNREAD_BOUND = 32 * 2**20


def pipeline_until_held(port: int, request: bytes) -> int:
    """Send ``request`` again and again on one connection that reads nothing (its receive
    buffer kept small); returns how many went whole before the relay stopped reading."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.settimeout(1.0)
        batch, sent = request * 256, 0
        while sent < UNREAD_BOUND:
            try:
                sock.sendall(batch)
            except TimeoutError:
                break
            sent += len(batch)
        # Now read: every request sent whole is answered, in order.
        sock.settimeout(10)
        whole, answers, data = sent // len(request), 0, b""
        while answers < whole:
            chunk = sock.recv(1 << 16)
            assert chunk, f"the relay closed after {answers} of {whole} answers"
            data += chunk
            answers += data.count(b"HTTP/1.1 ")
            data = data[data.rfind(b"HTTP/1.1 ") + 1 :] if b"HTTP/1.1 " in data else data[-8:]
        assert sent < UNREAD_BOUND, "the relay went on reading a client that reads nothing"
        return whole


async def test_a_client_pipelining_requests_it_never_reads_the_answers_of_is_held(
    arelay: RelayHandle,
) -> None:
    request = f"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1:{arelay.port}\r\n\r\n".encode()
    assert await asyncio.to_thread(pipeline_until_held, arelay.port, request) > 0


async def test_a_client_pipelining_calls_it_never_reads_the_answers_of_is_held(
    echo: RelayHandle,
) -> None:
    assert await asyncio.to_thread(pipeline_until_held, echo.port, post(echo, b"x" * 512)) > 0


async def test_a_request_for_aiohttp_behind_many_pipelined_ones_is_served(echo: RelayHandle) -> None:
    """The front stops reading while more than its mark is buffered; the chunked request
    it hands to aiohttp in the middle of that must not leave the connection unread."""
    reader, writer = await connect(echo)
    before = [post(echo, b"a%d" % i) for i in range(1000)]
    chunked = post(echo, b"", "Transfer-Encoding: chunked").replace(b"Content-Length: 0\r\n", b"")
    after = [post(echo, b"b%d" % i) for i in range(3000)]  # over the mark behind it
    writer.write(b"".join(before) + chunked + b"5\r\nhello\r\n0\r\n\r\n" + b"".join(after))
    bodies = [(await asyncio.wait_for(read_response(reader), 10))[2] for _ in range(4001)]
    assert bodies[:1000] == [b"a%d" % i for i in range(1000)]
    assert bodies[1000] == b"hello"
    assert bodies[1001:] == [b"b%d" % i for i in range(3000)]
    writer.close()
