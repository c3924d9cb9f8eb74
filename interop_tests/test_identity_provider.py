"""JWTs from a real OpenID provider (Panva's oidc-provider) wherever a SAS token goes.

The relay trusts the provider's issuer (``[[identity]]``); applications get tokens by
the client-credentials grant, the SDK through ``ClientCredentialsTokenProvider``. Each
role is allowed what it should and refused the rest; tokens with the wrong audience or
issuer, expired, not yet valid, signed by an unknown key, with ``alg: none`` or an HMAC
keyed with the provider's public key are refused; a key rotation at the provider is
picked up by one fetch of its keys.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization

from bindings import RelayServiceHost, relay_client
from bindings import TokenProvider as BindingsTokens
from bindings.exceptions import HostError
from bindings.relay_errors import RelayTransportError
from hc.asyncio import (
    AuthorizationFailedError,
    ClientCredentialsTokenProvider,
    HybridConnectionClient,
    HybridConnectionListener,
    RelayedHttpListenerContext,
    TokenUnavailableError,
)
from relay.identity import IdentityProvider, Role, RoleAssignment
from relay.jwks import JwksCache
from relay.jwt_tokens import TokenVerifier
from relay.namespace import EntityConfig
from samples.payroll.services import payroll_app
from tests.support.oidc import AUDIENCE, OidcProvider, mint, new_key, oidc_unavailable, unsigned
from tests.support.proxies import squid
from tests.support.relay import RelayFactory, RelayHandle, Relays

pytestmark = pytest.mark.node

CLIENTS = {
    "owner-app": ["Owner"],
    "listener-app": ["Listener"],
    "sender-app": ["Sender"],
    "azure-named-app": ["Azure Relay Sender"],
    "plain-app": [],
}


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    reason = oidc_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with OidcProvider(tmp_path_factory.mktemp("oidc"), CLIENTS) as provider:
        yield provider


def trusting(idp: OidcProvider, **options: object) -> IdentityProvider:
    return IdentityProvider(issuer=idp.issuer, audiences=(AUDIENCE,), **options)  # type: ignore[arg-type]


async def relay_trusting(make_relay: RelayFactory, idp: OidcProvider, **options: object) -> RelayHandle:
    relay = await make_relay(identities=(trusting(idp, **options),))
    await keys_of(relay).refresh(idp.issuer)  # the fetch the relay started at its start
    return relay


def keys_of(relay: RelayHandle) -> JwksCache:
    verifier = relay.server.state.verifier
    assert isinstance(verifier, TokenVerifier) and verifier.jwt is not None
    assert isinstance(verifier.jwt.keys, JwksCache)
    return verifier.jwt.keys


def credentials(idp: OidcProvider, client_id: str) -> ClientCredentialsTokenProvider:
    return ClientCredentialsTokenProvider(issuer=idp.issuer, client_id=client_id,
                                          client_secret=idp.secret(client_id), resource=AUDIENCE)


async def echo(context: RelayedHttpListenerContext) -> None:
    await context.response.write(b"echo " + await context.request.read())


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def send(http: aiohttp.ClientSession, relay: RelayHandle, entity: str, token: str,
               header: str = "ServiceBusAuthorization") -> tuple[int, str]:
    async with http.post(f"{relay.base_url}/{entity}", data=b"hi", headers={header: token}) as answer:
        return answer.status, await answer.text()


async def listening(relay: RelayHandle, entity: str, provider: ClientCredentialsTokenProvider
                    ) -> HybridConnectionListener:
    listener = HybridConnectionListener(f"{relay.base_url}/{entity}", provider)
    listener.request_handler = echo
    await listener.open()
    return listener


async def test_each_role_is_allowed_what_it_should_and_refused_the_rest(
    make_relay: RelayFactory, idp: OidcProvider, http: aiohttp.ClientSession
) -> None:
    relay = await relay_trusting(make_relay, idp)
    # Owner (Manage) creates the entity by listening, and may send too.
    owner = await listening(relay, "payroll", credentials(idp, "owner-app"))
    try:
        assert await send(http, relay, "payroll", idp.token("owner-app")) == (200, "echo hi")
        assert await send(http, relay, "payroll", idp.token("sender-app")) == (200, "echo hi")
        assert (await send(http, relay, "payroll", "Bearer " + idp.token("azure-named-app")))[0] == 200
        status, body = await send(http, relay, "payroll", idp.token("listener-app"))
        assert status == 403 and "do not give Send on /payroll" in body
        status, body = await send(http, relay, "payroll", idp.token("plain-app"))
        assert status == 403
        # Listener may listen on the existing entity; Sender and no role may not.
        second = await listening(relay, "payroll", credentials(idp, "listener-app"))
        await second.close()
        for client_id in ("sender-app", "plain-app"):
            with pytest.raises(AuthorizationFailedError) as refused:
                await listening(relay, "payroll", credentials(idp, client_id))
            assert refused.value.status == 403
        # A Listener may not create an entity (that takes Manage, i.e. Owner).
        with pytest.raises(Exception, match="404|Manage"):
            await listening(relay, "new-entity", credentials(idp, "listener-app"))
        # The SDK client sends with a JWT (sb-hc-token equivalent: the header on the WebSocket).
        client = HybridConnectionClient(f"{relay.base_url}/payroll", credentials(idp, "sender-app"))
        async with await client.create_connection() as stream:
            taken = await asyncio.wait_for(owner.accept_connection(), 10)
            assert taken is not None
            await stream.write(b"jwt stream")
            assert await taken.read() == b"jwt stream"
            await taken.close()
        refused_client = HybridConnectionClient(f"{relay.base_url}/payroll", credentials(idp, "listener-app"))
        with pytest.raises(AuthorizationFailedError):
            await refused_client.create_connection()
    finally:
        await owner.close()


async def test_role_assignments_give_a_subject_an_entity_and_no_more(
    make_relay: RelayFactory, idp: OidcProvider, http: aiohttp.ClientSession
) -> None:
    assignment = RoleAssignment(Role.SENDER, subject="plain-app", scope="payroll")
    relay = await relay_trusting(make_relay, idp, assignments=(assignment,))
    owners = [await listening(relay, entity, credentials(idp, "owner-app")) for entity in ("payroll", "other")]
    try:
        token = idp.token("plain-app")  # no roles claim: only the assignment counts
        assert await send(http, relay, "payroll", token) == (200, "echo hi")
        assert (await send(http, relay, "other", token))[0] == 403
    finally:
        for owner in owners:
            await owner.close()


async def test_wrong_audience_wrong_issuer_expired_and_not_yet_valid_are_refused(
    make_relay: RelayFactory, idp: OidcProvider, http: aiohttp.ClientSession
) -> None:
    relay = await relay_trusting(make_relay, idp, clock_skew=0)
    owner = await listening(relay, "payroll", credentials(idp, "owner-app"))
    key, now = idp.keys[0], int(time.time())
    try:
        cases = {
            idp.token("sender-app", resource="https://other.test/"): "audience",
            mint(key, idp.claims(iss="http://127.0.0.1:1", roles=["Sender"])): "not one this relay trusts",
            mint(key, idp.claims(exp=now - 5, roles=["Sender"])): "expired",
            mint(key, idp.claims(nbf=now + 3600, roles=["Sender"])): "not valid yet",
            mint(key, {**idp.claims(roles=["Sender"]), "aud": None}): "JWT lacks a claim",
        }
        for token, reason in cases.items():
            status, body = await send(http, relay, "payroll", token)
            assert (status, reason in body) == (401, True), body
        assert await send(http, relay, "payroll", mint(key, idp.claims(roles=["Sender"]))) == (200, "echo hi")
    finally:
        await owner.close()
    # The provider's own token, seen by a relay whose clock is two hours on.
    later = await make_relay(EntityConfig("payroll"), identities=(trusting(idp),),
                             clock=lambda: time.time() + 7200)
    await keys_of(later).refresh(idp.issuer)
    status, body = await send(http, later, "payroll", idp.token("sender-app"))
    assert status == 401 and "expired" in body


async def test_alg_none_hmac_with_the_public_key_and_an_unknown_key_are_refused(
    make_relay: RelayFactory, idp: OidcProvider, http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay = await relay_trusting(make_relay, idp)
    owner = await listening(relay, "payroll", credentials(idp, "owner-app"))
    key = idp.keys[0]
    claims = idp.claims(roles=["Owner"])
    public_pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    head = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "kid": key.kid}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    mac = hmac.new(public_pem, head + b"." + body, hashlib.sha256).digest()
    hmac_token = b".".join([head, body, base64.urlsafe_b64encode(mac).rstrip(b"=")]).decode()
    try:
        status, text = await send(http, relay, "payroll", unsigned(claims, {"alg": "none", "kid": key.kid}))
        assert status == 401 and "'none' is not accepted" in text
        status, text = await send(http, relay, "payroll", hmac_token)
        assert status == 401 and "'HS256' is not accepted" in text
        caplog.set_level(logging.INFO, logger="relay.jwks")
        rogue = new_key("rogue")
        for _ in range(20):  # a flood of unknown keys: refused, and no fetch within the floor
            status, text = await send(http, relay, "payroll", mint(rogue, claims))
            assert status == 401 and "does not publish" in text
        assert [r for r in caplog.records if r.name == "relay.jwks"] == []
    finally:
        await owner.close()


async def test_a_key_rotation_at_the_provider_is_picked_up_by_one_fetch(
    make_relay: RelayFactory, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    if (reason := oidc_unavailable()) is not None:
        pytest.skip(reason)
    old, fresh = new_key("old"), new_key("fresh")
    with OidcProvider(tmp_path, CLIENTS, keys=[old]) as idp:
        relay = await relay_trusting(make_relay, idp, refresh_floor=0.1)
        owner = await listening(relay, "payroll", credentials(idp, "owner-app"))
        try:
            before = idp.token("sender-app")
            assert await send(http, relay, "payroll", before) == (200, "echo hi")
            idp.restart(keys=[fresh, old])  # the new key signs; the old one still verifies
            after = idp.token("sender-app")
            status, text = await send(http, relay, "payroll", after)
            assert status == 503 and "fetching the signing keys" in text  # one fetch started
            await keys_of(relay).refresh(idp.issuer)
            assert await send(http, relay, "payroll", after) == (200, "echo hi")
            assert await send(http, relay, "payroll", before) == (200, "echo hi")
        finally:
            await owner.close()


async def test_a_client_authenticates_with_its_private_key(tmp_path: Path, make_relay: RelayFactory,
                                                           http: aiohttp.ClientSession) -> None:
    if (reason := oidc_unavailable()) is not None:
        pytest.skip(reason)
    client_key = new_key("app-key")
    with OidcProvider(tmp_path, {}, key_clients={"keyed-app": (["Owner"], client_key)}) as keyed_idp:
        relay = await relay_trusting(make_relay, keyed_idp)
        provider = ClientCredentialsTokenProvider(
            issuer=keyed_idp.issuer, client_id="keyed-app", private_key=client_key.private,
            key_id=client_key.kid, resource=AUDIENCE)
        listener = await listening(relay, "payroll", provider)
        try:
            token = (await provider.get_token(f"{relay.base_url}/payroll")).token
            assert await send(http, relay, "payroll", token) == (200, "echo hi")
        finally:
            await listener.close()
        impostor = ClientCredentialsTokenProvider(
            issuer=keyed_idp.issuer, client_id="keyed-app", private_key=new_key().private,
            key_id=client_key.kid, resource=AUDIENCE)
        with pytest.raises(TokenUnavailableError, match="invalid_client") as refused:
            await impostor.get_token(f"{relay.base_url}/payroll")
        assert refused.value.permanent


async def test_a_client_the_provider_refuses_gets_a_permanent_named_error(idp: OidcProvider) -> None:
    provider = ClientCredentialsTokenProvider(idp.token_endpoint, client_id="sender-app",
                                              client_secret="wrong", resource=AUDIENCE)
    with pytest.raises(TokenUnavailableError, match="invalid_client") as caught:
        await provider.get_token("http://relay/payroll")
    assert caught.value.permanent
    good = credentials(idp, "sender-app")
    first = await good.get_token("http://relay/payroll")
    assert (await good.get_token("http://relay/other")).token == first.token  # cached
    assert first.expires_at > time.time() + 500


def test_a_host_and_a_zeep_client_with_identity_provider_tokens(
    relays: Relays, idp: OidcProvider
) -> None:
    relay = relays.in_thread(identities=(trusting(idp),))
    asyncio.run_coroutine_threadsafe(keys_of(relay).refresh(idp.issuer), relay.loop).result(15)

    def provider(client_id: str, secret: str | None = None) -> BindingsTokens:
        return BindingsTokens.client_credentials(issuer=idp.issuer, client_id=client_id,
                                                 client_secret=secret or idp.secret(client_id),
                                                 resource=AUDIENCE)

    host = RelayServiceHost(payroll_app(), f"sb://127.0.0.1:{relay.port}/payroll",
                            token_provider=provider("owner-app"), open_timeout=15)
    with host:
        client = relay_client(f"{relay.base_url}/payroll?wsdl", token_provider=provider("sender-app"),
                              operation_timeout=15)
        assert client.service.GetSalary(7) == Decimal("5120.50")
        with pytest.raises(RelayTransportError) as refused:
            relay_client(f"{relay.base_url}/payroll?wsdl", token_provider=provider("listener-app"))
        assert refused.value.status_code == 403
    wrong = RelayServiceHost(payroll_app(), f"sb://127.0.0.1:{relay.port}/payroll",
                             token_provider=provider("owner-app", "wrong-secret"), open_timeout=15)
    with pytest.raises(HostError, match="invalid_client"):
        wrong.open()  # the provider's refusal is permanent: no retries until the timeout


async def test_tokens_are_fetched_through_the_proxy_too(idp: OidcProvider, tmp_path: Path) -> None:
    with squid(tmp_path) as proxy:
        provider = ClientCredentialsTokenProvider(
            issuer=idp.issuer, client_id="sender-app", client_secret=idp.secret("sender-app"),
            resource=AUDIENCE, proxy=proxy.url)
        token = await provider.get_token("http://relay/payroll")
        assert token.token.startswith("eyJ")
        for _ in range(100):  # squid logs a tunnel once it has ended
            if proxy.log().count(f"CONNECT 127.0.0.1:{idp.port}") >= 2:
                break
            await asyncio.sleep(0.05)
        assert proxy.log().count(f"CONNECT 127.0.0.1:{idp.port}") == 2  # discovery, then the token
