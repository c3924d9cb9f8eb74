'use strict';
// A hyco-ws listener (WS.createRelayedServer) that echoes every WebSocket message back
// (same type) and echoes the sender's close code.
//
// Usage: node ws_echo_listener.js --path ENTITY --key KEY [relay options] [--retry] [--max-errors N]
//          [--close-after N --close-code C --close-reason TEXT]
//   relay options: see relay_options.js (--relay, --key-name, --token, --token-in header|query,
//   --token-ttl, --tls, --insecure; env SOAPRELAY_*).
//   --retry        do not exit when the first connection fails
//   --max-errors N exit 3 after N control-channel errors or reconnects (default 20). hyco-ws
//                  reconnects at once, twice per failure (NOTES.md), so keep this small.
//   --close-after N  close each connection itself after echoing N messages, with --close-code
//                  (default 1000) and --close-reason (default "")
// Stdout: "READY <listen uri>" when the control channel opens, then JSON lines:
// {"event":"connection","protocol":...}, {"event":"message","type":...,"data":...},
// {"event":"close","code":N,"reason":"..."}, {"event":"listening"} (reconnects),
// {"event":"error","message":...}. SIGTERM/SIGINT: close and exit 0.

const WS = require('hyco-ws');
const { parseArgs, RELAY_BOOLEANS, relayConfig, hcUri, tokenFactory, withQueryToken, redact, emit, fail } =
  require('./relay_options');

function main() {
  const { opts } = parseArgs(process.argv.slice(2), { booleans: [...RELAY_BOOLEANS, 'retry'] });
  const cfg = relayConfig(opts);
  const maxErrors = Number(opts['max-errors'] || 20);
  const closeAfter = opts['close-after'] !== undefined ? Number(opts['close-after']) : null;

  const baseUri = hcUri(cfg, 'listen');
  const makeToken = tokenFactory(cfg, baseUri);
  const listenUri = withQueryToken(cfg, baseUri, makeToken && makeToken());
  const token = cfg.tokenIn === 'header' && makeToken ? makeToken : '';

  // Connects in the constructor; there is no listen() in hyco-ws.
  const server = WS.createRelayedServer({ server: listenUri, token }, (ws) => {
    let count = 0;
    ws.on('open', () => emit({ event: 'connection', protocol: ws.protocol || null }));
    ws.on('message', (data, flags) => {
      const binary = Boolean(flags && flags.binary);
      emit({ event: 'message', type: binary ? 'binary' : 'text',
        data: binary ? Buffer.from(data).toString('base64') : String(data) });
      ws.send(data, { binary });
      if (closeAfter !== null && ++count >= closeAfter) {
        ws.close(Number(opts['close-code'] || 1000), opts['close-reason'] || '');
      }
    });
    ws.on('close', (code, reason) => emit({ event: 'close', code, reason: reason || '' }));
    ws.on('error', (err) => {
      process.stderr.write(`connection error: ${err && err.message ? err.message : err}\n`);
      emit({ event: 'connection-error', message: String(err && err.message ? err.message : err) });
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
  // Without an 'error' listener hyco-ws's emit('error') throws and kills the process.
  server.on('error', (event) => {
    const message = (event && (event.message || event)) + '';
    process.stderr.write(`control channel error: ${message}\n`);
    if (!ready && !opts.retry) fail(`listener could not connect: ${message}`, 2);
    emit({ event: 'error', message });
    tooMuchChurn();
  });

  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

try {
  main();
} catch (err) {
  fail(err.message, 2);
}
