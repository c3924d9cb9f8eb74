"""WebSocket senders (connect/accept), rendezvous ids, and TLS on the same port."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.certs import self_signed
from tests.support.relay import RelayHandle, Relays


async def accepting_listener(relay: RelayHandle, path: str, *, reject: str = "") -> Any:
    """A listener that accepts one WebSocket sender and echoes it; returns what it saw."""
    control = await websockets.connect(
        f"{relay.ws_url}/$hc/{path}?sb-hc-action=listen",
        additional_headers={"ServiceBusAuthorization": relay.token(path)},
    )
    seen: dict[str, Any] = {}

    async def run() -> None:
        accept = json.loads(await control.recv())["accept"]
        seen["accept"] = accept
        if reject:
            with pytest.raises(InvalidStatus) as info:
                await websockets.connect(accept["address"] + reject)
            seen["reject_status"] = info.value.response.status_code
            return
        protocols = accept["connectHeaders"].get("Sec-WebSocket-Protocol")
        offered = [p.strip() for p in protocols.split(",")] if protocols else None
        async with websockets.connect(accept["address"], subprotocols=offered) as ws:
            seen["subprotocol"] = ws.subprotocol
            try:
                async for message in ws:
                    await ws.send(message)
            except ConnectionClosed:
                pass
            seen["close"] = (ws.close_code, ws.close_reason)
        await control.close()

    return asyncio.create_task(run()), seen


async def test_websocket_sender_round_trip(arelay: RelayHandle) -> None:
    task, seen = await accepting_listener(arelay, "chat")
    url = f"{arelay.ws_url}/$hc/chat/room?sb-hc-action=connect"
    async with websockets.connect(
        url, additional_headers={"ServiceBusAuthorization": arelay.token("chat")},
        subprotocols=["chat.v2", "chat.v1"],
    ) as ws:
        assert ws.subprotocol == "chat.v2"
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00\xffbinary")
        assert await ws.recv() == b"\x00\xffbinary"
        await ws.send([b"frag", b"mented"])  # one message in two frames
        assert await ws.recv() == b"fragmented"
        await ws.close(4001, "bye now")
    await asyncio.wait_for(task, 5)
    headers = seen["accept"]["connectHeaders"]
    assert "Sec-WebSocket-Key" in headers and "ServiceBusAuthorization" not in headers
    assert seen["subprotocol"] == "chat.v2"
    assert seen["close"] == (4001, "bye now")


async def test_listener_rejects_websocket_sender(arelay: RelayHandle) -> None:
    task, seen = await accepting_listener(
        arelay, "picky", reject="&sb-hc-statusCode=403&sb-hc-statusDescription=Go%20away"
    )
    with pytest.raises(InvalidStatus) as info:
        await websockets.connect(
            f"{arelay.ws_url}/$hc/picky?sb-hc-action=connect&sb-hc-token={quote(arelay.token('picky'), safe='')}"
        )
    await asyncio.wait_for(task, 5)
    assert info.value.response.status_code == 403
    assert info.value.response.reason_phrase == "Go away"
    assert seen["reject_status"] == 410


async def test_websocket_sender_needs_send_token_and_a_listener(arelay: RelayHandle) -> None:
    with pytest.raises(InvalidStatus) as info:
        await websockets.connect(f"{arelay.ws_url}/$hc/nobody?sb-hc-action=connect")
    assert info.value.response.status_code == 404
    control = await websockets.connect(
        f"{arelay.ws_url}/$hc/quiet?sb-hc-action=listen",
        additional_headers={"ServiceBusAuthorization": arelay.token("quiet")},
    )
    with pytest.raises(InvalidStatus) as info:
        await websockets.connect(f"{arelay.ws_url}/$hc/quiet?sb-hc-action=connect")
    assert info.value.response.status_code == 401
    await control.close()


async def test_rendezvous_ids_are_single_use(arelay: RelayHandle) -> None:
    control = await websockets.connect(
        f"{arelay.ws_url}/$hc/once?sb-hc-action=listen",
        additional_headers={"ServiceBusAuthorization": arelay.token("once")},
    )
    async with aiohttp.ClientSession() as http:
        post = asyncio.create_task(http.post(
            f"{arelay.base_url}/once", data=b"z" * 70000,
            headers={"ServiceBusAuthorization": arelay.token("once")}))
        address = json.loads(await control.recv())["request"]["address"]
        async with websockets.connect(address, max_size=None) as rv:
            request = json.loads(await rv.recv())["request"]
            await rv.recv()
            with pytest.raises(InvalidStatus) as info:
                await websockets.connect(address)  # reuse while the first is open
            assert info.value.response.status_code == 403
            await rv.send(json.dumps({"response": {"requestId": request["id"], "statusCode": 200, "body": False}}))
        (await post).release()
    assert len(address.split("sb-hc-id=")[1]) >= 22  # >= 128 bits of randomness
    await control.close()


async def test_websocket_sender_gets_504_when_the_listener_never_accepts(make_relay: Any) -> None:
    relay = await make_relay(rendezvous_timeout=0.3)
    control = await websockets.connect(
        f"{relay.ws_url}/$hc/shy?sb-hc-action=listen",
        additional_headers={"ServiceBusAuthorization": relay.token("shy")},
    )

    async def open_sender() -> Any:
        return await websockets.connect(
            f"{relay.ws_url}/$hc/shy?sb-hc-action=connect",
            additional_headers={"ServiceBusAuthorization": relay.token("shy")},
        )

    sender = asyncio.create_task(open_sender())
    accept = json.loads(await asyncio.wait_for(control.recv(), 5))["accept"]  # and never opened
    with pytest.raises(InvalidStatus) as info:
        await asyncio.wait_for(sender, 10)
    response = info.value.response
    assert response.status_code == 504
    assert b"did not accept" in response.body and b"ListenerTimeout" in response.body
    assert response.headers["X-Relay-Tracking-Id"]
    with pytest.raises(InvalidStatus) as late:
        await websockets.connect(accept["address"])  # too late: the id has expired
    assert late.value.response.status_code == 403
    async with aiohttp.ClientSession() as http:  # the listener is still online
        get = asyncio.create_task(http.get(
            f"{relay.base_url}/shy", headers={"ServiceBusAuthorization": relay.token("shy")}
        ))
        request = json.loads(await asyncio.wait_for(control.recv(), 5))["request"]
        await control.send(json.dumps(
            {"response": {"requestId": request["id"], "statusCode": 204, "body": False}}
        ))
        async with await get as resp:
            assert resp.status == 204
    await control.close()



async def test_tls_serves_https_and_wss_on_one_port(tmp_path: Path, relays: Relays) -> None:
    cert, key = self_signed(tmp_path)
    relay = await relays.in_loop(tls_cert=cert, tls_key=key)
    assert relay.base_url.startswith("https://")
    context = ssl.create_default_context(cafile=cert)
    control = await websockets.connect(
        f"wss://127.0.0.1:{relay.port}/$hc/secure?sb-hc-action=listen",
        additional_headers={"ServiceBusAuthorization": relay.token("secure")}, ssl=context,
    )

    async def answer() -> None:
        request = json.loads(await control.recv())["request"]
        assert request["address"].startswith("wss://")
        await control.send(json.dumps({"response": {"requestId": request["id"], "statusCode": 200, "body": True}}))
        await control.send(b"over tls")

    task = asyncio.create_task(answer())
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{relay.base_url}/secure", ssl=context,
                            headers={"ServiceBusAuthorization": relay.token("secure")}) as resp:
            assert await resp.read() == b"over tls"
    await task
    await control.close()
