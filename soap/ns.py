"""XML namespace URIs used by the SOAP plumbing.

Every namespace the ``soap`` package reads or writes is named here once; other
modules import these constants instead of spelling URIs inline.
"""

from __future__ import annotations

__all__ = [
    "BASE64_BINARY",
    "DS",
    "PASSWORD_DIGEST",
    "PASSWORD_TEXT",
    "RELAY_CONNECT",
    "RELAY_ERROR",
    "SOAP11_ENV",
    "SOAP12_ENV",
    "SWT_TOKEN",
    "USERNAME_TOKEN_PROFILE",
    "WSA",
    "WSDL",
    "WSDL_HTTP",
    "WSDL_SOAP11",
    "WSDL_SOAP12",
    "WSSE",
    "WSSE11",
    "WSU",
    "X509V3_TOKEN",
    "XENC",
    "XML",
    "XSD",
]

#: SOAP 1.1 envelope.
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
#: SOAP 1.2 envelope.
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
#: WS-Addressing 1.0.
WSA = "http://www.w3.org/2005/08/addressing"
#: WSDL 1.1.
WSDL = "http://schemas.xmlsoap.org/wsdl/"
#: WSDL 1.1 SOAP 1.1 binding.
WSDL_SOAP11 = "http://schemas.xmlsoap.org/wsdl/soap/"
#: WSDL 1.1 SOAP 1.2 binding.
WSDL_SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
#: WSDL 1.1 HTTP binding.
WSDL_HTTP = "http://schemas.xmlsoap.org/wsdl/http/"
#: XML Schema.
XSD = "http://www.w3.org/2001/XMLSchema"
#: The ``xml:`` prefix (``xml:lang``).
XML = "http://www.w3.org/XML/1998/namespace"
#: WS-Security 1.0 secext.
WSSE = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
)
#: WS-Security 1.1 secext (``SignatureConfirmation``).
WSSE11 = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
#: WS-Security 1.0 utility.
WSU = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
)
#: Service Bus relay connect namespace (the ``RelayAccessToken`` header).
RELAY_CONNECT = "http://schemas.microsoft.com/netservices/2009/05/servicebus/connect"
#: Simple Web Token profile, the ``ValueType`` of a relay ``BinarySecurityToken``.
SWT_TOKEN = "http://schemas.xmlsoap.org/ws/2009/11/swt-token-profile-1.0"
#: WS-Security Base64 ``EncodingType``.
BASE64_BINARY = (
    "http://docs.oasis-open.org/wss/2004/01/"
    "oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)
#: Detail entries of the relay's own SOAP faults (``<RelayError>``).
RELAY_ERROR = "urn:soap-relay:error"
#: XML Signature (``ds:``).
DS = "http://www.w3.org/2000/09/xmldsig#"
#: XML Encryption (``xenc:``); only recognised, to refuse encrypted messages clearly.
XENC = "http://www.w3.org/2001/04/xmlenc#"
#: UsernameToken Profile 1.0; the password types below are fragments of it.
USERNAME_TOKEN_PROFILE = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
)
#: ``Type`` of a clear-text ``wsse:Password``.
PASSWORD_TEXT = f"{USERNAME_TOKEN_PROFILE}#PasswordText"
#: ``Type`` of a ``wsse:Password`` holding Base64(SHA-1(nonce + created + password)).
PASSWORD_DIGEST = f"{USERNAME_TOKEN_PROFILE}#PasswordDigest"
#: X.509 Token Profile 1.0 ``ValueType`` of a single X.509 v3 certificate.
X509V3_TOKEN = (
    "http://docs.oasis-open.org/wss/2004/01/"
    "oasis-200401-wss-x509-token-profile-1.0#X509v3"
)
