"""Scenario 6b: malformed HTTP to the relay's front, with no credentials.

Bad ``Host`` ports (``a:99999``, ``127.0.0.1:1:2``) on the sender path and on the
listener handshake, bare-LF line endings, an absolute-form request line, a mutated
protocol version, random bytes, and random mutations of a valid request.  Each must get
a 4xx (or a plain close) promptly (an incomplete head: after the header timeout),
never a 5xx nor an ``HTTP/0.9`` reply nor the attacker's host echoed back (an
absolute-form request may be served: it is valid HTTP/1.1); the relay logs no traceback and no ERROR line for them,
and keeps serving.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from tests.chaos.conftest import (
    ENTITY,
    assert_no_traceback,
    assert_serving,
    pick,
    record,
    start_echo,
)
from tests.chaos.floods import HEAD_LIMIT
from tests.support.procs import Children, RelayProcess

PROMPT = 5.0            # a complete but malformed request is refused within this
HEADER_TIMEOUT = 10.0   # an incomplete head is cut after this (plus SLACK)
SLACK = 8.0
RANDOM_CASES = pick(100, 2000)
_UPGRADE = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")


def _fixed_cases(host: str) -> dict[str, bytes]:
    listen = f"GET /$hc/{ENTITY}?sb-hc-action=listen HTTP/1.1\r\n"
    return {
        "sender, Host port out of range": b"POST /echo HTTP/1.1\r\nHost: a:99999\r\n"
        b"ServiceBusAuthorization: junk\r\nContent-Length: 0\r\n\r\n",
        "sender, Host with two ports": b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:1:2\r\n"
        b"ServiceBusAuthorization: junk\r\nContent-Length: 0\r\n\r\n",
        "listener, Host port out of range": (listen + "Host: a:99999\r\n" + _UPGRADE
                                             + "ServiceBusAuthorization: junk\r\n\r\n").encode(),
        "listener, Host with two ports": (listen + "Host: 127.0.0.1:1:2\r\n" + _UPGRADE
                                          + "ServiceBusAuthorization: junk\r\n\r\n").encode(),
        "bare LF line endings": f"GET /{ENTITY} HTTP/1.1\nHost: {host}\n\n".encode(),
        "absolute-form request line": f"GET http://evil.example/ HTTP/1.1\r\nHost: {host}"
        "\r\n\r\n".encode(),
        "mutated protocol version": f"GET /{ENTITY} HTTX/1.1\r\nHost: {host}\r\n\r\n".encode(),
        "no version at all": f"GET /{ENTITY}\r\n\r\n".encode(),
        "random bytes": random.Random(6).randbytes(300) + b"\r\n\r\n",
    }


def _mutated(valid: bytes, rng: random.Random) -> bytes:
    data = bytearray(valid)
    for _ in range(rng.randint(1, 6)):
        where = rng.randrange(len(data))
        action = rng.randrange(3)
        if action == 0:
            data[where] = rng.randrange(256)
        elif action == 1:
            data.insert(where, rng.randrange(256))
        else:
            del data[where]
    return bytes(data)


async def _exchange(relay: RelayProcess, request: bytes, limit: float) -> tuple[bytes, float]:
    """Send ``request``; the start of the reply and the seconds until reply or close."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader, writer = await asyncio.open_connection(relay.host, relay.port)
    reply = b""
    try:
        writer.write(request)
        while len(reply) < HEAD_LIMIT:
            chunk = await asyncio.wait_for(reader.read(HEAD_LIMIT), limit)
            if not chunk:
                break
            reply += chunk
            if b"\r\n\r\n" in reply:
                break
    except (TimeoutError, ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return reply, loop.time() - started


def _judge(name: str, reply: bytes, seconds: float, limit: float) -> list[str]:
    status_line = reply.split(b"\r\n", 1)[0]
    parts = status_line.split(b" ")
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    # An absolute-form target is valid HTTP/1.1 (RFC 9112 §3.2.2): it may be served.
    lowest = 200 if name.startswith("absolute-form") else 400
    problems = []
    # 505 is the right refusal of a request line with no or another HTTP version.
    if (status >= 500 and status != 505) or (status and status < lowest):
        problems.append(f"{name}: {status_line!r}")
    if reply and not reply.startswith(b"HTTP/1."):
        problems.append(f"{name}: reply starts {reply[:20]!r}")
    if b"evil.example" in reply:
        problems.append(f"{name}: the attacker's host came back")
    if seconds > limit:
        problems.append(f"{name}: {seconds:.1f} s to refuse")
    return problems


@pytest.mark.timeout(pick(120, 600))
async def test_malformed_http_gets_a_prompt_4xx_and_no_traceback(
    children: Children, relay: RelayProcess
) -> None:
    start_echo(children, relay, "A")
    await assert_serving(relay)
    host = f"{relay.host}:{relay.port}"
    problems, statuses = [], Counter[bytes]()
    for name, request in _fixed_cases(host).items():
        reply, seconds = await _exchange(relay, request, PROMPT + SLACK)
        statuses[reply.split(b"\r\n", 1)[0][:12]] += 1
        problems += _judge(name, reply, seconds, PROMPT)
    valid = (f"POST /{ENTITY} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml\r\n"
             "Content-Length: 5\r\n\r\n<a/>\n").encode()
    rng = random.Random(66)
    for start in range(0, RANDOM_CASES, 500):  # together: the incomplete heads wait at once
        batch = [_mutated(valid, rng) for _ in range(min(500, RANDOM_CASES - start))]
        replies = await asyncio.gather(*(_exchange(relay, r, HEADER_TIMEOUT + SLACK + 5)
                                         for r in batch))
        for number, (reply, seconds) in enumerate(replies, start):
            statuses[reply.split(b"\r\n", 1)[0][:12]] += 1
            problems += _judge(f"mutation {number}", reply, seconds, HEADER_TIMEOUT + SLACK)
    errors = [line for line in relay.stderr_text().splitlines() if " ERROR " in line]
    record("6b HTTP fuzzing", requests=sum(statuses.values()),
           replies={k.decode("latin-1") or "(closed)": v for k, v in statuses.items()},
           relay_error_lines=len(errors))
    assert not problems, "\n".join(problems[:20])
    assert not errors, f"{len(errors)} ERROR lines for client mistakes, e.g. {errors[0]}"
    await assert_serving(relay)
    assert_no_traceback(relay)
