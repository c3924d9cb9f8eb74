"""A real cluster for tests: NATS servers, relay nodes and haproxy, all child processes.

:class:`NatsCluster` runs ``nats-server`` processes joined by cluster routes;
:class:`RelayNodes` runs ``soaprelay serve`` nodes sharing one namespace over it;
:func:`start_haproxy` puts haproxy in front of the nodes as the load balancer.
Every process belongs to a :class:`~tests.support.procs.Children` and is stopped
by PID (its process group) when the fixture ends.  nats-server cannot take port 0
for its routes, so free loopback ports are found by binding port 0 first
(:func:`free_ports`).  Readiness is a stdout line or a successful connect, never a sleep.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from hc.sas import create_token
from tests.support.procs import Child, Children, RelayProcess, child_env
from tests.support.relay import TEST_KEY, TEST_KEY_NAME, Relays

__all__ = [
    "NatsCluster", "RelayNodes", "free_ports", "start_haproxy", "wait_connectable",
]

NATS_READY = "Server is ready"


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_connectable(port: int, timeout: float = 10.0) -> None:
    """Return once a TCP connect to 127.0.0.1:``port`` succeeds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing accepts connections on port {port}") from None
            time.sleep(0.05)  # polling a connect: readiness, not a fixed wait


class NatsCluster:
    """``count`` nats-server processes meshed by routes; ``urls`` for the relays."""

    def __init__(self, children: Children, count: int = 3, *, user: str = "", password: str = "") -> None:
        self.children, self.count = children, count
        ports = free_ports(2 * count)
        self.client_ports, self.route_ports = ports[:count], ports[count:]
        self.auth = (user, password)
        self.servers: list[Child | None] = [None] * count
        for index in range(count):
            self.start(index)

    def url(self, index: int, *, with_credentials: bool = True) -> str:
        user, password = self.auth
        auth = f"{user}:{password}@" if user and with_credentials else ""
        return f"nats://{auth}127.0.0.1:{self.client_ports[index]}"

    @property
    def urls(self) -> list[str]:
        return [self.url(i) for i in range(self.count)]

    def start(self, index: int) -> Child:
        routes = ",".join(f"nats://127.0.0.1:{p}" for i, p in enumerate(self.route_ports) if i != index)
        argv = ["nats-server", "-a", "127.0.0.1", "-p", str(self.client_ports[index]),
                "-n", f"nats{index}", "--cluster_name", "soaprelay-test",
                "--cluster", f"nats://127.0.0.1:{self.route_ports[index]}", "--routes", routes]
        if self.auth[0]:
            argv += ["--user", self.auth[0], "--pass", self.auth[1]]
        # nats-server logs on stderr: the shell sends it to stdout, where readiness is read.
        child = self.children.start(f"nats{index}", ["sh", "-c", 'exec "$@" 2>&1', "nats", *argv])
        _wait_contains(child, NATS_READY)
        self.servers[index] = child
        return child

    def stop(self, index: int) -> None:
        child = self.servers[index]
        if child is not None:
            child.stop(grace=5.0)
            self.servers[index] = None


def _wait_contains(child: Child, text: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        _, line = child.wait_for_timed("", max(0.1, deadline - time.monotonic()))
        if text in line:
            return


@dataclass
class NodeSpec:
    name: str
    port: int
    process: RelayProcess | None = None


ENTITIES = """
[[entity]]
path = "echo"
timeout = 10

[[entity]]
path = "oneway"
kind = "oneway"
timeout = 10

[[entity]]
path = "events"
kind = "event"
discovery = "public"
timeout = 5

[[entity]]
path = "quota"
max_listeners = 2
"""


class RelayNodes:
    """Relay nodes of namespace ``test`` sharing ``nats``; node ``i`` listens on ``ports[i]``;
    ``extra``: more TOML for every node's config (``[observe]`` and the like).

    ``shutdown_grace``: each node's (seconds).  ``tls=(cert, key)``: every node serves
    HTTPS with that certificate, its ``node_url`` ``https://``, and trusts it as the
    system's trust would (``SSL_CERT_FILE``) except the nodes numbered in
    ``untrusting``, which have only the system's own trust."""

    def __init__(self, children: Children, nats: list[str], count: int = 3, extra: str = "", *,
                 tls: tuple[str, str] | None = None, untrusting: Collection[int] = (),
                 shutdown_grace: float = 1) -> None:
        self.children, self.folder, self.nats, self.extra = children, children.folder, nats, extra
        self.tls, self.untrusting, self.shutdown_grace = tls, untrusting, shutdown_grace
        self.scheme = "https" if tls else "http"
        self.relays = Relays(children.folder)
        self.nodes = [NodeSpec(f"node{i}", port) for i, port in enumerate(free_ports(count))]
        for index in range(count):
            self.start(index)

    def config(self, node: NodeSpec) -> Path:
        nats = ", ".join(f'"{u}"' for u in self.nats)
        tls = f'[namespace.tls]\ncert = "{self.tls[0]}"\nkey = "{self.tls[1]}"' if self.tls else ""
        text = f"""
[namespace]
name = "test"
host = "127.0.0.1"
port = {node.port}
dynamic_entities = true
shutdown_grace = {self.shutdown_grace}
ping_interval = 2
pong_timeout = 2
{tls}

[[rule]]
name = "{TEST_KEY_NAME}"
key = "{TEST_KEY}"
rights = ["Manage", "Listen", "Send"]
{ENTITIES}
[cluster]
nats = [{nats}]
node_url = "{self.scheme}://127.0.0.1:{node.port}"
node_name = "{node.name}"
{self.extra}
"""
        path = self.folder / f"{node.name}.toml"
        path.write_text(text)
        return path

    def start(self, index: int) -> RelayProcess:
        node = self.nodes[index]
        keys = {"SharedAccessKeyName": TEST_KEY_NAME, "SharedAccessKey": TEST_KEY}
        env = None
        if self.tls:
            env = child_env()
            env.pop("SSL_CERT_FILE", None)  # the system's own trust alone
            if index not in self.untrusting:
                env["SSL_CERT_FILE"] = self.tls[0]
        process = self.relays.process(node.name, children=self.children, port=node.port,
                                      config=self.config(node), keys=keys, env=env)
        node.process = process
        return process

    def url(self, index: int) -> str:
        return f"{self.scheme}://127.0.0.1:{self.nodes[index].port}"

    def process(self, index: int) -> RelayProcess:
        process = self.nodes[index].process
        assert process is not None
        return process


def token(base_url: str, path: str = "", ttl: float = 3600) -> str:
    return create_token(f"{base_url}/{path}", TEST_KEY_NAME, TEST_KEY, ttl=ttl)


HAPROXY = """
global
    maxconn 2000
defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    retries 3
    option redispatch
frontend relay
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /$health
{servers}
"""


def start_haproxy(children: Children, folder: Path, backends: list[int]) -> int:
    """haproxy on a free port, round-robin over ``backends``; its port once it accepts."""
    port = free_ports(1)[0]
    servers = "\n".join(
        f"    server n{i} 127.0.0.1:{p} check inter 300 fall 2 rise 1" for i, p in enumerate(backends)
    )
    path = folder / "haproxy.cfg"
    path.write_text(HAPROXY.format(port=port, servers=servers))
    children.start("haproxy", ["haproxy", "-db", "-f", str(path)])
    wait_connectable(port)
    return port
