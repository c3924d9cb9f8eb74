"""One-way Spyne operations that zeep can call and that answer ``202 Accepted``.

Spyne's own one-way form (``@rpc(..., _is_async=True)``) writes a WSDL zeep
cannot load (its binding references ``ReplyTo``/``MessageID`` header messages
it never defines) and still answers ``200`` with an envelope, while zeep
returns ``None`` only for ``201``/``202`` with an empty body. So here a one-way
operation is a plain Spyne ``rpc`` carrying a marker in its user-defined data;
:func:`bindings.spyne_host.spyne_wsgi` reads the marker, drops the operation's
output from the WSDL and answers ``202`` with an empty body *before* running
the handler::

    class TimesheetService(ServiceBase):
        @oneway(Integer, Double)
        def SubmitTimesheet(ctx, employee_id, hours):
            store(employee_id, hours)

    oneway_operations(app)     # {'SubmitTimesheet'}  (WSDL operation names)
    oneway_request_tags(app)   # {'{urn:payroll}SubmitTimesheet'}  (request elements)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spyne import Application, rpc

__all__ = ["ONEWAY_MARKER", "oneway", "oneway_operations", "oneway_request_tags"]

#: Key set in a method's ``_udd`` (Spyne's user-defined data) to mark it one-way.
ONEWAY_MARKER = "relay_oneway"


def oneway(*params: Any, **kparams: Any) -> Callable[[Callable[..., Any]], Any]:
    """Spyne's ``rpc`` for an operation that has no response.

    Takes the same arguments as :func:`spyne.rpc` except ``_returns``,
    ``_is_async`` and ``_out_header`` (a one-way operation sends nothing back).

    Args:
        *params: The argument types, as for ``rpc``.
        **kparams: ``rpc`` options such as ``_in_message_name`` or ``_udd``.

    Returns:
        The method decorator.

    Raises:
        TypeError: A response-related option was given.
    """
    for option in ("_returns", "_is_async", "_out_header"):
        if option in kparams:
            raise TypeError(f"@oneway operations take no {option} (they send no response)")
    udd = dict(kparams.pop("_udd", None) or {})
    udd[ONEWAY_MARKER] = True
    decorator: Callable[[Callable[..., Any]], Any] = rpc(*params, _udd=udd, **kparams)
    return decorator


def oneway_operations(app: Application) -> set[str]:
    """The WSDL operation names of ``app``'s one-way operations.

    Args:
        app: The Spyne application.

    Returns:
        The names (``wsdl:operation/@name``) of the operations marked by :func:`oneway`.
    """
    return {
        str(descriptor.operation_name)
        for descriptors in app.interface.service_method_map.values()
        for descriptor in descriptors
        if _is_oneway(descriptor)
    }


def oneway_request_tags(app: Application) -> set[str]:
    """The request element names of ``app``'s one-way operations.

    Names are in Clark notation, ``{namespace}Name``: the tag of the first child
    of the SOAP Body of a request to that operation (what Spyne routes on).

    Args:
        app: The Spyne application.

    Returns:
        The request element names of the operations marked by :func:`oneway`.
    """
    return {
        str(tag)
        for tag, descriptors in app.interface.service_method_map.items()
        if any(_is_oneway(descriptor) for descriptor in descriptors)
    }


def _is_oneway(descriptor: Any) -> bool:
    udd = getattr(descriptor, "udd", None) or {}
    return bool(udd.get(ONEWAY_MARKER, False))
