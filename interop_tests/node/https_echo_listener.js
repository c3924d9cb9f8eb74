'use strict';
// A hyco-https listener (https.createRelayedServer) that echoes what it receives.
//
// Usage: node https_echo_listener.js --path ENTITY --key KEY [relay options] [--retry] [--max-errors N]
//          [--keepalive SECONDS]
//   relay options: see relay_options.js (--relay HOST:PORT, --key-name, --token, --token-in
//   header|query, --token-ttl, --tls, --insecure; env SOAPRELAY_*).
//   --retry        keep going (hyco-https reconnects with its own backoff) when the first
//                  connection fails, instead of exiting 2
//   --max-errors N exit 3 after N control-channel errors or reconnects (default 50): a guard
//                  against reconnect loops
//   --keepalive S  pass keepAliveTimeout (hyco-https then sends an unsolicited pong every S s)
//
// Routes (matched on the end of the request path, any entity prefix):
//   GET  .../info          200 JSON {method, url, headers, httpVersion}
//   GET  .../big?size=N[&chunk=M][&ms=T]  N bytes, byte i = i % 251 (application/octet-stream);
//                          with chunk=M the body is written in M-byte res.write() calls; with
//                          ms=T the response starts after T ms
//   ANY  .../status/NNN    status NNN, text/plain body "status NNN\n" (none for HEAD/204/304)
//   ANY  .../slow?ms=N     200 "slow\n" after N ms
//   other methods with a body (POST, PUT, ...): 200, the request body echoed with the
//                          request's Content-Type (application/octet-stream if none)
//   anything else          404 JSON {error}
// Stdout: "READY <listen uri>" once the control channel is open (the 'listening' event),
// then one JSON line per event: {"event":"request",...}, {"event":"listening"} (reconnects),
// {"event":"error",...}. Errors also go to stderr. SIGTERM/SIGINT: close and exit 0.

const https = require('hyco-https');
const { parseArgs, RELAY_BOOLEANS, relayConfig, hcUri, tokenFactory, withQueryToken, redact, emit, fail } =
  require('./relay_options');

function bigBody(size) {
  const buf = Buffer.alloc(size);
  for (let i = 0; i < size; i++) buf[i] = i % 251;
  return buf;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c)));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res, status, contentType, body) {
  res.statusCode = status;
  if (contentType) res.setHeader('Content-Type', contentType);
  res.end(body);
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://listener.invalid');
  const p = url.pathname;
  emit({ event: 'request', method: req.method, url: req.url, headers: req.headers });
  let m;
  if ((m = /\/status\/(\d{3})$/.exec(p))) {
    const status = Number(m[1]);
    const noBody = req.method === 'HEAD' || status === 204 || status === 304;
    send(res, status, noBody ? null : 'text/plain', noBody ? undefined : `status ${status}\n`);
  } else if (req.method === 'GET' && p.endsWith('/info')) {
    send(res, 200, 'application/json', JSON.stringify({
      method: req.method, url: req.url, headers: req.headers, httpVersion: req.httpVersion,
    }));
  } else if (req.method === 'GET' && p.endsWith('/big')) {
    const size = Number(url.searchParams.get('size') || 0);
    const chunk = Number(url.searchParams.get('chunk') || 0);
    const body = bigBody(size);
    await new Promise((resolve) => setTimeout(resolve, Number(url.searchParams.get('ms') || 0)));
    res.statusCode = 200;
    res.setHeader('Content-Type', 'application/octet-stream');
    if (chunk > 0) {
      for (let off = 0; off < size; off += chunk) res.write(body.subarray(off, off + chunk));
      res.end();
    } else {
      res.end(body);
    }
  } else if (p.endsWith('/slow')) {
    const ms = Number(url.searchParams.get('ms') || 1000);
    setTimeout(() => send(res, 200, 'text/plain', 'slow\n'), ms);
  } else if (req.method !== 'GET' && req.method !== 'HEAD') {
    const body = await readBody(req);
    send(res, 200, req.headers['content-type'] || 'application/octet-stream', body);
  } else {
    send(res, 404, 'application/json', JSON.stringify({ error: `no route for ${req.method} ${p}` }));
  }
}

function main() {
  const { opts } = parseArgs(process.argv.slice(2), { booleans: [...RELAY_BOOLEANS, 'retry'] });
  const cfg = relayConfig(opts);
  const maxErrors = Number(opts['max-errors'] || 50);

  const baseUri = hcUri(cfg, 'listen');
  const makeToken = tokenFactory(cfg, baseUri);
  const listenUri = withQueryToken(cfg, baseUri, makeToken && makeToken());
  // hyco-https insists on a non-null `token`; '' makes it send no ServiceBusAuthorization header.
  const token = cfg.tokenIn === 'header' && makeToken ? makeToken : '';

  const options = { server: listenUri, token };
  if (opts.keepalive) {
    const moment = require('moment');
    options.keepAliveTimeout = moment.duration(Number(opts.keepalive), 'seconds');
  }
  const server = https.createRelayedServer(options, (req, res) => {
    handle(req, res).catch((err) => {
      process.stderr.write(`handler error: ${err.stack}\n`);
      if (!res.finished) send(res, 500, 'text/plain', String(err));
    });
  });

  let ready = false;
  let churn = 0;
  const tooMuchChurn = () => {
    if (++churn >= maxErrors) fail(`${churn} control-channel errors/reconnects, giving up`, 3);
  };
  server.on('listening', () => {
    if (!ready) {
      ready = true;
      process.stdout.write(`READY ${redact(listenUri)}\n`);
    } else {
      emit({ event: 'listening' });
      tooMuchChurn();
    }
  });
  server.on('error', (event) => {
    const message = (event && (event.message || (event.error && event.error.message))) || String(event);
    process.stderr.write(`control channel error: ${message}\n`);
    if (!ready && !opts.retry) fail(`listener could not connect: ${message}`, 2);
    emit({ event: 'error', message });
    tooMuchChurn();
  });

  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  server.listen();
}

try {
  main();
} catch (err) {
  fail(err.message, 2);
}
