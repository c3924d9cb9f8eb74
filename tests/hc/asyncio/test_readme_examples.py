"""The README's SDK examples, run as written against a real relay (only the address and key differ)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.relay import TEST_KEY, TEST_KEY_NAME, RelayHandle

README = Path(__file__).resolve().parents[3] / "README.md"


def examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python Hybrid Connections SDK", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def load(source: str, base_url: str, printed: list[Any]) -> Any:
    """The example's ``main``, with the relay's address, the test key and a recording print."""
    assert "asyncio.run(main())" in source and "http://127.0.0.1:9350/" in source
    source = source.replace("asyncio.run(main())", "").replace("http://127.0.0.1:9350", base_url)
    namespace: dict[str, Any] = {"KEY_NAME": TEST_KEY_NAME, "KEY": TEST_KEY, "print": printed.append}
    exec(compile(source, str(README), "exec"), namespace)  # noqa: S102 - our own README
    return namespace["main"]


async def test_the_readme_listener_and_client_work_as_written(arelay: RelayHandle) -> None:
    listener_source, client_source = examples()
    printed: list[Any] = []
    listening = asyncio.get_running_loop().create_task(
        load(listener_source, arelay.base_url, printed)())
    try:
        while "online" not in printed:  # the example's online callback
            assert not listening.done(), listening.exception()
            await asyncio.sleep(0.01)  # polling the example's own output
        await asyncio.wait_for(load(client_source, arelay.base_url, printed)(), 10)
        assert printed == ["online", b"hello"]
        headers = {"ServiceBusAuthorization": arelay.token("echo")}
        async with aiohttp.ClientSession(headers=headers) as http, \
                http.post(f"{arelay.base_url}/echo", data=b"hi") as reply:
            assert reply.status == 200 and await reply.read() == b"you sent: hi"
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
