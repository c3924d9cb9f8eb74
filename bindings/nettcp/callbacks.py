"""Duplex callbacks: a Spyne service class both sides share, as a .NET callback interface.

The contract is a Spyne ``ServiceBase`` whose ``@rpc`` / ``@oneway`` methods have no
body worth running (the interface); the **client implements it** with any object
whose methods have the operations' names and take their arguments::

    class PayrollProgress(ServiceBase):          # shared by service and client
        __namespace__ = "urn:soap-relay:payroll:progress"
        @oneway(Integer, Integer)
        def Progress(ctx, done, total): ...

    class ShowProgress:                          # the client's implementation
        def Progress(self, done, total): print(f"{done}/{total}")

    client = relay_client(url, binding=NetTcpRelayBinding(),
                          callback=(PayrollProgress, ShowProgress()))

and the **service calls it** through its session, during a call or later while the
session lives (``session_of(ctx).callback(PayrollProgress).Progress(3, 10)``):
a one-way operation returns once sent, a request/response one returns the client's
answer (a fault the client's code raised comes back as a ``spyne.Fault``).

Requests are built and replies read by Spyne's own client machinery
(``RemoteProcedureBase``) on the contract, so both sides agree on the XML by
construction; the reply tree the channel parsed is handed to Spyne as it is.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from lxml import etree
from spyne import Application
from spyne.client._base import RemoteProcedureBase
from spyne.protocol.soap import Soap12

from bindings.nettcp.framing import ChannelMessage, serialize
from bindings.oneway import ONEWAY_MARKER
from soap.addressing import AddressingHeaders, new_message_id
from soap.envelope import Envelope, ensure_header

__all__ = [
    "CallbackApplication",
    "CallbackProxy",
    "contract_application",
    "contract_namespace",
    "in_loop_thread",
    "run_blocking",
]

#: Sends a callback request (bytes, MessageID, one-way?) and returns the reply (None: one-way).
Sender = Callable[[bytes, str, bool], "ChannelMessage | None"]

_APPS: dict[type, Application] = {}
_APPS_LOCK = threading.Lock()


def contract_namespace(contract: type) -> str:
    """The contract's namespace: its ``__namespace__``, else ``urn:soap-relay:callback:<Name>``."""
    return str(getattr(contract, "__namespace__", None) or f"urn:soap-relay:callback:{contract.__name__}")


def contract_application(contract: type) -> Application:
    """The Spyne Application of a callback contract (built once per contract, for the service)."""
    with _APPS_LOCK:
        app = _APPS.get(contract)
        if app is None:
            app = _APPS[contract] = Application(
                [contract], tns=contract_namespace(contract),
                in_protocol=Soap12(), out_protocol=Soap12())
        return app


class CallbackApplication(Application):  # type: ignore[misc]
    """The client's side of a contract: Spyne runs ``implementation``'s methods for it.

    Args:
        contract: the shared Spyne service class.
        implementation: an object with a method per operation (same name, same arguments).
    """

    def __init__(self, contract: type, implementation: object) -> None:
        missing = [name for name in _operations(contract) if not hasattr(implementation, name)]
        if missing:
            raise TypeError(f"{type(implementation).__name__} does not implement {', '.join(missing)}"
                            f" of {contract.__name__}")
        self.implementation = implementation
        super().__init__([contract], tns=contract_namespace(contract),
                         in_protocol=Soap12(), out_protocol=Soap12())

    def call_wrapper(self, ctx: Any) -> Any:
        method = getattr(self.implementation, ctx.descriptor.name)
        args = ctx.in_object
        return method(*(() if args is None else tuple(args)))


def _operations(contract: type) -> list[str]:
    methods: dict[str, Any] = getattr(contract, "public_methods", {})
    return [str(d.name) for d in methods.values()]


class CallbackProxy:
    """Calls the client's implementation of ``contract`` through ``send`` (blocking).

    Each attribute is an operation: ``proxy.Progress(3, 10)``.  Call it from a
    service method (a worker thread), never from the event loop's thread.
    """

    def __init__(self, contract: type, send: Sender) -> None:
        self.contract, self._send = contract, send
        self._app = contract_application(contract)
        self._tns = contract_namespace(contract)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in _operations(self.contract):
            raise AttributeError(f"{self.contract.__name__} has no operation {name!r}")

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(name, args, kwargs)

        return call

    def _call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        procedure = RemoteProcedureBase(None, self._app, f"{{{self._tns}}}{name}")
        (ctx,) = procedure.contexts
        procedure.get_out_object(ctx, args, kwargs)
        ctx.out_protocol.serialize(ctx, ctx.out_protocol.REQUEST)
        root: etree._Element = ctx.out_document
        message_id = new_message_id()
        action = f"{self._tns}/{self.contract.__name__}/{name}"
        ensure_header(Envelope.from_element(root)).extend(
            AddressingHeaders(action=action, message_id=message_id).to_elements(
                Envelope.from_element(root).version))
        oneway = bool((ctx.descriptor.udd or {}).get(ONEWAY_MARKER, False))
        reply = self._send(serialize(root), message_id, oneway)
        if reply is None:
            return None
        return _read_reply(self._app, ctx, reply)


def _read_reply(app: Application, ctx: Any, reply: ChannelMessage) -> Any:
    """Spyne's ``get_in_object`` on the tree the channel parsed (raises the client's fault)."""
    root = reply.envelope.root
    ctx.in_string = [reply.data]
    ctx.in_document = (root, {})
    app.in_protocol.decompose_incoming_envelope(ctx, message=app.in_protocol.RESPONSE)
    app.in_protocol.deserialize(ctx, message=app.in_protocol.RESPONSE)
    if ctx.in_error is not None:
        raise ctx.in_error
    type_info = ctx.descriptor.out_message._type_info
    if len(type_info) == 1:
        return getattr(ctx.in_object, type_info.keys()[0], None)
    return ctx.in_object


def run_blocking(loop: asyncio.AbstractEventLoop, work: Any, timeout: float) -> Any:
    """Run the coroutine ``work`` on ``loop`` from another thread; its result."""
    if in_loop_thread(loop):
        work.close()
        raise RuntimeError("a callback proxy blocks: call it from a service method's thread,"
                           " not from the event loop (a NetTcp host with inline_calls=True"
                           " runs its methods there: turn it off to call back)")
    return asyncio.run_coroutine_threadsafe(work, loop).result(timeout)


def in_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether this thread is running ``loop``."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
