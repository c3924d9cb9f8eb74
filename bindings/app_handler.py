"""Which :data:`~bindings.handler.Handler` serves an app: Spyne, any WSGI callable, or async.

:func:`make_handler` is what :class:`~bindings.host.RelayServiceHost` hosts:

- a Spyne ``Application`` runs through :func:`bindings.spyne_host.spyne_wsgi` (the
  service pipeline: WS-Security, WS-Addressing, the one-way decision and Spyne on
  the tree parsed once) in a :class:`~bindings.wsgi_host.WsgiHandler`;
- any other WSGI callable runs in a ``WsgiHandler`` too;
- an async Handler is awaited as it is;
- on NetOneway/NetEvent bindings, all but Spyne are wrapped in
  :class:`~bindings.acknowledge.Acknowledging` (202 first, the handler after);
- a message security mode gives the Spyne pipeline its WS-Security step, and puts
  any other WSGI app behind the WS-Security middleware.

Every WSGI handler reads the body before it takes a call slot, held to the
binding's ``max_received_message_size`` and, for bodies the app will parse,
its ``reader_quotas`` (:mod:`bindings.wsgi_host`): that is the one parse of a
request; the Spyne pipeline and the WS-Security middleware take its tree. Spyne
and the middleware parse every body, any other WSGI app only XML ones.
"""

from __future__ import annotations

import inspect
import sys
from typing import TYPE_CHECKING, Any

from bindings.acknowledge import Acknowledging
from bindings.binding import EndToEndSecurityMode, RelayBinding
from bindings.exceptions import ConfigurationError
from bindings.handler import Handler
from bindings.oneway import OnewayRule
from bindings.wsgi_host import WsgiApp, WsgiHandler, XmlCheck
from hc.entities import EntityKind
from soap.envelope import SoapVersion

if TYPE_CHECKING:
    from bindings.wssecurity import MessageSecurity

__all__ = ["make_handler"]


def _is_spyne_application(app: object) -> bool:
    spyne = sys.modules.get("spyne.application")  # a Spyne app means Spyne is imported
    return spyne is not None and isinstance(app, spyne.Application)


def _spyne_wsgi(
    app: Any, binding: RelayBinding, message_security: MessageSecurity | None
) -> WsgiApp:
    """The Spyne pipeline, with its WS-Security step when the binding's mode asks for one."""
    from bindings.spyne_host import spyne_wsgi

    stage = None
    if message_security is not None or binding.security not in _TRANSPORT_ONLY:
        from bindings.wssecurity import security_stage

        stage = security_stage(binding.security, message_security)
    return spyne_wsgi(app, binding, stage)


def _is_async_handler(app: object) -> bool:
    if inspect.iscoroutinefunction(app):
        return True
    return callable(app) and inspect.iscoroutinefunction(type(app).__call__)


_TRANSPORT_ONLY = frozenset({EndToEndSecurityMode.NONE, EndToEndSecurityMode.TRANSPORT})


def _secured(
    wsgi: WsgiApp, binding: RelayBinding, message_security: MessageSecurity | None
) -> WsgiApp:
    """``wsgi`` behind the WS-Security middleware when the binding's mode asks for it."""
    if message_security is None and binding.security in _TRANSPORT_ONLY:
        return wsgi  # nothing to check: and signxml is not even imported
    from bindings.wssecurity import secure_service

    return secure_service(
        wsgi, binding.security, message_security, max_body=binding.max_received_message_size
    )


def _wsgi_handler(wsgi: WsgiApp, binding: RelayBinding, workers: int, check: XmlCheck) -> WsgiHandler:
    version = {"1.1": SoapVersion.SOAP11, "1.2": SoapVersion.SOAP12}.get(binding.soap_version or "")
    return WsgiHandler(
        wsgi, max_workers=workers, max_body=binding.max_received_message_size,
        quotas=binding.reader_quotas, xml_check=check, soap_version=version,
    )


def make_handler(
    app: object,
    binding: RelayBinding,
    message_security: MessageSecurity | None = None,
    *,
    listeners: int = 1,
) -> Handler:
    """The Handler for a Spyne ``Application``, a WSGI callable or an async Handler.

    NetOneway/NetEvent bindings acknowledge with 202 before running it (Spyne's
    adapter does that itself; anything else is wrapped in :class:`Acknowledging`).

    With a message security mode (``binding.security``), requests are checked
    before the app sees them: by the Spyne pipeline's first step (before a
    one-way operation's 202 too), or for a WSGI app by
    :class:`~bindings.wsgi_security.WsSecurityMiddleware`. A plain WSGI app on a one-way binding is
    acknowledged first; a refused message is then logged, never run.

    A Spyne or WSGI app runs in the handler's own thread pool of
    ``binding.max_concurrent_calls`` threads per listener.

    Args:
        app: A Spyne ``Application``, a WSGI callable or an async Handler.
        binding: The relay binding.
        message_security: The service's WS-Security settings; required by the
            MESSAGE and TRANSPORT_WITH_MESSAGE_CREDENTIAL modes, refused by others.
        listeners: The control channels sharing the handler (each runs up to
            ``binding.max_concurrent_calls`` calls at once).

    Raises:
        ConfigurationError: ``app`` is none of those; message security for an
            async Handler; settings that do not fit ``binding.security``.
    """
    workers = max(1, binding.max_concurrent_calls) * max(1, listeners)
    if _is_spyne_application(app):
        return _wsgi_handler(
            _spyne_wsgi(app, binding, message_security), binding, workers, XmlCheck.ALWAYS
        )
    if _is_async_handler(app):
        if message_security is not None or binding.security not in _TRANSPORT_ONLY:
            raise ConfigurationError(
                f"security mode {binding.security.name} needs a Spyne Application or a WSGI"
                " callable: an async handler would get unchecked messages"
            )
        handler: Handler = app  # type: ignore[assignment]
    elif callable(app):
        secured = _secured(app, binding, message_security)  # type: ignore[arg-type]
        check = XmlCheck.XML_MEDIA_TYPE if secured is app else XmlCheck.ALWAYS
        handler = _wsgi_handler(secured, binding, workers, check)
    else:
        raise ConfigurationError(
            f"cannot host {type(app).__name__}: give a Spyne Application, a WSGI callable"
            " or an async handler"
        )
    if binding.entity_kind is not EntityKind.REQUEST_RESPONSE:
        handler = Acknowledging(handler, OnewayRule.for_binding(binding))
    return handler
