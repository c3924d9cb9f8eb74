"""Scenario 6: garbage on a listener's control channel.

A client with a valid Listen token connects as a listener and sends what no listener
should: random bytes, invalid JSON, a huge text frame, a response for a request that
was never made, a binary frame with no command before it, a ``renewToken`` with a bad
token, and random JSON shapes.  The relay must close that control channel (1008 or
another protocol-error code), keep serving the real listener beside it and its
senders, and log no traceback.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.chaos.conftest import (
    ENTITY,
    assert_no_traceback,
    assert_serving,
    pick,
    record,
    start_echo,
)
from tests.support.procs import Children, RelayProcess

#: Close codes that mean "you broke the protocol" (RFC 6455 §7.4.1).
PROTOCOL_CLOSE = {1002, 1003, 1007, 1008, 1009}
CLOSE_WITHIN = 10.0
RANDOM_CASES = pick(20, 300)


def _fixed_cases() -> dict[str, list[str | bytes]]:
    response = {"response": {"requestId": "never-issued", "statusCode": 200,
                             "responseHeaders": {}, "body": False}}
    return {
        "random bytes": [random.randbytes(512)],
        "invalid JSON": ["{not json at all"],
        "huge text frame": ["x" * (16 * 1024 * 1024)],
        "binary without a command": [b"\x00\x01body with no request"],
        "renewToken with a bad token": [json.dumps({"renewToken": {"token": "SharedAccess x"}})],
        "unknown command": [json.dumps({"launchMissiles": {}})],
        "response for an unknown id, then garbage": [json.dumps(response), "]["],
    }


def _random_case(rng: random.Random) -> list[str | bytes]:
    shapes: list[object] = [
        rng.randbytes(rng.randint(1, 4096)),
        "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(rng.randint(1, 200))),
        json.dumps([rng.random() for _ in range(rng.randint(0, 20))]),
        json.dumps({"request": rng.choice([None, 5, "x", [], {"id": 1}])}),
        json.dumps({"accept": {"address": rng.choice(["", "ws://", 7]), "id": []}}),
        json.dumps({"response": {"requestId": rng.random(), "statusCode": "two hundred"}}),
        json.dumps({"renewToken": rng.choice([None, {}, {"token": 5}])}),
    ]
    return [rng.choice(shapes)]  # type: ignore[list-item]


async def _send_garbage(relay: RelayProcess, frames: list[str | bytes]) -> int | None:
    """Connect as a listener, send ``frames``; the close code (None: left open)."""
    url = f"{relay.ws_url}/$hc/{ENTITY}?sb-hc-action=listen"
    async with websockets.connect(url, max_size=None, additional_headers={
            "ServiceBusAuthorization": relay.token(ENTITY)}) as ws:
        try:
            for frame in frames:
                await ws.send(frame)
            await asyncio.wait_for(ws.wait_closed(), CLOSE_WITHIN)
        except ConnectionClosed:
            pass
        except TimeoutError:
            return None
        return ws.close_code


@pytest.mark.timeout(pick(150, 600))
async def test_control_channel_garbage_closes_that_listener_and_nothing_else(
    children: Children, relay: RelayProcess
) -> None:
    start_echo(children, relay, "A")
    await assert_serving(relay)
    rng = random.Random(10)
    cases = {**_fixed_cases(), **{f"random {n}": _random_case(rng) for n in range(RANDOM_CASES)}}
    left_open, codes = [], Counter[int | None]()
    for name, frames in cases.items():
        code = await _send_garbage(relay, frames)
        codes[code] += 1
        if code not in PROTOCOL_CLOSE:
            left_open.append(f"{name}: {code}")
        await assert_serving(relay)
    record("6 control-channel fuzzing", cases=len(cases),
           close_codes={str(k): v for k, v in codes.items()})
    assert not left_open, f"garbage left the listener open or closed it abruptly: {left_open}"
    assert_no_traceback(relay)
