"""Tests for soap.security.timestamp: wsu:Timestamp, freshness and the hook."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from lxml import etree

from soap import ns
from soap.envelope import Envelope, SoapVersion, build_envelope
from soap.exceptions import InvalidSecurity, MessageExpired
from soap.security.header import SECURITY, find_security_header
from soap.security.timestamp import (
    TIMESTAMP,
    Freshness,
    Timestamp,
    TimestampHook,
    find_timestamp,
    format_datetime,
    parse_datetime,
)
from tests.soap.test_security_trust import T0

Canon = Callable[[bytes | etree._Element], bytes]
MIN = timedelta(minutes=1)
WSU = ns.WSU


def _stamp_xml(*children: str) -> etree._Element:
    inner = "".join(children)
    return etree.fromstring(f'<wsu:Timestamp xmlns:wsu="{WSU}">{inner}</wsu:Timestamp>')


def _created(text: str) -> str:
    return f"<wsu:Created>{text}</wsu:Created>"


def _expires(text: str) -> str:
    return f"<wsu:Expires>{text}</wsu:Expires>"


def test_format_is_utc_with_milliseconds() -> None:
    local = datetime(2030, 1, 1, 13, 0, 0, 123_999, tzinfo=timezone(timedelta(hours=1)))
    assert format_datetime(local) == "2030-01-01T12:00:00.123Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-01-01T12:00:00Z", T0),
        ("2030-01-01T12:00:00.000Z", T0),
        ("2030-01-01T12:00:00.1234567Z", T0.replace(microsecond=123456)),  # WCF: 7 digits
        ("2030-01-01T13:00:00+01:00", T0),  # zeep without zulu_timestamp
        (" 2030-01-01T12:00:00Z\n", T0),
    ],
)
def test_parse_accepts_xsd_datetimes_with_a_zone(text: str, expected: datetime) -> None:
    assert parse_datetime(text, "x") == expected


@pytest.mark.parametrize(
    "text",
    [None, "", "2030-01-01T12:00:00", "2030-01-01 12:00:00Z", "2030-13-01T12:00:00Z",
     "2030-01-01T24:00:00Z", "yesterday", "2030-01-01T12:00:00Z<x/>"],
)  # fmt: skip
def test_parse_refuses_others(text: str | None) -> None:
    with pytest.raises(InvalidSecurity, match="wsu:Created"):
        parse_datetime(text, "wsu:Created")


def test_round_trip(canon: Canon) -> None:
    stamp = Timestamp(T0, T0 + 5 * MIN, "TS-1")
    element = stamp.to_element()
    expected = etree.fromstring(
        f'<wsu:Timestamp xmlns:wsu="{WSU}" xmlns:wsse="{ns.WSSE}" wsu:Id="TS-1">'
        f"{_created('2030-01-01T12:00:00.000Z')}{_expires('2030-01-01T12:05:00.000Z')}"
        "</wsu:Timestamp>"
    )
    assert canon(element) == canon(expected)
    assert Timestamp.from_element(element) == stamp


def test_created_only_is_fine() -> None:
    stamp = Timestamp.from_element(_stamp_xml(_created("2030-01-01T12:00:00Z")))
    assert stamp == Timestamp(T0)


@pytest.mark.parametrize(
    "children",
    [
        (),
        (_expires("2030-01-01T12:00:00Z"),),
        (_expires("2030-01-01T12:05:00Z"), _created("2030-01-01T12:00:00Z")),
        (_created("2030-01-01T12:00:00Z"), _created("2030-01-01T12:00:00Z")),
        (_created("2030-01-01T12:00:00Z"), "<wsu:Other/>"),
    ],
)
def test_malformed_timestamps(children: tuple[str, ...]) -> None:
    with pytest.raises(InvalidSecurity, match="Created and optionally Expires"):
        Timestamp.from_element(_stamp_xml(*children))


def test_expires_before_created() -> None:
    element = _stamp_xml(_created("2030-01-01T12:00:00Z"), _expires("2030-01-01T11:00:00Z"))
    with pytest.raises(InvalidSecurity, match="before"):
        Timestamp.from_element(element)


def test_not_a_timestamp() -> None:
    with pytest.raises(InvalidSecurity):
        Timestamp.from_element(etree.Element("Timestamp"))


FRESH = Freshness(skew=5 * MIN, max_age=5 * MIN)


@pytest.mark.parametrize(
    ("created", "expires"),
    [
        (T0, T0 + 5 * MIN),
        (T0 + 4 * MIN, None),  # sender's clock ahead, within the skew
        (T0 - 9 * MIN, None),  # max age + skew
        (T0 - 9 * MIN, T0 - 4 * MIN),  # expired, within the skew
    ],
)
def test_fresh_timestamps_pass(created: datetime, expires: datetime | None) -> None:
    Timestamp(created, expires).check(T0, FRESH)


@pytest.mark.parametrize(
    ("created", "expires", "message"),
    [
        (T0 + 6 * MIN, None, "in the future"),
        (T0 - 11 * MIN, None, "older than"),
        (T0 - 11 * MIN, T0 + 60 * MIN, "older than"),  # a far Expires does not help
        (T0 - 7 * MIN, T0 - 6 * MIN, "expired"),
    ],
)
def test_stale_timestamps_fail(created: datetime, expires: datetime | None, message: str) -> None:
    with pytest.raises(MessageExpired, match=message):
        Timestamp(created, expires).check(T0, FRESH)


def test_zero_skew_is_strict() -> None:
    strict = Freshness(skew=timedelta(0), max_age=5 * MIN)
    with pytest.raises(MessageExpired):
        Timestamp(T0 + timedelta(seconds=1)).check(T0, strict)


def _clock() -> datetime:
    return T0


def test_hook_egress_adds_one_timestamp_first(canon: Canon) -> None:
    hook = TimestampHook(ttl=5 * MIN, clock=_clock, id_factory=lambda: "TS-7")
    root = build_envelope(SoapVersion.SOAP11, [etree.Element("{urn:p}Ping")])
    hook.egress(root, {})
    hook.egress(root, {})  # a second call replaces, never duplicates
    envelope = Envelope.from_element(root)
    security = find_security_header(envelope)
    assert security is not None and security.tag == SECURITY
    assert security.get(f"{{{ns.SOAP11_ENV}}}mustUnderstand") == "1"
    stamps = security.findall(TIMESTAMP)
    assert len(stamps) == 1 and security[0] is stamps[0]
    assert Timestamp.from_element(stamps[0]) == Timestamp(T0, T0 + 5 * MIN, "TS-7")


def test_hook_ingress() -> None:
    root = build_envelope(SoapVersion.SOAP12, [etree.Element("{urn:p}Ping")])
    TimestampHook(clock=_clock).egress(root, {})
    assert TimestampHook(clock=_clock).ingress(root, {"a": "b"}) == (root, {"a": "b"})
    later = TimestampHook(clock=lambda: T0 + 11 * MIN)
    with pytest.raises(MessageExpired):
        later.ingress(root, {})


def test_hook_ingress_missing_timestamp() -> None:
    root = build_envelope(SoapVersion.SOAP12, [etree.Element("{urn:p}Ping")])
    with pytest.raises(InvalidSecurity, match="no wsu:Timestamp"):
        TimestampHook(clock=_clock).ingress(root, {})
    TimestampHook(clock=_clock, required=False).ingress(root, {})


def test_two_timestamps_are_refused() -> None:
    security = etree.Element(SECURITY)
    security.extend([Timestamp(T0).to_element(), Timestamp(T0).to_element()])
    with pytest.raises(InvalidSecurity, match="more than one"):
        find_timestamp(security)
