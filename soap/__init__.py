"""SOAP plumbing for the relay and its bindings: pure lxml in, lxml or bytes out, no I/O.

Modules: :mod:`soap.ns` (namespaces), :mod:`soap.exceptions`, :mod:`soap.envelope`
(SOAP 1.1/1.2 envelopes and the hardened parser), :mod:`soap.fault`,
:mod:`soap.addressing` (WS-Addressing 1.0), :mod:`soap.wsdl` (address rewriting),
:mod:`soap.relay_token` (the WCF ``RelayAccessToken`` header), and
:mod:`soap.security` (WS-Security 1.0/1.1 with signxml: Timestamp, UsernameToken,
X.509 signatures, pinned/CA trust, replay cache, XSW-safe verification, the
WS-Security faults). The bindings wire ``soap.security`` in through
:mod:`bindings.wssecurity`, per the binding's ``EndToEndSecurityMode``.
"""
