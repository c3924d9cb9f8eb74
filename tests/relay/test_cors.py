"""CORS and the 401 challenge on the relay's own answers (relay.cors), on both HTTP paths.

Small requests are answered by the relay's front, chunked ones and WebSocket
upgrades by aiohttp: each case is checked on both, because both write the
relay's errors through ``RelayServer.error_parts``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from relay import cors
from relay.namespace import EntityConfig
from tests.conftest import RelayFactory
from tests.support.raw_listener import RawListener, Reply
from tests.support.relay import RelayHandle

APP = "https://app.example"
OTHER = "https://evil.example"
ENTITIES = (
    EntityConfig("app", cors_origins=(APP,)),
    EntityConfig("anyone", cors_origins=(cors.ANY_ORIGIN,)),
    EntityConfig("plain", requires_client_authorization=False),
)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def relay(make_relay: RelayFactory) -> RelayHandle:
    return await make_relay(*ENTITIES)


async def _chunked(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _post(http: aiohttp.ClientSession, relay: RelayHandle, path: str, *, chunked: bool,
                **headers: str) -> aiohttp.ClientResponse:
    data: Any = _chunked(b"{}") if chunked else b"{}"
    async with http.post(f"{relay.base_url}/{path}", data=data, headers=headers) as response:
        await response.read()
        return response


@pytest.mark.parametrize("chunked", [False, True], ids=["front", "aiohttp"])
async def test_a_401_carries_a_sas_challenge_and_cors_for_a_listed_origin(
    relay: RelayHandle, http: aiohttp.ClientSession, chunked: bool
) -> None:
    response = await _post(http, relay, "app", chunked=chunked, Origin=APP)

    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'SharedAccessSignature realm="127.0.0.1"'
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert response.headers["Vary"] == "Origin"
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"X-Relay-Tracking-Id", "WWW-Authenticate"} <= exposed


@pytest.mark.parametrize("chunked", [False, True], ids=["front", "aiohttp"])
async def test_an_origin_not_listed_gets_no_cors(
    relay: RelayHandle, http: aiohttp.ClientSession, chunked: bool
) -> None:
    listed = await _post(http, relay, "app", chunked=chunked, Origin=OTHER)
    unlisted_entity = await _post(http, relay, "missing-listener-entity", chunked=chunked, Origin=APP)

    assert listed.status == 401 and "Access-Control-Allow-Origin" not in listed.headers
    assert listed.headers["Vary"] == "Origin"  # the answer depends on Origin: caches must know
    assert unlisted_entity.status == 404  # no entity, no list to ask: no CORS
    assert "Access-Control-Allow-Origin" not in unlisted_entity.headers
    assert "WWW-Authenticate" not in unlisted_entity.headers


async def test_a_star_entity_admits_any_origin_by_name(relay: RelayHandle, http: aiohttp.ClientSession) -> None:
    response = await _post(http, relay, "anyone", chunked=False, Origin=OTHER)

    assert response.status == 401
    assert response.headers["Access-Control-Allow-Origin"] == OTHER


async def test_relay_errors_past_authorization_carry_cors_too(relay: RelayHandle, http: aiohttp.ClientSession) -> None:
    token = relay.token("app")
    no_listener = await _post(http, relay, "app", chunked=False, Origin=APP, ServiceBusAuthorization=token)
    wrong_key = await _post(
        http, relay, "app", chunked=False, Origin=APP,
        ServiceBusAuthorization=relay.token("app", key="x" * 44),
    )

    assert no_listener.status == 502
    assert no_listener.headers["Access-Control-Allow-Origin"] == APP
    assert "WWW-Authenticate" not in no_listener.headers
    assert wrong_key.status == 401 and wrong_key.headers["Access-Control-Allow-Origin"] == APP


async def test_a_websocket_sender_refused_401_gets_the_challenge(relay: RelayHandle, http: aiohttp.ClientSession) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await http.ws_connect(f"{relay.ws_url}/$hc/app?sb-hc-action=connect", headers={"Origin": APP})

    assert caught.value.status == 401
    assert caught.value.headers is not None
    assert caught.value.headers["WWW-Authenticate"] == 'SharedAccessSignature realm="127.0.0.1"'
    assert caught.value.headers["Access-Control-Allow-Origin"] == APP


PREFLIGHT = {
    "Origin": APP,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type,servicebusauthorization,soapaction",
}


@pytest.mark.parametrize("chunked", [False, True], ids=["front", "aiohttp"])
async def test_the_relay_answers_a_preflight_from_a_listed_origin(
    relay: RelayHandle, http: aiohttp.ClientSession, chunked: bool
) -> None:
    async with RawListener(relay.ws_url, "app", relay.token("app")) as listener:
        data: Any = _chunked(b"") if chunked else None
        async with http.options(f"{relay.base_url}/app/svc", headers=PREFLIGHT, data=data) as response:
            assert await response.read() == b""

    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert response.headers["Access-Control-Allow-Methods"] == "POST"
    assert response.headers["Access-Control-Allow-Headers"] == "content-type, servicebusauthorization, soapaction"
    assert response.headers["Access-Control-Max-Age"] == str(cors.PREFLIGHT_MAX_AGE)
    assert listener.announced == []  # the listener never sees it


async def test_a_preflight_from_another_origin_is_not_answered(relay: RelayHandle, http: aiohttp.ClientSession) -> None:
    headers = {**PREFLIGHT, "Origin": OTHER}
    async with http.options(f"{relay.base_url}/app", headers=headers) as response:
        await response.read()

    assert response.status == 401
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_a_preflight_echoes_only_well_formed_header_names(relay: RelayHandle, http: aiohttp.ClientSession) -> None:
    headers = {**PREFLIGHT, "Access-Control-Request-Method": "PO ST",
               "Access-Control-Request-Headers": "x-good, bad header, (x), x-also-good"}
    async with http.options(f"{relay.base_url}/app", headers=headers) as response:
        await response.read()

    assert response.status == 204
    assert response.headers["Access-Control-Allow-Methods"] == "POST"
    assert response.headers["Access-Control-Allow-Headers"] == "x-good, x-also-good"


async def _own_cors(command: dict[str, Any], body: bytes) -> Reply:
    if command["method"] == "OPTIONS":
        return 200, {"Access-Control-Allow-Origin": "https://listener.example", "X-Seen": "preflight"}, b""
    return 200, {"Access-Control-Allow-Origin": "https://listener.example",
                 "Access-Control-Expose-Headers": "X-Listener"}, b"mine"


async def test_the_listeners_answers_and_preflights_pass_untouched(
    relay: RelayHandle, http: aiohttp.ClientSession
) -> None:
    async with RawListener(relay.ws_url, "plain", relay.token("plain"), _own_cors) as listener:
        async with http.post(f"{relay.base_url}/plain", data=b"x", headers={"Origin": APP}) as answer:
            assert await answer.read() == b"mine"
        async with http.options(f"{relay.base_url}/plain", headers=PREFLIGHT) as preflight:
            await preflight.read()

    assert answer.headers["Access-Control-Allow-Origin"] == "https://listener.example"
    assert answer.headers["Access-Control-Expose-Headers"] == "X-Listener"
    assert "Vary" not in answer.headers
    assert preflight.headers["X-Seen"] == "preflight"  # an entity without cors_origins
    assert [c["method"] for c in listener.announced] == ["POST", "OPTIONS"]


def test_origins_are_normalized_and_bad_ones_named() -> None:
    assert cors.normalize_origin("HTTP://Example.COM:80") == "http://example.com"
    assert cors.normalize_origin("https://example.com:8443") == "https://example.com:8443"
    assert cors.normalize_origin("*") == "*"
    for bad in ("example.com", "https://example.com/x", "https://", "null", "https://a b"):
        with pytest.raises(ValueError, match="is not an origin"):
            cors.normalize_origin(bad)


def test_allowed_origin_never_admits_null_or_a_malformed_origin() -> None:
    assert cors.allowed_origin(("*",), "null") is None
    assert cors.allowed_origin(("*",), "https://a.example\r\nX: y") is None
    assert cors.allowed_origin(("*",), None) is None
    assert cors.allowed_origin((), APP) is None
    assert cors.allowed_origin((APP,), APP) == APP
