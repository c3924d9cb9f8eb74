// soap-relay console: everything shown goes through textContent (never innerHTML):
// SOAP bodies, operation names and fault strings come from strangers.
"use strict";

const TOKEN_KEY = "soaprelay.token";
const API = "/$console/api/";
const state = { cursor: "0", calls: [], selected: null, forms: null, operation: null, timers: [] };

function $(id) { return document.getElementById(id); }

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

// -- signing in: a connection string is turned into a token here; only the token is kept --

function parseConnectionString(text) {
  const parts = {};
  for (const piece of text.split(";")) {
    const at = piece.indexOf("=");
    if (at > 0) parts[piece.slice(0, at).trim().toLowerCase()] = piece.slice(at + 1).trim();
  }
  if (!parts.sharedaccesskeyname || !parts.sharedaccesskey) {
    throw new Error("a connection string needs SharedAccessKeyName and SharedAccessKey");
  }
  return { name: parts.sharedaccesskeyname, key: parts.sharedaccesskey };
}

async function tokenFrom(credential) {
  const text = credential.trim();
  if (text.startsWith("SharedAccessSignature ")) return text;
  const { name, key } = parseConnectionString(text);
  if (!window.crypto || !window.crypto.subtle) {
    throw new Error("this page is not in a secure context: paste a SAS token instead");
  }
  const resource = encodeURIComponent(location.protocol + "//" + location.host + "/").toLowerCase();
  const expiry = Math.floor(Date.now() / 1000) + 3600;
  const enc = new TextEncoder();
  const hmacKey = await crypto.subtle.importKey("raw", enc.encode(key),
    { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", hmacKey, enc.encode(resource + "\n" + expiry));
  const sig = btoa(String.fromCharCode(...new Uint8Array(mac)));
  return "SharedAccessSignature sr=" + resource + "&sig=" + encodeURIComponent(sig) +
    "&se=" + expiry + "&skn=" + encodeURIComponent(name);
}

async function api(path, body) {
  const headers = { "Authorization": sessionStorage.getItem(TOKEN_KEY) || "" };
  const init = { headers: headers, cache: "no-store" };
  if (body !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(API + path, init);
  if (response.status === 401 || response.status === 403) {
    signOut("Not signed in: " + response.status + " " + response.statusText);
    throw new Error("not signed in");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((data.message || data.error || response.statusText) + " (" + response.status + ")");
  return data;
}

async function signIn(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const token = await tokenFrom($("credential").value);
    sessionStorage.setItem(TOKEN_KEY, token);
    $("credential").value = "";
    await api("namespace");
    start();
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    if (!$("login-error").textContent) $("login-error").textContent = String(error.message || error);
  }
}

function signOut(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
  $("app").hidden = true;
  $("tabs").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = why || "";
}

function start() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("tabs").hidden = false;
  refreshNamespace();
  refreshCalls();
  state.timers.push(setInterval(refreshNamespace, 2000), setInterval(refreshCalls, 1000));
}

function showTab(name) {
  for (const button of document.querySelectorAll("#tabs button[data-tab]")) {
    button.classList.toggle("active", button.dataset.tab === name);
  }
  for (const tab of document.querySelectorAll(".tab")) tab.hidden = tab.id !== "tab-" + name;
}

// -- the namespace -------------------------------------------------------------------------

function time(seconds) { return new Date(seconds * 1000).toLocaleTimeString(); }

function chart(series, pick, cls) {
  const svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", "0 0 90 30");
  svg.setAttribute("preserveAspectRatio", "none");
  const values = series.map(pick);
  const top = Math.max(1e-9, ...values);
  const line = document.createElementNS(svgNs, "polyline");
  line.setAttribute("class", cls);
  line.setAttribute("points", values.map((v, i) => i + "," + (29 - (v / top) * 28).toFixed(2)).join(" "));
  svg.appendChild(line);
  const title = document.createElementNS(svgNs, "title");
  title.textContent = cls + ": last " + values[values.length - 1].toFixed(2) + ", peak " + top.toFixed(2);
  svg.appendChild(title);
  return svg;
}

async function refreshNamespace() {
  let ns, charts;
  try { [ns, charts] = await Promise.all([api("namespace"), api("charts")]); } catch (e) { return; }
  const missing = (ns.nodes || []).filter((n) => n.state === "missing").map((n) => n.name);
  $("ns-name").textContent = ns.name + (ns.node ? " (" + ns.node + ")" : "") +
    (missing.length ? "  missing: " + missing.join(", ") : "");
  const body = $("entities").tBodies[0];
  clear(body);
  const select = $("c-entity");
  const chosen = select.value;
  clear(select);
  for (const entity of ns.entities) {
    const row = el("tr");
    row.dataset.entity = entity.path;
    row.appendChild(el("td", entity.path));
    row.appendChild(el("td", entity.kind + (entity.dynamic ? " (dynamic)" : "")));
    row.appendChild(el("td", entity.listeners.length, "listener-count"));
    const series = (charts.entities[entity.path] || []);
    const rate = series.map((s) => [s[1] / 10, s[1] ? s[2] / s[1] : 0]);
    const callsCell = el("td"), errorsCell = el("td");
    if (rate.length) {
      callsCell.appendChild(chart(rate, (r) => r[0], "calls"));
      errorsCell.appendChild(chart(rate, (r) => r[1], "errors"));
    }
    row.appendChild(callsCell);
    row.appendChild(errorsCell);
    const box = el("input");
    box.type = "checkbox";
    box.checked = entity.capture;
    box.className = "capture";
    box.addEventListener("change", () => api("capture", { entity: entity.path, on: box.checked }));
    const cell = el("td");
    cell.appendChild(box);
    row.appendChild(cell);
    body.appendChild(row);
    const option = el("option", entity.path);
    option.value = entity.path;
    select.appendChild(option);
  }
  if (chosen) select.value = chosen;
  const listeners = $("listeners").tBodies[0];
  clear(listeners);
  for (const entity of ns.entities) {
    for (const l of entity.listeners) {
      const row = el("tr");
      for (const text of [l.id, l.entity, time(l.since), l.remote, l.agent, l.node]) row.appendChild(el("td", text));
      listeners.appendChild(row);
    }
  }
  const presence = $("presence");
  clear(presence);
  for (const event of ns.presence.slice().reverse()) {
    presence.appendChild(el("li", event.time + "  " + event.operationName + "  " + event.entityName +
      "  " + event.listenerId + "  " + event.remoteAddress + (event.reason ? "  (" + event.reason + ")" : "")));
  }
}

// -- the inspector -------------------------------------------------------------------------

function matches(call) {
  const want = (id) => $(id).value.trim().toLowerCase();
  const entity = want("f-entity"), op = want("f-operation"), status = want("f-status"), fault = want("f-fault");
  return (!entity || call.entity.toLowerCase().includes(entity)) &&
    (!op || call.operation.toLowerCase().includes(op)) &&
    (!status || String(call.status).startsWith(status)) &&
    (!fault || (call.faultCode + " " + call.faultString).toLowerCase().includes(fault));
}

async function refreshCalls() {
  let data;
  try { data = await api("calls?after=" + encodeURIComponent(state.cursor)); } catch (e) { return; }
  for (const call of data.calls) state.calls.push(call);
  state.cursor = data.cursor;
  if (state.calls.length > 1000) state.calls.splice(0, state.calls.length - 1000);
  if (data.calls.length) renderCalls();
}

function renderCalls() {
  const body = $("calls").tBodies[0];
  clear(body);
  for (const call of state.calls.slice().reverse()) {
    if (!matches(call)) continue;
    const row = el("tr", null, call.faultCode ? "fault" : call.status >= 400 ? "error" : "");
    row.dataset.seq = call.seq;
    row.dataset.node = call.node;
    for (const text of [time(call.time), call.entity, call.soapVersion, call.operation, call.status,
      call.faultCode ? call.faultCode + ": " + call.faultString : "",
      call.requestBytes + " / " + call.responseBytes, call.relayMs, call.listenerMs, call.listener,
      call.trackingId, call.node]) {
      row.appendChild(el("td", text));
    }
    row.addEventListener("click", () => showCall(call.seq, call.node));
    body.appendChild(row);
  }
}

function headerText(headers) {
  return (headers || []).map((h) => h[0] + ": " + h[1]).join("\n");
}

function onNode(node) { return node ? "?node=" + encodeURIComponent(node) : ""; }

async function showCall(seq, node) {
  const call = await api("calls/" + seq + onNode(node));
  state.selected = { seq: seq, node: node };
  $("detail").hidden = false;
  $("replay-result").hidden = true;
  $("d-seq").textContent = "#" + seq + (node ? " on " + node : "");
  $("d-summary").textContent = call.method + " " + call.path + " -> " + call.status +
    (call.faultCode ? " fault " + call.faultCode + ": " + call.faultString : "") +
    "; operation " + (call.operation || "?") + ", listener " + (call.listener || "-") +
    (call.captured ? "" : "  (bodies not captured: switch capture on for this entity)");
  $("d-req-headers").textContent = headerText(call.requestHeaders);
  $("d-req-body").textContent = call.requestBody || "";
  $("d-resp-headers").textContent = headerText(call.responseHeaders);
  $("d-resp-body").textContent = call.responseBody || "";
  $("replay").disabled = !call.captured;
}

async function replay() {
  if (state.selected === null) return;
  $("replay-result").hidden = false;
  try {
    const answer = await api("calls/" + state.selected.seq + "/replay" + onNode(state.selected.node), {});
    $("r-status").textContent = answer.status + " in " + answer.ms + " ms" +
      (answer.fault ? " fault " + answer.fault.code + ": " + answer.fault.string : "");
    $("r-body").textContent = answer.response || "";
  } catch (error) {
    $("r-status").textContent = String(error.message || error);
  }
}

// -- the test client -----------------------------------------------------------------------

async function loadWsdl() {
  $("c-error").textContent = "";
  clear($("operations"));
  $("op-form").hidden = true;
  try {
    state.forms = await api("wsdl?entity=" + encodeURIComponent($("c-entity").value));
  } catch (error) {
    $("c-error").textContent = String(error.message || error);
    return;
  }
  for (const op of state.forms.operations) {
    const item = el("li");
    const button = el("button", op.name, "operation");
    button.type = "button";
    button.addEventListener("click", () => showOperation(op));
    item.appendChild(button);
    $("operations").appendChild(item);
  }
}

function showOperation(op) {
  state.operation = op;
  $("op-form").hidden = false;
  $("op-name").textContent = op.name + (op.soapAction ? "  (" + op.soapAction + ")" : "");
  const fields = $("op-fields");
  clear(fields);
  for (const field of op.fields) {
    const label = el("label", field.name + " (" + (field.type || "any") + ") ");
    const input = el("input");
    input.name = field.name;
    input.dataset.field = field.name;
    label.appendChild(input);
    fields.appendChild(label);
  }
}

async function invoke(event) {
  event.preventDefault();
  const values = {};
  for (const input of $("op-fields").querySelectorAll("input")) values[input.dataset.field] = input.value;
  $("c-result").hidden = false;
  try {
    const answer = await api("invoke", { entity: $("c-entity").value, operation: state.operation.name, values: values });
    $("c-request").textContent = answer.request || "";
    $("c-status").textContent = answer.status + " in " + answer.ms + " ms";
    $("c-fault").hidden = !answer.fault;
    $("c-fault").textContent = answer.fault ? "Fault " + answer.fault.code + ": " + answer.fault.string : "";
    $("c-response").textContent = answer.response || "";
  } catch (error) {
    $("c-status").textContent = String(error.message || error);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", signIn);
  $("logout").addEventListener("click", () => signOut(""));
  for (const button of document.querySelectorAll("#tabs button[data-tab]")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  for (const id of ["f-entity", "f-operation", "f-status", "f-fault"]) $(id).addEventListener("input", renderCalls);
  $("replay").addEventListener("click", replay);
  $("load-wsdl").addEventListener("click", loadWsdl);
  $("op-form").addEventListener("submit", invoke);
  if (sessionStorage.getItem(TOKEN_KEY)) start();
});
