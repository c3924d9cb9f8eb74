"""The development namespace ``soaprelay serve`` runs when it is given no config.

Any path can be listened on with a Manage token (dynamic entities), and one
namespace rule, ``RootManageSharedAccessKey`` (Manage, Listen, Send), holds a key
generated on first start and kept in ``STATE_DIR/keys.json`` (mode 0600 in a
0700 directory), so connection strings stay valid across restarts::

    {"RootManageSharedAccessKey": "<base64 of 32 random bytes>"}

Delete the file to get a new key.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
from pathlib import Path

from hc.entities import Rights
from relay.exceptions import ConfigError
from relay.namespace import NamespaceConfig, SasRule

__all__ = ["KEYS_FILE", "ROOT_RULE_NAME", "dev_connection_string", "dev_namespace"]

ROOT_RULE_NAME = "RootManageSharedAccessKey"
KEYS_FILE = "keys.json"
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def dev_namespace(
    state_dir: Path = Path(".soaprelay"), host: str = "127.0.0.1", port: int = 9350
) -> NamespaceConfig:
    """The development namespace, creating its key on first use.

    Args:
        state_dir: where ``keys.json`` lives; created with mode 0700 if missing.
        host: listen address.
        port: listen port.

    Returns:
        A namespace with dynamic entities and the ``RootManageSharedAccessKey`` rule.

    Raises:
        ConfigError: the key file exists but is unreadable or not what we wrote.
    """
    key = _load_or_create_key(Path(state_dir) / KEYS_FILE)
    rule = SasRule(ROOT_RULE_NAME, key, Rights.MANAGE | Rights.LISTEN | Rights.SEND)
    return NamespaceConfig(host=host, port=port, rules=(rule,), dynamic_entities=True)


def dev_connection_string(config: NamespaceConfig) -> str:
    """A connection string for ``config``'s root rule, with an explicit ``UseTls``.

    A wildcard listen address (``0.0.0.0``, ``::``) becomes the loopback address.

    Raises:
        ValueError: the namespace has no rule granting Manage.
    """
    rule = next((r for r in config.rules if r.name == ROOT_RULE_NAME), None)
    rule = rule or next((r for r in config.rules if Rights.MANAGE in r.rights), None)
    if rule is None:
        raise ValueError("the namespace has no Manage rule to build a connection string from")
    host = _WILDCARD_HOSTS.get(config.host, config.host)
    host = f"[{host}]" if ":" in host else host
    use_tls = "true" if config.tls_cert else "false"
    return (
        f"Endpoint=sb://{host}:{config.port}/;SharedAccessKeyName={rule.name};"
        f"SharedAccessKey={rule.key};UseTls={use_tls}"
    )


def _new_key() -> str:
    """44 characters: base64 of 32 bytes from ``secrets``."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _load_or_create_key(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _create_exclusively(path, json.dumps({ROOT_RULE_NAME: _new_key()}) + "\n")
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the development key ({exc}); delete it") from None
    key = stored.get(ROOT_RULE_NAME) if isinstance(stored, dict) else None
    if not isinstance(key, str) or len(key) < 16:
        raise ConfigError(f"{path}: no valid {ROOT_RULE_NAME} in the file; delete it")
    return key


def _create_exclusively(path: Path, content: str) -> None:
    """Write ``content`` to ``path`` (mode 0600) unless another process got there first.

    The content goes to a private temporary file that is then hard-linked into
    place, so a concurrent reader never sees a half-written file and the first
    writer wins.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # lost the race: keep the winner's key
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
