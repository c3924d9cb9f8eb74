"""The names the relay reports under: Azure's diagnostic operations and metric outcomes.

Diagnostic events carry Azure Relay's operation names (its diagnostic logs'
``OperationName``), and two presence events Azure does not offer
(azure-relay issue #86) that the console and webhooks are built on.
"""

from __future__ import annotations

import enum

__all__ = ["EVENT_NAMES", "EventName", "Outcome"]


class EventName(enum.Enum):
    NEW_LISTENER_REGISTERED = "NewListenerRegistered"
    LISTENER_UNREGISTERED = "ListenerUnregistered"
    LISTENER_CLOSING_FROM_EXPIRED_TOKEN = "ListenerClosingFromExpiredToken"
    SENDER_LISTENER_CONNECTION_ESTABLISHED = "SenderListenerConnectionEstablished"
    LISTENER_REJECTED_CONNECTION = "ListenerRejectedConnection"
    LISTENER_UNRESPONSIVE = "ListenerUnresponsive"
    AUTHORIZATION_FAILED = "AuthorizationFailed"
    INVALID_SAS_TOKEN = "InvalidSasToken"
    LISTENER_CONNECTED = "ListenerConnected"
    LISTENER_DISCONNECTED = "ListenerDisconnected"


EVENT_NAMES = tuple(name.value for name in EventName)


class Outcome(enum.IntEnum):
    """How a sender's or listener's connection ended, as Azure's metrics split it.

    A call the listener answered is a success whatever its status (a SOAP fault is
    the service's answer, relayed fine); the relay's own refusals split by status:
    4xx the client's error, 5xx the server's (no listener, timeout, broken listener).
    """

    SUCCESS = 0
    CLIENT_ERROR = 1
    SERVER_ERROR = 2

    @classmethod
    def of_refusal(cls, status: int) -> Outcome:
        return cls.CLIENT_ERROR if status < 500 else cls.SERVER_ERROR
