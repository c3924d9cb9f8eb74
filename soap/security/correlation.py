"""Signed replies bound to their requests: ``wsa:RelatesTo`` must name a request sent here.

A signature proves who wrote a reply, not which request it answers: a reply the
service signed for another call (another client's, or an earlier one) verifies
just as well. With WS-Addressing the reply says which request it answers
(WS-Addressing 1.0 Core section 3.4: a reply's [relationship] holds "the
[message id] property value from the message being replied to")::

    request: <wsa:MessageID>urn:uuid:6b1f...</wsa:MessageID>
    reply:   <wsa:RelatesTo wsu:Id="id-5">urn:uuid:6b1f...</wsa:RelatesTo>   (signed)

:class:`ReplyCorrelation` remembers the MessageIDs of requests sent and not yet
answered, and refuses a reply whose reply-type ``RelatesTo`` names none of
them; each is accepted once. A reply without ``RelatesTo`` is not checked (a
service without WS-Addressing sends none). Only a signed ``RelatesTo`` means
anything: the policy's ``require_signed_addressing`` (on by default) sees to
that.

zeep gives plugins no per-call context, so a reply is checked against every
request outstanding on this client: replies to concurrent calls of one client
could still be swapped with each other, never with replies to anyone else.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from soap import ns
from soap.envelope import Envelope
from soap.exceptions import InvalidSecurity

__all__ = ["REPLY_RELATIONSHIP", "ReplyCorrelation"]

#: The default ``RelationshipType``: "this message is a reply to".
REPLY_RELATIONSHIP = f"{ns.WSA}/reply"
_MESSAGE_ID = f"{{{ns.WSA}}}MessageID"
_RELATES_TO = f"{{{ns.WSA}}}RelatesTo"


def _message_ids(envelope: Envelope) -> list[str]:
    return [(b.text or "").strip() for b in envelope.header_blocks if b.tag == _MESSAGE_ID]


def _replies_to(envelope: Envelope) -> list[str]:
    """The ids the reply-type ``RelatesTo`` headers name."""
    return [
        (block.text or "").strip()
        for block in envelope.header_blocks
        if block.tag == _RELATES_TO
        and block.get("RelationshipType", REPLY_RELATIONSHIP) == REPLY_RELATIONSHIP
    ]


class ReplyCorrelation:
    """The MessageIDs of requests awaiting replies (thread-safe, at most ``limit``).

    Args:
        limit: How many unanswered requests are remembered; the oldest are
            forgotten first (their late replies are then refused).
    """

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self._outstanding: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ReplyCorrelation(outstanding={len(self._outstanding)}, limit={self.limit})"

    def sent(self, envelope: Envelope) -> None:
        """Remember the request's ``wsa:MessageID``, if it has one."""
        for message_id in _message_ids(envelope):
            with self._lock:
                self._outstanding[message_id] = None
                while len(self._outstanding) > self.limit:
                    self._outstanding.popitem(last=False)

    def check(self, envelope: Envelope) -> None:
        """Accept a reply whose ``RelatesTo`` names an outstanding request (once).

        Raises:
            InvalidSecurity: More than one reply ``RelatesTo``, or one that
                names no request this client is waiting on.
        """
        relates_to = _replies_to(envelope)
        if not relates_to:
            return
        if len(relates_to) > 1:
            raise InvalidSecurity("the reply has more than one wsa:RelatesTo")
        with self._lock:
            known = relates_to[0] in self._outstanding
            if known:
                del self._outstanding[relates_to[0]]
        if not known:
            raise InvalidSecurity(
                "the reply's wsa:RelatesTo names no request this client is waiting on"
            )
