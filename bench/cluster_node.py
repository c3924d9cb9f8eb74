"""S7: one relay node of a cluster, as its own process: ``python -m bench.cluster_node SPEC_JSON``.

Like ``bench.relay_proc`` (a namespace built in Python, so an event entity may have
1,000 subscribers), plus ``"cluster": {"nats": [...], "node_url": ..., "node_name": ...,
"small_requests": "nats" | "rendezvous", "direct": true | false}``.  Prints ``READY <base url>``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys

from bench.procs import raise_nofile
from bench.relay_proc import namespace
from relay.cluster.config import ClusterConfig, Route
from relay.server import run


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    raise_nofile()
    spec = json.loads(sys.argv[1])
    wanted = spec["cluster"]
    cluster = ClusterConfig(
        tuple(wanted["nats"]), wanted["node_url"], wanted["node_name"],
        small_requests=Route(wanted.get("small_requests", "nats")), direct=wanted.get("direct", True),
    )
    config = dataclasses.replace(namespace(spec), cluster=cluster)
    run(config, ready=lambda url: print(f"READY {url}", flush=True))


if __name__ == "__main__":
    main()
