"""A small Spyne service for the console's tests: Echo answers its text, or a fault.

``Echo("fault:<why>")`` raises a ``Server.Refused`` fault whose string is ``<why>``,
so a test decides what the fault string (attacker-controlled text) says.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from spyne import Application, ServiceBase, Unicode, rpc
from spyne.model.fault import Fault
from spyne.protocol.soap import Soap11

from bindings import RelayServiceHost
from tests.support.relay import RelayThread

__all__ = ["DESK_NS", "desk_host", "envelope"]

DESK_NS = "urn:soap-relay:desk"


class DeskService(ServiceBase):  # type: ignore[misc]
    @rpc(Unicode, _returns=Unicode)
    def Echo(ctx, text):  # type: ignore[no-untyped-def]
        """The text back; ``fault:<why>`` answers a fault saying ``<why>``."""
        if text and text.startswith("fault:"):
            raise Fault("Server.Refused", text[6:])
        return text


def desk_app() -> Application:
    return Application([DeskService], tns=DESK_NS, in_protocol=Soap11(validator="lxml"),
                       out_protocol=Soap11())


@contextmanager
def desk_host(relay: RelayThread, entity: str = "desk") -> Iterator[RelayServiceHost]:
    """The desk service online on ``entity`` behind ``relay`` (a dynamic entity)."""
    cs = relay.connection_string + f";EntityPath={entity}"
    with RelayServiceHost(desk_app(), connection_string=cs) as host:
        yield host


def envelope(text: str, header: str = "") -> bytes:
    """An Echo request (``text`` and ``header`` are put in as given: raw XML)."""
    return (f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
            f"<s:Header>{header}</s:Header><s:Body><Echo xmlns=\"{DESK_NS}\">"
            f"<text>{text}</text></Echo></s:Body></s:Envelope>").encode()
