"""Scenario 7: hostile SOAP through the relay to a ``RelayServiceHost`` (Spyne).

Billion laughs, XXE, 200-deep nesting and 50 MB of empty elements, each sent with a
valid token.  Each must get a clear refusal (413, or a 4xx/5xx SOAP fault, e.g. one
naming the reader quota such as MaxDepth) within a deadline, never the file an entity
points to; the listener process's peak RSS (VmHWM) must stay bounded (50 MB of
elements cost it a 1.6 GB peak before the reader quotas), and a normal call must work
afterwards.
"""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import aiohttp
import pytest

from tests.chaos.calls import SOAP11
from tests.chaos.conftest import (
    ENTITY,
    assert_no_traceback,
    assert_serving,
    pick,
    record,
    start_echo,
)
from tests.chaos.echo_service import TNS
from tests.support.procs import Child, Children, RelayProcess

LISTENER_GROWTH_MIB = 256.0   # the listener's peak RSS may rise by at most this per attack
ANSWER_WITHIN = 30.0
AT_ONCE = pick(1, 3)          # copies of the 50 MB attack sent together

_OPEN = ('<?xml version="1.0" encoding="utf-8"?>{dtd}<soap:Envelope '
         'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
         f'xmlns:c="{TNS}"><soap:Body><c:Echo><c:id>')
_CLOSE = "</c:id><c:delay>0</c:delay></c:Echo></soap:Body></soap:Envelope>"


def _billion_laughs() -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)]
    dtd = f"<!DOCTYPE soap:Envelope [{''.join(entities)}]>"
    return (_OPEN.format(dtd=dtd) + "&lol9;" + _CLOSE).encode()


def _xxe(secret: Path) -> bytes:
    dtd = f'<!DOCTYPE soap:Envelope [<!ENTITY xxe SYSTEM "file://{secret}">]>'
    return (_OPEN.format(dtd=dtd) + "&xxe;" + _CLOSE).encode()


def _deep(depth: int) -> bytes:
    return (_OPEN.format(dtd="") + "<a>" * depth + "x" + "</a>" * depth + _CLOSE).encode()


def _empty_elements(size: int) -> bytes:
    head, tail = _OPEN.format(dtd="").encode(), _CLOSE.encode()
    return head + b"<e/>" * ((size - len(head) - len(tail)) // 4) + tail


async def _attack(session: aiohttp.ClientSession, relay: RelayProcess, body: bytes,
                  copies: int = 1) -> list[tuple[int, bytes, float]]:
    url, token = f"{relay.base_url}/{ENTITY}", relay.token(ENTITY)

    async def one() -> tuple[int, bytes, float]:
        started = time.monotonic()
        headers = {**SOAP11, "ServiceBusAuthorization": token}
        try:
            async with session.post(url, data=io.BytesIO(body), headers=headers) as resp:
                return resp.status, await resp.read(), time.monotonic() - started
        except (TimeoutError, aiohttp.ClientError) as exc:  # judged: no clear refusal
            return 0, repr(exc).encode(), time.monotonic() - started

    return await asyncio.wait_for(asyncio.gather(*(one() for _ in range(copies))),
                                  ANSWER_WITHIN + 30)


@pytest.mark.timeout(pick(120, 240))
async def test_hostile_soap_gets_clear_faults_and_the_listener_memory_stays_bounded(
    children: Children, relay: RelayProcess, tmp_path: Path
) -> None:
    listener = start_echo(children, relay, "A")
    await assert_serving(relay)
    secret = tmp_path / "secret.txt"
    secret.write_text("chaos-secret-7f3a\n")
    attacks = {
        "billion laughs": (_billion_laughs(), 1),
        "XXE": (_xxe(secret), 1),
        "200-deep nesting": (_deep(200), 1),
        "50 MB of empty elements": (_empty_elements(50 * 1000 * 1000), AT_ONCE),
    }
    figures, problems = {}, []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ANSWER_WITHIN)) as http:
        for name, (body, copies) in attacks.items():
            baseline = listener.rss_mib()
            listener.reset_peak()
            answers = await _attack(http, relay, body, copies)
            growth = listener.peak_mib() - baseline
            figures[name] = {"status": sorted({a[0] for a in answers}),
                             "seconds": round(max(a[2] for a in answers), 2),
                             "listener_peak_growth_mib": round(growth, 1)}
            problems += _judge(name, answers, growth, listener)
            await assert_serving(relay)
    record("7 hostile SOAP", **figures)
    assert not problems, "\n".join(problems)
    assert_no_traceback(relay)


def _judge(name: str, answers: list[tuple[int, bytes, float]], growth: float,
           listener: Child) -> list[str]:
    problems = []
    for status, body, seconds in answers:
        clear = status == 413 or (400 <= status < 600 and b"Fault" in body)
        if not clear:
            problems.append(f"{name}: {status} {body[:200]!r} is no clear refusal")
        if b"chaos-secret" in body:
            problems.append(f"{name}: the answer carries the file's content")
        if seconds > ANSWER_WITHIN:
            problems.append(f"{name}: answered after {seconds:.1f} s")
    if growth > LISTENER_GROWTH_MIB:
        problems.append(f"{name}: the listener's peak RSS rose by {growth:.0f} MiB")
    if not listener.alive():
        problems.append(f"{name}: the listener process died{listener.tail()}")
    return problems
