"""``soaprelay serve`` as a real process: what it prints, one round trip, SIGTERM, restart.

The process runs the code of this checkout (``PYTHONPATH``) in a temporary working
directory; every wait is on its output or its exit, never a sleep.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp

from tests.support.procs import RelayProcess, child_env
from tests.support.raw_listener import RawListener
from tests.support.relay import Relays


def serve(relays: Relays, folder: Path, state_dir: Path, name: str) -> RelayProcess:
    """``soaprelay serve`` with the development namespace kept in ``state_dir``, run from
    ``folder`` with its stdout buffered as under a supervisor (unbuffered output would
    hide a missing flush of the banner)."""
    env = {k: v for k, v in child_env().items() if k != "PYTHONUNBUFFERED"}
    return relays.process(name, state_dir=state_dir, env=env, cwd=folder)


async def terminate(relay: RelayProcess) -> int:
    """SIGTERM, and the exit code (waited for off the loop: listeners here still answer)."""
    relay.signal(signal.SIGTERM)
    return await asyncio.to_thread(relay.wait, 30)


async def test_serve_prints_address_and_connection_string_relays_stops_and_keeps_its_key(
    tmp_path: Path, relays: Relays
) -> None:
    state_dir = tmp_path / "state"
    first = serve(relays, tmp_path, state_dir, "first")
    assert first.base_url.startswith("http://127.0.0.1:")
    port = int(first.base_url.rsplit(":", 1)[1])
    assert port != 0
    cs = first.keys  # every part of the printed connection string
    assert cs["Endpoint"] == f"sb://127.0.0.1:{port}/"
    assert cs["SharedAccessKeyName"] == "RootManageSharedAccessKey"
    assert cs["UseTls"] == "false" and len(cs["SharedAccessKey"]) >= 16
    assert (state_dir / "keys.json").is_file()
    assert not (tmp_path / ".soaprelay").exists()  # --state-dir was used, not the cwd

    ws_base = first.base_url.replace("http", "ws", 1)
    async with RawListener(ws_base, "echo", first.token("echo")) as lst:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{first.base_url}/echo/hi", data=b"round trip",
                                 headers={"ServiceBusAuthorization": first.token("echo")}) as resp:
                assert resp.status == 200 and await resp.read() == b"round trip"
                assert resp.headers["Via"] == f"1.1 127.0.0.1:{port}"
        assert [r.command["requestTarget"] for r in lst.received] == ["/echo/hi"]
        assert await terminate(first) == 0
        assert lst.ws is not None
        await asyncio.wait_for(lst.ws.wait_closed(), 10)
        assert lst.ws.close_code == 1001  # relay shutting down

    second = serve(relays, tmp_path, state_dir, "second")
    assert second.keys["SharedAccessKey"] == cs["SharedAccessKey"]
    assert second.keys["SharedAccessKeyName"] == cs["SharedAccessKeyName"]
    # Tokens signed with the first run's key still work (the port is not part of the match).
    second_ws = second.base_url.replace("http", "ws", 1)
    async with RawListener(second_ws, "echo", first.token("echo")):
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{second.base_url}/echo", data=b"again",
                                 headers={"ServiceBusAuthorization": first.token("echo")}) as resp:
                assert resp.status == 200 and await resp.read() == b"again"
        assert await terminate(second) == 0
