"""The client's end of a NetTcp session: one relayed WebSocket, opened when first needed.

:class:`SessionClient` opens the session with
:meth:`hc.asyncio.HybridConnectionClient.create_connection` (the Send token in the
handshake), drives a :class:`~bindings.nettcp.channel.SessionChannel` on it and:

- sends calls (many at once, each matched to its reply by ``RelatesTo``);
- answers the service's callbacks (one at a time, in order, and before the reply of a
  call that came after them, unless the binding's ``concurrency_mode`` is MULTIPLE: a
  callback must then not wait for a call of its own session) with the client's
  implementation of the callback contract (:class:`~bindings.nettcp.callbacks.CallbackApplication`, through the same
  Spyne pipeline a service runs);
- learns its session id from the host's greeting (:attr:`SessionClient.session_id`);
- once the session ended (every call in flight failed with
  :class:`~bindings.nettcp.errors.SessionClosed`), the next call opens a new session.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import ssl
from collections.abc import Callable

from bindings.address import RelayAddress
from bindings.binding import EndToEndSecurityMode
from bindings.nettcp.binding import ConcurrencyMode, ConnectionMode, NetTcpRelayBinding
from bindings.nettcp.callbacks import CallbackApplication
from bindings.nettcp.channel import ChannelState, SessionChannel
from bindings.nettcp.direct import connect_direct
from bindings.nettcp.errors import SessionOpenFailed
from bindings.nettcp.framing import CONTROL_NS, SESSION_ACTION, ChannelMessage, fault_message
from bindings.nettcp.hybrid import DirectOffer
from bindings.nettcp.peer_log import PeerLog
from bindings.nettcp.pipeline import SessionPipeline
from bindings.nettcp.session import ServiceSession
from bindings.nettcp.slots import Slots
from bindings.tokens import TokenProvider
from hc import asyncio as sdk

__all__ = ["Deliver", "SessionClient", "deliver_outcome"]

log = logging.getLogger("bindings.nettcp")

#: Given a call's outcome: ``(reply, None)`` (reply None: one-way) or ``(None, error)``.
Deliver = Callable[[ChannelMessage | None, BaseException | None], None]


class _Tokens(sdk.TokenProvider):
    """The bindings' (synchronous) token provider, as the SDK asks for tokens."""

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider

    async def get_token(self, audience: str, ttl: float = 3600.0) -> sdk.SecurityToken:
        token = await asyncio.to_thread(self.provider.get_token, audience)
        return sdk.SecurityToken(token.text, token.expires_at, audience)


class SessionClient:
    """One client's session to an entity (see the module docstring).

    Args:
        address: the entity's relay address (``http://host:port/entity``, ``sb://``...).
        binding: the NetTcp binding.
        token_provider: gives the Send token; None sends none.
        callback: ``(contract, implementation)`` to answer the service's callbacks.
        ssl_context: for a TLS relay.
        proxy: an HTTP CONNECT proxy URL; True (default): the environment's
            (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``); None: none (``hc.asyncio.proxy``).
    """

    def __init__(
        self,
        address: str | RelayAddress,
        binding: NetTcpRelayBinding | None = None,
        token_provider: TokenProvider | None = None,
        *,
        callback: tuple[type, object] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        proxy: str | bool | None = True,
    ) -> None:
        self.address = RelayAddress.parse(address) if isinstance(address, str) else address
        self.binding = binding or NetTcpRelayBinding()
        self._sdk = sdk.HybridConnectionClient(
            self.address.public_address, _Tokens(token_provider) if token_provider else None,
            ssl_context=ssl_context, proxy=proxy,
            max_message_size=self.binding.max_received_message_size + 64 * 1024)
        self._callbacks: SessionPipeline | None = None
        if callback is not None:
            contract, implementation = callback
            plain = dataclasses.replace(self.binding, security=EndToEndSecurityMode.TRANSPORT)
            self._callbacks = SessionPipeline(CallbackApplication(contract, implementation),
                                              plain, self.address)
        self.channel: SessionChannel | None = None
        self.session_id: str | None = None
        self.sessions_opened = 0
        self._lock: asyncio.Lock | None = None
        self._slots = Slots(self.binding.max_calls_per_session)
        #: Warnings about the host's mistakes, rate-limited across this client's sessions.
        self.warnings = PeerLog(log)
        self._callback_order = asyncio.Lock()
        #: Set once the session's direct attempt ended, either way (Hybrid mode), or at once.
        self.hybrid_settled = asyncio.Event()
        #: Hybrid mode: try the direct connection as soon as the host offers it.
        self.auto_direct = True
        self.offer: DirectOffer | None = None
        self._attempt: asyncio.Task[bool] | None = None

    def __repr__(self) -> str:
        return f"<SessionClient {self.address.public_address} session={self.session_id}>"

    async def open(self) -> SessionChannel:
        """The open session, opening a new one if there is none (or it ended).

        Raises:
            SessionOpenFailed: the relay refused (no listener, bad token) or is unreachable.
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.channel is not None and self.channel.state is ChannelState.OPEN:
                return self.channel
            try:
                stream = await self._sdk.create_connection()
            except sdk.RelayRejectedError as exc:
                raise SessionOpenFailed(f"the relay refused the session: {exc}", exc.status) from exc
            except sdk.RelayError as exc:
                raise SessionOpenFailed(f"cannot open a session: {exc}") from exc
            self.session_id = None
            ordered = self.binding.concurrency_mode is ConcurrencyMode.SINGLE
            self.channel = SessionChannel(stream, self._on_request, self.binding,
                                          name=stream.tracking_id, ordered_replies=ordered,
                                          warnings=self.warnings)
            self.channel.start()
            self.sessions_opened += 1
            return self.channel

    async def call(self, data: bytes, message_id: str, *, oneway: bool = False,
                   timeout: float | None = None) -> ChannelMessage | None:
        """Send a request on the session (opened if needed); its reply, None when one-way.

        At most ``max_calls_per_session`` calls are in flight; more wait for a place.

        Raises:
            SessionOpenFailed, SessionClosed, CallTimeout.
        """
        await self._slots.take()  # over the bound, calls wait their turn here
        try:
            channel = await self.open()
            if oneway:
                await channel.send(data)
                return None
            return await channel.call(data, message_id, timeout)
        finally:
            self._slots.give()

    def start_call(self, data: bytes, message_id: str, oneway: bool, deliver: Deliver) -> None:
        """:meth:`call` for a caller in another thread, run as a plain loop callback:
        ``deliver(reply, None)`` or ``deliver(None, error)`` gets its outcome, in the loop's
        thread.  A request/response call on an open session with a free place starts here
        with no task (:meth:`SessionChannel.begin_call`); anything else goes through
        :meth:`call` in a task.
        """
        channel = self.channel
        if (oneway or channel is None or channel.state is not ChannelState.OPEN
                or not self._slots.try_take()):
            self._in_task(data, message_id, oneway, deliver)
            return
        try:
            waiter = channel.begin_call(data, message_id)
        except Exception as exc:  # noqa: BLE001 - the caller's to raise, in its thread
            self._slots.give()
            deliver(None, exc)
            return
        if waiter is None:  # cannot be written at once: the awaiting way
            self._slots.give()
            self._in_task(data, message_id, oneway, deliver)
            return
        waiter.add_done_callback(functools.partial(self._settled, deliver))

    def _settled(self, deliver: Deliver, waiter: asyncio.Future[ChannelMessage]) -> None:
        self._slots.give()
        deliver_outcome(deliver, waiter)

    def _in_task(self, data: bytes, message_id: str, oneway: bool, deliver: Deliver) -> None:
        task = asyncio.get_running_loop().create_task(self.call(data, message_id, oneway=oneway))
        task.add_done_callback(functools.partial(deliver_outcome, deliver))

    @property
    def path(self) -> str:
        """Where the session's messages go: ``"direct"``, ``"relayed"`` (or ``"closed"``)."""
        channel = self.channel
        if channel is None or channel.state is ChannelState.CLOSED:
            return "closed"
        return channel.path

    def _hybrid(self, greeting: ChannelMessage) -> None:
        """Hybrid mode: note the greeting's offer; try it now unless ``auto_direct`` is off."""
        self.hybrid_settled.clear()
        hybrid = self.binding.connection_mode is ConnectionMode.HYBRID
        self.offer = DirectOffer.from_greeting(greeting) if hybrid else None
        if self.offer is None:
            self.hybrid_settled.set()
        elif self.auto_direct:
            self._attempt = asyncio.get_running_loop().create_task(self.upgrade())

    async def upgrade(self) -> bool:
        """Hybrid mode: move the session onto the offered direct connection, if it works.

        Returns:
            True once messages go direct; False when there is no offer or the direct path
            does not work (the session stays relayed).
        """
        offer, channel, session_id = self.offer, self.channel, self.session_id
        try:
            if offer is None or channel is None or session_id is None:
                return False
            if channel.path == "direct":
                return True
            link = await connect_direct(offer, session_id)
            if link is None:
                return False
            if channel.state is not ChannelState.OPEN:
                await link.close()
                return False
            channel.attach(link)
            return True
        finally:
            self.hybrid_settled.set()

    async def end_session(self, timeout: float = 30.0) -> None:
        """Graceful: calls in flight finish, then the session closes (1000); the next
        call opens a new one."""
        if self.channel is not None:
            await self.channel.close(timeout=timeout)

    async def close(self, timeout: float = 30.0) -> None:
        """:meth:`end_session`, and the callbacks' worker threads are let go: the client is done."""
        await self.end_session(timeout)
        if self._callbacks is not None:
            self._callbacks.close()

    async def _on_request(self, message: ChannelMessage) -> bytes | None:
        if message.headers.action == SESSION_ACTION:
            self.session_id = message.envelope.body.findtext(
                f"{{{CONTROL_NS}}}Session/{{{CONTROL_NS}}}Id")
            self._hybrid(message)
            return None
        if message.is_control:
            return None  # a later version's control message: ignored
        pipeline, channel = self._callbacks, self.channel
        if pipeline is None or channel is None:
            return fault_message("This client implements no callback contract",
                                 message.headers.message_id)
        session = ServiceSession(self.session_id or "", channel, asyncio.get_running_loop())
        loop = asyncio.get_running_loop()
        if self.binding.concurrency_mode is ConcurrencyMode.MULTIPLE:
            return await loop.run_in_executor(pipeline.executor, pipeline.run, message, session)
        async with self._callback_order:  # one at a time, in the order they came
            return await loop.run_in_executor(pipeline.executor, pipeline.run, message, session)


def deliver_outcome(deliver: Deliver, done: asyncio.Future[ChannelMessage] | asyncio.Future[ChannelMessage | None]) -> None:
    """Pass ``done``'s outcome to ``deliver``."""
    if done.cancelled():
        deliver(None, asyncio.CancelledError())
    elif (error := done.exception()) is not None:
        deliver(None, error)
    else:
        deliver(done.result(), None)
