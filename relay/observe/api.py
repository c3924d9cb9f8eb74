"""The console's JSON API (``/$console/api/...``), behind the admin guard (``relay.observe.admin``).

::

    GET  namespace              entities, listeners online, presence history, capture switches
    GET  charts                 calls and errors per entity, 10 s slots over 15 minutes
    GET  calls?after=SEQ        the inspector's calls newer than SEQ
    GET  calls/SEQ              one call, with its captured headers and bodies (pretty XML)
    POST calls/SEQ/replay       send a captured call again (to its own entity only)
    POST capture                {"entity": "payroll", "on": true}: body capture per entity
    GET  wsdl?entity=E          the entity's WSDL, fetched through the relay, as forms
    POST invoke                 {"entity", "operation", "values"} or {"entity", "xml",
                                "soapAction"}: call the entity, see request and response

A POST must be ``Content-Type: application/json`` and, when the browser sends an
``Origin``, come from the console's own origin: a page elsewhere cannot make the
browser of someone logged in (or on the admin address) replay or invoke.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from aiohttp import web
from lxml import etree

from relay.exceptions import AccessDenied, BadRequest, EntityNotFound
from relay.observe import loopback
from relay.observe.soapinfo import fault_of
from relay.observe.wsdl_forms import ServiceForms, envelope, read_wsdl
from relay.state import RelayState
from soap.envelope import parse_xml
from soap.exceptions import SoapError

__all__ = ["handle"]

_MAX_XML = 1024 * 1024


async def handle(state: RelayState, request: web.Request, name: str) -> web.StreamResponse:
    """Answer ``/$console/api/<name>``."""
    if request.method == "POST":
        _check_post(request)
        body = await _json(request)
        if name == "capture":
            return _capture(state, body)
        if name == "invoke":
            return web.json_response(await _invoke(state, request, body))
        if name.startswith("calls/") and name.endswith("/replay"):
            return web.json_response(await _replay(state, request, _seq(name[6:-7])))
    elif request.method == "GET":
        if name == "namespace":
            return web.json_response(_namespace(state))
        if name == "charts":
            return web.json_response(_charts(state))
        if name == "calls":
            after = _seq(request.query.get("after", "0") or "0")
            return web.json_response({"calls": state.observer.inspector.summaries(after)})
        if name.startswith("calls/"):
            return web.json_response(_call(state, _seq(name[6:])))
        if name == "wsdl":
            entity = _entity(state, request.query.get("entity", ""))
            return web.json_response((await _forms(state, request, entity)).as_json())
    raise EntityNotFound(f"no console API {request.method} {name!r}")


def _check_post(request: web.Request) -> None:
    if request.content_type != "application/json":
        raise BadRequest("the console API takes application/json")
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise AccessDenied("the console API answers only the console's own origin")


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read())
    except ValueError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("a JSON object is expected")
    return body


def _seq(text: str) -> int:
    if not text.isdigit() or len(text) > 18:
        raise BadRequest(f"{text[:20]!r} is not a call number")
    return int(text)


def _entity(state: RelayState, name: object) -> str:
    if not isinstance(name, str) or state.registry.get(name.strip("/")) is None:
        raise EntityNotFound(f"no entity {str(name)[:100]!r} on this relay")
    return name.strip("/")


def _namespace(state: RelayState) -> dict[str, Any]:
    observer = state.observer
    entities = []
    for entity in state.registry:
        config = entity.config
        entities.append({
            "path": entity.path, "kind": config.kind.value, "dynamic": config.dynamic,
            "capture": observer.captures(entity.path),
            "listeners": [vars(info) for info in observer.listeners.values()
                          if info.entity == entity.path],
        })
    return {"name": state.config.name, "node": observer.settings.node, "entities": entities,
            "presence": list(observer.presence), "now": observer.clock()}


def _charts(state: RelayState) -> dict[str, Any]:
    now = state.observer.clock()
    return {"now": now, "entities": {
        name: stats.timeline.series(now) for name, stats in state.observer.stats.items() if name
    }}


def _call(state: RelayState, seq: int) -> dict[str, Any]:
    inspector = state.observer.inspector
    row = inspector.row(seq)
    if row is None:
        raise EntityNotFound(f"call {seq} is no longer in the inspector")
    captured = inspector.captured(seq)
    out = row.summary(captured is not None)
    if captured is not None:
        detail = captured.detail()
        detail["requestBody"] = _pretty(detail["requestBody"])
        detail["responseBody"] = _pretty(detail["responseBody"])
        out.update(detail)
    return out


def _pretty(text: str | None) -> str | None:
    """Indented XML when ``text`` parses (hardened), else ``text`` as it was."""
    if not text or len(text) > _MAX_XML or not text.lstrip().startswith("<"):
        return text
    try:
        root = parse_xml(text.encode())
    except (SoapError, ValueError):
        return text
    etree.indent(root)
    return etree.tostring(root, encoding="unicode")


def _capture(state: RelayState, body: dict[str, Any]) -> web.Response:
    entity = _entity(state, body.get("entity"))
    switch = state.observer.inspector.capture
    if body.get("on") is True:
        switch.add(entity)
    elif body.get("on") is False:
        switch.discard(entity)
    else:
        raise BadRequest('"on" must be true or false')
    return web.json_response({"entity": entity, "capture": entity in switch})


async def _replay(state: RelayState, request: web.Request, seq: int) -> dict[str, Any]:
    inspector = state.observer.inspector
    row, captured = inspector.row(seq), inspector.captured(seq)
    if row is None or captured is None:
        raise EntityNotFound(f"call {seq} was not captured (or is gone): nothing to replay")
    _entity(state, row.entity)
    query = "&".join(p for p in captured.query.split("&") if p and "=***" not in p)
    target = quote(row.path) + (f"?{query}" if query else "")
    headers = [(n, v) for n, v in captured.request_headers
               if v != "***" and n.lower() not in ("content-length", "host", "transfer-encoding")]
    answer = await loopback.send(state, row.entity, row.method, target, request.host, headers,
                                 (captured.request_body or b""))
    return _answer(answer)


def _answer(answer: loopback.Answer, sent: bytes | None = None) -> dict[str, Any]:
    text = answer.body.decode("utf-8", "replace")
    code, string = fault_of(answer.body) if answer.status >= 400 else ("", "")
    out: dict[str, Any] = {
        "status": answer.status, "headers": answer.headers, "ms": round(answer.seconds * 1000, 2),
        "response": _pretty(text), "truncated": answer.truncated,
        "fault": {"code": code, "string": string} if code else None,
    }
    if sent is not None:
        out["request"] = sent.decode("utf-8", "replace")
    return out


async def _forms(state: RelayState, request: web.Request, entity: str) -> ServiceForms:
    answer = await loopback.send(state, entity, "GET", f"/{quote(entity)}?wsdl", request.host, [], b"")
    if answer.status != 200:
        raise BadRequest(f"the entity answered {answer.status} for its WSDL")
    try:
        return read_wsdl(answer.body)
    except SoapError as exc:
        raise BadRequest(f"the entity's WSDL does not parse: {exc}") from exc


async def _invoke(state: RelayState, request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    entity = _entity(state, body.get("entity"))
    if isinstance(body.get("xml"), str):
        data = body["xml"].encode()
        action, version = str(body.get("soapAction", "")), str(body.get("soapVersion", "1.1"))
    else:
        forms = await _forms(state, request, entity)
        operation = forms.operation(str(body.get("operation", "")))
        if operation is None:
            raise BadRequest(f"no operation {str(body.get('operation'))[:100]!r} in the WSDL")
        values = body.get("values") or {}
        if not isinstance(values, dict):
            raise BadRequest('"values" must be an object')
        data = envelope(forms, operation, {str(k): str(v) for k, v in values.items()})
        action, version = operation.soap_action, forms.soap_version
    if version == "1.2":
        headers = [("Content-Type", f'application/soap+xml; charset=utf-8; action="{action}"')]
    else:
        headers = [("Content-Type", "text/xml; charset=utf-8"), ("SOAPAction", f'"{action}"')]
    answer = await loopback.send(state, entity, "POST", f"/{quote(entity)}", request.host,
                                 headers, data)
    return _answer(answer, data)
