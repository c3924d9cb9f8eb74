'use strict';
// A node-soap client: fetch a WSDL, call one operation, print the outcome as one JSON line.
//
// Usage: node soap_client.js URL_OF_WSDL OP JSONARGS [--header 'Name: value']... [--endpoint URL]
//          [--timeout-ms MS] [--soap12] [--soap-header XML]...
//   e.g. node soap_client.js 'http://127.0.0.1:9350/payroll?wsdl' GetSalary '{"employeeId":7}' \
//          --header "ServiceBusAuthorization: $TOKEN"
//   --header     sent with the WSDL fetch and with the call (repeatable)
//   --endpoint   call this URL instead of the WSDL's soap:address
//   --timeout-ms HTTP timeout for the call (default 30000)
//   --soap12     send SOAP 1.2 (node-soap's forceSoap12Headers: soap-envelope namespace and
//                application/soap+xml with action=; node-soap never picks 1.2 from the WSDL)
//   --soap-header XML  add this SOAP header block to the call (client.addSoapHeader; repeatable),
//                e.g. a RelayAccessToken element carrying the token
// Stdout (exit 0):   {"fault":false,"result":{...}}
//                    {"fault":true,"status":500,"faultcode":"...","faultstring":"...","detail":...}
//                    (SOAP 1.2 faults: faultcode = Code.Value, faultstring = Reason.Text;
//                    always plain strings, xml:lang dropped)
// Other failures (WSDL fetch failed, non-SOAP error reply, connection refused): a JSON line
// {"error":"...","status":N|null,"body":"..."} on stdout, the message on stderr, exit 1.
// One-shot script: no READY line. Usage errors exit 2.

const soap = require('soap');
const { parseArgs, emit, fail } = require('./relay_options');

function parseHeaders(list) {
  const headers = {};
  for (const h of list || []) {
    const i = h.indexOf(':');
    if (i <= 0) fail(`bad --header ${JSON.stringify(h)}, expected 'Name: value'`, 2);
    headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
  }
  return headers;
}

// The SOAP 1.1 or 1.2 Fault object node-soap parsed, if any.
function faultOf(err) {
  const body = err && err.root && err.root.Envelope && err.root.Envelope.Body;
  return body && body.Fault ? body.Fault : null;
}

// node-soap gives an element with attributes as {attributes, $value}: the relay's SOAP 1.1
// faultstring and every SOAP 1.2 Reason/Text carry xml:lang, so take the text out.
function textOf(value) {
  if (value && typeof value === 'object' && '$value' in value) return value.$value;
  return value === undefined ? null : value;
}

function bodyText(data) {
  if (data === undefined || data === null) return null;
  return typeof data === 'string' ? data : Buffer.isBuffer(data) ? data.toString('utf8') : JSON.stringify(data);
}

async function main() {
  const { opts, positional } = parseArgs(process.argv.slice(2), {
    booleans: ['soap12'], multi: ['header', 'soap-header'],
  });
  const [wsdlUrl, op, jsonArgs] = positional;
  if (!wsdlUrl || !op) fail("usage: node soap_client.js URL_OF_WSDL OP JSONARGS [--header 'Name: value']... [--endpoint URL]", 2);
  let args;
  try {
    args = JSON.parse(jsonArgs || '{}');
  } catch (err) {
    fail(`JSONARGS is not JSON: ${err.message}`, 2);
  }
  const headers = parseHeaders(opts.header);

  let client;
  try {
    client = await soap.createClientAsync(
      wsdlUrl, { wsdl_headers: headers, forceSoap12Headers: Boolean(opts.soap12) }, opts.endpoint);
  } catch (err) {
    // node-soap reports a failed WSDL fetch as "Invalid WSDL URL: ...\n Code: 502\n Response Body: ..."
    const m = /Code: (\d+)/.exec(err.message);
    const status = err.response ? err.response.status : m ? Number(m[1]) : null;
    emit({ error: `WSDL fetch failed: ${err.message}`, status, body: bodyText(err.response && err.response.data) });
    fail(`WSDL fetch from ${wsdlUrl} failed: ${err.message}`, 1);
  }
  for (const [name, value] of Object.entries(headers)) client.addHttpHeader(name, value);
  for (const xml of opts['soap-header'] || []) client.addSoapHeader(xml);
  const method = client[`${op}Async`];
  if (typeof method !== 'function') fail(`the WSDL has no operation ${op}`, 2);

  try {
    const [result] = await method.call(client, args, { timeout: Number(opts['timeout-ms'] || 30000) });
    emit({ fault: false, result });
  } catch (err) {
    const fault = faultOf(err);
    const status = err.response ? err.response.status : null;
    if (fault) {
      emit({
        fault: true, status,
        faultcode: textOf(fault.faultcode || (fault.Code && fault.Code.Value)),
        faultstring: textOf(fault.faultstring || (fault.Reason && fault.Reason.Text)),
        detail: fault.detail || fault.Detail || null,
      });
      return;
    }
    // A reply that is not XML comes back as node-soap's own {Fault: {faultstring: 'Invalid XML'}}
    // with no parsed envelope: report it as an error with the status and body.
    const message = err.message || (err.Fault && `${err.Fault.faultstring}: ${err.Fault.detail}`) || String(err);
    emit({ error: message, status, body: bodyText(err.body !== undefined ? err.body : err.response && err.response.data) });
    fail(`call ${op} failed: ${message}`, 1);
  }
}

main().catch((err) => fail(err.stack || String(err), 1));
