"""``soaprelay serve --workers N``: N processes on one port, joined by an embedded NATS
that soaprelay starts and stops itself; the same cluster code as separate nodes."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import counted, health, open_listener, routed, sender, until
from tests.support.procs import RelayProcess
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, Relays

WORKERS = 2


CONFIG = f"""
[namespace]
name = "test"
dynamic_entities = true
shutdown_grace = 2

[[rule]]
name = "{TEST_KEY_NAME}"
key = "{TEST_KEY}"
rights = ["Manage", "Listen", "Send"]
"""


def start_workers(relays: Relays, folder: Path) -> RelayProcess:
    """``soaprelay serve --workers 2`` on a config signed with the tests' key."""
    config = folder / "workers.toml"
    config.write_text(CONFIG)
    keys = {"SharedAccessKeyName": TEST_KEY_NAME, "SharedAccessKey": TEST_KEY}
    return relays.process("workers", config=config, keys=keys, args=["--workers", str(WORKERS)])


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    folder = tmp_path_factory.mktemp("workers")
    with Relays(folder) as relays:
        yield start_workers(relays, folder)


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.add(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


async def _worker_urls(base: str) -> dict[str, str]:
    """Each worker's name and own URL, as new connections to the shared port meet them."""
    seen: dict[str, str] = {}

    async def both() -> bool:
        view = await health(base)
        seen[view["node"]] = view["url"]
        return len(seen) == WORKERS

    await until(both, 10.0, "every worker answered on the shared port")
    return seen


async def test_workers_share_one_port_and_route_between_each_other(workers: RelayProcess) -> None:
    urls = sorted((await _worker_urls(workers.base_url)).values())
    assert all(url.startswith("http://127.0.0.1:") and url != workers.base_url for url in urls)
    listener = await open_listener(urls[0], "echo")
    try:
        await counted(urls[1], "echo", 1)
        async with sender(workers.base_url, "echo") as http:
            await routed(http, f"{urls[1]}/echo")
            for target in (urls[1], workers.base_url):
                async with http.post(f"{target}/echo", data=b"core") as reply:
                    assert reply.status == 200
                    assert await reply.read() == b"eroc"

            async def over_the_link() -> bool:  # workers ask each other directly too
                async with http.post(f"{urls[1]}/echo", data=b"direct") as reply:
                    assert reply.status == 200 and await reply.read() == b"tcerid"
                return bool((await health(urls[1]))["direct"]["asks"])

            await until(over_the_link, 10.0, "a call from one worker to another over their link")
    finally:
        await listener.close()


async def test_a_killed_worker_is_started_again(workers: RelayProcess) -> None:
    names = await _worker_urls(workers.base_url)
    before = _children(workers.pid)
    assert len(before) == WORKERS + 1  # the workers and nats-server
    victim = next(pid for pid in before if b"--reuse-port" in Path(f"/proc/{pid}/cmdline").read_bytes())
    os.kill(victim, signal.SIGKILL)

    async def replaced() -> bool:
        now = _children(workers.pid)
        return victim not in now and len(now) == WORKERS + 1

    await until(replaced, 10.0, "the worker started again")
    assert sorted(await _worker_urls(workers.base_url)) == sorted(names)
    assert "exited with -9; starting it again" in workers.stderr_text()


def test_stopping_the_supervisor_stops_workers_and_nats(workers: RelayProcess) -> None:
    """The module's last test: SIGTERM to the supervisor (the fixture's stop is then moot)."""
    children = _children(workers.pid)
    assert len(children) == WORKERS + 1
    os.kill(workers.pid, signal.SIGTERM)
    assert workers.wait(20) == 0
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}") or _zombie(pid)
    assert workers.tracebacks() == []

def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"

