"""One-way messages: the one place that decides "202 first, run after", and ``@oneway``.

:class:`OnewayRule` is the decision, asked by every hosting path: the Spyne
pipeline (:mod:`bindings.spyne_host`) with the request's Body payload, and
:class:`~bindings.acknowledge.Acknowledging` (any other handler on a one-way or
event binding) with the method alone. ``GET`` and ``HEAD`` are never one-way
messages (WSDL and XSD fetches). :class:`AfterResponse` is the WSGI body that
runs the acknowledged work once the ``202`` went out (PEP 3333 ``close()``),
and drops it when it did not (``discard()``)::

    rule = OnewayRule.for_spyne(app, NetOnewayRelayBinding())
    rule.delivery("POST", "{urn:payroll}SubmitTimesheet")   # Delivery.ACKNOWLEDGE
    rule.delivery("GET")                                    # Delivery.REPLY

One-way Spyne operations that zeep can call and that answer ``202 Accepted``:

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

import enum
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hc.entities import EntityKind

if TYPE_CHECKING:
    from spyne import Application

    from bindings.binding import RelayBinding

__all__ = [
    "METADATA_METHODS",
    "ONEWAY_MARKER",
    "AfterResponse",
    "Delivery",
    "OnewayRule",
    "oneway",
    "oneway_operations",
    "oneway_request_tags",
]

#: Key set in a method's ``_udd`` (Spyne's user-defined data) to mark it one-way.
ONEWAY_MARKER = "relay_oneway"
#: Not one-way messages but metadata fetches (a WSDL or XSD): always answered by the handler.
METADATA_METHODS = frozenset({"GET", "HEAD"})
_ONEWAY_KINDS = frozenset({EntityKind.ONEWAY, EntityKind.EVENT})


class Delivery(enum.Enum):
    """How a request is answered."""

    #: The handler's own answer goes back to the sender.
    REPLY = "reply"
    #: ``202 Accepted`` with an empty body at once; the handler runs once it was sent.
    ACKNOWLEDGE = "acknowledge"


@dataclass(frozen=True)
class OnewayRule:
    """Which requests are one-way messages (PROTOCOL.md section 6).

    Attributes:
        every_message: Every message is one-way (a NetOneway/NetEvent binding
            hosting a handler that is not Spyne).
        request_tags: Body payload tags (Clark notation) of one-way operations.
    """

    every_message: bool = False
    request_tags: frozenset[str] = frozenset()

    @classmethod
    def for_binding(cls, binding: RelayBinding) -> OnewayRule:
        """Every message of a oneway or event entity; none of a request-response one."""
        return cls(every_message=binding.entity_kind in _ONEWAY_KINDS)

    @classmethod
    def for_spyne(cls, app: Application, binding: RelayBinding) -> OnewayRule:
        """Spyne: every operation of a oneway/event entity, else the ``@oneway`` ones.

        A message naming no operation of ``app`` is not acknowledged: Spyne
        answers it with a fault.
        """
        if binding.entity_kind in _ONEWAY_KINDS:
            return cls(request_tags=frozenset(str(tag) for tag in app.interface.service_method_map))
        return cls(request_tags=frozenset(oneway_request_tags(app)))

    def delivery(self, method: str, payload_tag: str | None = None) -> Delivery:
        """How to answer a ``method`` request whose Body payload is ``payload_tag``."""
        if method.upper() in METADATA_METHODS:
            return Delivery.REPLY
        if self.every_message or (payload_tag is not None and payload_tag in self.request_tags):
            return Delivery.ACKNOWLEDGE
        return Delivery.REPLY


class AfterResponse:
    """An empty WSGI body whose ``close()`` (called once the response went out) runs a job.

    ``discard()`` drops the job: the relay host calls it before ``close()`` when
    the response never reached the relay (:mod:`bindings.wsgi_host`), so a
    message the sender saw no ``202`` for (and may send again) is not run.
    """

    def __init__(self, job: Callable[[], object]) -> None:
        self._job: Callable[[], object] | None = job
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    def discard(self) -> None:
        with self._lock:
            self._job = None

    def close(self) -> None:
        with self._lock:
            job, self._job = self._job, None
        if job is not None:
            job()


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
    from spyne import rpc  # only services that use @oneway import Spyne through here

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
