"""The service pipeline for a session's calls: the HTTP bindings' one, fed the channel's tree.

Each request the channel parsed (once, under the reader quotas) runs through
:class:`~bindings.spyne_host.SpyneRelayApp` exactly as a relayed HTTP POST would --
WS-Security check, WS-Addressing (``To`` must be the entity's relay address), the
one-way decision, Spyne on the tree, the reply stamped (``RelatesTo``, ``Action``),
signed and serialised once -- in a worker thread, with an environ that carries the
tree (``soaprelay.envelope``) and the :class:`~bindings.nettcp.session.ServiceSession`
(``soaprelay.session``).  A one-way operation runs in the same thread, before the
session's next call (its order is kept); it sends nothing back.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from spyne import Application

from bindings.address import RelayAddress
from bindings.binding import EndToEndSecurityMode
from bindings.handler import RelayedRequest, iter_bytes
from bindings.nettcp.binding import NetTcpRelayBinding
from bindings.nettcp.framing import SOAP12, ChannelMessage, fault_message
from bindings.nettcp.session import SESSION_KEY, ServiceSession
from bindings.spyne_host import ADDRESSING_KEY, SpyneRelayApp
from bindings.wsgi_environ import build_environ
from bindings.wsgi_host import ENVELOPE_KEY
from soap import addressing
from soap.exceptions import SoapError
from soap.fault import FaultCode

if TYPE_CHECKING:
    from bindings.wssecurity import MessageSecurity

__all__ = ["SessionPipeline"]

log = logging.getLogger("bindings.nettcp")

_TRANSPORT_ONLY = frozenset({EndToEndSecurityMode.NONE, EndToEndSecurityMode.TRANSPORT})


class _Inline(Executor):
    """Runs a submitted job at once, in the submitting thread (a session's one-way calls)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - handed over in the future, as a pool would
            future.set_exception(exc)
        return future


class SessionPipeline:
    """Runs a session's requests through the Spyne pipeline (see the module docstring).

    Args:
        app: the Spyne application (SOAP 1.2).
        binding: the NetTcp binding.
        address: the entity's relay address (what ``wsa:To`` must name).
        message_security: WS-Security settings for a message security mode.
    """

    def __init__(self, app: Application, binding: NetTcpRelayBinding, address: RelayAddress,
                 message_security: MessageSecurity | None = None) -> None:
        stage = None
        if message_security is not None or binding.security not in _TRANSPORT_ONLY:
            from bindings.wssecurity import security_stage

            stage = security_stage(binding.security, message_security)
        self.relay_app = SpyneRelayApp(app, binding, stage, oneway_executor=_Inline())
        self.address = address
        self.executor = ThreadPoolExecutor(max(1, binding.max_concurrent_calls),
                                           thread_name_prefix="nettcp-call")
        #: Calls running at once, in the pool or in sessions' own threads.
        self.slots = threading.BoundedSemaphore(max(1, binding.max_concurrent_calls))
        request = RelayedRequest(
            "POST", "/" + address.entity_path,
            (("Content-Type", f"{SOAP12.content_type}; charset=utf-8"),),
            iter_bytes(b""), address.http_base, address.entity_path)
        #: Every call's environ but its body: built once, copied per call.
        self._environ = build_environ(request, b"")

    def close(self) -> None:
        self.executor.shutdown(wait=False)
        self.relay_app.close(wait=False)

    def run(self, message: ChannelMessage, session: ServiceSession) -> bytes | None:
        """The reply to ``message`` (None for a one-way operation); blocking, in a worker."""
        environ = dict(self._environ)
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(message.data), str(len(message.data))
        environ[ENVELOPE_KEY] = message.envelope
        environ[ADDRESSING_KEY] = message.headers
        environ[SESSION_KEY] = session
        status: list[str] = []

        def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            status.append(line)

        result = self.relay_app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()  # a one-way operation runs here
        if status and status[0].startswith("202"):
            return None
        return _related(body, message)


def _related(body: bytes, request: ChannelMessage) -> bytes:
    """``body`` with ``RelatesTo`` set: the pipeline's own faults (security, addressing) lack it."""
    if b"</wsa:RelatesTo>" in body:  # markup only: a "<" in text would be escaped
        return body
    try:
        return addressing.add_reply_addressing(
            body, request.headers, f"{request.headers.action or ''}Response")
    except SoapError:
        log.error("the service's reply is not a SOAP envelope")
        return fault_message("The service's reply is not a SOAP envelope",
                             request.headers.message_id, code=FaultCode.SERVER)
