"""SpyneDriver's own envelope decomposition: the context Spyne's would make, or Spyne's."""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree
from spyne import Application
from spyne.protocol import ProtocolBase
from spyne.server.wsgi import WsgiMethodContext

from bindings.spyne_driver import SpyneDriver, decompose_soap, method_contexts
from samples.payroll.services import TNS, payroll12_app, payroll_app
from soap import ns

pytestmark = pytest.mark.usefixtures("no_sockets")  # the pure tier: no network

CALL = f'<p:GetSalary xmlns:p="{TNS}"><p:employee_id>7</p:employee_id></p:GetSalary>'
WSA = f'<a:Action xmlns:a="{ns.WSA}">GetSalary</a:Action><!-- c --><a:To xmlns:a="{ns.WSA}">x</a:To>'

#: (envelope inner markup, whether the driver decomposes it itself)
CASES = [
    (f"<s:Body>{CALL}</s:Body>", True),
    (f"<s:Header>{WSA}</s:Header><s:Body>{CALL}</s:Body>", True),
    (f"<s:Header/><s:Body>{CALL}<!-- after --></s:Body>", True),
    (f"<!-- first --><s:Header>{WSA}</s:Header><!-- between --><s:Body>{CALL}</s:Body>", True),
    (f"<s:Body><p:Unknown xmlns:p='{TNS}'/></s:Body>", True),
    ("<s:Body><s:Fault/></s:Body>", True),
    ("<s:Body/>", False),
    (f"<s:Body><!-- lead -->{CALL}</s:Body>", False),
    (f"<s:Header>{WSA}</s:Header>", False),
    (f'<s:Body><p:GetSalary xmlns:p="{TNS}" xml:id="a"/></s:Body>', False),
]


def _context(driver: SpyneDriver, root: etree._Element) -> Any:
    ctx = WsgiMethodContext(driver, {"CONTENT_TYPE": "text/xml"}, "text/xml")
    xml_ids = {str(e.get(f"{{{ns.XML}}}id")): e for e in root.xpath("//*[@xml:id]")}
    ctx.in_document = (root, xml_ids)
    return ctx


def _outcome(run: Any) -> tuple[str, str | None]:
    try:
        run()
    except Exception as exc:  # noqa: BLE001 - compared, not handled
        return type(exc).__name__, str(exc)
    return "ok", None


def _seen(ctx: Any) -> tuple[object, ...]:
    def tags(elements: Any) -> object:
        return None if elements is None else [str(e.tag) for e in elements]

    body = ctx.in_body_doc
    return (ctx.in_document.tag if isinstance(ctx.in_document, etree._Element) else ctx.in_document,
            tags(ctx.in_header_doc), None if body is None else body.tag, ctx.method_request_string)


@pytest.mark.parametrize("make_app", [payroll_app, payroll12_app])
@pytest.mark.parametrize(("inner", "ours"), CASES)
def test_the_context_is_the_one_spyne_makes(make_app: Any, inner: str, ours: bool) -> None:
    app: Application = make_app()
    driver = SpyneDriver(app, 1 << 20)
    namespace = app.in_protocol.ns_soap_env
    data = f'<s:Envelope xmlns:s="{namespace}">{inner}</s:Envelope>'.encode()
    theirs_ctx = _context(driver, etree.fromstring(data))
    theirs = _outcome(lambda: app.in_protocol.decompose_incoming_envelope(theirs_ctx, ProtocolBase.REQUEST))
    our_ctx = _context(driver, etree.fromstring(data))
    taken: list[bool] = []
    mine = _outcome(lambda: taken.append(decompose_soap(app.in_protocol, our_ctx)))
    if ours:  # (an invalid body raises from Spyne's validation, as in Spyne's own)
        assert taken == ([True] if mine == ("ok", None) else [])
        assert mine == theirs
        assert _seen(our_ctx) == _seen(theirs_ctx)
    else:
        assert (mine, taken) == (("ok", None), [False])
        assert our_ctx.in_body_doc is None and our_ctx.method_request_string is None  # untouched


@pytest.mark.parametrize("make_app", [payroll_app, payroll12_app])
def test_one_method_runs_on_the_drivers_own_context_as_spyne_would_on_its_copy(make_app: Any) -> None:
    app: Application = make_app()
    driver = SpyneDriver(app, 1 << 20)
    data = f'<s:Envelope xmlns:s="{app.in_protocol.ns_soap_env}"><s:Body>{CALL}</s:Body></s:Envelope>'
    contexts = []
    for make in (lambda c: app.in_protocol.generate_method_contexts(c),
                 lambda c: method_contexts(app.in_protocol, c)):
        ctx = _context(driver, etree.fromstring(data.encode()))
        assert decompose_soap(app.in_protocol, ctx)
        contexts.append((ctx, make(ctx)))
    (spynes_ctx, spynes), (our_ctx, ours) = contexts
    assert len(spynes) == len(ours) == 1
    assert spynes[0] is not spynes_ctx and ours[0] is our_ctx  # a copy there, none here
    assert ours[0].descriptor is spynes[0].descriptor
    assert ours[0].transport.parent is ours[0] and _seen(ours[0]) == _seen(spynes[0])

