"""Access decisions (``relay.access``) from plain values: no server, no socket, no aiohttp."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hc.entities import Discovery, EntityKind, Rights
from hc.headers import TokenLocation
from hc.sas import SasVerifier, create_token
from relay import access
from relay.access import AccessRequest, Decision
from relay.cors import CorsPreflight
from relay.exceptions import (
    AccessDenied,
    AuthError,
    BadRequest,
    EntityNotFound,
    ListenerQuotaExceeded,
    MalformedToken,
)
from relay.namespace import EntityConfig, NamespaceConfig, SasRule
from relay.routing import EntityState
from tests.support.inits import assert_init_matches_fields

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000.0
HOST = "relay.example.com"
ROOT_KEY = SasRule("root", "cm9vdC1rZXktZm9yLWFjY2Vzcy10ZXN0cw==", Rights.MANAGE | Rights.LISTEN | Rights.SEND)
LISTEN_KEY = SasRule("listen", "bGlzdGVuLWtleQ==", Rights.LISTEN)
SEND_KEY = SasRule("send", "c2VuZC1rZXk=", Rights.SEND)
ENTITY_KEY = SasRule("payroll-only", "ZW50aXR5LWtleQ==", Rights.SEND)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(clock: Clock) -> SasVerifier:
    return SasVerifier(clock)


def namespace(**options: object) -> NamespaceConfig:
    return NamespaceConfig(
        host=HOST, rules=(ROOT_KEY, LISTEN_KEY, SEND_KEY), **options  # type: ignore[arg-type]
    )


def entity(path: str = "payroll", listeners: int = 0, **options: object) -> EntityState[str]:
    state: EntityState[str] = EntityState(EntityConfig(path=path, **options))  # type: ignore[arg-type]
    state.listeners.extend(f"l{i}" for i in range(listeners))
    return state


def token(rule: SasRule, path: str = "payroll", *, ttl: float = 3600, host: str = HOST) -> str:
    return create_token(f"https://{host}/{path}", rule.name, rule.key, ttl=ttl, now=NOW)


def request(
    *, method: str = "POST", host: str = HOST, query: tuple[tuple[str, str], ...] = (),
    headers: tuple[tuple[str, str], ...] = (),
) -> AccessRequest:
    return AccessRequest(method, host, query, headers, "10.0.0.1")


def denied(decision: Decision, kind: type[Exception], text: str) -> None:
    assert not decision.allowed
    assert isinstance(decision.error, kind), decision.error
    assert text in str(decision.error)
    with pytest.raises(kind, match=text):
        decision.check()


# -- send ---------------------------------------------------------------------------------


def test_a_sender_with_a_send_token_in_the_header_is_allowed_until_the_token_expires(
    verifier: SasVerifier,
) -> None:
    asked = request(headers=(("ServiceBusAuthorization", token(SEND_KEY)),))
    decision = access.send(asked, entity(), namespace(), verifier)
    assert decision.check() is decision and decision.allowed
    assert decision.rights == Rights.SEND
    assert decision.expiry == int(NOW + 3600)
    assert decision.token_location is TokenLocation.SERVICE_BUS_HEADER


def test_the_query_token_wins_and_is_named_as_the_location(verifier: SasVerifier) -> None:
    asked = request(query=(("sb-hc-token", token(ROOT_KEY)),),
                    headers=(("ServiceBusAuthorization", "garbage"),))
    decision = access.send(asked, entity(), namespace(), verifier)
    assert decision.allowed and decision.token_location is TokenLocation.QUERY
    assert decision.rights == ROOT_KEY.rights


def test_a_sender_without_a_token_is_refused_401_unless_the_entity_allows_anyone(
    verifier: SasVerifier,
) -> None:
    denied(access.send(request(), entity(), namespace(), verifier), AuthError, "SAS token is required")
    open_entity = entity(requires_client_authorization=False)
    decision = access.send(request(), open_entity, namespace(), verifier)
    assert decision.allowed and decision.rights == access.NO_RIGHTS and decision.expiry is None


def test_a_missing_token_says_when_the_body_was_not_scanned(verifier: SasVerifier) -> None:
    decision = access.send(request(), entity(), namespace(), verifier, scan_refused=True)
    denied(decision, AuthError, "too busy to look for a RelayAccessToken")


def test_the_soap_header_token_counts_only_without_an_http_one(verifier: SasVerifier) -> None:
    soap = token(SEND_KEY)
    decision = access.send(request(), entity(), namespace(), verifier, soap_token=soap)
    assert decision.allowed and decision.token_location is TokenLocation.SOAP_HEADER
    header = request(headers=(("Authorization", f"{token(ROOT_KEY)}"),))
    decision = access.send(header, entity(), namespace(), verifier, soap_token="not a token")
    assert decision.allowed and decision.token_location is TokenLocation.AUTHORIZATION_HEADER


def test_an_expired_token_is_refused_with_the_injected_clock(
    verifier: SasVerifier, clock: Clock
) -> None:
    asked = request(headers=(("ServiceBusAuthorization", token(SEND_KEY, ttl=60)),))
    assert access.send(asked, entity(), namespace(), verifier).allowed
    clock.now = NOW + 61
    denied(access.send(asked, entity(), namespace(), verifier), AuthError, "expired")


@pytest.mark.parametrize(
    ("rule", "path", "host", "error", "text"),
    [
        (LISTEN_KEY, "payroll", HOST, AccessDenied, "lacks the Send right"),
        (SEND_KEY, "billing", HOST, AccessDenied, "not valid for /payroll"),
        (SEND_KEY, "payroll", "other.example.com", AccessDenied, "not valid for /payroll"),
        (SasRule("nobody", "a2V5", Rights.SEND), "payroll", HOST, AuthError, "unknown key name"),
        (SasRule("send", "d3Jvbmc=", Rights.SEND), "payroll", HOST, AuthError, "signature"),
    ],
)
def test_a_token_that_does_not_grant_send_here_is_refused_naming_why(
    verifier: SasVerifier, rule: SasRule, path: str, host: str, error: type[Exception], text: str
) -> None:
    asked = request(headers=(("ServiceBusAuthorization", token(rule, path, host=host)),))
    denied(access.send(asked, entity(), namespace(), verifier), error, text)


def test_a_malformed_token_or_host_is_refused(verifier: SasVerifier) -> None:
    asked = request(headers=(("ServiceBusAuthorization", "SharedAccessSignature sr=x"),))
    denied(access.send(asked, entity(), namespace(), verifier), MalformedToken, "lacks sig")
    bad_host = request(host="bad host!", headers=(("ServiceBusAuthorization", token(SEND_KEY)),))
    denied(access.send(bad_host, entity(), namespace(), verifier), BadRequest, "malformed Host")


def test_an_entity_rule_grants_on_its_entity_only(verifier: SasVerifier) -> None:
    asked = request(headers=(("ServiceBusAuthorization", token(ENTITY_KEY)),))
    assert access.send(asked, entity(rules=(ENTITY_KEY,)), namespace(), verifier).allowed
    denied(access.send(asked, entity(), namespace(), verifier), AuthError, "unknown key name")


def test_a_cors_preflight_from_an_allowed_origin_is_the_relays_to_answer(
    verifier: SasVerifier,
) -> None:
    cors_entity = entity(cors_origins=("https://app.example.com",))
    preflight = request(method="OPTIONS", headers=(
        ("origin", "https://app.example.com"), ("Access-Control-Request-Method", "POST"),
    ))
    decision = access.send(preflight, cors_entity, namespace(), verifier)
    assert isinstance(decision.error, CorsPreflight) and decision.error.status == 204
    assert decision.error.origin == "https://app.example.com"
    stranger = request(method="OPTIONS", headers=(
        ("Origin", "https://evil.example.com"), ("Access-Control-Request-Method", "POST"),
    ))
    denied(access.send(stranger, cors_entity, namespace(), verifier), AuthError, "required")


# -- listen -------------------------------------------------------------------------------


def test_a_listener_on_a_configured_entity_needs_listen(verifier: SasVerifier) -> None:
    asked = request(method="GET", query=(("sb-hc-token", token(LISTEN_KEY)),))
    decision = access.listen(asked, "payroll", entity(), namespace(), verifier)
    assert decision.allowed and decision.rights == Rights.LISTEN and decision.create is None
    assert decision.expiry == int(NOW + 3600)
    sender = request(method="GET", query=(("sb-hc-token", token(SEND_KEY)),))
    denied(access.listen(sender, "payroll", entity(), namespace(), verifier),
           AccessDenied, "lacks the Listen right")
    denied(access.listen(request(method="GET"), "payroll", entity(), namespace(), verifier),
           AuthError, "SAS token is required")


def test_a_listener_past_the_quota_is_refused(verifier: SasVerifier) -> None:
    asked = request(method="GET", query=(("sb-hc-token", token(LISTEN_KEY)),))
    assert access.listen(asked, "payroll", entity(listeners=1, max_listeners=2),
                         namespace(), verifier).allowed
    denied(access.listen(asked, "payroll", entity(listeners=2, max_listeners=2), namespace(), verifier),
           ListenerQuotaExceeded, "allows at most 2 listeners")


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ((("sb-relay-kind", "event"),), "exists with kind request-response"),
        ((("sb-relay-client-auth", "none"),), "exists with sb-relay-client-auth=required"),
        ((("sb-relay-kind", "teapot"),), "sb-relay-kind='teapot' is not one of"),
    ],
)
def test_a_listener_asking_for_another_shape_is_refused(
    verifier: SasVerifier, query: tuple[tuple[str, str], ...], text: str
) -> None:
    asked = request(method="GET", query=(("sb-hc-token", token(LISTEN_KEY)), *query))
    denied(access.listen(asked, "payroll", entity(), namespace(), verifier), BadRequest, text)


def test_a_manage_listener_creates_the_entity_it_asks_for(verifier: SasVerifier) -> None:
    asked = request(method="GET", query=(
        ("sb-hc-token", token(ROOT_KEY, "news")), ("sb-relay-kind", "event"),
        ("sb-relay-discovery", "public"), ("sb-relay-client-auth", "none"),
        ("sb-relay-max-message-size", "1000"),
    ))
    decision = access.listen(asked, "news", None, namespace(dynamic_entities=True), verifier)
    assert decision.allowed and decision.create is not None
    assert decision.create == EntityConfig(
        path="news", kind=EntityKind.EVENT, discovery=Discovery.PUBLIC,
        requires_client_authorization=False, max_message_size=1000, dynamic=True,
    )


def test_a_dynamic_entity_keeps_its_kinds_smaller_default_size(verifier: SasVerifier) -> None:
    asked = request(method="GET", query=(
        ("sb-hc-token", token(ROOT_KEY, "jobs")), ("sb-relay-kind", "oneway"),
        ("sb-relay-max-message-size", str(10**12)),
    ))
    decision = access.listen(asked, "jobs", None, namespace(dynamic_entities=True), verifier)
    assert decision.create is not None and decision.create.max_message_size == 64 * 1024


@pytest.mark.parametrize(
    ("rule", "query", "dynamic", "error", "text"),
    [
        (ROOT_KEY, (), False, EntityNotFound, "no entity 'news' in this namespace"),
        (LISTEN_KEY, (), True, EntityNotFound, "a Manage token may create it"),
        (None, (), True, AuthError, "SAS token is required"),
        (ROOT_KEY, (("sb-relay-max-message-size", "-5"),), True, BadRequest, "positive number"),
        (ROOT_KEY, (("sb-relay-discovery", "secret"),), True, BadRequest, "one of public, private"),
    ],
)
def test_creating_an_entity_is_refused_naming_why(
    verifier: SasVerifier, rule: SasRule | None, query: tuple[tuple[str, str], ...],
    dynamic: bool, error: type[Exception], text: str,
) -> None:
    tokens = (("sb-hc-token", token(rule, "news")),) if rule is not None else ()
    asked = request(method="GET", query=(*tokens, *query))
    decision = access.listen(asked, "news", None, namespace(dynamic_entities=dynamic), verifier)
    denied(decision, error, text)


def test_a_renewed_token_is_checked_now(verifier: SasVerifier, clock: Clock) -> None:
    state = entity()
    renewed = token(LISTEN_KEY, ttl=7200)
    assert access.renew(renewed, HOST, state, namespace(), verifier).expiry == int(NOW + 7200)
    denied(access.renew(token(SEND_KEY), HOST, state, namespace(), verifier),
           AccessDenied, "Listen")
    clock.now = NOW + 7201
    denied(access.renew(renewed, HOST, state, namespace(), verifier), AuthError, "expired")


# -- feed ---------------------------------------------------------------------------------


def test_the_feed_shows_public_entities_with_a_listener_only() -> None:
    shown = entity("shown", listeners=1, discovery=Discovery.PUBLIC)
    idle = entity("idle", discovery=Discovery.PUBLIC)
    private = entity("private", listeners=1)
    assert access.feed([shown, idle, private]) == [shown.config]


# -- no I/O -------------------------------------------------------------------------------


def test_access_decisions_import_no_aiohttp_and_no_asyncio() -> None:
    code = (
        "import sys, relay.access, relay.boundary\n"
        "print(sorted(m for m in ('aiohttp', 'asyncio', 'multidict') if m in sys.modules))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
        timeout=60,
    )
    assert found.stdout.strip() == "[]", found.stdout


def test_the_written_out_inits_take_the_fields_and_their_defaults() -> None:
    assert_init_matches_fields(AccessRequest, method="GET", host="h", query=(("a", "b"),),
                               headers=(("C", "d"),), remote="10.0.0.1")
    assert_init_matches_fields(Decision, error=AuthError("no"), rights=Rights.SEND, expiry=7,
                               token_location=TokenLocation.QUERY,
                               create=EntityConfig.for_kind("e", EntityKind.REQUEST_RESPONSE))
