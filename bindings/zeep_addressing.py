"""The zeep client's WS-Addressing: a plugin on :mod:`soap.addressing`, not ``zeep.wsa``.

Each request gets ``Action``, ``MessageID``, ``ReplyTo`` (anonymous: the reply
comes back on the HTTP response) and ``To`` (the address the operation is
posted to, the relay address), with ``mustUnderstand="1"`` on ``Action`` and
``To`` as WCF writes them::

    before:
    <soap-env:Envelope><soap-env:Body><ns0:GetSalary>...</ns0:GetSalary></soap-env:Body>
    </soap-env:Envelope>

    after:
    <soap-env:Envelope><soap-env:Header>
        <wsa:Action soap:mustUnderstand="1">urn:soap-relay:payroll/GetSalary</wsa:Action>
        <wsa:MessageID>urn:uuid:6b1f...</wsa:MessageID>
        <wsa:ReplyTo><wsa:Address>http://www.w3.org/2005/08/addressing/anonymous</wsa:Address>
        </wsa:ReplyTo>
        <wsa:To soap:mustUnderstand="1">http://127.0.0.1:9350/payroll12</wsa:To>
      </soap-env:Header><soap-env:Body>...</soap-env:Body></soap-env:Envelope>

The action is the operation's ``wsaw:Action``, else its ``soapAction``, else
the one in the HTTP headers. The plugin goes before a signing plugin
(:class:`~bindings.zeep_security.WsSecurityPlugin` signs these headers), and
:func:`bindings.zeep_transport.client_parts` puts it there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxml import etree
from zeep.plugins import Plugin

from soap.addressing import action_from_http, new_message_id, stamp_request
from soap.envelope import Envelope
from soap.exceptions import MissingAction

__all__ = ["AddressingPlugin"]


class AddressingPlugin(Plugin):  # type: ignore[misc]
    """zeep plugin adding a request's WS-Addressing headers.

    Args:
        to: The ``wsa:To`` of every request; by default the address the
            operation is posted to.
        id_factory: Returns each request's ``wsa:MessageID``.
    """

    def __init__(
        self, to: str | None = None, *, id_factory: Callable[[], str] = new_message_id
    ) -> None:
        self.to, self.id_factory = to, id_factory

    def __repr__(self) -> str:
        return f"AddressingPlugin(to={self.to!r})"

    def egress(
        self,
        envelope: etree._Element,
        http_headers: dict[str, str],
        operation: Any,
        binding_options: dict[str, Any],
    ) -> tuple[etree._Element, dict[str, str]]:
        """Stamp To, Action, MessageID and ReplyTo on the request tree.

        Raises:
            MissingAction: The operation has no action, nor the HTTP headers one.
        """
        parsed = Envelope.from_element(envelope)
        action = _action(operation) or action_from_http(parsed.version, http_headers)
        if not action:
            raise MissingAction(f"operation {operation.name!r} has no action for wsa:Action")
        to = self.to or str(binding_options["address"])
        stamp_request(parsed, to=to, action=action, message_id=self.id_factory())
        return envelope, http_headers


def _action(operation: Any) -> str | None:
    abstract = getattr(operation, "abstract", None)
    action = getattr(abstract, "wsa_action", None) or getattr(operation, "soapaction", None)
    return str(action) if action else None
