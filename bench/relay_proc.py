"""The relay under test, as its own process: ``python -m bench.relay_proc SPEC_JSON``.

It serves through :func:`relay.server.run`, the function ``soaprelay serve``
calls, with a namespace built in Python (so that S5 can configure an event
entity with more than the 25 listeners a config file allows).  Prints
``READY <base url> <event loop class>`` once listening; stops on SIGTERM.

SPEC_JSON: ``{"port": 0, "ping_interval": 5, "pong_timeout": 3, "entities": [{"path": "echo",
"kind": "request-response", "max_listeners": 25, "max_message_size": N}], "observe": "on"}``;
``observe``: ``"on"`` (metrics and inspector, the default), ``"off"``, or ``"capture"`` (on,
with body capture on every configured entity).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

from bench.keys import KEY, KEY_NAME
from bench.procs import raise_nofile
from hc.entities import EntityKind, Rights
from relay.namespace import EntityConfig, NamespaceConfig, SasRule
from relay.observe.settings import ObserveSettings
from relay.server import run


def namespace(spec: dict[str, Any]) -> NamespaceConfig:
    entities = tuple(
        EntityConfig.for_kind(
            str(e["path"]),
            EntityKind(e.get("kind", "request-response")),
            **{k: v for k, v in e.items() if k in ("max_listeners", "max_message_size")},
        )
        for e in spec.get("entities", [])
    )
    return NamespaceConfig(
        name="bench",
        host="127.0.0.1",
        port=int(spec.get("port", 0)),
        rules=(SasRule(KEY_NAME, KEY, Rights.MANAGE | Rights.LISTEN | Rights.SEND),),
        entities=entities,
        dynamic_entities=True,
        ping_interval=float(spec.get("ping_interval", NamespaceConfig.ping_interval)),
        pong_timeout=float(spec.get("pong_timeout", NamespaceConfig.pong_timeout)),
        observe=_observe(str(spec.get("observe", "on")), entities),
    )


def _observe(mode: str, entities: tuple[EntityConfig, ...]) -> ObserveSettings:
    if mode == "off":
        return ObserveSettings(enabled=False)
    if mode == "capture":
        return ObserveSettings(capture=frozenset(e.path for e in entities))
    return ObserveSettings()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    raise_nofile()
    config = namespace(json.loads(sys.argv[1]))

    def ready(url: str) -> None:
        loop = type(asyncio.get_running_loop())
        print(f"READY {url} {loop.__module__}.{loop.__qualname__}", flush=True)

    run(config, ready=ready)


if __name__ == "__main__":
    main()
