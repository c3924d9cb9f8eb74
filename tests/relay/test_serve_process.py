"""``soaprelay serve`` as a real process: what it prints, one round trip, SIGTERM, restart.

The process runs the code of this checkout (``PYTHONPATH``) in a temporary working
directory; every wait is on its output or its exit, never a sleep.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from hc.sas import create_token
from tests.support.raw_listener import RawListener

ROOT = Path(__file__).resolve().parents[2]
#: ``python -m soaprelay`` rather than the console script: an installed ``soaprelay``
#: script may belong to another checkout, and PYTHONPATH picks this one.
SOAPRELAY = [sys.executable, "-m", "soaprelay"]
LISTENING = "soaprelay: listening on "
CONNECTION_STRING = "soaprelay: connection string: "


class Served:
    """A running ``soaprelay serve`` and what it printed."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc, self.log = proc, log
        self.base_url = ""
        self.connection_string: dict[str, str] = {}

    async def read_banner(self) -> None:
        listening = await self._line()
        assert listening.startswith(LISTENING), self._explain(listening)
        self.base_url = listening.removeprefix(LISTENING)
        cs = await self._line()
        assert cs.startswith(CONNECTION_STRING), self._explain(cs)
        pairs = (part.split("=", 1) for part in cs.removeprefix(CONNECTION_STRING).split(";") if part)
        self.connection_string = dict(pairs)

    async def _line(self) -> str:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        return line.decode().rstrip("\n")

    def _explain(self, line: str) -> str:
        return f"unexpected stdout line {line!r}; stderr:\n{self.log.read_text()}"

    def token(self, path: str) -> str:
        cs = self.connection_string
        return create_token(
            f"{self.base_url}/{path}", cs["SharedAccessKeyName"], cs["SharedAccessKey"]
        )

    async def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 30)


async def _serve(tmp_path: Path, state_dir: Path, name: str) -> Served:
    log = tmp_path / f"{name}.stderr"
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    # Unbuffered output would hide a missing flush: a supervisor reads the banner from a pipe.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = path
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            *SOAPRELAY, "serve", "--host", "127.0.0.1", "--port", "0",
            "--state-dir", str(state_dir), "--log-level", "INFO",
            stdout=asyncio.subprocess.PIPE, stderr=stderr, cwd=tmp_path, env=env,
        )
    served = Served(proc, log)
    await served.read_banner()
    return served


@pytest.fixture
async def processes() -> AsyncIterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        if served.proc.returncode is None:
            served.proc.kill()
            await served.proc.wait()


async def test_serve_prints_address_and_connection_string_relays_stops_and_keeps_its_key(
    tmp_path: Path, processes: list[Served]
) -> None:
    state_dir = tmp_path / "state"
    first = await _serve(tmp_path, state_dir, "first")
    processes.append(first)
    assert first.base_url.startswith("http://127.0.0.1:")
    port = int(first.base_url.rsplit(":", 1)[1])
    assert port != 0
    cs = first.connection_string
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
        assert await first.terminate() == 0
        assert lst.ws is not None
        await asyncio.wait_for(lst.ws.wait_closed(), 10)
        assert lst.ws.close_code == 1001  # relay shutting down

    second = await _serve(tmp_path, state_dir, "second")
    processes.append(second)
    assert second.connection_string["SharedAccessKey"] == cs["SharedAccessKey"]
    assert second.connection_string["SharedAccessKeyName"] == cs["SharedAccessKeyName"]
    # Tokens signed with the first run's key still work (the port is not part of the match).
    second_ws = second.base_url.replace("http", "ws", 1)
    async with RawListener(second_ws, "echo", first.token("echo")):
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{second.base_url}/echo", data=b"again",
                                 headers={"ServiceBusAuthorization": first.token("echo")}) as resp:
                assert resp.status == 200 and await resp.read() == b"again"
        assert await second.terminate() == 0
