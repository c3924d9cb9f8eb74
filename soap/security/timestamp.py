"""``wsu:Timestamp``: when a message was made and until when it may be accepted.

WS-Security 1.1 section 10: the Timestamp is a child of the Security header,
at most one per header, with at most one ``Created`` and one ``Expires``, in
that order. :class:`TimestampHook` adds one on egress::

    before:
    <wsse:Security soap:mustUnderstand="1"/>

    after egress (clock at 12:00:00, ttl 5 minutes):
    <wsse:Security soap:mustUnderstand="1">
      <wsu:Timestamp wsu:Id="TS-6b1f...">
        <wsu:Created>2024-05-01T12:00:00.000Z</wsu:Created>
        <wsu:Expires>2024-05-01T12:05:00.000Z</wsu:Expires>
      </wsu:Timestamp>
    </wsse:Security>

On ingress, with clock skew ``s`` and maximum age ``a`` (both five minutes by
default, as WCF's ``MaxClockSkew`` and replay window): ``Created`` later than
now + s, ``Expires`` earlier than now - s, or ``Created`` earlier than
now - a - s raise :class:`~soap.exceptions.MessageExpired`. The maximum age is
what bounds how long the replay caches must remember a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from lxml import etree

from soap import ns
from soap.envelope import Envelope
from soap.exceptions import InvalidSecurity, MessageExpired
from soap.security.header import (
    NSMAP,
    WSU_ID,
    ensure_security_header,
    find_security_header,
    new_id,
)

__all__ = [
    "TIMESTAMP",
    "Clock",
    "Freshness",
    "Timestamp",
    "TimestampHook",
    "find_timestamp",
    "format_datetime",
    "parse_datetime",
    "utc_now",
]

#: Clark name of ``wsu:Timestamp``.
TIMESTAMP = f"{{{ns.WSU}}}Timestamp"
_CREATED = f"{{{ns.WSU}}}Created"
_EXPIRES = f"{{{ns.WSU}}}Expires"
#: xsd:dateTime with an explicit zone; fractions beyond microseconds are cut.
_DATETIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,6})\d*)?(Z|[+-]\d\d:\d\d)")

#: Returns the current time, timezone-aware.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current UTC time (the default :data:`Clock`)."""
    return datetime.now(UTC)


def format_datetime(value: datetime) -> str:
    """``2024-05-01T12:00:00.000Z``: UTC, milliseconds, as WCF writes it."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_datetime(text: str | None, what: str) -> datetime:
    """Read an xsd:dateTime that names its time zone.

    Args:
        text: The element text.
        what: Its name, for the error message.

    Raises:
        InvalidSecurity: Missing, malformed, or without a zone.
    """
    match = _DATETIME.fullmatch((text or "").strip())
    if match is None:
        raise InvalidSecurity(f"{what} is not an xsd:dateTime with a time zone")
    whole, fraction, zone = match.groups()
    try:
        return datetime.fromisoformat(f"{whole}.{(fraction or '0').ljust(6, '0')}{zone}")
    except ValueError as exc:
        raise InvalidSecurity(f"{what} is not a valid date and time") from exc


@dataclass(frozen=True)
class Freshness:
    """How old, and how far in the future, a Timestamp may be.

    Attributes:
        skew: Clock difference tolerated between sender and receiver.
        max_age: How long after ``Created`` a message is still accepted,
            whatever its ``Expires`` says.
    """

    skew: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(minutes=5)

    def check_created(self, created: datetime, now: datetime, what: str) -> None:
        """Refuse a creation time in the future or older than ``max_age``.

        Raises:
            MessageExpired: Outside ``[now - max_age - skew, now + skew]``.
        """
        if created > now + self.skew:
            raise MessageExpired(f"{what} is in the future")
        if created < now - self.max_age - self.skew:
            raise MessageExpired(f"{what} is older than {self.max_age}")

    def remember_until(self, now: datetime) -> datetime:
        """Until when a replay cache must keep what it saw at ``now``."""
        return now + self.max_age + 2 * self.skew


@dataclass(frozen=True)
class Timestamp:
    """A ``wsu:Timestamp``.

    Attributes:
        created: ``wsu:Created``.
        expires: ``wsu:Expires``, or None.
        id: The ``wsu:Id`` a signature refers to, or None.
    """

    created: datetime
    expires: datetime | None = None
    id: str | None = None

    @classmethod
    def from_element(cls, element: etree._Element) -> Timestamp:
        """Read a ``wsu:Timestamp`` element.

        Raises:
            InvalidSecurity: Not a Timestamp, no ``Created``, repeated or
                unknown children, Expires before Created, or a bad date.
        """
        if element.tag != TIMESTAMP:
            raise InvalidSecurity(f"{element.tag!r} is not a wsu:Timestamp")
        children = [child for child in element if isinstance(child.tag, str)]
        tags = [child.tag for child in children]
        if tags not in ([_CREATED], [_CREATED, _EXPIRES]):
            raise InvalidSecurity("wsu:Timestamp must hold Created and optionally Expires")
        created = parse_datetime(children[0].text, "wsu:Created")
        expires = None
        if len(children) == 2:
            expires = parse_datetime(children[1].text, "wsu:Expires")
            if expires < created:
                raise InvalidSecurity("wsu:Expires is before wsu:Created")
        return cls(created=created, expires=expires, id=element.get(WSU_ID))

    def to_element(self) -> etree._Element:
        """Write the Timestamp element (with ``wsu:Id`` when set)."""
        element = etree.Element(TIMESTAMP, nsmap=NSMAP)
        if self.id is not None:
            element.set(WSU_ID, self.id)
        etree.SubElement(element, _CREATED).text = format_datetime(self.created)
        if self.expires is not None:
            etree.SubElement(element, _EXPIRES).text = format_datetime(self.expires)
        return element

    def check(self, now: datetime, freshness: Freshness) -> None:
        """Refuse an expired Timestamp, or one created in the future or too long ago.

        Raises:
            MessageExpired: See the module docstring.
        """
        freshness.check_created(self.created, now, "wsu:Timestamp")
        if self.expires is not None and self.expires < now - freshness.skew:
            raise MessageExpired("wsu:Timestamp has expired")


def find_timestamp(security: etree._Element) -> etree._Element | None:
    """The Security header's Timestamp element, or None.

    Raises:
        InvalidSecurity: More than one (WS-Security 1.1 section 10: "MUST NOT").
    """
    found = [child for child in security if child.tag == TIMESTAMP]
    if len(found) > 1:
        raise InvalidSecurity("the Security header has more than one wsu:Timestamp")
    return found[0] if found else None


@dataclass(frozen=True)
class TimestampHook:
    """Adds a Timestamp on egress; checks it on ingress.

    Attributes:
        ttl: ``Expires - Created`` of the Timestamps written.
        freshness: Rules for the Timestamps read.
        required: Whether ingress refuses a message without a Timestamp.
        clock: The time source.
        id_factory: Returns each Timestamp's ``wsu:Id``.
    """

    ttl: timedelta = timedelta(minutes=5)
    freshness: Freshness = field(default_factory=Freshness)
    required: bool = True
    clock: Clock = field(default=utc_now)
    id_factory: Callable[[], str] = field(default=lambda: new_id("TS"))

    def egress(
        self, envelope: etree._Element, http_headers: dict[str, str]
    ) -> tuple[etree._Element, dict[str, str]]:
        """Put a fresh Timestamp first in the Security header (replacing any other)."""
        security = ensure_security_header(Envelope.from_element(envelope))
        old = find_timestamp(security)
        if old is not None:
            security.remove(old)
        now = self.clock()
        stamp = Timestamp(now, now + self.ttl, self.id_factory())
        security.insert(0, stamp.to_element())
        return envelope, http_headers

    def ingress(
        self, envelope: etree._Element, http_headers: dict[str, str]
    ) -> tuple[etree._Element, dict[str, str]]:
        """Check the Timestamp (this hook alone does not check who signed it).

        Raises:
            InvalidSecurity: Missing though required, or malformed.
            MessageExpired: Expired, too old, or in the future.
        """
        security = find_security_header(Envelope.from_element(envelope))
        element = None if security is None else find_timestamp(security)
        if element is None:
            if self.required:
                raise InvalidSecurity("the message has no wsu:Timestamp")
            return envelope, http_headers
        Timestamp.from_element(element).check(self.clock(), self.freshness)
        return envelope, http_headers
