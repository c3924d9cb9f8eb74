"""Listener control channels: auth, quota, floods, token life, bad frames, dynamic entities."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp
import pytest
import websockets
from lxml import etree
from websockets.exceptions import ConnectionClosed, InvalidStatus

import hc.protocol
from hc.entities import Discovery, Rights
from hc.sas import create_token
from relay.listeners import ListenerConnection, ListenerState
from relay.namespace import EntityConfig, SasRule
from relay.routing import FailureLimiter
from tests.support.raw_listener import RawListener
from tests.support.relay import RelayHandle

LISTEN_KEY = "bGlzdGVuLWtleS1mb3ItdGVzdHMtMDAwMDAwMDAwMDA="
SEND_KEY = "c2VuZC1rZXktZm9yLXRlc3RzLTAwMDAwMDAwMDAwMA=="


def listen_url(relay: RelayHandle, path: str, query: str = "") -> str:
    return f"{relay.ws_url}/$hc/{path}?sb-hc-action=listen{query}"


async def connect(relay: RelayHandle, path: str, token: str | None, query: str = "") -> Any:
    headers = {"ServiceBusAuthorization": token} if token else {}
    return await websockets.connect(listen_url(relay, path, query), additional_headers=headers)


async def handshake_status(relay: RelayHandle, path: str, token: str | None, query: str = "") -> int:
    with pytest.raises(InvalidStatus) as info:
        await connect(relay, path, token, query)
    return info.value.response.status_code


async def test_listen_rights(make_relay: Any) -> None:
    rules = (SasRule("listen", LISTEN_KEY, Rights.LISTEN), SasRule("send", SEND_KEY, Rights.SEND))
    relay = await make_relay(EntityConfig("svc", rules=rules), dynamic_entities=False)
    send_token = create_token(f"{relay.base_url}/svc", "send", SEND_KEY)
    listen_token = create_token(f"{relay.base_url}/svc", "listen", LISTEN_KEY)
    assert await handshake_status(relay, "svc", send_token) == 403  # Send cannot listen
    assert await handshake_status(relay, "svc", None) == 401
    assert await handshake_status(relay, "svc", relay.token("svc", ttl=-5)) == 401
    assert await handshake_status(relay, "other-but-static", listen_token) == 404
    async with RawListener(relay.ws_url, "svc", listen_token):
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{relay.base_url}/svc", headers={"ServiceBusAuthorization": listen_token}) as resp:
                assert resp.status == 403  # Listen cannot send


async def test_listener_quota(make_relay: Any) -> None:
    relay = await make_relay(EntityConfig("q", max_listeners=3))
    sockets = [await connect(relay, "q", relay.token("q")) for _ in range(3)]
    with pytest.raises(InvalidStatus) as info:
        await connect(relay, "q", relay.token("q"))
    assert info.value.response.status_code == 403
    assert b"at most 3 listeners" in info.value.response.body
    await sockets[0].close()
    # close() returns once the relay closed the TCP connection, which it does only after
    # dropping the listener (same event loop): the slot is free now, no retry needed.
    await sockets[0].wait_closed()
    fourth = await connect(relay, "q", relay.token("q"))
    for ws in [*sockets[1:], fourth]:
        await ws.close()


async def test_default_quota_is_25(make_relay: Any) -> None:
    relay = await make_relay(EntityConfig("q25"))
    sockets = [await connect(relay, "q25", relay.token("q25")) for _ in range(25)]
    assert await handshake_status(relay, "q25", relay.token("q25")) == 403
    await asyncio.gather(*(ws.close() for ws in sockets))


async def test_failed_reconnect_flood_is_throttled_without_hurting_others(make_relay: Any) -> None:
    relay = await make_relay(EntityConfig("flood"))
    # A stopped clock: no refill between attempts, however slow the machine is.
    relay.server.state.limiter = FailureLimiter(burst=20, per_second=5, clock=lambda: 0.0)
    bad = relay.token("flood", key="wrong-key-wrong-key-wrong")
    statuses = [await handshake_status(relay, "flood", bad) for _ in range(25)]
    assert statuses[:20] == [401] * 20 and statuses[20:] == [429] * 5
    good = await connect(relay, "flood", relay.token("flood"))
    await good.close()


class Clock:
    """The relay's wall clock, moved on by hand (token expiry)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
async def clocked(make_relay: Any) -> tuple[RelayHandle, Clock]:
    clock = Clock()
    return await make_relay(EntityConfig("exp"), clock=clock), clock


def only_listener(relay: RelayHandle, path: str) -> ListenerConnection:
    state = relay.server.state.registry.get(path)
    assert state is not None and len(state.listeners) == 1
    return state.listeners[0]


async def test_expiring_listener_is_closed_with_1008(clocked: tuple[RelayHandle, Clock]) -> None:
    relay, clock = clocked
    ws = await connect(relay, "exp", relay.token("exp", ttl=60))
    listener = only_listener(relay, "exp")
    listener.tick(listener.loop.time(), 30, 15)
    assert listener.state is ListenerState.ONLINE
    clock.offset = 60 + relay.server.config.token_grace + 1
    with pytest.raises(ConnectionClosed):  # at the relay's next sweep
        await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code == 1008 and ws.close_reason == "token expired"


async def test_renew_token_keeps_listener_open(clocked: tuple[RelayHandle, Clock]) -> None:
    relay, clock = clocked
    ws = await connect(relay, "exp", relay.token("exp", ttl=60))
    await ws.send(json.dumps({"renewToken": {"token": relay.token("exp", ttl=3600)}}))
    await asyncio.wait_for(await ws.ping(), 5)  # read in order: the renewal is in
    listener = only_listener(relay, "exp")
    clock.offset = 600  # past the first token's expiry, well before the second's
    listener.tick(listener.loop.time(), 30, 15)
    assert listener.state is ListenerState.ONLINE
    await ws.send(json.dumps({"renewToken": {"token": "SharedAccessSignature nonsense"}}))
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 1008 and "renewToken refused" in ws.close_reason


@pytest.mark.parametrize(
    "frame, reason",
    [
        ("not json", "not valid JSON"),
        (json.dumps({"response": {"requestId": "1", "statusCode": "abc"}}), "statusCode 'abc' is not a number"),
        (json.dumps({"dance": {}}), "unknown listener command 'dance'"),
        (b"\x00\x01binary", "binary message of 8 bytes where a command is due"),
    ],
)
async def test_bad_control_frames_close_only_that_listener(make_relay: Any, frame: Any, reason: str) -> None:
    relay = await make_relay(EntityConfig("bad"))
    async with RawListener(relay.ws_url, "bad", relay.token("bad")) as good:
        ws = await connect(relay, "bad", relay.token("bad"))
        await ws.send(frame)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1008 and reason in ws.close_reason
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{relay.base_url}/bad", headers={"ServiceBusAuthorization": relay.token("bad")}) as resp:
                assert resp.status == 200
        assert len(good.received) == 1


async def test_response_for_foreign_request_id_never_reaches_a_sender(
    make_relay: Any, caplog: pytest.LogCaptureFixture
) -> None:
    relay = await make_relay(EntityConfig("iso"))
    one = await connect(relay, "iso", relay.token("iso"))
    two = await connect(relay, "iso", relay.token("iso"))
    auth = {"ServiceBusAuthorization": relay.token("iso")}
    async with aiohttp.ClientSession() as http:
        post = asyncio.create_task(http.post(f"{relay.base_url}/iso", data=b"q", headers=auth))
        waits = {asyncio.create_task(one.recv()): one, asyncio.create_task(two.recv()): two}
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        first = done.pop()
        owner = waits[first]
        other = two if owner is one else one
        request = json.loads(first.result())["request"]
        await owner.recv()  # the request body
        forged = {"response": {"requestId": request["id"], "statusCode": 200, "body": True}}
        await other.send(json.dumps(forged))
        await other.send(b"forged")
        # The relay reads a control channel in order and answers a ping when its read
        # loop reaches it: once the pong is back, the forgery has been seen (and ignored).
        await asyncio.wait_for(await other.ping(), 5)
        state = relay.server.state.registry.get("iso")
        assert state is not None
        answer = {"response": {"requestId": request["id"], "statusCode": 200, "body": True}}
        await owner.send(json.dumps(answer))
        await owner.send(b"real")
        resp = await post
        assert await resp.read() == b"real"
    forged_lines = [r for r in caplog.records if "never given to it" in r.getMessage()]
    assert len(forged_lines) == 1 and forged_lines[0].levelno == logging.WARNING
    assert sorted(c.unknown_answers for c in state.listeners) == [0, 1]  # counted, not yet closed
    await one.close()
    await two.close()


async def test_dynamic_entities(make_relay: Any) -> None:
    relay = await make_relay(rules=(
        SasRule("RootManageSharedAccessKey", "dGVzdGtleS1mb3ItdGVzdHMtb25seS0wMDAwMDAwMA==", Rights.MANAGE),
        SasRule("listen-only", LISTEN_KEY, Rights.LISTEN),
    ))
    listen_only = create_token(f"{relay.base_url}/dyn", "listen-only", LISTEN_KEY)
    assert await handshake_status(relay, "dyn", listen_only) == 404
    assert await handshake_status(relay, "dyn", relay.token("dyn"), "&sb-relay-kind=bogus") == 400
    ws = await connect(relay, "dyn", relay.token("dyn"), "&sb-relay-kind=event&sb-relay-discovery=public")
    state = relay.server.state.registry.get("dyn")
    assert state is not None and state.config.kind.value == "event"
    assert state.config.discovery is Discovery.PUBLIC
    await ws.close()
    await ws.wait_closed()  # the relay closes TCP after it released the entity
    assert relay.server.state.registry.get("dyn") is None
    async with aiohttp.ClientSession() as http:
        auth = {"ServiceBusAuthorization": relay.token("dyn")}
        async with http.post(f"{relay.base_url}/dyn", data=b"e", headers=auth) as resp:
            assert resp.status == 404  # gone with its last listener


async def test_dynamic_entity_without_client_authorization(make_relay: Any) -> None:
    relay = await make_relay()
    assert await handshake_status(relay, "open", relay.token("open"), "&sb-relay-client-auth=maybe") == 400
    async with RawListener(relay.ws_url, "open", relay.token("open"), query="&sb-relay-client-auth=none") as lst:
        state = relay.server.state.registry.get("open")
        assert state is not None and not state.config.requires_client_authorization
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{relay.base_url}/open", data=b"<x/>") as resp:  # no token
                assert resp.status == 200 and await resp.read() == b"<x/>"
        assert [r.body for r in lst.received] == [b"<x/>"]
        # A second listener must not silently join an entity of another shape.
        assert await handshake_status(relay, "open", relay.token("open"), "&sb-relay-kind=event") == 400
        assert await handshake_status(relay, "open", relay.token("open"), "&sb-relay-client-auth=required") == 400
        async with RawListener(relay.ws_url, "open", relay.token("open"), query="&sb-relay-client-auth=none"):
            assert len(relay.server.state.registry.get("open").listeners) == 2  # type: ignore[union-attr]
    # Without the parameter a dynamic entity requires a token from senders.
    async with RawListener(relay.ws_url, "closed", relay.token("closed")):
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{relay.base_url}/closed", data=b"<x/>") as resp:
                assert resp.status == 401


async def test_discovery_feed_lists_public_online_entities_only(make_relay: Any) -> None:
    relay = await make_relay(
        EntityConfig("public-online", discovery=Discovery.PUBLIC),
        EntityConfig("public-offline", discovery=Discovery.PUBLIC),
        EntityConfig("private-online"),
    )
    async with RawListener(relay.ws_url, "public-online", relay.token("public-online")), \
            RawListener(relay.ws_url, "private-online", relay.token("private-online")):
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{relay.base_url}/", headers={"Accept": "application/atom+xml"}) as resp:
                assert resp.headers["Content-Type"].startswith("application/atom+xml")
                feed = etree.fromstring(await resp.read())
    atom = "{http://www.w3.org/2005/Atom}"
    titles = [e.findtext(f"{atom}title") for e in feed.iter(f"{atom}entry")]
    links = [e.find(f"{atom}link").get("href") for e in feed.iter(f"{atom}entry")]
    assert titles == ["public-online"]
    assert links == [f"{relay.base_url}/public-online"]


async def test_relay_shutdown_closes_listeners_with_1001(make_relay: Any) -> None:
    relay = await make_relay(EntityConfig("bye"))
    ws = await connect(relay, "bye", relay.token("bye"))
    await relay.server.stop()
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 1001


async def test_dead_listener_is_dropped_after_missed_pongs(make_relay: Any) -> None:
    import base64
    import os

    relay = await make_relay(EntityConfig("dead"), ping_interval=0.2, pong_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (f"GET /$hc/dead?sb-hc-action=listen HTTP/1.1\r\nHost: 127.0.0.1:{relay.port}\r\n"
         f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
         f"Sec-WebSocket-Version: 13\r\nServiceBusAuthorization: {relay.token('dead')}\r\n\r\n").encode()
    )
    assert b"101" in await reader.readline()
    state = relay.server.state.registry.get("dead")
    assert state is not None and len(state.listeners) == 1
    # This "listener" never answers the relay's pings: read (pings and all) until the
    # relay hangs up on it.
    await asyncio.wait_for(reader.read(), 10)
    assert reader.at_eof()
    assert state.listeners == []
    async with aiohttp.ClientSession() as http:
        auth = {"ServiceBusAuthorization": relay.token("dead")}
        async with http.post(f"{relay.base_url}/dead", data=b"?", headers=auth) as resp:
            assert resp.status == 502  # no listener any more
    writer.close()


async def test_internal_error_closes_only_that_listener_with_1011(
    make_relay: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # No public input makes the relay fail internally, so the command parser is made to.
    original = hc.protocol.parse_listener_command

    def exploding(text: str | bytes) -> Any:
        if text == "explode":
            raise RuntimeError("a bug in the relay")
        return original(text)

    monkeypatch.setattr(hc.protocol, "parse_listener_command", exploding)
    relay = await make_relay(EntityConfig("err"))
    auth = {"ServiceBusAuthorization": relay.token("err")}
    async with RawListener(relay.ws_url, "err", relay.token("err")) as good:
        ws = await connect(relay, "err", relay.token("err"))
        await ws.send("explode")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        await ws.wait_closed()
        assert (ws.close_code, ws.close_reason) == (1011, "internal error")
        async with aiohttp.ClientSession() as http:
            for _ in range(5):  # every request goes to the listener that is left
                async with http.post(f"{relay.base_url}/err", data=b"ok", headers=auth) as resp:
                    assert resp.status == 200 and await resp.read() == b"ok"
        assert len(good.received) == 5
    assert "internal error" in caplog.text and "a bug in the relay" in caplog.text


async def test_sixteenth_response_for_an_id_never_given_closes_with_1008(make_relay: Any) -> None:
    relay = await make_relay(EntityConfig("strict"))
    ws = await connect(relay, "strict", relay.token("strict"))

    async def forge(n: int) -> None:
        with_body = n % 2 == 0  # both shapes: with a body message, and body:false
        await ws.send(json.dumps(
            {"response": {"requestId": f"never-given-{n}", "statusCode": 200, "body": with_body}}
        ))
        if with_body:
            await ws.send(b"forged")

    for n in range(15):
        await forge(n)
    # Still served after 15: the answer below is read after the forgeries (one socket, in order).
    async with aiohttp.ClientSession() as http:
        auth = {"ServiceBusAuthorization": relay.token("strict")}
        post = asyncio.create_task(http.post(f"{relay.base_url}/strict", data=b"q", headers=auth))
        request = json.loads(await asyncio.wait_for(ws.recv(), 5))["request"]
        assert await ws.recv() == b"q"
        await ws.send(json.dumps(
            {"response": {"requestId": request["id"], "statusCode": 200, "body": True}}
        ))
        await ws.send(b"real")
        async with await post as resp:
            assert resp.status == 200 and await resp.read() == b"real"
    await forge(15)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 1008 and "not given" in ws.close_reason


UPGRADE = "Upgrade: websocket\r\nConnection: Upgrade\r\n"


@pytest.mark.parametrize(
    "headers, reason",
    [
        (UPGRADE + "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
         "Sec-WebSocket-Version must be 13"),
        (UPGRADE + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n",
         "Sec-WebSocket-Key is not 16 bytes in base64"),
        ("Connection: keep-alive\r\n", "does not ask to upgrade to websocket"),
    ],
)
async def test_a_listen_request_that_is_not_a_websocket_handshake_gets_400(
    make_relay: Any, headers: str, reason: str
) -> None:
    relay = await make_relay(EntityConfig("hs"))
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    writer.write((f"GET /$hc/hs?sb-hc-action=listen HTTP/1.1\r\nHost: 127.0.0.1:{relay.port}\r\n"
                  f"ServiceBusAuthorization: {relay.token('hs')}\r\n{headers}\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    body = await reader.readexactly(length)
    writer.close()
    assert head.startswith(b"HTTP/1.1 400 ") and reason.encode() in body
    state = relay.server.state.registry.get("hs")
    assert state is not None and state.listeners == []
