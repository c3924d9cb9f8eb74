"""HTTP senders through a real relay on port 0, with a hand-driven listener."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import websockets
from lxml import etree

from hc.entities import EntityKind, Rights
from hc.sas import create_token
from relay.listeners import INLINE_LIMIT
from relay.namespace import EntityConfig, SasRule
from tests.support.raw_listener import RawListener, Reply
from tests.support.relay import RelayHandle

SEND_KEY = "c2VuZC1rZXktZm9yLXRlc3RzLTAwMDAwMDAwMDAwMA=="


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def listener(relay: RelayHandle, path: str = "echo", **kw: Any) -> RawListener:
    return RawListener(relay.ws_url, path, relay.token(path), **kw)


async def test_inline_request_and_response(arelay: RelayHandle, http: aiohttp.ClientSession) -> None:
    async with listener(arelay) as lst:
        headers = {"ServiceBusAuthorization": arelay.token("echo"), "X-Custom": "kept"}
        async with http.post(f"{arelay.base_url}/echo/sub?x=1&sb-hc-id=7", data=b"hello",
                             headers=headers) as resp:
            assert resp.status == 200
            assert await resp.read() == b"hello"
            assert resp.headers["Via"] == f"1.1 127.0.0.1:{arelay.port}"
    command = lst.received[0].command
    assert command["requestTarget"] == "/echo/sub?x=1"
    assert command["method"] == "POST" and command["body"] is True
    sent = {k.lower(): v for k, v in command["requestHeaders"].items()}
    assert "servicebusauthorization" not in sent and "content-length" not in sent
    assert sent["x-custom"] == "kept" and sent["via"].startswith("1.1 127.0.0.1")


async def test_token_locations_and_stripping(arelay: RelayHandle, http: aiohttp.ClientSession) -> None:
    token = arelay.token("echo")
    async with listener(arelay) as lst:
        async with http.get(f"{arelay.base_url}/echo?sb-hc-token={_q(token)}&a=b") as resp:
            assert resp.status == 200
        async with http.get(f"{arelay.base_url}/echo", headers={"Authorization": token}) as resp:
            assert resp.status == 200
        both = {"ServiceBusAuthorization": token, "Authorization": "Basic dXNlcjpwdw=="}
        async with http.get(f"{arelay.base_url}/echo", headers=both) as resp:
            assert resp.status == 200
    first, second, third = (r.command for r in lst.received)
    assert first["requestTarget"] == "/echo?a=b"
    assert "Authorization" not in second["requestHeaders"]
    assert third["requestHeaders"]["Authorization"] == "Basic dXNlcjpwdw=="
    assert first["body"] is False


async def test_large_bodies_stream_over_rendezvous(arelay: RelayHandle, http: aiohttp.ClientSession) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB
    async with listener(arelay) as lst:
        headers = {"ServiceBusAuthorization": arelay.token("echo")}
        async with http.post(f"{arelay.base_url}/echo", data=big, headers=headers) as resp:
            assert resp.status == 200
            assert await resp.read() == big

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b"x" * 1000

        async with http.post(f"{arelay.base_url}/echo", data=chunked(), headers=headers) as resp:
            assert await resp.read() == b"x" * 4000
    # Both were announced address-only on the control channel...
    assert [sorted(c) for c in lst.announced] == [["address", "id"], ["address", "id"]]
    # ...and the full command came at the rendezvous.
    assert [(r.command["method"], r.command["body"]) for r in lst.received] == [("POST", True)] * 2


async def test_address_only_request_has_neither_method_nor_body(arelay: RelayHandle) -> None:
    import websockets

    url = f"{arelay.ws_url}/$hc/echo?sb-hc-action=listen"
    async with websockets.connect(url, additional_headers={"ServiceBusAuthorization": arelay.token("echo")}) as ws:
        async with aiohttp.ClientSession() as http:
            post = asyncio.create_task(http.post(
                f"{arelay.base_url}/echo", data=b"y" * 70000,
                headers={"ServiceBusAuthorization": arelay.token("echo")}))
            command = json.loads(await ws.recv())["request"]
            assert set(command) == {"address", "id"}
            async with websockets.connect(command["address"], max_size=None) as rv:
                full = json.loads(await rv.recv())["request"]
                assert full["method"] == "POST" and full["body"] is True
                assert len(await rv.recv()) == 70000
                await rv.send(json.dumps({"response": {"requestId": full["id"], "statusCode": 201, "body": False}}))
            resp = await post
            assert resp.status == 201
            resp.release()


async def test_zero_byte_message_after_body_false_is_discarded(arelay: RelayHandle, http: aiohttp.ClientSession) -> None:
    async def empty(command: dict[str, Any], body: bytes) -> Reply:
        return 204, {}, b""

    async with listener(arelay, serve=empty):
        for _ in range(3):  # the listener stays usable after each 0-byte message
            async with http.get(f"{arelay.base_url}/echo", headers={"ServiceBusAuthorization": arelay.token("echo")}) as resp:
                assert resp.status == 204


async def test_errors_are_soap_faults_of_the_request_version(arelay: RelayHandle, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="relay")
    async with http.post(f"{arelay.base_url}/nobody", data=b"<x/>", headers={"Content-Type": "text/xml"}) as resp:
        assert resp.status == 404
        fault11 = etree.fromstring(await resp.read())
    async with http.post(f"{arelay.base_url}/nobody", data=b"<x/>", headers={"Content-Type": "application/soap+xml; charset=utf-8"}) as resp:
        assert resp.headers["Content-Type"].startswith("application/soap+xml")
        fault12 = etree.fromstring(await resp.read())
    async with http.get(f"{arelay.base_url}/nobody") as resp:
        error = (await resp.json())["error"]
    assert fault11.findtext(".//faultcode").endswith("Client")
    ns12 = "{http://www.w3.org/2003/05/soap-envelope}"
    assert fault12.findtext(f".//{ns12}Code/{ns12}Value").endswith("Sender")
    assert error["code"] == "EntityNotFound" and error["trackingId"] in caplog.text


async def test_status_table(make_relay: Any, http: aiohttp.ClientSession) -> None:
    relay = await make_relay(
        EntityConfig("slow", timeout=0.3), EntityConfig("small", max_message_size=10)
    )
    auth = {"ServiceBusAuthorization": relay.token("")}
    async with http.post(f"{relay.base_url}/slow", data=b"a", headers=auth) as resp:
        assert resp.status == 502
        assert "No service is hosted" in (await resp.json())["error"]["message"]

    async def never(command: dict[str, Any], body: bytes) -> Reply:
        await asyncio.Event().wait()
        raise AssertionError

    async with listener(relay, "slow", serve=never):
        async with http.post(f"{relay.base_url}/slow", data=b"a", headers=auth) as resp:
            assert resp.status == 504
    async with http.post(f"{relay.base_url}/small", data=b"x" * 11, headers=auth) as resp:
        assert resp.status == 413


async def test_listener_vanishing_mid_request_gives_502(arelay: RelayHandle, http: aiohttp.ClientSession) -> None:
    gone = asyncio.Event()

    async def vanish(command: dict[str, Any], body: bytes) -> Reply:
        gone.set()
        await asyncio.Event().wait()
        raise AssertionError

    lst = listener(arelay, serve=vanish)
    async with lst:
        post = asyncio.create_task(http.post(f"{arelay.base_url}/echo", data=b"a", headers={"ServiceBusAuthorization": arelay.token("echo")}))
        await gone.wait()
        assert lst.ws is not None
        await lst.ws.close()
        resp = await asyncio.wait_for(post, 5)
        assert resp.status == 502
        resp.release()


async def test_requests_spread_over_listeners(arelay: RelayHandle, http: aiohttp.ClientSession) -> None:
    async with listener(arelay) as one, listener(arelay) as two:
        for _ in range(40):
            async with http.get(f"{arelay.base_url}/echo", headers={"ServiceBusAuthorization": arelay.token("echo")}) as resp:
                assert resp.status == 200
    assert len(one.received) > 0 and len(two.received) > 0
    assert len(one.received) + len(two.received) == 40


async def test_oneway_and_event_kinds(make_relay: Any, http: aiohttp.ClientSession) -> None:
    relay = await make_relay(
        EntityConfig.for_kind("jobs", EntityKind.ONEWAY), EntityConfig.for_kind("news", EntityKind.EVENT)
    )
    auth = {"ServiceBusAuthorization": relay.token("")}
    async with http.post(f"{relay.base_url}/jobs", data=b"job", headers=auth) as resp:
        assert resp.status == 502  # nothing is silently dropped
    async with http.post(f"{relay.base_url}/news", data=b"n", headers=auth) as resp:
        assert resp.status == 202 and resp.headers["Relay-Delivered"] == "0"
    async with listener(relay, "jobs") as worker:
        async with http.post(f"{relay.base_url}/jobs", data=b"job", headers=auth) as resp:
            assert resp.status == 202 and await resp.read() == b""
        async with http.get(f"{relay.base_url}/jobs?wsdl", headers=auth) as resp:
            assert resp.status == 200  # metadata fetches are answered, not acknowledged
    async with listener(relay, "news") as a, listener(relay, "news") as b:
        async with http.post(f"{relay.base_url}/news", data=b"n", headers=auth) as resp:
            assert resp.status == 202 and resp.headers["Relay-Delivered"] == "2"
        async with http.get(f"{relay.base_url}/news?wsdl", headers=auth) as resp:
            assert resp.status == 200 and "Relay-Delivered" not in resp.headers
    assert [r.body for r in worker.received] == [b"job", b""]
    assert [r.body for r in a.received + b.received].count(b"n") == 2
    assert len(a.received + b.received) == 3


async def test_relay_access_token_soap_header_is_removed_byte_exact(arelay: RelayHandle, http: aiohttp.ClientSession) -> None:
    from soap.relay_token import relay_token_header

    header = etree.tostring(relay_token_header(arelay.token("echo")))
    envelope = (
        b'<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<s:Header>\n  " + header + b"\n  <Other xmlns='urn:x'>keep</Other></s:Header>"
        b"<s:Body   ><Ping xmlns='urn:x'>  spaced\t</Ping></s:Body></s:Envelope>"
    )
    async with listener(arelay) as lst:
        async with http.post(f"{arelay.base_url}/echo", data=envelope, headers={"Content-Type": "text/xml"}) as resp:
            assert resp.status == 200
    assert lst.received[0].body == envelope.replace(header, b"")


async def test_a_chunked_soap_body_is_scanned_for_its_relay_access_token(
    arelay: RelayHandle, http: aiohttp.ClientSession
) -> None:
    """Chunked (no Content-Length) SOAP bodies up to 1 MiB are read for the token too: the
    entity needs one, so without the scan this was a 401 (and on an open entity the token
    reached the listener)."""
    from soap.relay_token import relay_token_header

    header = etree.tostring(relay_token_header(arelay.token("echo")))
    envelope = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>' + header
        + b"</s:Header><s:Body><Ping xmlns='urn:x'>" + b"p" * 200_000 + b"</Ping></s:Body></s:Envelope>"
    )
    pieces = [envelope[i : i + 8192] for i in range(0, len(envelope), 8192)]
    async with listener(arelay) as lst:
        async with http.post(f"{arelay.base_url}/echo", data=_chunks(*pieces),
                             headers={"Content-Type": "text/xml"}) as resp:
            assert resp.status == 200
            assert await resp.read() == envelope.replace(header, b"")
    assert [r.body for r in lst.received] == [envelope.replace(header, b"")]


async def test_a_chunked_soap_body_over_the_scan_limit_still_streams(
    make_relay: Any, http: aiohttp.ClientSession
) -> None:
    relay = await make_relay(EntityConfig("open", requires_client_authorization=False))
    body = b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body>" + b"x" * (1 << 21)
    pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    async with listener(relay, "open") as lst:
        async with http.post(f"{relay.base_url}/open", data=_chunks(*pieces),
                             headers={"Content-Type": "text/xml"}) as resp:
            assert resp.status == 200 and await resp.read() == body
    assert [r.body for r in lst.received] == [body]


async def test_sender_token_scope_and_rights(make_relay: Any, http: aiohttp.ClientSession) -> None:
    rule = SasRule("a-send", SEND_KEY, Rights.SEND)
    relay = await make_relay(EntityConfig("a", rules=(rule,)), EntityConfig("b"))
    for_a = create_token(f"{relay.base_url}/a", "a-send", SEND_KEY)
    async with listener(relay, "a"), listener(relay, "b"):
        async with http.get(f"{relay.base_url}/a", headers={"ServiceBusAuthorization": for_a}) as resp:
            assert resp.status == 200
        async with http.get(f"{relay.base_url}/b", headers={"ServiceBusAuthorization": for_a}) as resp:
            assert resp.status == 401  # rule a-send does not exist on b
        wrong_scope = relay.token("a")
        async with http.get(f"{relay.base_url}/b", headers={"ServiceBusAuthorization": wrong_scope}) as resp:
            assert resp.status == 403
        expired = relay.token("a", ttl=-10)
        async with http.get(f"{relay.base_url}/a", headers={"ServiceBusAuthorization": expired}) as resp:
            assert resp.status == 401 and "expired" in (await resp.json())["error"]["message"]
        async with http.get(f"{relay.base_url}/a", headers={"ServiceBusAuthorization": "garbage"}) as resp:
            assert resp.status == 401


async def test_unauthenticated_entity_lets_senders_in(make_relay: Any, http: aiohttp.ClientSession) -> None:
    relay = await make_relay(EntityConfig("open", requires_client_authorization=False))
    async with listener(relay, "open"), http.get(f"{relay.base_url}/open") as resp:
        assert resp.status == 200


async def test_bad_requests_leave_the_relay_serving(arelay: RelayHandle, http: aiohttp.ClientSession) -> None:
    async with listener(arelay) as lst:
        async with http.get(f"{arelay.base_url}/echo", headers={"X-Big": "x" * 20000}) as resp:
            assert resp.status in (400, 431)
        async with http.get(f"{arelay.base_url}/$hc/echo?sb-hc-action=dance") as resp:
            assert resp.status == 400
        async with http.get(f"{arelay.base_url}/$hc/echo?sb-hc-action=request&sb-hc-id=%00bad") as resp:
            assert resp.status == 400
        async with http.get(f"{arelay.base_url}/$hc/echo?sb-hc-action=request&sb-hc-id=unknownid") as resp:
            assert resp.status == 403
        async with http.get(f"{arelay.base_url}/echo", headers={"ServiceBusAuthorization": arelay.token("echo")}) as resp:
            assert resp.status == 200
    assert len(lst.received) == 1


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


async def test_inline_request_rendezvous_lives_as_long_as_the_request(make_relay: Any, http: aiohttp.ClientSession) -> None:
    """hyco-https opens an inline request's rendezvous only when its response outgrows
    64 KiB, maybe long after the request arrived: the id must outlive rendezvous_timeout."""
    relay = await make_relay(EntityConfig("late", timeout=10), rendezvous_timeout=0.2)

    async def slow_big(command: dict[str, Any], body: bytes) -> Reply:
        await asyncio.sleep(0.5)  # the slow service being simulated, not a readiness wait
        return 200, {}, b"L" * 100_000

    async with listener(relay, "late", serve=slow_big):
        async with http.get(f"{relay.base_url}/late", headers={"ServiceBusAuthorization": relay.token("late")}) as resp:
            assert resp.status == 200
            assert await resp.read() == b"L" * 100_000


async def test_a_request_without_a_body_is_sent_inline(arelay: RelayHandle) -> None:
    """No Content-Length and no Transfer-Encoding means no body (RFC 9112 section 6.3), so a
    GET (a WSDL fetch) goes inline: address-only is for big, chunked or streaming bodies, and
    costs hyco-https a rendezvous WebSocket per request."""
    import websockets

    url = f"{arelay.ws_url}/$hc/echo?sb-hc-action=listen"
    auth = {"ServiceBusAuthorization": arelay.token("echo")}
    async with websockets.connect(url, additional_headers=auth) as ws, aiohttp.ClientSession() as http:
        get = asyncio.create_task(http.get(f"{arelay.base_url}/echo?wsdl", headers=auth))
        command = json.loads(await ws.recv())["request"]
        assert (command.get("method"), command.get("body")) == ("GET", False)
        await ws.send(json.dumps({"response": {"requestId": command["id"], "statusCode": 200, "body": False}}))
        resp = await get
        assert resp.status == 200
        resp.release()


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    """A request body aiohttp sends chunked (no Content-Length)."""
    for part in parts:
        yield part


async def test_small_chunked_request_is_announced_address_only(
    arelay: RelayHandle, http: aiohttp.ClientSession
) -> None:
    auth = {"ServiceBusAuthorization": arelay.token("echo"), "Content-Type": "text/xml"}
    async with listener(arelay) as lst:
        async with http.post(f"{arelay.base_url}/echo", data=_chunks(b"<a/>", b"<b/>"),
                             headers=auth) as resp:
            assert resp.status == 200 and await resp.read() == b"<a/><b/>"
    (announced,) = lst.announced
    assert set(announced) == {"address", "id"}  # neither method nor body (PROTOCOL.md §3)
    assert "sb-hc-action=request" in announced["address"]
    (received,) = lst.received
    assert received.command["id"] == announced["id"]
    assert received.command["method"] == "POST" and received.command["body"] is True
    sent = {k.lower() for k in received.command["requestHeaders"]}
    assert "transfer-encoding" not in sent and "content-length" not in sent
    assert received.body == b"<a/><b/>"


async def test_chunked_body_over_max_message_size_is_413(
    make_relay: Any, http: aiohttp.ClientSession
) -> None:
    relay = await make_relay(EntityConfig("small", max_message_size=2500))
    auth = {"ServiceBusAuthorization": relay.token("small")}
    async with listener(relay, "small") as lst:
        async with http.post(f"{relay.base_url}/small", data=_chunks(*[b"x" * 1000] * 4),
                             headers=auth) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"]["code"] == "MessageTooLarge"
        async with http.post(f"{relay.base_url}/small", data=_chunks(b"y" * 2500),
                             headers=auth) as resp:  # at the limit: relayed
            assert resp.status == 200 and await resp.read() == b"y" * 2500
    assert [r.body for r in lst.received] == [b"y" * 2500]


async def test_event_body_over_64_kib_is_413(make_relay: Any, http: aiohttp.ClientSession) -> None:
    relay = await make_relay(EntityConfig.for_kind("news", EntityKind.EVENT))
    auth = {"ServiceBusAuthorization": relay.token("news")}
    limit = 64 * 1024
    async with listener(relay, "news") as lst:
        async with http.post(f"{relay.base_url}/news", data=b"n" * (limit + 1), headers=auth) as resp:
            assert resp.status == 413
        async with http.post(f"{relay.base_url}/news", data=_chunks(b"n" * limit, b"n"),
                             headers=auth) as resp:
            assert resp.status == 413
        async with http.post(f"{relay.base_url}/news", data=b"n" * limit, headers=auth) as resp:
            assert resp.status == 202 and resp.headers["Relay-Delivered"] == "1"
    # The control channel is ordered: had an oversized event been announced, it would be first.
    assert len(lst.announced) == 1
    assert [len(r.body) for r in lst.received] == [limit]


SOAP_VERSIONS = [
    pytest.param("text/xml; charset=utf-8", id="soap11"),
    pytest.param("application/soap+xml; charset=utf-8", id="soap12"),
]


def _fault(body: bytes, content_type: str) -> tuple[str, str, str, str]:
    """(envelope namespace, fault code local name, reason text, detail tracking id)."""
    from soap import ns

    root = etree.fromstring(body)
    soap12 = content_type.startswith("application/soap+xml")
    env = ns.SOAP12_ENV if soap12 else ns.SOAP11_ENV
    assert root.tag == f"{{{env}}}Envelope"
    if soap12:
        code_el = root.find(f".//{{{env}}}Code/{{{env}}}Value")
        reason = root.findtext(f".//{{{env}}}Reason/{{{env}}}Text")
    else:
        code_el = root.find(".//faultcode")
        reason = root.findtext(".//faultstring")
    assert code_el is not None and code_el.text is not None
    prefix, _, local = code_el.text.partition(":")
    assert code_el.nsmap[prefix] == env  # a QName in the envelope's namespace
    tracking = root.findtext(f".//{{{ns.RELAY_ERROR}}}TrackingId")
    assert reason is not None and tracking is not None
    return env, local, reason, tracking


@pytest.mark.parametrize("content_type", SOAP_VERSIONS)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_relay_errors_are_soap_faults_server_side_for_5xx_client_side_for_4xx(
    make_relay: Any, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture,
    content_type: str, chunked: bool,
) -> None:
    caplog.set_level("INFO", logger="relay")
    relay = await make_relay(EntityConfig("idle"), EntityConfig("slow", timeout=0.2))
    soap12 = content_type.startswith("application/soap+xml")
    server_code, client_code = ("Receiver", "Sender") if soap12 else ("Server", "Client")
    token = relay.token("")

    async def never(command: dict[str, Any], body: bytes) -> Reply:
        await asyncio.Event().wait()
        raise AssertionError

    cases = [  # (path, token, status, fault code, message part)
        ("idle", token, 502, server_code, "No service is hosted at the specified address."),
        ("slow", token, 504, server_code, "did not answer"),
        ("idle", None, 401, client_code, "token"),
        ("nowhere", token, 404, client_code, "nowhere"),
    ]
    async with listener(relay, "slow", serve=never):
        for path, tok, status, code, message in cases:
            headers = {"Content-Type": content_type}
            if tok is not None:
                headers["ServiceBusAuthorization"] = tok
            data: Any = _chunks(b"<x/>") if chunked else b"<x/>"
            async with http.post(f"{relay.base_url}/{path}", data=data, headers=headers) as resp:
                assert resp.status == status, path
                assert resp.headers["Content-Type"].split(";")[0] == content_type.split(";")[0]
                assert "Via" not in resp.headers  # the relay's own error, not a listener's
                header_id = resp.headers["X-Relay-Tracking-Id"]
                _, local, reason, body_id = _fault(await resp.read(), content_type)
            assert (local, body_id) == (code, header_id), (path, status)
            assert message in reason and reason.endswith(f"TrackingId:{header_id}")
            assert header_id in caplog.text  # the same id is in the relay log


async def test_json_error_tracking_id_matches_header(arelay: RelayHandle, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{arelay.base_url}/nobody") as resp:
        assert resp.status == 404 and "Via" not in resp.headers
        error = (await resp.json())["error"]
    assert error["trackingId"] == resp.headers["X-Relay-Tracking-Id"]


def _soap_with_token(content_type: str, token: str) -> bytes:
    from soap import ns
    from soap.relay_token import relay_token_header

    env = ns.SOAP12_ENV if content_type.startswith("application/soap+xml") else ns.SOAP11_ENV
    header = etree.tostring(relay_token_header(token))
    return (
        f'<s:Envelope xmlns:s="{env}"><s:Header>'.encode() + header
        + b"</s:Header><s:Body><Ping xmlns='urn:x'/></s:Body></s:Envelope>"
    )


@pytest.mark.parametrize("content_type", SOAP_VERSIONS)
async def test_bad_or_wrong_scope_relay_access_token_header(
    make_relay: Any, http: aiohttp.ClientSession, content_type: str
) -> None:
    relay = await make_relay(EntityConfig("echo"), EntityConfig("other"))
    soap12 = content_type.startswith("application/soap+xml")
    cases = [  # (token in the SOAP header, status)
        ("SharedAccessSignature garbage", 401),
        (relay.token("echo", key="d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk="), 401),
        (relay.token("echo", ttl=-10), 401),
        (relay.token("other"), 403),  # valid, but for another entity
    ]
    async with listener(relay) as lst:
        for token, status in cases:
            envelope = _soap_with_token(content_type, token)
            async with http.post(f"{relay.base_url}/echo", data=envelope,
                                 headers={"Content-Type": content_type}) as resp:
                assert resp.status == status, token
                _, local, _, _ = _fault(await resp.read(), content_type)
                assert local == ("Sender" if soap12 else "Client")
        envelope = _soap_with_token(content_type, relay.token("echo"))
        async with http.post(f"{relay.base_url}/echo", data=envelope,
                             headers={"Content-Type": content_type}) as resp:
            assert resp.status == 200
    # The control channel is ordered: only the valid request reached the listener.
    assert len(lst.announced) == 1 and len(lst.received) == 1


async def test_a_sender_timing_out_while_its_body_streams_leaves_no_error(
    make_relay: Any, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """The rendezvous is still reading the sender's body when the sender's call times out:
    the relay stops that reader before answering 504, so aiohttp's own read of the rest of
    the body does not collide with it ("readany() called while another coroutine is
    already waiting for incoming data" was logged with a traceback)."""
    relay = await make_relay(EntityConfig("slow", timeout=0.5))
    stalled = asyncio.Event()

    async def dripping() -> AsyncIterator[bytes]:
        yield b"<a>"
        stalled.set()
        await asyncio.Event().wait()  # the rest never comes; the client is closed below
        yield b""  # pragma: no cover

    auth = {"ServiceBusAuthorization": relay.token("slow")}
    async with listener(relay, "slow"):
        async with aiohttp.ClientSession() as slow_client:
            post = asyncio.create_task(
                slow_client.post(f"{relay.base_url}/slow", data=dripping(), headers=auth)
            )
            await stalled.wait()
            resp = await asyncio.wait_for(post, 10)
            assert resp.status == 504
            resp.release()
        # the relay still serves the entity
        async with http.post(f"{relay.base_url}/slow", data=b"next", headers=auth) as ok:
            assert ok.status == 200 and await ok.read() == b"next"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == []


async def test_a_listener_answering_before_the_body_ended_is_heard_at_once(
    arelay: RelayHandle,
) -> None:
    """A listener may refuse a body early (413, a reader quota): the relay reads the
    answer while it is still sending the body, stops sending, and the sender gets the
    answer although its upload never finished."""
    import websockets

    url = f"{arelay.ws_url}/$hc/early?sb-hc-action=listen"
    auth = {"ServiceBusAuthorization": arelay.token("early")}
    async with websockets.connect(url, additional_headers=auth) as control:
        reader, writer = await asyncio.open_connection("127.0.0.1", arelay.port)
        writer.write(
            (f"POST /early HTTP/1.1\r\nHost: 127.0.0.1:{arelay.port}\r\n"
             f"ServiceBusAuthorization: {arelay.token('early')}\r\n"
             "Transfer-Encoding: chunked\r\n\r\n4000\r\n").encode() + b"x" * 0x4000 + b"\r\n"
        )  # the first 16 KiB of a body that never ends
        announced = json.loads(await asyncio.wait_for(control.recv(), 5))["request"]
        async with websockets.connect(announced["address"]) as rendezvous:
            request = json.loads(await rendezvous.recv())["request"]
            await rendezvous.send(json.dumps({"response": {
                "requestId": request["id"], "statusCode": 413,
                "statusDescription": "Too Large", "body": False}}))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 413 ")
        writer.close()


@pytest.mark.parametrize(
    "answer, reason",
    [
        ({"requestId": "someone-else", "statusCode": 200, "body": False},
         "rendezvous carried a response for another request"),
        ({"requestId": None, "statusCode": 100, "body": False}, "status 100 is not a final answer"),
    ],
)
async def test_a_rendezvous_answer_the_relay_cannot_use_is_refused_with_1008(
    arelay: RelayHandle, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture,
    answer: dict[str, Any], reason: str,
) -> None:
    """The rendezvous socket's rules are judged once: the listener's socket is closed
    with 1008 and the reason, the sender gets a 502, the relay serves the next call."""
    import websockets

    url = f"{arelay.ws_url}/$hc/strict?sb-hc-action=listen"
    auth = {"ServiceBusAuthorization": arelay.token("strict")}
    big = b"b" * (INLINE_LIMIT + 1)  # announced address-only: the request waits at the rendezvous
    async with websockets.connect(url, additional_headers=auth) as control:
        post = asyncio.create_task(http.post(f"{arelay.base_url}/strict", data=big, headers=auth))
        announced = json.loads(await asyncio.wait_for(control.recv(), 5))["request"]
        async with websockets.connect(announced["address"]) as rendezvous:
            request = json.loads(await rendezvous.recv())["request"]
            assert await rendezvous.recv() == big
            answer = {**answer, "requestId": answer["requestId"] or request["id"]}
            await rendezvous.send(json.dumps({"response": answer}))
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(rendezvous.recv(), 5)
            assert (rendezvous.close_code, rendezvous.close_reason) == (1008, reason)
        async with await post as resp:
            assert resp.status == 502
        # The listener's control channel is untouched: the next call is served.
        post = asyncio.create_task(http.post(f"{arelay.base_url}/strict", data=b"q", headers=auth))
        request = json.loads(await asyncio.wait_for(control.recv(), 5))["request"]
        assert await control.recv() == b"q"
        await control.send(json.dumps({"response": {"requestId": request["id"], "body": True}}))
        await control.send(b"a")
        async with await post as resp:
            assert (resp.status, await resp.read()) == (200, b"a")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and reason in warnings[0]
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_listener_refusing_a_rendezvous_body_with_1009_is_a_prompt_502(
    arelay: RelayHandle, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    # The listener takes the rendezvous with a 64 KiB message limit, as a binding with a
    # small max_received_message_size does, and the request body is 1 MiB: its WebSocket
    # closes with 1009 while the relay is still sending.  The sender hears of it at once.
    async with websockets.connect(
        f"{arelay.ws_url}/$hc/echo?sb-hc-action=listen",
        additional_headers={"ServiceBusAuthorization": arelay.token("echo")},
    ) as control:
        post = asyncio.create_task(http.post(
            f"{arelay.base_url}/echo", data=b"x" * (1 << 20),
            headers={"ServiceBusAuthorization": arelay.token("echo")},
        ))
        announced = json.loads(await asyncio.wait_for(control.recv(), 5))["request"]
        async with websockets.connect(announced["address"], max_size=INLINE_LIMIT) as rendezvous:
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(rendezvous.recv(), 5)
            close = rendezvous.protocol.close_sent
            assert close is not None and close.code == 1009
        resp = await asyncio.wait_for(post, 5)
        assert resp.status == 502
        assert "listener" in (await resp.text()).lower()
    gc.collect()  # a task whose exception nobody retrieved says so when it is collected
    assert not [r for r in caplog.records if r.exc_info is not None]  # no traceback of ours
    assert "never retrieved" not in caplog.text
