"""The session channel's framing: one SOAP 1.2 + WS-Addressing envelope per WebSocket message.

Pure (no I/O): bytes in, a checked :class:`ChannelMessage` out, parsed once under the
binding's reader quotas; and the few envelopes the channel writes itself (faults,
KeepAlive, the session greeting).  docs/nettcp.md describes the protocol::

    client ── <Envelope>  Action, MessageID, To ... Body ──►  host      (a call)
    client ◄─ <Envelope>  Action, RelatesTo=MessageID ... ──  host      (its reply)
    client ◄─ <Envelope>  Action, MessageID ... Body ───────  host      (a callback)

A message with ``RelatesTo`` is a reply; any other is a request, which must carry a
``MessageID`` (a one-way request too, so a fault can name it).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from soap import addressing
from soap.addressing import AddressingHeaders
from soap.envelope import Envelope, SoapVersion, build_envelope
from soap.exceptions import RemoteSoapError, SoapError
from soap.fault import Fault, FaultCode
from soap.quotas import ReaderQuotas, parse_whole

__all__ = [
    "CONTROL_PREFIX",
    "KEEPALIVE_ACTION",
    "SESSION_ACTION",
    "SOAP12",
    "ChannelMessage",
    "CloseCode",
    "MalformedMessage",
    "MessageKind",
    "fault_message",
    "parse_message",
    "reply_message",
    "request_message",
    "serialize",
]

SOAP12 = SoapVersion.SOAP12
#: Actions of the channel's own messages start with this.
CONTROL_PREFIX = "urn:soap-relay:nettcp/"
#: Either side, every ``keepalive_interval``: answered at once with ``KeepAliveResponse``.
KEEPALIVE_ACTION = CONTROL_PREFIX + "KeepAlive"
#: Host to client, first message of a session: its id (and, in Hybrid mode, the offer).
SESSION_ACTION = CONTROL_PREFIX + "Session"
#: The namespace of the channel's own body elements and fault subcodes.
CONTROL_NS = "urn:soap-relay:nettcp"


class CloseCode(enum.IntEnum):
    """WebSocket close codes the channel uses (RFC 6455 §7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the host is closing
    POLICY = 1008  # a request without MessageID, a flood
    TOO_BIG = 1009
    INTERNAL = 1011
    #: Too many sessions: 1013 (Try Again Later) in the private range, since the relay
    #: passes 1012-1014 on as 1011 (ws 1.x, inside hyco-ws, refuses them).
    TOO_MANY_SESSIONS = 4013


class MessageKind(enum.Enum):
    REQUEST = "request"
    REPLY = "reply"


class MalformedMessage(RemoteSoapError):
    """A channel message that is not a SOAP 1.2 envelope with readable addressing."""


@dataclass(frozen=True)
class ChannelMessage:
    """One checked message of the channel.

    Attributes:
        envelope: the parsed envelope (the tree the pipeline goes on with).
        headers: its WS-Addressing headers.
        data: the message as it arrived (WS-Security checks need the bytes).
    """

    envelope: Envelope
    headers: AddressingHeaders
    data: bytes

    @property
    def kind(self) -> MessageKind:
        return MessageKind.REPLY if self.headers.relates_to is not None else MessageKind.REQUEST

    @property
    def is_control(self) -> bool:
        return (self.headers.action or "").startswith(CONTROL_PREFIX)

    @property
    def is_fault(self) -> bool:
        payload = self.envelope.body_payload
        return payload is not None and payload.tag == SOAP12.qname("Fault")


def parse_message(data: bytes | str, quotas: ReaderQuotas, max_size: int) -> ChannelMessage:
    """Parse one WebSocket message (text or binary) under ``quotas`` and ``max_size``.

    Raises:
        MalformedMessage: not XML, over a quota, not a SOAP 1.2 envelope, or with
            unreadable WS-Addressing headers; the reason says which.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        envelope = Envelope.from_element(parse_whole(raw, quotas, max_size=max_size))
        headers = AddressingHeaders.from_header(envelope.header)
    except SoapError as exc:
        raise MalformedMessage(str(exc)) from exc
    if envelope.version is not SOAP12:
        raise MalformedMessage("the session channel carries SOAP 1.2 envelopes only")
    return ChannelMessage(envelope, headers, raw)


def serialize(root: etree._Element) -> bytes:
    """An envelope tree as the bytes of one message (UTF-8, with a declaration)."""
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def request_message(
    action: str, message_id: str, body: Iterable[etree._Element] = (), *, to: str | None = None
) -> bytes:
    """A request of the channel's own (KeepAlive, Session) or a callback's envelope."""
    headers = AddressingHeaders(to=to, action=action, message_id=message_id)
    return serialize(build_envelope(SOAP12, body, headers.to_elements(SOAP12)))


def reply_message(action: str, relates_to: str, body: Iterable[etree._Element] = ()) -> bytes:
    """A reply to the request ``relates_to``."""
    headers = AddressingHeaders(action=action, relates_to=relates_to)
    return serialize(build_envelope(SOAP12, body, headers.to_elements(SOAP12)))


def fault_message(
    reason: str,
    relates_to: str | None,
    *,
    code: FaultCode = FaultCode.CLIENT,
    subcode: str | None = None,
) -> bytes:
    """A SOAP 1.2 fault, related to the request ``relates_to`` when it is known.

    ``subcode`` is a local name in :data:`CONTROL_NS` (``ServerTooBusy``, ``SessionClosing``).
    """
    qname = etree.QName(CONTROL_NS, subcode) if subcode else None
    fault = Fault(code, reason, subcode=qname)
    headers = AddressingHeaders(action=addressing.FAULT_ACTION, relates_to=relates_to)
    return serialize(build_envelope(SOAP12, [fault.to_element(SOAP12)], headers.to_elements(SOAP12)))
