"""SAS tokens (PROTOCOL.md §2): signing, parsing, verification, scope and rights."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hc.entities import Rights
from hc.exceptions import AccessDenied, MalformedToken, TokenRejected
from hc.sas import Grant, KeyRule, Resource, SasToken, SasVerifier, create_token, sign


@dataclass(frozen=True)
class SasRule:
    """Any value type with a name, a key and rights will do (``hc.sas.KeyRule``)."""

    name: str
    key: str
    rights: Rights


KEY = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG="
NOW = 1_700_000_000
ROOT = SasRule("Root", KEY, Rights.MANAGE | Rights.LISTEN | Rights.SEND)
PAYROLL = Resource.from_uri("http://127.0.0.1:9350/payroll")


def _hmac_b64(key: bytes, message: str) -> str:
    return base64.b64encode(hmac.new(key, message.encode(), hashlib.sha256).digest()).decode()


def _token(raw_sr: str, sig: str, se: int, skn: str) -> str:
    return f"SharedAccessSignature sr={raw_sr}&sig={quote(sig, safe='')}&se={se}&skn={skn}"


def _verifier(now: float = NOW) -> SasVerifier:
    return SasVerifier(clock=lambda: now)


def _verify(
    token: str,
    target: Resource = PAYROLL,
    needed: Rights = Rights.SEND,
    rules: tuple[SasRule, ...] = (ROOT,),
    now: float = NOW,
) -> Grant:
    return _verifier(now).verify(token, target, needed, rules)


# -- signing -------------------------------------------------------------------------------


def test_known_answer_vector_computed_by_hand() -> None:
    raw = "http%3A%2F%2F127.0.0.1%3A9350%2Fpayroll"
    expiry = NOW + 3600
    expected_sig = _hmac_b64(KEY.encode("utf-8"), f"{raw}\n{expiry}")

    assert sign(raw, expiry, KEY) == expected_sig
    token = create_token("http://127.0.0.1:9350/payroll", "Root", KEY, ttl=3600, now=NOW)
    assert token == _token(raw, expected_sig, expiry, "Root")


def test_round_trip_create_parse_verify() -> None:
    token = create_token("http://127.0.0.1:9350/payroll", "Root", KEY, ttl=60, now=NOW)

    parsed = SasToken.parse(token)
    grant = _verify(token)

    assert (parsed.key_name, parsed.expiry) == ("Root", NOW + 60)
    assert parsed.resource == PAYROLL
    assert (grant.key_name, grant.rights, grant.expiry) == ("Root", ROOT.rights, NOW + 60)


def test_fields_in_any_order() -> None:
    token = create_token("http://127.0.0.1:9350/payroll", "Root", KEY, now=NOW)
    fields = token.removeprefix("SharedAccessSignature ").split("&")
    shuffled = "SharedAccessSignature " + "&".join(reversed(fields))

    assert SasToken.parse(shuffled) == SasToken.parse(token)
    _verify(shuffled)


@pytest.mark.parametrize(
    "raw_sr",
    ["http%3a%2f%2f127.0.0.1%3a9350%2fpayroll", "http%3A%2F%2F127.0.0.1%3A9350%2Fpayroll"],
    ids=["lower-case-hex", "upper-case-hex"],
)
def test_verification_uses_the_raw_sr_as_sent(raw_sr: str) -> None:
    sig = _hmac_b64(KEY.encode(), f"{raw_sr}\n{NOW + 60}")

    _verify(_token(raw_sr, sig, NOW + 60, "Root"))


def test_re_encoded_sr_does_not_verify() -> None:
    """A signature over upper-case hex is not valid for the same URI in lower-case hex."""
    upper = "http%3A%2F%2F127.0.0.1%3A9350%2Fpayroll"
    sig = _hmac_b64(KEY.encode(), f"{upper}\n{NOW + 60}")

    with pytest.raises(TokenRejected, match="signature"):
        _verify(_token(upper.lower(), sig, NOW + 60, "Root"))


def test_key_is_used_as_utf8_bytes_not_base64_decoded() -> None:
    key = base64.b64encode(b"sixteen byte key!").decode()  # looks like base64, and is
    rule = SasRule("Root", key, Rights.SEND)
    raw = quote("http://127.0.0.1:9350/payroll", safe="")
    decoded_sig = _hmac_b64(base64.b64decode(key), f"{raw}\n{NOW + 60}")
    text_sig = _hmac_b64(key.encode("utf-8"), f"{raw}\n{NOW + 60}")

    _verify(_token(raw, text_sig, NOW + 60, "Root"), rules=(rule,))
    with pytest.raises(TokenRejected):
        _verify(_token(raw, decoded_sig, NOW + 60, "Root"), rules=(rule,))


def test_non_ascii_key_signs_its_utf8_bytes() -> None:
    key = "schlüssel-ключ-0123456789"
    rule = SasRule("Root", key, Rights.SEND)
    raw = quote("http://127.0.0.1:9350/payroll", safe="")
    sig = _hmac_b64(key.encode("utf-8"), f"{raw}\n{NOW + 60}")

    _verify(_token(raw, sig, NOW + 60, "Root"), rules=(rule,))


# -- expiry, keys, rights --------------------------------------------------------------------


@pytest.mark.parametrize(("now", "valid"), [(NOW + 59, True), (NOW + 60, False), (NOW + 61, False)])
def test_expiry_with_an_injected_clock(now: int, valid: bool) -> None:
    token = create_token("http://127.0.0.1:9350/payroll", "Root", KEY, ttl=60, now=NOW)

    if valid:
        _verify(token, now=now)
    else:
        with pytest.raises(TokenRejected, match="expired"):
            _verify(token, now=now)


def test_the_cache_does_not_outlive_the_token() -> None:
    clock = [float(NOW)]
    verifier = SasVerifier(clock=lambda: clock[0])
    token = create_token("http://127.0.0.1:9350/payroll", "Root", KEY, ttl=60, now=NOW)
    verifier.verify(token, PAYROLL, Rights.SEND, [ROOT])

    clock[0] = NOW + 60
    with pytest.raises(TokenRejected, match="expired"):
        verifier.verify(token, PAYROLL, Rights.SEND, [ROOT])


def test_a_changed_key_invalidates_a_cached_token() -> None:
    verifier = _verifier()
    token = create_token("http://127.0.0.1:9350/payroll", "Root", KEY, now=NOW)
    verifier.verify(token, PAYROLL, Rights.SEND, [ROOT])
    rotated = SasRule("Root", "another-key-0123456789", ROOT.rights)

    with pytest.raises(TokenRejected, match="signature"):
        verifier.verify(token, PAYROLL, Rights.SEND, [rotated])


def test_narrowed_rights_invalidate_a_cached_grant() -> None:
    verifier = _verifier()
    token = create_token("http://127.0.0.1:9350/payroll", "Root", KEY, now=NOW)
    verifier.verify(token, PAYROLL, Rights.SEND, [ROOT])
    listen_only = SasRule("Root", KEY, Rights.LISTEN)

    with pytest.raises(AccessDenied, match="lacks"):
        verifier.verify(token, PAYROLL, Rights.SEND, [listen_only])


def test_unknown_key_name() -> None:
    token = create_token("http://127.0.0.1:9350/payroll", "Nobody", KEY, now=NOW)

    with pytest.raises(TokenRejected, match="unknown key name 'Nobody'"):
        _verify(token)


def test_wrong_key_is_a_signature_mismatch() -> None:
    token = create_token("http://127.0.0.1:9350/payroll", "Root", "not-the-right-key-000", now=NOW)

    with pytest.raises(TokenRejected, match="signature"):
        _verify(token)


@pytest.mark.parametrize(
    ("rights", "needed", "allowed"),
    [
        (Rights.LISTEN, Rights.LISTEN, True),
        (Rights.LISTEN, Rights.SEND, False),
        (Rights.SEND, Rights.SEND, True),
        (Rights.SEND, Rights.LISTEN, False),
        (Rights.SEND, Rights.MANAGE, False),
        (Rights.MANAGE, Rights.LISTEN, True),
        (Rights.MANAGE, Rights.SEND, True),
        (Rights.MANAGE, Rights.MANAGE, True),
        (Rights.LISTEN | Rights.SEND, Rights.MANAGE, False),
    ],
)
def test_rights(rights: Rights, needed: Rights, allowed: bool) -> None:
    rule = SasRule("Rule", KEY, rights)
    token = create_token("http://127.0.0.1:9350/payroll", "Rule", KEY, now=NOW)

    if allowed:
        _verify(token, needed=needed, rules=(rule,))
    else:
        with pytest.raises(AccessDenied, match="lacks"):
            _verify(token, needed=needed, rules=(rule,))


def test_entity_rule_is_valid_only_where_the_server_offers_it() -> None:
    """The server passes namespace rules + the target entity's rules; nothing else."""
    entity_rule = SasRule("payroll-send", "payroll-entity-key-0001", Rights.SEND)
    token = create_token(
        "http://127.0.0.1:9350/payroll", entity_rule.name, entity_rule.key, now=NOW
    )

    _verify(token, rules=(ROOT, entity_rule))  # payroll: namespace + payroll's rules
    with pytest.raises(TokenRejected, match="unknown key name"):
        _verify(token, target=Resource.from_uri("http://127.0.0.1:9350/hr"), rules=(ROOT,))


def test_same_rule_name_in_namespace_and_entity_both_verify() -> None:
    entity_rule = SasRule("Root", "payroll-entity-key-0001", Rights.SEND)
    token = create_token("http://127.0.0.1:9350/payroll", "Root", entity_rule.key, now=NOW)

    _verify(token, rules=(ROOT, entity_rule))


# -- scope normalisation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signed", "target"),
    [
        ("http://127.0.0.1:9350/payroll", "ws://127.0.0.1:9350/payroll"),
        ("sb://127.0.0.1/payroll", "https://127.0.0.1:443/payroll"),
        ("https://Relay.Example.COM/payroll", "http://relay.example.com/payroll"),
        ("http://relay.example.com/payroll/", "http://relay.example.com/payroll"),
        ("http://relay.example.com/payroll", "http://relay.example.com/payroll/"),
        ("http://relay.example.com/payroll", "http://relay.example.com/payroll/v2/x"),
        ("http://relay.example.com/", "http://relay.example.com/any/entity"),
        ("http://relay.example.com", "http://relay.example.com/payroll"),
        ("relay.example.com/payroll", "http://relay.example.com/payroll"),
    ],
)
def test_scope_covers(signed: str, target: str) -> None:
    token = create_token(signed, "Root", KEY, now=NOW)

    _verify(token, target=Resource.from_uri(target))


@pytest.mark.parametrize(
    ("signed", "target"),
    [
        ("http://relay.example.com/pay", "http://relay.example.com/payroll"),
        ("http://relay.example.com/payroll", "http://relay.example.com/pay"),
        ("http://relay.example.com/payroll/v2", "http://relay.example.com/payroll"),
        ("http://relay.example.com/payroll", "http://other.example.com/payroll"),
    ],
)
def test_scope_does_not_cover(signed: str, target: str) -> None:
    token = create_token(signed, "Root", KEY, now=NOW)

    with pytest.raises(AccessDenied, match="not valid for"):
        _verify(token, target=Resource.from_uri(target))


def test_resource_normalisation() -> None:
    assert Resource.from_uri("sb://Host:9350/a/b/") == Resource("host", "/a/b")
    assert Resource.from_uri("wss://host") == Resource("host", "/")


# -- malformed tokens ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Bearer abc",
        "SharedAccessSignature ",
        "SharedAccessSignature sr=a&sig=b&se=1",
        "SharedAccessSignature sr=a&sig=b&se=1&skn=c&sr=d",
        "SharedAccessSignature sr=a&sig=b&se=soon&skn=c",
        "SharedAccessSignature sr=a&sig=b&se=\u00b2&skn=c",  # isdigit() but not int()-able
        "SharedAccessSignature sr=a&sig=b&se=1&skn=c&extra=1",
        "SharedAccessSignature sr=&sig=b&se=1&skn=c",
        "SharedAccessSignature sr=a&sig=b&se=1&skn=" + "c" * 5000,
    ],
)
def test_malformed_tokens(text: str) -> None:
    with pytest.raises(MalformedToken) as parsed:
        SasToken.parse(text)
    assert parsed.value.status == 401
    with pytest.raises(MalformedToken):
        _verify(text)


def test_malformed_resource_is_an_auth_error() -> None:
    token = create_token("http://[::1/payroll", "Root", KEY, now=NOW)

    with pytest.raises(MalformedToken):
        _verify(token)


# -- properties ------------------------------------------------------------------------------


@settings(deadline=None)
@given(st.text(max_size=300))
def test_parse_raises_only_malformed_token_on_any_text(text: str) -> None:
    for candidate in (text, "SharedAccessSignature " + text):
        try:
            SasToken.parse(candidate)
        except MalformedToken:
            pass


@settings(deadline=None)
@given(
    field_values=st.lists(
        st.tuples(st.sampled_from(["sr", "sig", "se", "skn", "x", ""]), st.text(max_size=20)),
        max_size=6,
    )
)
def test_parse_raises_only_malformed_token_on_token_like_text(
    field_values: list[tuple[str, str]],
) -> None:
    text = "SharedAccessSignature " + "&".join(f"{name}={value}" for name, value in field_values)
    try:
        SasToken.parse(text)
    except MalformedToken:
        pass


@settings(deadline=None)
@given(
    resource=st.text(min_size=1, max_size=150),
    key_name=st.text(min_size=1, max_size=40),
    key=st.text(min_size=1, max_size=60),
    now=st.integers(min_value=0, max_value=2**33),
    ttl=st.integers(min_value=1, max_value=10**7),
)
def test_create_token_round_trips(
    resource: str, key_name: str, key: str, now: int, ttl: int
) -> None:
    token = SasToken.parse(create_token(resource, key_name, key, ttl=ttl, now=now))

    assert token.raw_resource == quote(resource, safe="")
    assert token.key_name == key_name
    assert token.expiry == now + ttl
    assert token.signature_matches(key)


@settings(deadline=None)
@given(resource=st.text(min_size=1, max_size=150))
def test_verify_raises_only_auth_errors_for_any_resource(resource: str) -> None:
    token = create_token(resource, "Root", KEY, now=NOW)
    try:
        _verify(token)
    except (TokenRejected, AccessDenied, MalformedToken):
        pass


# -- verify_at: the relay's per-request form ---------------------------------------------------

def test_verify_at_grants_what_verify_grants_and_refuses_what_it_refuses() -> None:
    token = create_token("http://127.0.0.1:9350/payroll", "Root", KEY, ttl=60, now=NOW)
    clock = [float(NOW)]
    verifier = SasVerifier(clock=lambda: clock[0])

    first = verifier.verify_at(token, "127.0.0.1", "/payroll", Rights.SEND, (ROOT,))
    again = verifier.verify_at(token, "127.0.0.1", "/payroll", Rights.SEND, (ROOT,))

    assert first == again == _verify(token)
    with pytest.raises(AccessDenied, match="not valid for /other"):
        verifier.verify_at(token, "127.0.0.1", "/other", Rights.SEND, (ROOT,))
    with pytest.raises(AccessDenied, match="lacks"):
        verifier.verify_at(token, "127.0.0.1", "/payroll", Rights.SEND,
                           (SasRule("Root", KEY, Rights.LISTEN),))
    clock[0] = NOW + 60
    with pytest.raises(TokenRejected, match="expired"):  # a cached grant does not outlive it
        verifier.verify_at(token, "127.0.0.1", "/payroll", Rights.SEND, (ROOT,))


def test_verify_at_leaves_what_it_has_not_granted_to_verify() -> None:
    calls: list[Resource] = []

    class Counting(SasVerifier):
        def verify(self, text: str, target: Resource, needed: Rights,
                   rules: Iterable[KeyRule]) -> Grant:
            calls.append(target)
            return super().verify(text, target, needed, rules)

    verifier = Counting(clock=lambda: NOW)
    token = create_token("http://127.0.0.1:9350/payroll", "Root", KEY, now=NOW)
    for _ in range(3):
        verifier.verify_at(token, "127.0.0.1", "/payroll", Rights.SEND, (ROOT,))
    with pytest.raises(MalformedToken):
        verifier.verify_at("not a token", "127.0.0.1", "/payroll", Rights.SEND, (ROOT,))

    assert calls == [Resource("127.0.0.1", "/payroll"), Resource("127.0.0.1", "/payroll")]
