"""A service's view of its session (WCF's ``InstanceContextMode.PerSession``).

A service method reaches the session its call came on with :func:`session_of`::

    @rpc(Integer, _returns=Integer)
    def Add(ctx, amount):
        session = session_of(ctx)
        session.state["total"] = session.state.get("total", 0) + amount
        session.callback(PayrollProgress).Progress(1, 1)   # the client's callback
        return session.state["total"]

The host announces sessions through the Spyne application's events
``nettcp_session_open`` and ``nettcp_session_close`` (``app.event_manager`` or a
service class's ``event_manager``), each handler called with the
:class:`ServiceSession`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from spyne import Fault

from bindings.nettcp.callbacks import CallbackProxy, in_loop_thread, run_blocking
from bindings.nettcp.channel import ChannelState, SessionChannel
from bindings.nettcp.framing import ChannelMessage

__all__ = ["SESSION_CLOSE", "SESSION_KEY", "SESSION_OPEN", "ServiceSession", "session_of"]

#: The WSGI environ key (``ctx.transport.req_env``) of the call's :class:`ServiceSession`.
SESSION_KEY = "soaprelay.session"
SESSION_OPEN = "nettcp_session_open"
SESSION_CLOSE = "nettcp_session_close"

log = logging.getLogger("bindings.nettcp")


class ServiceSession:
    """One client's session, as the service sees it.

    Attributes:
        id: the session id (``urn:uuid:...``), also told to the client.
        state: the session's own store, kept until the session ends.
    """

    def __init__(self, session_id: str, channel: SessionChannel, loop: asyncio.AbstractEventLoop) -> None:
        self.id = session_id
        self.state: dict[str, Any] = {}
        self._channel, self._loop = channel, loop

    def __repr__(self) -> str:
        return f"<ServiceSession {self.id} {'open' if self.is_open else 'ended'}>"

    @property
    def is_open(self) -> bool:
        return self._channel.state is ChannelState.OPEN

    def callback(self, contract: type) -> CallbackProxy:
        """A proxy to the client's implementation of ``contract`` (blocking calls).

        Raises:
            spyne.Fault: the call runs in the host's event loop (``inline_calls``), where
                a callback would block the session it waits on: the caller gets the fault.

        Raises (from its calls):
            SessionClosed: the session ended; callbacks stop with it.
            CallTimeout: no answer within the binding's call timeout.
        """
        if in_loop_thread(self._loop):
            log.error("session %s: a callback from a call run inline (inline_calls=True) refused",
                      self.id)
            raise Fault("Server", "This service cannot call back: its host runs calls in its"
                                  " event loop (NetTcpRelayBinding inline_calls=True)")
        return CallbackProxy(contract, self._send)

    def _send(self, data: bytes, message_id: str, oneway: bool) -> ChannelMessage | None:
        timeout = self._channel.binding.call_timeout + 5
        if oneway:
            run_blocking(self._loop, self._channel.send(data), timeout)
            return None
        reply: ChannelMessage = run_blocking(self._loop, self._channel.call(data, message_id), timeout)
        return reply


def session_of(ctx: Any) -> ServiceSession:
    """The session a Spyne method's call came on.

    Raises:
        LookupError: the call did not come over a NetTcp session (an HTTP binding).
    """
    environ = getattr(getattr(ctx, "transport", None), "req_env", None) or {}
    session = environ.get(SESSION_KEY)
    if session is None:
        raise LookupError("this call did not come over a NetTcp session")
    assert isinstance(session, ServiceSession)
    return session
