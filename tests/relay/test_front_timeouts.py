"""Slow clients (issue 10, items 5 and 8): header, idle and body timeouts on both paths,
the namespace keys that set them, and ``run()`` without a false uvloop context."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hc.entities import EntityKind
from relay.config import load_config
from relay.exceptions import ConfigError
from relay.namespace import EntityConfig
from tests.conftest import RelayFactory
from tests.relay.test_front import read_response
from tests.relay.test_front_hardening import head, status_of
from tests.support.raw_listener import RawListener
from tests.support.relay import RelayHandle

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]
FAST = {"header_timeout": 1.0, "idle_timeout": 1.0, "body_timeout": 1.0, "min_body_rate": 1000}


async def timed_reply(reader: asyncio.StreamReader, bound: float) -> tuple[bytes, float]:
    """Everything the relay sends until it closes, and how long that took."""
    start = time.monotonic()
    data = await asyncio.wait_for(reader.read(), bound)
    return data, time.monotonic() - start


async def test_a_head_that_never_ends_gets_408_within_the_header_timeout(
    make_relay: RelayFactory,
) -> None:
    relay = await make_relay(**FAST)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and nothing more
    data, took = await timed_reply(reader, 10)
    assert data.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in data
    assert took < 1.0 + 2.5  # the timeout, plus the once-a-second sweep, plus slack
    writer.close()


async def test_a_connection_that_sends_nothing_is_closed_silently(make_relay: RelayFactory) -> None:
    relay = await make_relay(**FAST)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    data, took = await timed_reply(reader, 10)
    assert data == b"" and took < 1.0 + 2.5
    writer.close()


async def test_keep_alive_connections_close_after_the_idle_timeout_on_both_paths(
    make_relay: RelayFactory,
) -> None:
    relay = await make_relay(**{**FAST, "idle_timeout": 2.0})
    async with RawListener(relay.ws_url, "echo", relay.token("echo")):
        for request in (head(relay, body=b"hi"), head(relay, method="GET", target="/")):
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
            writer.write(request)
            status, _, _ = await read_response(reader)
            assert status == 200
            start = time.monotonic()
            assert await asyncio.wait_for(reader.read(), 10) == b""
            assert 1.0 < time.monotonic() - start < 2.0 + 2.5
            writer.close()


async def test_a_small_body_dripping_slower_than_the_minimum_rate_gets_408(
    make_relay: RelayFactory,
) -> None:
    relay = await make_relay(**FAST)
    async with RawListener(relay.ws_url, "echo", relay.token("echo")):
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(head(relay, body=b"x" * 5000)[:-4990])  # the head and 10 bytes
        data, took = await timed_reply(reader, 10)
        assert data.startswith(b"HTTP/1.1 408 ") and b"bytes/s" in data
        assert took < 1.0 + 2.5
        writer.close()


async def test_a_body_the_aiohttp_path_reads_must_keep_the_minimum_rate_too(
    make_relay: RelayFactory,
) -> None:
    """A 200 KiB SOAP body (read whole to look for a RelayAccessToken) and an event's
    chunked body (read whole to copy to every subscriber) that stop arriving."""
    event = EntityConfig.for_kind("news", EntityKind.EVENT, requires_client_authorization=False)
    relay = await make_relay(event, **FAST)
    soap = head(relay, "Content-Type: text/xml", body=b"<x/>" * 50_000)
    chunked = head(relay, "Transfer-Encoding: chunked", target="/news") + b"5\r\nhello\r\n"
    async with RawListener(relay.ws_url, "echo", relay.token("echo")), \
            RawListener(relay.ws_url, "news", relay.token("news")):
        # 1,000 bytes in: body_timeout + 1 s before the relay gives up on the rest.
        for request in (soap[: len(soap) - 200_000 + 1000], chunked):
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
            writer.write(request)
            data, took = await timed_reply(reader, 15)
            assert status_of(data.partition(b"\r\n")[0]) == 408, data[:200]
            assert b"RequestTimeout" in data
            assert took < 1.0 + 1.0 + 2
            writer.close()


async def test_a_body_at_a_steady_rate_above_the_minimum_is_served(make_relay: RelayFactory) -> None:
    relay = await make_relay(**FAST)
    async with RawListener(relay.ws_url, "echo", relay.token("echo")):
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        request = head(relay, "Content-Type: text/xml", body=b"y" * 6000)
        writer.write(request[:-6000])
        for i in range(6):  # 1,000 bytes every 0.3 s: ~3,300 B/s, over 1.8 s > body_timeout
            await asyncio.sleep(0.3)
            writer.write(b"y" * 1000)
        status, _, body = await asyncio.wait_for(read_response(reader), 10)
        assert (status, len(body)) == (200, 6000)
        writer.close()


# -- config ---------------------------------------------------------------------------


def test_the_timeout_keys_are_read_from_the_namespace_table(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(
        "[namespace]\nheader_timeout = 5\nidle_timeout = 30.5\nbody_timeout = 20\n"
        "min_body_rate = 500\nmax_headers = 64\n"
    )
    config = load_config(path)
    assert (config.header_timeout, config.idle_timeout, config.body_timeout) == (5.0, 30.5, 20.0)
    assert (config.min_body_rate, config.max_headers) == (500, 64)
    defaults = load_config(_write(tmp_path, ""))
    assert (defaults.header_timeout, defaults.idle_timeout, defaults.body_timeout) == (10, 15, 10)
    assert (defaults.min_body_rate, defaults.max_headers) == (1000, 100)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("header_timeout = 0", "namespace.header_timeout: must be a positive number of seconds"),
        ("idle_timeout = -1", "namespace.idle_timeout: must be a positive number of seconds"),
        ("body_timeout = 7200", "namespace.body_timeout: must be at most 3600 seconds"),
        ('body_timeout = "10"', "namespace.body_timeout: must be a number of seconds, not a string"),
        ("min_body_rate = 0", "namespace.min_body_rate: must be at least 1, not 0"),
        ("min_body_rate = 1.5", "namespace.min_body_rate: must be an integer, not a float"),
        ("max_headers = 0", "namespace.max_headers: must be between 1 and 10000, not 0"),
        ("header_timout = 1", "namespace.header_timout: unknown key (did you mean 'header_timeout'?)"),
    ],
)
def test_bad_timeout_keys_are_refused_with_a_clear_error(
    tmp_path: Path, line: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, line))
    assert message in str(caught.value)


def _write(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(f"[namespace]\n{line}\n")
    return path


# -- run() ----------------------------------------------------------------------------


def test_run_starts_its_loop_outside_the_uvloop_import_block() -> None:
    """An exception escaping the relay carries no ``ModuleNotFoundError: uvloop`` context."""
    script = (
        "import sys; sys.modules['uvloop'] = None\n"
        "from relay import server\n"
        "from relay.namespace import NamespaceConfig\n"
        "async def boom(self): raise RuntimeError('boom')\n"
        "server.RelayServer.start = boom\n"
        "server.run(NamespaceConfig(port=0))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=30, check=False)
    assert "RuntimeError: boom" in done.stderr
    assert "uvloop" not in done.stderr and "During handling" not in done.stderr, done.stderr


async def test_an_aiohttp_connection_idle_mid_head_is_closed(make_relay: RelayFactory) -> None:
    """A connection aiohttp owns: a later head that never ends is cut at the idle timeout."""
    relay: RelayHandle = await make_relay(**FAST)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    writer.write(head(relay, method="GET", target="/"))
    status, _, _ = await read_response(reader)
    assert status == 200
    writer.write(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    _, took = await timed_reply(reader, 10)
    assert took < 1.0 + 2.5
    writer.close()
