"""One request framed once for many listeners: an event's fan-out (PROTOCOL.md §6). No I/O.

An event goes to every listener of its entity with the same method, target,
headers and body; only two things differ from one listener to the next: the
rendezvous id at the end of the command's ``address`` and the request ``id``.
:class:`PreparedRequest` serializes the command once around those two holes
and frames the body once; :meth:`PreparedRequest.frames` then costs a join per
listener, and every listener's body frame is the very same ``bytes`` object
(frames from the relay, a WebSocket server, are not masked).

    >>> command = RequestCommand("ws://h/$hc/p?sb-hc-action=request&sb-hc-id=", "",
    ...                          "/p", "POST", body=True)
    >>> prepared = PreparedRequest(command, b"hi")
    >>> prepared.command_text("r1", "7")[:70]
    '{"request":{"address":"ws://h/$hc/p?sb-hc-action=request&sb-hc-id=r1",'
    >>> prepared.command_text("r1", "7") == RequestCommand(
    ...     "ws://h/$hc/p?sb-hc-action=request&sb-hc-id=r1", "7", "/p", "POST", body=True).serialize()
    True

The holes take URL-safe characters only (letters, digits, ``-``, ``_``, ``.``),
which need no JSON escaping: the relay's own rendezvous ids and request
numbers.  :meth:`PreparedRequest.frames` refuses anything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from hc.exceptions import LocalProtocolError
from hc.frames import Opcode, frame_header
from hc.messages import RequestCommand

__all__ = ["PreparedRequest"]

_string: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]

#: What may fill a hole without JSON escaping.
_SAFE = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
#: How every request command's text begins when its address and id are empty.
_EMPTY_HEAD = '{"request":{"address":"","id":""'


class PreparedRequest:
    """``command`` (its ``address`` ending where the rendezvous id goes; its ``id``
    ignored) and ``body``, framed once.

    Args:
        command: the full request (not address-only).
        body: the body, exactly when ``command.body`` is true.

    Raises:
        LocalProtocolError: an address-only command, or a body given exactly when
            ``command.body`` is false.
    """

    __slots__ = ("_body_frame", "_fixed", "_head", "_middle", "_tail", "command")

    def __init__(self, command: RequestCommand, body: bytes | None) -> None:
        if command.is_address_only:
            raise LocalProtocolError("an address-only request is not prepared for many listeners")
        if bool(command.body) is not (body is not None):
            raise LocalProtocolError('a request carries a body exactly when "body": true')
        self.command = command
        # JSON escaping is per character: the address's string is the prefix's, still open.
        whole = RequestCommand(
            "", "", command.request_target, command.method, command.request_headers,
            command.body, command.remote_endpoint,
        ).serialize()
        assert whole.startswith(_EMPTY_HEAD)
        head = _EMPTY_HEAD[:-len('","id":""')] + _string(command.address)[1:-1]
        self._head, self._middle = head.encode(), b'","id":"'
        self._tail = ('"' + whole[len(_EMPTY_HEAD):]).encode()
        self._fixed = len(self._head) + len(self._middle) + len(self._tail)
        self._body_frame = (
            b"" if body is None else frame_header(0x80 | Opcode.BINARY, len(body), masked=False) + body
        )

    def command_text(self, rendezvous_id: str, request_id: str) -> str:
        """The command for one listener, as :meth:`RequestCommand.serialize` would write it."""
        return (self._head + rendezvous_id.encode() + self._middle + request_id.encode()
                + self._tail).decode()

    def frames(self, rendezvous_id: str, request_id: str) -> bytes:
        """One listener's command frame and body frame, adjacent, unmasked (a server's).

        Raises:
            LocalProtocolError: an id that is not URL-safe.
        """
        if not (_SAFE.fullmatch(rendezvous_id) and _SAFE.fullmatch(request_id)):
            raise LocalProtocolError("the ids of a prepared request are URL-safe characters")
        hole, ident = rendezvous_id.encode(), request_id.encode()
        return b"".join((
            frame_header(0x80 | Opcode.TEXT, self._fixed + len(hole) + len(ident), masked=False),
            self._head, hole, self._middle, ident, self._tail, self._body_frame,
        ))
