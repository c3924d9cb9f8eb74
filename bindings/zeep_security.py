"""Client-side message security: a zeep plugin that signs requests and checks replies.

:class:`WsSecurityPlugin` runs a :class:`~soap.security.policy.WsSecurityHook`
as a zeep plugin: on egress it adds the Timestamp (and UsernameToken) and signs,
on ingress it checks the reply against the client's policy, and that a signed
``wsa:RelatesTo``, when the reply has one, names a request this plugin sent
(:mod:`soap.security.correlation`: a reply the service signed for another call
is refused). A reply that fails raises :class:`UntrustedResponse`; an unsigned
SOAP fault (the service's security faults are not signed, as in WCF) is let
through, and zeep raises it as :class:`zeep.exceptions.Fault`.

zeep applies plugins in list order, and its own ``wsse=`` after all of them,
so the plugin goes **last** in the list and ``wsse=`` stays unset:
:func:`bindings.zeep_transport.relay_client` does both.
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from zeep.exceptions import SignatureVerificationFailed
from zeep.plugins import Plugin

from bindings.exceptions import BindingError
from soap.exceptions import SecurityFault
from soap.security import WsSecurityHook

__all__ = ["UntrustedResponse", "WsSecurityPlugin"]


class UntrustedResponse(SignatureVerificationFailed, BindingError):
    """A reply failed the client's WS-Security checks (its cause is the SecurityFault).

    Also a :class:`zeep.exceptions.SignatureVerificationFailed`, what zeep's
    own ``Signature`` raises for a bad reply.

    Attributes:
        fault: The :class:`~soap.exceptions.SecurityFault` that was raised.
    """

    def __init__(self, fault: SecurityFault) -> None:
        super().__init__(f"the service's reply failed WS-Security checks: {fault}")
        self.fault = fault


class WsSecurityPlugin(Plugin):
    """A zeep plugin running a :class:`~soap.security.policy.WsSecurityHook`.

    Put it **last** among the client's plugins, so that the WS-Addressing
    headers other plugins add exist when it signs.

    Args:
        hook: Signs requests on egress, checks replies on ingress.
    """

    def __init__(self, hook: WsSecurityHook) -> None:
        self.hook = hook

    def __repr__(self) -> str:
        return f"WsSecurityPlugin({self.hook!r})"

    def egress(
        self,
        envelope: etree._Element,
        http_headers: dict[str, str],
        operation: Any,
        binding_options: dict[str, Any],
    ) -> tuple[etree._Element, dict[str, str]]:
        """Add the Timestamp and UsernameToken and sign, as configured."""
        return self.hook.egress(envelope, http_headers)

    def ingress(
        self, envelope: etree._Element, http_headers: dict[str, str], operation: Any
    ) -> tuple[etree._Element, dict[str, str]]:
        """Check the reply.

        Raises:
            UntrustedResponse: The reply fails the client's policy.
        """
        try:
            return self.hook.ingress(envelope, http_headers)
        except SecurityFault as exc:
            raise UntrustedResponse(exc) from exc
