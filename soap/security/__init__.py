"""WS-Security 1.0/1.1 for SOAP 1.1 and 1.2: pure lxml and signxml, no I/O.

One concept per module:

- :mod:`~soap.security.header`: the ``wsse:Security`` block and ``wsu:Id`` lookup;
- :mod:`~soap.security.charset`: the HTTP charset must be the document's encoding;
- :mod:`~soap.security.timestamp`: ``wsu:Timestamp``, freshness, the clock;
- :mod:`~soap.security.username`: ``wsse:UsernameToken`` (text and digest);
- :mod:`~soap.security.replay`: the nonce/signature replay cache;
- :mod:`~soap.security.trust`: signing identities and pinned/CA trust;
- :mod:`~soap.security.keyinfo`: BinarySecurityToken and ``ds:KeyInfo``;
- :mod:`~soap.security.signature`: signing and the XSW-safe verification;
- :mod:`~soap.security.policy`: :class:`SecurityPolicy`, :func:`verify_envelope`
  and the composed :class:`WsSecurityHook`;
- :mod:`~soap.security.correlation`: signed replies bound to their requests;
- :mod:`~soap.security.faults`: the WS-Security SOAP faults.

A service checks requests and signs replies; a client signs requests and
checks replies::

    identity = SigningIdentity.from_pem(key_pem, cert_pem)
    policy = SecurityPolicy(trust=TrustStore.from_pem(pinned=peer_cert_pem))
    hook = WsSecurityHook(signer=EnvelopeSigner(identity), policy=policy)
    envelope, headers = hook.egress(envelope, headers)      # sign
    envelope, headers = hook.ingress(envelope, headers)     # verify, or SecurityFault
"""

from __future__ import annotations

from soap.security.charset import check_charset
from soap.security.correlation import ReplyCorrelation
from soap.security.faults import security_fault, security_fault_envelope
from soap.security.keyinfo import BinarySecurityToken, KeyInfoStyle
from soap.security.policy import SecurityPolicy, SecurityResult, WsSecurityHook, verify_envelope
from soap.security.replay import MemoryReplayCache, ReplayCache
from soap.security.signature import EnvelopeSigner, SignedParts, verify_signature
from soap.security.timestamp import Freshness, Timestamp, TimestampHook, utc_now
from soap.security.trust import SigningIdentity, TrustStore
from soap.security.username import PasswordType, UsernameToken, UsernameTokenHook, authenticate

__all__ = [
    "BinarySecurityToken",
    "EnvelopeSigner",
    "Freshness",
    "KeyInfoStyle",
    "MemoryReplayCache",
    "PasswordType",
    "ReplayCache",
    "ReplyCorrelation",
    "SecurityPolicy",
    "SecurityResult",
    "SignedParts",
    "SigningIdentity",
    "Timestamp",
    "TimestampHook",
    "TrustStore",
    "UsernameToken",
    "UsernameTokenHook",
    "WsSecurityHook",
    "authenticate",
    "check_charset",
    "security_fault",
    "security_fault_envelope",
    "utc_now",
    "verify_envelope",
    "verify_signature",
]
