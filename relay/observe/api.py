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

from relay.exceptions import AccessDenied, BadRequest, EntityNotFound, RelayError
from relay.observe import loopback
from relay.observe.nodes import (
    CursorError,
    NodeParts,
    merge_calls,
    merge_charts,
    merge_namespace,
    parse_cursor,
)
from relay.observe.snapshot import call_part, calls_part, charts_part, namespace_part
from relay.observe.soapinfo import fault_of
from relay.observe.wsdl_forms import ServiceForms, envelope, read_wsdl
from relay.state import RelayState
from soap.envelope import parse_xml
from soap.exceptions import SoapError

__all__ = ["handle"]

_MAX_XML = 1024 * 1024


class NodeMissing(RelayError):
    """The cluster node holding a call did not answer in time."""

    status = 504
    code = "NodeMissing"


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
            return web.json_response(await _replay(state, request, _seq(name[6:-7]),
                                                   request.query.get("node", "")))
    elif request.method == "GET":
        if name == "namespace":
            return web.json_response(await _namespace(state))
        if name == "charts":
            charts = charts_part(state)
            others = await _others(state, "charts")
            return web.json_response(merge_charts(state.observer.node, charts, others))
        if name == "calls":
            return web.json_response(await _calls(state, request.query.get("after", "0")))
        if name.startswith("calls/"):
            return web.json_response(await _call(state, _seq(name[6:]), request.query.get("node", "")))
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


async def _others(state: RelayState, kind: str, after: dict[str, int] | None = None) -> NodeParts:
    """The other nodes' parts of a view (none on a single relay)."""
    if state.cluster is None:
        return {}
    return await state.cluster.console_parts(kind, after)


async def _namespace(state: RelayState) -> dict[str, Any]:
    own = state.observer.node
    merged = merge_namespace(own, namespace_part(state), await _others(state, "namespace"))
    return {"name": state.config.name, "node": own, **merged}


async def _calls(state: RelayState, text: str) -> dict[str, Any]:
    own = state.observer.node
    try:
        cursor = parse_cursor(text, own)
    except CursorError as exc:
        raise BadRequest(f"malformed cursor: {exc}") from exc
    local = calls_part(state, cursor.get(own, 0))
    return merge_calls(own, cursor, local, await _others(state, "calls", cursor))


async def _call_part(state: RelayState, seq: int, node: str) -> dict[str, Any]:
    """Call ``seq`` of ``node`` ("" or this node: here), captured parts raw."""
    if not node or node == state.observer.node or state.cluster is None:
        part = call_part(state, seq)
    else:
        answered, part = await state.cluster.console_call(node, seq)
        if not answered:
            raise NodeMissing(f"node {node[:64]!r} did not answer in time")
    if part is None:
        raise EntityNotFound(f"call {seq} is no longer in the inspector")
    return {**part, "node": node or state.observer.node}


async def _call(state: RelayState, seq: int, node: str) -> dict[str, Any]:
    out = await _call_part(state, seq, node)
    if out.get("captured"):
        out["requestBody"] = _pretty(out.get("requestBody"))
        out["responseBody"] = _pretty(out.get("responseBody"))
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


async def _replay(state: RelayState, request: web.Request, seq: int, node: str) -> dict[str, Any]:
    """Send a captured call again, from this node, to its own entity (whichever node
    captured it: its masked headers and body, the masked parts left out)."""
    call = await _call_part(state, seq, node)
    if not call.get("captured") or call.get("truncated"):
        raise EntityNotFound(f"call {seq} was not captured whole (or is gone): nothing to replay")
    entity = _entity(state, call["entity"])
    query = "&".join(p for p in str(call["query"]).split("&") if p and "=***" not in p)
    target = quote(str(call["path"])) + (f"?{query}" if query else "")
    headers = [(str(n), str(v)) for n, v in call["requestHeaders"]
               if v != "***" and str(n).lower() not in ("content-length", "host", "transfer-encoding")]
    body = (call["requestBody"] or "").encode()
    answer = await loopback.send(state, entity, str(call["method"]), target, request.host,
                                 headers, body)
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
