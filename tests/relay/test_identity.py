"""Identity-provider tokens, pure: roles, the [[identity]] config, the JWT checks, JWKS parsing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hc.entities import Rights
from hc.exceptions import AccessDenied, MalformedToken, TokenRejected
from hc.sas import Resource, create_token
from relay import access
from relay.config import load_config
from relay.exceptions import ConfigError, KeysUnavailable
from relay.identity import IdentityProvider, Role, RoleAssignment, rights_for, role_named
from relay.jwks import parse_jwks
from relay.jwt_tokens import JwtVerifier, TokenVerifier, looks_like_jwt
from relay.namespace import EntityConfig, NamespaceConfig, SasRule
from relay.routing import EntityRegistry

pytestmark = pytest.mark.usefixtures("no_sockets")

ISSUER = "https://idp.test/tenant"
AUDIENCE = "https://relay.test/"
NOW = 1_900_000_000.0
RSA_KEY = rsa.generate_private_key(65537, 2048)
TARGET = Resource("relay.test", "/payroll")


def public_jwk(private: Any, kid: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(private, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
    return {**json.loads(algorithm.to_jwk(private.public_key())), "kid": kid}


class Keys:
    """A KeySource with fixed keys that counts the fetches asked for."""

    def __init__(self, fetching: bool = False) -> None:
        self.keys = {"k1": jwt.PyJWK(public_jwk(RSA_KEY, "k1"))}
        self.fetching, self.asked = fetching, 0

    def key(self, issuer: str, kid: str) -> jwt.PyJWK | None:
        return self.keys.get(kid) if issuer == ISSUER else None

    def wanted(self, issuer: str) -> bool:
        self.asked += 1
        return self.fetching


def token(**claims: Any) -> str:
    kid = claims.pop("kid", "k1")
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "app-1", "exp": int(NOW) + 600, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, RSA_KEY, algorithm="RS256",
                      headers={"kid": kid})


def verifier(keys: Keys | None = None, **options: Any) -> JwtVerifier:
    provider = IdentityProvider(ISSUER, (AUDIENCE,), **options)
    return JwtVerifier([provider], keys or Keys(), clock=lambda: NOW)


def test_role_names_as_azure_and_app_registrations_spell_them() -> None:
    assert role_named("Listener") is role_named("Azure Relay Listener") is Role.LISTENER
    assert role_named("relay.owner") is Role.OWNER and role_named(" SENDER ") is Role.SENDER
    assert role_named("Reader") is None and role_named("Azure Relay") is None
    assert Role.OWNER.rights.grants(Rights.MANAGE) and not Role.SENDER.rights.grants(Rights.LISTEN)


def test_rights_come_from_the_claim_and_from_assignments_within_their_scope() -> None:
    provider = IdentityProvider(ISSUER, (AUDIENCE,), role_claim="app_roles", assignments=(
        RoleAssignment(Role.LISTENER, subject="svc", scope="payroll"),
        RoleAssignment(Role.SENDER, group="finance"),
    ))
    assert rights_for({"app_roles": ["Sender", "bogus", 7]}, provider, "x") == Rights.SEND
    assert rights_for({"app_roles": "Owner"}, provider, "x").grants(Rights.MANAGE)
    assert rights_for({"roles": ["Owner"]}, provider, "x") == Rights.NONE  # another claim
    assert rights_for({"sub": "svc"}, provider, "payroll/v2") == Rights.LISTEN
    assert rights_for({"sub": "svc"}, provider, "payroll2") == Rights.NONE
    assert rights_for({"sub": "svc"}, provider, "PAYROLL") == Rights.LISTEN
    assert rights_for({"sub": "other", "groups": ["finance"]}, provider, "any") == Rights.SEND
    assert rights_for({"sub": "other", "groups": "finance-2"}, provider, "any") == Rights.NONE


def test_jwts_are_told_from_sas_tokens_by_form() -> None:
    jwt_text = token()
    assert looks_like_jwt(jwt_text) and looks_like_jwt("Bearer " + jwt_text)
    assert not looks_like_jwt(create_token("http://relay.test/payroll", "k", "key"))
    assert not looks_like_jwt("eyJ.only-two")


def test_a_valid_token_grants_its_roles_and_is_cached() -> None:
    check = verifier()
    grant = check.verify("Bearer " + token(roles=["Listener"]), TARGET, Rights.LISTEN)
    assert grant.rights == Rights.LISTEN and grant.expiry == int(NOW) + 600
    assert check.verify(token(roles=["Listener"]), TARGET, Rights.LISTEN) == grant
    with pytest.raises(AccessDenied, match="do not give Send on /payroll"):
        check.verify(token(roles=["Listener"]), TARGET, Rights.SEND)


@pytest.mark.parametrize("claims, problem", [
    ({"iss": "https://evil.test/"}, "not one this relay trusts"),
    ({"aud": "https://other.test/"}, "audience"),
    ({"exp": int(NOW) - 61}, "expired"),
    ({"nbf": int(NOW) + 61}, "not valid yet"),
    ({"exp": None}, "lacks a claim"),
    ({"kid": "k9"}, "does not publish"),
])
def test_each_broken_rule_is_refused_by_name(claims: dict[str, Any], problem: str) -> None:
    with pytest.raises(TokenRejected, match=problem):
        verifier().verify(token(roles=["Owner"], **claims), TARGET, Rights.SEND)


def test_the_clock_skew_is_honoured_on_both_ends() -> None:
    check = verifier(clock_skew=60)
    assert check.verify(token(roles=["Sender"], exp=int(NOW) - 30, nbf=int(NOW) + 30), TARGET, Rights.SEND)


def test_a_cached_token_still_expires() -> None:
    now = [NOW]
    check = JwtVerifier([IdentityProvider(ISSUER, (AUDIENCE,), clock_skew=0)], Keys(), clock=lambda: now[0])
    text = token(roles=["Sender"])
    check.verify(text, TARGET, Rights.SEND)
    now[0] += 601
    with pytest.raises(TokenRejected, match="expired"):
        check.verify(text, TARGET, Rights.SEND)


def test_an_unknown_key_asks_for_a_fetch_and_is_refused_by_the_floor() -> None:
    keys = Keys(fetching=True)
    with pytest.raises(KeysUnavailable, match="fetching the signing keys"):
        verifier(keys).verify(token(kid="new"), TARGET, Rights.SEND)
    keys.fetching = False
    with pytest.raises(TokenRejected, match="does not publish"):
        verifier(keys).verify(token(kid="new"), TARGET, Rights.SEND)
    assert keys.asked == 2


def test_algorithm_none_hmac_and_a_mismatched_key_type_are_refused() -> None:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": int(NOW) + 60, "roles": ["Owner"]}
    for alg in ("HS256", "none"):
        forged = jwt.encode(claims, "secret-0123456789-0123456789-012" if alg != "none" else None,
                            algorithm=alg, headers={"kid": "k1"})
        with pytest.raises(TokenRejected, match=f"'{alg}' is not accepted"):
            verifier().verify(forged, TARGET, Rights.SEND)
    keys = Keys()
    keys.keys["e1"] = jwt.PyJWK(public_jwk(ec.generate_private_key(ec.SECP256R1()), "e1"))
    wrong_type = jwt.encode(claims, RSA_KEY, algorithm="RS256", headers={"kid": "e1"})
    with pytest.raises(TokenRejected, match="does not fit key"):
        verifier(keys).verify(wrong_type, TARGET, Rights.SEND)


def test_garbage_and_giant_tokens_are_malformed() -> None:
    for text in ("eyJ.eyJ.x", "eyJhbGciOiJSUzI1NiJ9." + "a" * 20_000 + ".x"):
        with pytest.raises(MalformedToken):
            verifier().verify(text, TARGET, Rights.SEND)


def test_the_relay_verifier_keeps_sas_and_renews_with_a_jwt() -> None:
    rule = SasRule("root", "k" * 32, Rights.MANAGE | Rights.LISTEN | Rights.SEND)
    both = TokenVerifier(lambda: NOW, verifier())
    sas = create_token("http://relay.test/payroll", "root", "k" * 32, ttl=60, now=NOW)
    assert both.verify(sas, TARGET, Rights.SEND, [rule]).key_name == "root"
    config = NamespaceConfig(rules=(rule,), entities=(EntityConfig("payroll"),))
    state = next(iter(EntityRegistry(config)))
    decision = access.renew(token(roles=["Listener"]), "relay.test", state, config, both)
    assert decision.allowed and decision.expiry == int(NOW) + 600
    refused = access.renew(token(roles=["Sender"]), "relay.test", state, config, both)
    assert refused.error is not None and refused.error.status == 403
    sas_only = TokenVerifier(lambda: NOW)  # no providers: a JWT is not a SAS token
    assert access.renew(token(roles=["Owner"]), "relay.test", state, config, sas_only).error.status == 401  # type: ignore[union-attr]


def test_only_public_asymmetric_signing_keys_are_taken_from_a_jwks() -> None:
    good = public_jwk(RSA_KEY, "good")
    private = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY)), "kid": "private"}
    document = {"keys": [good, private, {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
                         {**good, "kid": "enc", "use": "enc"}, {**good, "kid": None}, "junk",
                         {"kty": "RSA", "kid": "broken", "n": "x"}]}
    assert list(parse_jwks(document)) == ["good"]
    assert parse_jwks({"keys": "nope"}) == {} and parse_jwks([]) == {}


CONFIG = """
[[identity]]
issuer = "https://login.microsoftonline.com/tenant/v2.0"
audience = ["https://relay.azure.net/", "api://soaprelay"]
role_claim = "roles"
clock_skew = 30

[[identity.assignment]]
group = "finance-group-id"
role = "Azure Relay Sender"
scope = "/payroll/"
"""


def test_identity_tables_load_into_providers(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(CONFIG)
    (provider,) = load_config(path).identities
    assert provider.audiences == ("https://relay.azure.net/", "api://soaprelay")
    assert provider.jwks_uri is None and provider.clock_skew == 30.0
    assert provider.discovery_url.endswith("/v2.0/.well-known/openid-configuration")
    assert provider.assignments == (RoleAssignment(Role.SENDER, group="finance-group-id", scope="payroll"),)


@pytest.mark.parametrize("edit, problem", [
    (('role = "Azure Relay Sender"', 'role = "Reader"'), r"identity\[0\].assignment\[0\].role: unknown role 'Reader'"),
    (('group = "finance-group-id"', 'group = "g"\nsubject = "s"'), "exactly one of subject or group"),
    (('issuer = "https://login', 'issuer = "ftp://login'), r"identity\[0\].issuer: must be an https://"),
    (("clock_skew = 30", "clock_skew = -1"), "clock_skew: must be a number of seconds"),
    (("clock_skew = 30", "clockskew = 30"), "clockskew: unknown key"),
    (('audience = ["https://relay.azure.net/", "api://soaprelay"]', "audience = []"), "audience: is required"),
])
def test_a_bad_identity_table_is_named(tmp_path: Path, edit: tuple[str, str], problem: str) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(CONFIG.replace(*edit))
    with pytest.raises(ConfigError, match=problem):
        load_config(path)


def test_an_issuer_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(CONFIG + CONFIG.split("[[identity.assignment]]")[0])
    with pytest.raises(ConfigError, match=r"identity\[1\].issuer: duplicate issuer"):
        load_config(path)

