"""The console's JSON API (``/$console/api/...``), behind the admin guard."""

from __future__ import annotations

from aiohttp import web

from relay.exceptions import EntityNotFound
from relay.state import RelayState

__all__ = ["handle"]


async def handle(state: RelayState, request: web.Request, name: str) -> web.StreamResponse:
    raise EntityNotFound(f"no console API {name!r}")
