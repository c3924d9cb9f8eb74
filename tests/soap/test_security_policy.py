"""Tests for soap.security.policy and faults: the receiver's rules, the hook, the faults."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from soap import ns
from soap.addressing import AddressingHook
from soap.envelope import Envelope, SoapVersion, build_envelope
from soap.exceptions import (
    FailedAuthentication,
    FailedCheck,
    InvalidSecurity,
    InvalidSecurityToken,
    MalformedXml,
    MessageExpired,
    RemoteSoapError,
    SecurityFault,
    SecuritySetupError,
    UnsupportedAlgorithm,
)
from soap.fault import Fault, FaultCode, fault_envelope, find_fault
from soap.relay_token import RelayTokenHook, extract_relay_token
from soap.security import (
    EnvelopeSigner,
    Freshness,
    MemoryReplayCache,
    SecurityPolicy,
    TimestampHook,
    UsernameTokenHook,
    WsSecurityHook,
    security_fault,
    security_fault_envelope,
    verify_envelope,
)
from soap.security.faults import subcode
from soap.security.header import find_security_header
from tests.soap.test_security_signature import payload
from tests.soap.test_security_trust import T0, Party, pki

ENV11, ENV12 = SoapVersion.SOAP11, SoapVersion.SOAP12
MIN = timedelta(minutes=1)
USERS = {"alice": "s3cret"}


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def client_hook(
    *,
    party: Party | None = None,
    sign: bool = True,
    username: str | None = None,
    digest: bool = True,
    when: datetime = T0,
    **signer: object,
) -> WsSecurityHook:
    identity = (party or pki().leaf).identity
    return WsSecurityHook(
        timestamp=TimestampHook(clock=at(when)),
        username_token=None
        if username is None
        else UsernameTokenHook(username, "s3cret", digest=digest, clock=at(when)),
        signer=EnvelopeSigner(identity, **signer) if sign else None,  # type: ignore[arg-type]
    )


def request(hook: WsSecurityHook | None = None, version: SoapVersion = ENV11) -> bytes:
    root = build_envelope(version, [payload()])
    if hook is not None:
        hook.egress(root, {})
    return bytes(etree.tostring(root))


def policy(**overrides: object) -> SecurityPolicy:
    settings: dict[str, object] = {"trust": pki().authority(), "clock": at(T0)}
    settings.update(overrides)
    return SecurityPolicy(**settings)  # type: ignore[arg-type]


def verify(data: bytes, rules: SecurityPolicy | None = None):  # type: ignore[no-untyped-def]
    return verify_envelope(Envelope.from_bytes(data), rules or policy())


# --- the policy ------------------------------------------------------------


@pytest.mark.parametrize("version", [ENV11, ENV12])
def test_signed_request_passes(version: SoapVersion) -> None:
    result = verify(request(client_hook(), version))
    assert result.signer == pki().leaf.cert
    assert result.username is None
    assert result.timestamp is not None and result.timestamp.created == T0
    assert result.signed_parts == (version.qname("Body"), f"{{{ns.WSU}}}Timestamp")


def test_policy_setup_errors() -> None:
    with pytest.raises(SecuritySetupError, match="TrustStore"):
        SecurityPolicy()
    with pytest.raises(SecuritySetupError, match="credentials"):
        SecurityPolicy(require_signature=False, require_username_token=True)
    assert "s3cret" not in repr(policy(credentials=USERS.get))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (request(), "no wsse:Security header"),
        (request(client_hook(sign=False)), "not signed"),
        (request(WsSecurityHook(timestamp=None, signer=EnvelopeSigner(pki().leaf.identity))),
         "no wsu:Timestamp"),
    ],
)  # fmt: skip
def test_missing_parts(data: bytes, message: str) -> None:
    with pytest.raises(InvalidSecurity, match=message):
        verify(data)


def test_nothing_required_passes_a_bare_message() -> None:
    lax = policy(trust=None, require_signature=False, require_timestamp=False)
    assert verify(request(), lax).signer is None
    # A signature with no trust store configured is ignored, never trusted.
    assert verify(request(client_hook()), lax).signer is None


@pytest.mark.parametrize(("offset", "message"), [(-11, "older than"), (6, "in the future")])
def test_stale_requests_are_refused(offset: int, message: str) -> None:
    data = request(client_hook(when=T0 + offset * MIN))
    with pytest.raises(MessageExpired, match=message):
        verify(data)


def test_skew_is_configurable() -> None:
    data = request(client_hook(when=T0 + 6 * MIN))
    wide = Freshness(skew=10 * MIN)
    assert verify(data, policy(freshness=wide)).signer is not None


def test_replayed_message_is_refused() -> None:
    rules = policy()
    data = request(client_hook())
    verify(data, rules)
    with pytest.raises(InvalidSecurity, match="replay"):
        verify(data, rules)
    # Byte-level variations of the same signed message are the same message.
    with pytest.raises(InvalidSecurity, match="replay"):
        verify(data.replace(b"<soap:Header>", b"<soap:Header>\n  "), rules)
    # The same message later has expired.
    later = policy(clock=at(T0 + 20 * MIN), replay_cache=rules.replay_cache)
    with pytest.raises(MessageExpired):
        verify(data, later)


def test_a_failed_message_is_not_remembered() -> None:
    rules = policy(require_username_token=True, credentials=USERS.get)
    data = request(client_hook(username="alice"))
    wrong = policy(require_username_token=True, credentials={"alice": "x"}.get,
                   replay_cache=rules.replay_cache)  # fmt: skip
    with pytest.raises(FailedAuthentication):
        verify(data, wrong)
    assert verify(data, rules).username == "alice"


def test_replay_cache_full_fails_closed() -> None:
    rules = policy(replay_cache=MemoryReplayCache(max_entries=0))
    with pytest.raises(InvalidSecurity):
        verify(request(client_hook()), rules)


@pytest.mark.parametrize("digest", [True, False])
def test_username_token_with_and_without_signature(digest: bool) -> None:
    rules = policy(require_signature=False, require_username_token=True, credentials=USERS.get)
    result = verify(request(client_hook(sign=False, username="alice", digest=digest)), rules)
    assert (result.username, result.signer) == ("alice", None)
    signed = verify(
        request(client_hook(username="alice", digest=digest)), policy(credentials=USERS.get)
    )
    assert (signed.username, signed.signer) == ("alice", pki().leaf.cert)


def test_username_token_problems() -> None:
    rules = policy(require_signature=False, require_username_token=True, credentials=USERS.get)
    with pytest.raises(InvalidSecurity, match="no wsse:UsernameToken"):
        verify(request(client_hook(sign=False)), rules)
    bad = client_hook(sign=False, username="mallory")
    with pytest.raises(FailedAuthentication):
        verify(request(bad), rules)
    root = etree.fromstring(request(client_hook(sign=False, username="alice")))
    security = root.find(f".//{{{ns.WSSE}}}Security")
    assert security is not None
    security.append(copy.deepcopy(security[-1]))
    with pytest.raises(InvalidSecurity, match="more than one UsernameToken"):
        verify(etree.tostring(root), rules)


def test_replayed_username_nonce_is_refused() -> None:
    rules = policy(require_signature=False, require_username_token=True, credentials=USERS.get)
    data = request(client_hook(sign=False, username="alice"))
    verify(data, rules)
    with pytest.raises(InvalidSecurity, match="nonce was used before"):
        verify(data, rules)


def _with_wsa(*, sign_addressing: bool = True) -> etree._Element:
    root = build_envelope(ENV12, [payload()])
    AddressingHook(to="http://relay/payroll", action="urn:a").egress(root, {})
    client_hook(sign_addressing=sign_addressing).egress(root, {})
    return root


def _add_wsa(root: etree._Element, local: str, text: str) -> bytes:
    """``root`` with an unsigned ``wsa:<local>`` appended to its Header (after signing)."""
    header = Envelope.from_element(root).header
    assert header is not None
    etree.SubElement(header, f"{{{ns.WSA}}}{local}").text = text
    return bytes(etree.tostring(root))


def test_signed_addressing_is_required_by_default() -> None:
    assert len(verify(etree.tostring(_with_wsa())).signed_parts) == 6
    unsigned = etree.tostring(_with_wsa(sign_addressing=False))
    with pytest.raises(InvalidSecurity, match="does not cover wsa:Action"):
        verify(unsigned)
    # Only when asked explicitly: zeep's own Signature signs just Body and Timestamp.
    assert verify(unsigned, policy(require_signed_addressing=False)).signer is not None


def test_an_unsigned_addressing_header_added_to_a_signed_message_is_refused() -> None:
    # Signed over Body and Timestamp only; an attacker adds where the reply should go.
    root = build_envelope(ENV11, [payload()])
    client_hook().egress(root, {})
    with pytest.raises(InvalidSecurity, match="does not cover wsa:ReplyTo"):
        verify(_add_wsa(root, "ReplyTo", "http://attacker/"))


@pytest.mark.parametrize("local", ["To", "Action", "MessageID"])
def test_a_second_addressing_header_beside_a_signed_one_is_always_refused(local: str) -> None:
    data = _add_wsa(_with_wsa(), local, "urn:attacker")
    for rules in (policy(), policy(require_signed_addressing=False)):
        with pytest.raises(InvalidSecurity, match=f"unsigned wsa:{local} stands beside"):
            verify(data, rules)


def test_unsigned_timestamp_beside_a_signed_body_is_refused() -> None:
    root = build_envelope(ENV11, [payload()])
    hook = WsSecurityHook(timestamp=None, signer=EnvelopeSigner(pki().leaf.identity))
    hook.egress(root, {})
    TimestampHook(clock=at(T0)).egress(root, {})  # added after signing
    with pytest.raises(InvalidSecurity, match="does not cover the wsu:Timestamp"):
        verify(etree.tostring(root))


def test_sha1_policy_opt_in() -> None:
    from signxml.algorithms import DigestAlgorithm, SignatureMethod

    legacy = client_hook(
        signature_method=SignatureMethod.RSA_SHA1, digest_method=DigestAlgorithm.SHA1,
        allow_sha1=True,
    )  # fmt: skip
    data = request(legacy)
    with pytest.raises(UnsupportedAlgorithm):
        verify(data)
    assert verify(data, policy(allow_sha1=True)).signer == pki().leaf.cert


@pytest.mark.parametrize(
    ("item", "error", "message"),
    [
        (f'<xenc:EncryptedKey xmlns:xenc="{ns.XENC}"/>', UnsupportedAlgorithm, "encrypted"),
        (f'<wsse:SecurityTokenReference xmlns:wsse="{ns.WSSE}"/>', InvalidSecurity, "unsupported"),
        (f'<wsu:Junk xmlns:wsu="{ns.WSU}"/>', InvalidSecurity, "unsupported"),
        ("garbage text", InvalidSecurity, "stray text"),
    ],
)
def test_security_header_items(item: str, error: type[SecurityFault], message: str) -> None:
    root = etree.fromstring(request(client_hook()))
    security = root.find(f".//{{{ns.WSSE}}}Security")
    assert security is not None
    if item.startswith("<"):
        security.append(etree.fromstring(item))
    else:
        security[0].tail = item
    with pytest.raises(error, match=message):
        verify(etree.tostring(root))


def test_foreign_items_in_the_security_header_are_ignored() -> None:
    root = etree.fromstring(request(client_hook()))
    security = root.find(f".//{{{ns.WSSE}}}Security")
    assert security is not None
    security.append(etree.fromstring('<x:Extension xmlns:x="urn:vendor"/>'))
    security.append(etree.Comment("a comment"))
    assert verify(etree.tostring(root)).signer is not None


def test_dtd_payloads_never_reach_the_security_checks() -> None:
    lol = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
    )
    xxe = b'<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    data = request(client_hook())
    for prefix in (lol, xxe):
        body = data.replace(b"<soap:Envelope", prefix + b"<soap:Envelope", 1)
        with pytest.raises(MalformedXml, match="DTD"):
            Envelope.from_bytes(body)


# --- the hook --------------------------------------------------------------


def test_hook_round_trip_and_unchanged_envelope() -> None:
    data = request(client_hook())
    root = etree.fromstring(data)
    server = WsSecurityHook(policy=policy())
    assert server.ingress(root, {"h": "1"}) == (root, {"h": "1"})
    assert etree.tostring(root) == data
    assert WsSecurityHook().ingress(root, {}) == (root, {})  # no policy: nothing checked


def test_hook_ingress_refuses_unsigned_replies() -> None:
    with pytest.raises(InvalidSecurity, match="no wsse:Security"):
        WsSecurityHook(policy=policy()).ingress(etree.fromstring(request()), {})


def test_hook_lets_unsigned_faults_through_unless_told() -> None:
    data = fault_envelope(ENV11, Fault(FaultCode.CLIENT, "nope"))
    root = etree.fromstring(data)
    WsSecurityHook(policy=policy()).ingress(root, {})
    with pytest.raises(InvalidSecurity):
        WsSecurityHook(policy=policy(), unsigned_faults=False).ingress(root, {})


def test_hook_verifies_signed_faults() -> None:
    root = etree.fromstring(fault_envelope(ENV12, Fault(FaultCode.SERVER, "boom")))
    client_hook(party=pki().server).egress(root, {})
    WsSecurityHook(policy=policy()).ingress(root, {})
    body = root.find(f".//{{{ns.SOAP12_ENV}}}Text")
    assert body is not None
    body.text = "forged"
    with pytest.raises(FailedCheck):
        WsSecurityHook(policy=policy()).ingress(root, {})


def test_egress_order_timestamp_token_signature() -> None:
    root = etree.fromstring(request(client_hook(username="alice")))
    security = find_security_header(Envelope.from_element(root))
    assert security is not None
    names = [etree.QName(c).localname for c in security]
    assert names == ["Timestamp", "BinarySecurityToken", "UsernameToken", "Signature"]


# --- faults ----------------------------------------------------------------

ERRORS = [
    (InvalidSecurity("x"), ns.WSSE, "InvalidSecurity"),
    (UnsupportedAlgorithm("x"), ns.WSSE, "UnsupportedAlgorithm"),
    (InvalidSecurityToken("x"), ns.WSSE, "InvalidSecurityToken"),
    (FailedAuthentication("x"), ns.WSSE, "FailedAuthentication"),
    (FailedCheck("x"), ns.WSSE, "FailedCheck"),
    (MessageExpired("x"), ns.WSU, "MessageExpired"),
]


@pytest.mark.parametrize(("error", "namespace", "local"), ERRORS)
@pytest.mark.parametrize("version", [ENV11, ENV12])
def test_faults_round_trip(
    error: SecurityFault, namespace: str, local: str, version: SoapVersion
) -> None:
    assert subcode(error) == etree.QName(namespace, local)
    fault = find_fault(Envelope.from_bytes(security_fault_envelope(version, error)))
    assert fault is not None
    assert fault.subcode == etree.QName(namespace, local)
    assert fault.reason == f"{error.description}: x"
    if version is ENV12:
        assert fault.code is FaultCode.CLIENT  # env:Sender


def test_soap11_faultcode_is_the_wsse_qname() -> None:
    root = etree.fromstring(security_fault_envelope(ENV11, FailedCheck("bad digest")))
    code = root.find(f".//{{{ns.SOAP11_ENV}}}Fault/faultcode")
    assert code is not None and code.text is not None
    prefix, _, local = code.text.partition(":")
    assert (code.nsmap[prefix], local) == (ns.WSSE, "FailedCheck")


def test_soap12_fault_is_sender_with_subcode() -> None:
    root = etree.fromstring(security_fault_envelope(ENV12, MessageExpired("late")))
    values = [v.text for v in root.iter(f"{{{ns.SOAP12_ENV}}}Value")]
    assert values[0] == "soap:Sender" and values[1] is not None
    assert values[1].endswith(":MessageExpired")


def test_fault_without_detail_uses_the_spec_string() -> None:
    assert security_fault(FailedCheck()).reason == "The signature or decryption was invalid"


# --- garbage in, a SecurityFault out ---------------------------------------

_NAMES = (
    [f"{{{ns.DS}}}{n}" for n in ("Signature", "SignedInfo", "Reference", "KeyInfo", "X509Data")]
    + [f"{{{ns.WSSE}}}{n}" for n in ("BinarySecurityToken", "UsernameToken", "Password", "Nonce")]
    + [f"{{{ns.WSU}}}{n}" for n in ("Timestamp", "Created", "Expires")]
    + ["{urn:x}Other"]
)
_ATTRS = ["URI", "Algorithm", "ValueType", "EncodingType", f"{{{ns.WSU}}}Id", "Type"]

_trees: st.SearchStrategy[tuple] = st.recursive(  # type: ignore[type-arg]
    st.builds(
        lambda name, text, attrs: (name, text, attrs, []),
        st.sampled_from(_NAMES),
        st.text(max_size=20),
        st.dictionaries(st.sampled_from(_ATTRS), st.text(max_size=12), max_size=2),
    ),
    lambda children: st.builds(
        lambda name, kids: (name, None, {}, kids),
        st.sampled_from(_NAMES),
        st.lists(children, max_size=4),
    ),
    max_leaves=12,
)


def _build(parent: etree._Element, spec: tuple) -> None:  # type: ignore[type-arg]
    name, text, attrs, kids = spec
    element = etree.SubElement(parent, name)
    clean = "".join(ch for ch in (text or "") if ch.isprintable())
    element.text = clean or None
    for key, value in attrs.items():
        element.set(key, "".join(ch for ch in value if ch.isprintable()))
    for kid in kids:
        _build(element, kid)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_trees, max_size=4))
def test_garbage_security_headers_only_raise_security_faults(items: list[tuple]) -> None:  # type: ignore[type-arg]
    root = build_envelope(ENV11, [payload()])
    security = etree.SubElement(
        etree.SubElement(root, f"{{{ns.SOAP11_ENV}}}Header"), f"{{{ns.WSSE}}}Security"
    )
    root.insert(0, security.getparent())  # Header first
    for item in items:
        _build(security, item)
    rules = policy(credentials=USERS.get)
    with pytest.raises(SecurityFault):
        verify(etree.tostring(root), rules)


_SIGNED = request(client_hook())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(min_value=0, max_value=200),
    action=st.sampled_from(["drop", "text", "attr", "dup", "move_up"]),
    value=st.text(alphabet="A7#x- ", max_size=6),
)
def test_mutated_signed_messages_never_pass_with_another_body(
    index: int, action: str, value: str
) -> None:
    """Whatever one edit does to a signed message, it fails with a SecurityFault or
    leaves a Body the application reads exactly as it was signed."""
    root = etree.fromstring(_SIGNED)
    original_body = etree.tostring(root[1], method="c14n", exclusive=True)
    elements = [e for e in root.iter(etree.Element) if e is not root]
    target = elements[index % len(elements)]
    parent = target.getparent()
    assert parent is not None
    if action == "drop":
        parent.remove(target)
    elif action == "text":
        target.text = value
    elif action == "attr":
        target.set(next(iter(target.attrib), "Id"), value)
    elif action == "dup":
        target.addnext(copy.deepcopy(target))
    elif parent.getparent() is not None:
        parent.addprevious(target)
    try:
        envelope = Envelope.from_bytes(etree.tostring(root))
        verify_envelope(envelope, policy())
    except RemoteSoapError:
        return  # refused (SecurityFault, or not an envelope any more)
    assert etree.tostring(envelope.body, method="c14n", exclusive=True) == original_body


# --- through the relay -----------------------------------------------------


@pytest.mark.parametrize("version", [ENV11, ENV12])
@pytest.mark.parametrize("token_first", [True, False])
def test_signature_survives_the_relay_removing_its_token(
    version: SoapVersion, token_first: bool
) -> None:
    """The relay strips the RelayAccessToken byte-exactly; the signature still verifies."""
    root = build_envelope(version, [payload()])
    token = RelayTokenHook(lambda: "SharedAccessSignature sr=x&sig=y&se=1&skn=k")
    if token_first:  # the token header exists when the request is signed (not signed itself)
        token.egress(root, {})
    client_hook().egress(root, {})
    if not token_first:
        token.egress(root, {})
    sent = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    match = extract_relay_token(sent)
    assert match is not None
    forwarded = match.strip(sent)
    assert b"RelayAccessToken" not in forwarded
    assert verify(forwarded).signer == pki().leaf.cert
