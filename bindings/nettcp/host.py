"""The service side of NetTcp: each WebSocket sender the listener accepts is a session.

:class:`SessionHost` is the ``on_accept`` of the host's listeners
(:class:`~bindings.host.RelayServiceHost` wires it for a NetTcp binding; HTTP requests,
the WSDL fetch among them, are still served by the host's HTTP handler):

- at most ``max_sessions`` at once: the next sender is closed with 4013 (our 1013, try again
  later) and the reason;
- a session opens with a greeting (``urn:soap-relay:nettcp/Session``: its id), then
  the Spyne app's ``nettcp_session_open`` event fires; ``nettcp_session_close`` fires
  when it ends, however it ends;
- its calls run through :class:`~bindings.nettcp.pipeline.SessionPipeline` in worker
  threads, one at a time and in order (``ConcurrencyMode.SINGLE``) or at once
  (``MULTIPLE``), handed over with no task (:class:`~bindings.nettcp.workers.SessionCalls`);
  a serial session over a plain-TCP link has a thread of its own that reads its socket
  and runs its calls while it can (:mod:`bindings.nettcp.session_thread`: no hand-off),
  the host checking twice per ``LONGEST_CALL`` that no call keeps it from reading
  (at most ``MOST_THREADS`` such threads: the other sessions are read by the loop);
  at most ``max_concurrent_calls`` calls run at once, however they came;
  with ``inline_calls`` in the event loop's thread, one at a time;
- in Hybrid mode (``connection_mode=HYBRID``) a :class:`~bindings.nettcp.direct.DirectEndpoint`
  is started with the first session, and each greeting offers it with the session's key;
- :meth:`SessionHost.aclose` is graceful: calls in flight finish, then every session is
  closed with 1001.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from lxml import etree
from spyne import Application

from bindings.address import RelayAddress
from bindings.nettcp.binding import ConcurrencyMode, ConnectionMode, NetTcpRelayBinding
from bindings.nettcp.channel import SessionChannel
from bindings.nettcp.direct import DirectEndpoint, WebSocketLink, outgoing_address
from bindings.nettcp.framing import (
    CONTROL_NS,
    SESSION_ACTION,
    ChannelMessage,
    CloseCode,
    request_message,
)
from bindings.nettcp.peer_log import PeerLog
from bindings.nettcp.pipeline import SessionPipeline
from bindings.nettcp.session import SESSION_CLOSE, SESSION_OPEN, ServiceSession
from bindings.nettcp.session_thread import LONGEST_CALL, MOST_THREADS
from bindings.nettcp.workers import SessionCalls
from hc.asyncio import HybridConnectionStream
from hc.messages import AcceptCommand
from soap.addressing import new_message_id

if TYPE_CHECKING:
    from bindings.wssecurity import MessageSecurity

__all__ = ["SessionHost", "session_greeting"]

log = logging.getLogger("bindings.nettcp")


def session_greeting(session_id: str, extra: list[etree._Element] | None = None) -> bytes:
    """The host's first message: ``<n:Session><n:Id>...</n:Id>...</n:Session>``."""
    body = etree.Element(f"{{{CONTROL_NS}}}Session", nsmap={"n": CONTROL_NS})
    etree.SubElement(body, f"{{{CONTROL_NS}}}Id").text = session_id
    body.extend(extra or [])
    return request_message(SESSION_ACTION, new_message_id(), [body])


class SessionHost:
    """Serves the sessions of one hosted Spyne application (see the module docstring).

    Args:
        app: the Spyne application (SOAP 1.2).
        binding: the NetTcp binding.
        address: the entity's relay address.
        message_security: WS-Security settings, for a message security mode.
    """

    def __init__(self, app: Application, binding: NetTcpRelayBinding, address: RelayAddress,
                 message_security: MessageSecurity | None = None) -> None:
        self.app, self.binding = app, binding
        self.pipeline = SessionPipeline(app, binding, address, message_security)
        self.sessions: dict[str, SessionChannel] = {}
        self.address = address
        self.direct: DirectEndpoint | None = None
        self._direct_lock = asyncio.Lock()
        #: Warnings about clients' mistakes, rate-limited for the whole host.
        self.warnings = PeerLog(log)
        self._closing = False
        self._watch: asyncio.Task[None] | None = None  # sessions' threads kept from reading
        self._thread_permits = threading.BoundedSemaphore(MOST_THREADS)

    def __repr__(self) -> str:
        return f"<SessionHost sessions={len(self.sessions)}>"

    async def serve(self, stream: HybridConnectionStream, accept: AcceptCommand | None = None) -> None:
        """Serve one sender's session until it ends (the listener's ``on_accept``)."""
        if self._closing:
            await stream.close(CloseCode.GOING_AWAY, "the service is closing")
            return
        if len(self.sessions) >= self.binding.max_sessions:
            self.warnings.warning("session refused: %d sessions open (max_sessions)", len(self.sessions))
            await stream.close(CloseCode.TOO_MANY_SESSIONS,
                               f"too many sessions (the limit is {self.binding.max_sessions})")
            return
        session_id = new_message_id()
        loop = asyncio.get_running_loop()
        session: ServiceSession | None = None

        def run(message: ChannelMessage) -> bytes | None:
            assert session is not None
            return self.pipeline.run(message, session)

        async def handle(message: ChannelMessage) -> bytes | None:  # never called: offload
            return await loop.run_in_executor(self.pipeline.executor, run, message)

        serial = self.binding.concurrency_mode is ConcurrencyMode.SINGLE
        calls = SessionCalls(self.pipeline.executor, run, serial=serial, slots=self.pipeline.slots)
        inline = self.binding.inline_calls
        channel = SessionChannel(stream, handle, self.binding, name=session_id,
                                 warnings=self.warnings, inline=run if inline else None,
                                 offload=None if inline else calls.submit,
                                 in_thread=calls.run_here if serial and not inline else None,
                                 thread_permits=self._thread_permits)
        session = ServiceSession(session_id, channel, loop)
        self.sessions[session_id] = channel
        if channel.in_thread is not None and self._watch is None:
            self._watch = loop.create_task(self._watch_threads())
        try:
            await channel.send(session_greeting(session_id, await self._offer(session_id, channel)))
            await self._fire(SESSION_OPEN, session)
            await channel.start()
            log.debug("session %s: %s", session_id, channel.ended.result())
        except ConnectionError as exc:
            log.info("session %s ended before it began: %s", session_id, exc)
        finally:
            del self.sessions[session_id]
            if self.direct is not None:
                self.direct.withdraw(session_id)
            await self._fire(SESSION_CLOSE, session)

    async def _watch_threads(self) -> None:
        """While sessions are open: no call keeps its session's thread from reading for
        more than ``LONGEST_CALL`` s (the loop reads meanwhile)."""
        try:
            while self.sessions:
                await asyncio.sleep(LONGEST_CALL / 2)
                now = time.monotonic()
                for channel in list(self.sessions.values()):
                    channel.watch_thread(LONGEST_CALL, now)
        finally:
            self._watch = None

    async def _offer(self, session_id: str, channel: SessionChannel) -> list[etree._Element]:
        """Hybrid mode: the direct endpoint's offer for this session (started on first use)."""
        if self.binding.connection_mode is not ConnectionMode.HYBRID:
            return []
        async with self._direct_lock:
            if self.direct is None:
                host = self.binding.hybrid_host or outgoing_address(self.address.host, self.address.port)
                direct = DirectEndpoint(host, tls=self.address.use_tls,
                                        max_size=self.binding.max_received_message_size + 65536,
                                        warnings=self.warnings)
                await direct.start()
                self.direct = direct

        def attach(_: str, link: WebSocketLink) -> asyncio.Task[None]:
            return channel.attach(link)

        return [self.direct.offer(session_id, attach).to_element()]

    async def _fire(self, event: str, session: ServiceSession) -> None:
        """Call the app's (and its services') handlers of ``event``, in a worker thread."""
        managers = [self.app.event_manager, *(s.event_manager for s in self.app.services)]
        handlers = [h for m in managers for h in m.handlers.get(event, ())]
        if handlers:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.pipeline.executor, _call_all, handlers, event, session)

    async def aclose(self, timeout: float = 30.0) -> None:
        """Graceful: calls in flight finish (at most ``timeout`` s), then sessions close (1001)."""
        self._closing = True
        if self._watch is not None:
            self._watch.cancel()
        channels = list(self.sessions.values())
        await asyncio.gather(*(c.close(CloseCode.GOING_AWAY, "the service is closing", timeout)
                               for c in channels), return_exceptions=True)
        if self.direct is not None:
            await self.direct.close()
        self.pipeline.close()


def _call_all(handlers: list[Any], event: str, session: ServiceSession) -> None:
    for handler in handlers:
        try:
            handler(session)
        except Exception:  # the service's own code: logged, the session goes on
            log.exception("a %s handler failed", event)
