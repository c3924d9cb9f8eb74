"""``GET /$health`` on a single relay: ok, never routed to an entity."""

from __future__ import annotations

import aiohttp

from tests.support.relay import RelayHandle


async def test_a_single_relay_is_healthy(arelay: RelayHandle) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{arelay.base_url}/$health") as reply:
            assert reply.status == 200
            assert await reply.json() == {"status": "ok"}
        async with http.post(f"{arelay.base_url}/$health", data=b"x") as reply:
            assert reply.status == 404  # "$" is never in an entity path: no entity there
