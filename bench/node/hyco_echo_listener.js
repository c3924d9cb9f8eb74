'use strict';
// S3: Microsoft's hyco-https listener answering every request with the same bytes and
// Content-Type (the echo our Python listener does), with no per-request logging.
//
// Usage: node hyco_echo_listener.js HOST:PORT ENTITY KEY_NAME KEY
// Prints "READY" once the control channel is open; SIGTERM closes it and exits 0.
// hyco-https comes from interop_tests/node (installed by `make bootstrap`).

const path = require('path');
const https = require(path.join(__dirname, '..', '..', 'interop_tests', 'node', 'node_modules', 'hyco-https'));

const [relay, entity, keyName, key] = process.argv.slice(2);
const listenUri = `ws://${relay}/$hc/${entity}?sb-hc-action=listen`;
const token = () => https.createRelayToken(`http://${relay}/${entity}`, keyName, key, 24 * 3600);

const server = https.createRelayedServer({ server: listenUri, token }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c)));
  req.on('end', () => {
    res.statusCode = 200;
    res.setHeader('Content-Type', req.headers['content-type'] || 'application/octet-stream');
    res.end(Buffer.concat(chunks));
  });
});

let ready = false;
server.on('listening', () => {
  if (!ready) {
    ready = true;
    process.stdout.write('READY\n');
  }
});
server.on('error', (event) => {
  process.stderr.write(`control channel error: ${(event && event.message) || event}\n`);
});
const stop = () => {
  server.close();
  setTimeout(() => process.exit(0), 200);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
server.listen();
