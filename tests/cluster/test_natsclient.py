"""The cluster's own NATS client against a real nats-server (credentials, TLS, queue
groups, no responders, reconnect with its subscriptions) and against a hostile fake one
(the parse bound, the creds file's signature)."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Self

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from relay.cluster.natsclient import ClientState, NatsClient, NotConnected
from relay.cluster.natswire import HEADER_ROOM, Msg
from relay.cluster.nkeys import encode_seed, public_key
from tests.support.certs import self_signed
from tests.support.cluster import NATS_READY, NatsCluster, free_ports
from tests.support.procs import Children


class Watched:
    """A client and the states it went through, with waits on them (no sleeps)."""

    def __init__(self, servers: list[str], **options: object) -> None:
        self.states: list[ClientState] = []
        self.errors: list[str] = []
        self.changed = asyncio.Event()
        self.failed = asyncio.Event()
        self.client = NatsClient(servers, on_state=self._state, on_error=self._error,
                                 **options)  # type: ignore[arg-type]

    def _error(self, text: str) -> None:
        self.errors.append(text)
        self.failed.set()

    def _state(self, state: ClientState) -> None:
        self.states.append(state)
        self.changed.set()

    async def reach(self, state: ClientState, times: int = 1, timeout: float = 10.0) -> None:
        """Until the client went into ``state`` ``times`` times in all."""
        async def wait() -> None:
            while self.states.count(state) < times:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), timeout)

    async def __aenter__(self) -> Self:
        self.client.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()


class Inbox:
    """Messages received on a subscription, awaited one by one."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Msg] = asyncio.Queue()

    def __call__(self, msg: Msg) -> None:
        self.queue.put_nowait(msg)

    async def next(self, timeout: float = 5.0) -> Msg:
        return await asyncio.wait_for(self.queue.get(), timeout)


async def roundtrip(a: NatsClient, subject: str) -> Msg:
    """``a`` asks on ``subject``: the answer (NATS's "no responders" included)."""
    inbox = Inbox()
    reply = a.new_inbox()
    sid = a.subscribe(reply, inbox)
    try:
        a.publish(subject, b"ping", reply)
        return await inbox.next()
    finally:
        a.unsubscribe(sid)


async def answered(a: NatsClient, subject: str) -> Msg:
    """Ask until a subscriber answers (a SUB reaches the server a little after it is sent)."""
    while True:
        answer = await roundtrip(a, subject)
        if answer.headers is None:
            return answer


@pytest.fixture
def children(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Children]:
    with Children(tmp_path_factory.mktemp("natsclient")) as kids:
        yield kids


def _server(children: Children, name: str, *args: str) -> int:
    [port] = free_ports(1)
    child = children.start(name, ["sh", "-c", 'exec "$@" 2>&1', "nats", "nats-server", "-a", "127.0.0.1",
                                  "-p", str(port), *args])
    child.wait_for_timed("", 15.0)
    while NATS_READY not in child.wait_for_timed("", 15.0)[1]:
        pass
    return port


async def test_publish_subscribe_queue_groups_and_no_responders(children: Children) -> None:
    url = NatsCluster(children, 1).urls[0]
    async with Watched([url]) as one, Watched([url]) as two:
        await one.reach(ClientState.CONNECTED)
        await two.reach(ClientState.CONNECTED)
        got: list[bytes] = []

        def member(name: bytes) -> Callable[[Msg], None]:
            def answer(msg: Msg) -> None:
                got.append(name)
                two.client.publish(msg.reply, name)
            return answer

        two.client.subscribe("work", member(b"a"), "listeners")
        two.client.subscribe("work", member(b"b"), "listeners")
        for _ in range(5):
            answer = await asyncio.wait_for(answered(one.client, "work"), 10)
            assert answer.data in (b"a", b"b") and answer.headers is None
        assert len(got) == 5  # one of the queue group each time
        nobody = await roundtrip(one.client, "nobody.here")
        assert nobody.headers is not None and nobody.headers["Status"] == "503" and nobody.data == b""
        with pytest.raises(NotConnected, match="max_payload"):
            one.client.publish("work", b"x" * (one.client.max_payload + 1))


async def test_credentials_in_the_url_and_refused_ones(children: Children) -> None:
    port = _server(children, "token", "--auth", "t0ken-Secret")
    async with Watched([f"nats://t0ken-Secret@127.0.0.1:{port}"]) as good:
        await good.reach(ClientState.CONNECTED)
    async with Watched([f"nats://wrong@127.0.0.1:{port}"]) as bad:
        await asyncio.wait_for(bad.failed.wait(), 10)
        assert bad.client.state is ClientState.CONNECTING
        assert "Authorization Violation" in bad.errors[0] and "wrong" not in " ".join(bad.errors)
    nats = NatsCluster(children, 1, user="relay", password="p@ss w0rd")
    async with Watched([f"nats://relay:p%40ss%20w0rd@127.0.0.1:{nats.client_ports[0]}"]) as quoted:
        await quoted.reach(ClientState.CONNECTED)  # the URL's user information is unquoted


async def test_several_servers_reconnect_and_resubscribe(children: Children) -> None:
    nats = NatsCluster(children, 2)
    dead = f"nats://127.0.0.1:{free_ports(1)[0]}"
    async with Watched([dead, nats.url(0)]) as asker, Watched([nats.url(1)]) as server:
        await asker.reach(ClientState.CONNECTED)
        await server.reach(ClientState.CONNECTED)
        server.client.subscribe("echo", lambda msg: server.client.publish(msg.reply, msg.data))
        await asyncio.wait_for(answered(asker.client, "echo"), 10)
        nats.stop(1)  # the answering side's server goes: it reconnects to it when it returns
        await server.reach(ClientState.CONNECTING)
        with pytest.raises(NotConnected):
            server.client.publish("echo", b"x")
        nats.start(1)
        await server.reach(ClientState.CONNECTED, 2)
        await asyncio.wait_for(answered(asker.client, "echo"), 10)  # subscribed again
        assert server.states == [ClientState.CONNECTED, ClientState.CONNECTING, ClientState.CONNECTED]



async def test_tls_with_the_given_trust(children: Children, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = _server(children, "tls", "--tls", "--tlscert", cert, "--tlskey", key)
    trust = ssl.create_default_context(cafile=cert)
    async with Watched([f"tls://127.0.0.1:{port}"], tls=trust) as secure, \
            Watched([f"nats://127.0.0.1:{port}"], tls=trust) as told:  # the server requires it
        await secure.reach(ClientState.CONNECTED)
        await told.reach(ClientState.CONNECTED)
        told.client.subscribe("echo", lambda msg: told.client.publish(msg.reply, msg.data))
        assert (await asyncio.wait_for(answered(secure.client, "echo"), 10)).data == b"ping"
    async with Watched([f"tls://127.0.0.1:{port}"]) as untrusting:  # the system's trust only
        await asyncio.wait_for(untrusting.failed.wait(), 10)
        assert "CERTIFICATE_VERIFY_FAILED" in untrusting.errors[0]


# -- a hostile (fake) server -----------------------------------------------------------


class Fake:
    """A fake NATS server on port 0 running ``handle`` per connection; ``close()`` ends
    them all."""

    def __init__(self, handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> None:
        self.handle = handle
        self.writers: list[asyncio.StreamWriter] = []
        self.closing = False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        if self.closing:  # accepted as the server closed (a client's reconnect)
            writer.close()
            return
        try:
            await self.handle(reader, writer)
        except ConnectionError:
            pass

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"nats://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        """Stop listening and close every connection, the ones still being accepted too
        (Python 3.11's ``Server.wait_closed`` does not wait for them: a connection left
        open would be collected unclosed, a ResourceWarning in some later test)."""
        self.closing = True
        self.server.close()
        while True:
            for writer in self.writers:
                writer.close()
                try:
                    await writer.wait_closed()
                except ConnectionError:
                    pass
            if not self.server._active_count:  # type: ignore[attr-defined]  # every transport gone
                return
            await asyncio.sleep(0.01)


async def test_a_server_sending_more_than_max_payload_loses_the_connection() -> None:
    connections: list[int] = []

    async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writer.write(b'INFO {"max_payload":1024}\r\n')
        await reader.readline()  # CONNECT
        await reader.readline()  # PING
        writer.write(b"PONG\r\n")
        await reader.readline()  # SUB: the client is connected
        writer.write(b"MSG s 1 %d\r\n" % (1024 + HEADER_ROOM + 1))
        await writer.drain()
        await reader.read()  # until the client hangs up

    fake = Fake(hostile)
    url = await fake.start()
    try:
        async with Watched([url]) as client:
            client.client.subscribe("s", lambda msg: None)
            await client.reach(ClientState.CONNECTED)
            await client.reach(ClientState.CONNECTING)
            assert client.client.max_payload == 1024 and len(connections) <= 2  # one retry at most
    finally:
        await fake.close()


async def test_a_creds_file_signs_the_servers_nonce(tmp_path: Path) -> None:
    seed = encode_seed(bytes(range(1, 33)))
    creds = tmp_path / "user.creds"
    creds.write_text(f"-----BEGIN NATS USER JWT-----\nJWT.OF.USER\n------END NATS USER JWT------\n\n"
                     f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n")
    seen: list[dict[str, object]] = []

    async def checking(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'INFO {"nonce":"n0nce","auth_required":true}\r\n')
        line = await reader.readline()
        assert line.startswith(b"CONNECT ")
        seen.append(json.loads(line[8:]))
        await reader.readline()
        writer.write(b"PONG\r\n")
        await writer.drain()
        await reader.read()

    fake = Fake(checking)
    url = await fake.start()
    try:
        async with Watched([url], creds_file=str(creds)) as client:
            await client.reach(ClientState.CONNECTED)
    finally:
        await fake.close()
    [options] = seen
    assert options["jwt"] == "JWT.OF.USER" and options["headers"] is True and options["no_responders"] is True
    raw = base64.b32decode(public_key(seed) + "=" * (-len(public_key(seed)) % 8))[1:-2]
    signature = base64.urlsafe_b64decode(str(options["sig"]) + "==")
    Ed25519PublicKey.from_public_bytes(raw).verify(signature, b"n0nce")
