"""The one SAS rule every benchmark relay has, and tokens signed with it."""

from __future__ import annotations

from hc.sas import create_token

KEY_NAME = "RootManageSharedAccessKey"
KEY = "YmVuY2gta2V5LW5vdC1hLXNlY3JldC0wMDAwMDAwMDAw"


def token(base_url: str, path: str = "", ttl: float = 24 * 3600) -> str:
    """A token for ``base_url/path`` (the namespace root when ``path`` is empty)."""
    return create_token(f"{base_url}/{path}".rstrip("/"), KEY_NAME, KEY, ttl=ttl)
