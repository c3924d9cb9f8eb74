'use strict';
// A hyco-ws WebSocket sender: connects to ENTITY through the relay (sb-hc-action=connect),
// sends messages, prints what comes back, then closes.
//
// Usage: node ws_sender.js --path ENTITY --key KEY [relay options]
//          [--protocol P]... [--text STR]... [--binary BASE64]... [--stdin]
//          [--expect N] [--timeout-ms MS] [--close-code CODE] [--close-reason TEXT]
//   relay options: see relay_options.js (--relay, --key-name, --token, --token-in header|query,
//   --no-token, --tls, --insecure; env SOAPRELAY_*).
//   --protocol P      request subprotocol P (repeatable; sent as one Sec-WebSocket-Protocol)
//   --text/--binary   messages to send, in argv order (binary given as base64)
//   --stdin           also send one message per stdin line, each a JSON object
//                     {"type":"text"|"binary","data":...} (binary data base64), after argv ones
//   --expect N        wait for N received messages before closing (default: number sent)
//   --timeout-ms MS   give up waiting after MS (default 10000): exit 1 after closing
//   --close-code C    close code to send (default 1000); --close-reason TEXT (default "")
// Stdout: "READY protocol=<negotiated or ->" once open; one JSON line per received message
// {"type":"text","data":"..."} / {"type":"binary","data":"<base64>"}; finally
// {"type":"close","code":N,"reason":"...","sentCode":C|null} where code/reason are from the
// peer's close frame (1006 if none arrived) and sentCode is null when the peer closed first.
// A failed upgrade prints {"type":"upgrade-failed","status":N,"statusMessage":"...","headers":{...},"body":"..."}
// and exits 2. Token: ServiceBusAuthorization header (as WS.relayedConnect does) or
// sb-hc-token query with --token-in query.

const WS = require('hyco-ws'); // the ws 1.1.5 module plus relay helpers
const { parseArgs, RELAY_BOOLEANS, relayConfig, hcUri, tokenFactory, withQueryToken, redact, emit, fail } =
  require('./relay_options');

// Exit once stdout and stderr are flushed. process.exit() drops whatever a full pipe has
// not taken yet: Node writes to a pipe asynchronously once its 64 KiB buffer is full, so a
// big echoed message printed just before exiting was cut short.
function exitAfterFlush(code) {
  let pending = 2;
  const done = () => {
    pending -= 1;
    if (pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

function readStdinMessages() {
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d) => { text += d; });
    process.stdin.on('end', () => {
      try {
        resolve(text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l)));
      } catch (err) {
        reject(new Error(`bad stdin line: ${err.message}`));
      }
    });
    process.stdin.on('error', reject);
  });
}

// Messages from argv, in order: [{type, data}] with data a string (text) or base64 (binary).
function argvMessages(argv) {
  const out = [];
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(text|binary)(?:=(.*))?$/s.exec(argv[i]);
    if (m) out.push({ type: m[1], data: m[2] !== undefined ? m[2] : argv[++i] });
  }
  return out;
}

function toWire(msg) {
  if (msg.type === 'binary') return [Buffer.from(msg.data, 'base64'), { binary: true }];
  if (msg.type === 'text') return [String(msg.data), { binary: false }];
  throw new Error(`unknown message type ${JSON.stringify(msg.type)}`);
}

async function main() {
  const argv = process.argv.slice(2);
  const { opts } = parseArgs(argv, { booleans: [...RELAY_BOOLEANS, 'stdin'], multi: ['protocol', 'text', 'binary'] });
  const cfg = relayConfig(opts);
  const messages = argvMessages(argv).concat(opts.stdin ? await readStdinMessages() : []);
  const expect = opts.expect !== undefined ? Number(opts.expect) : messages.length;
  const timeoutMs = Number(opts['timeout-ms'] || 10000);
  const closeCode = Number(opts['close-code'] || 1000);
  const closeReason = opts['close-reason'] || '';

  const baseUri = hcUri(cfg, 'connect');
  const makeToken = tokenFactory(cfg, baseUri);
  const token = makeToken && makeToken();
  const uri = withQueryToken(cfg, baseUri, token);
  const headers = cfg.tokenIn === 'header' && token ? { ServiceBusAuthorization: token } : {};
  // WS.relayedConnect(uri, token) cannot request subprotocols, so construct the ws 1.1.5
  // client directly with the same header it would send.
  const ws = new WS(uri, opts.protocol || [], { headers });

  let received = 0;
  let peerClose = null;
  let timer = null;
  let exitCode = 0;
  let sentCode = null; // stays null when the peer closed first (ws 1.1.5 echoes its code)

  const closeNow = () => {
    clearTimeout(timer);
    if (ws.readyState === WS.OPEN) {
      sentCode = closeCode;
      ws.close(closeCode, closeReason);
    }
  };

  let upgradeFailed = false;
  ws.on('unexpected-response', (req, res) => {
    // ws 1.1.5 emits 'close' right after this event; the body is read first, then we exit.
    upgradeFailed = true;
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d) => { body += d; });
    res.on('end', () => {
      emit({ type: 'upgrade-failed', status: res.statusCode, statusMessage: res.statusMessage,
        headers: res.headers, body });
      process.stderr.write(`error: upgrade to ${redact(uri)} failed: ${res.statusCode} ${res.statusMessage}\n`);
      exitAfterFlush(2);
    });
  });
  ws.on('error', (err) => {
    process.stderr.write(`error: ${err && err.message ? err.message : err}\n`);
    if (ws.readyState !== WS.OPEN) process.exit(2); // handshake problems (bad subprotocol, refused, ...)
  });
  ws.on('open', () => {
    // ws 1.1.5 reports our own close code on 'close' when we closed first; hook the
    // receiver to capture the code/reason of the close frame the peer actually sent.
    const onclose = ws._receiver.onclose;
    ws._receiver.onclose = function (code, data, flags) {
      peerClose = { code, reason: data || '' };
      return onclose.call(this, code, data, flags);
    };
    process.stdout.write(`READY protocol=${ws.protocol || '-'}\n`);
    for (const msg of messages) {
      const [data, options] = toWire(msg);
      ws.send(data, options);
    }
    if (received >= expect) {
      closeNow();
    } else {
      timer = setTimeout(() => {
        process.stderr.write(`error: timed out after ${timeoutMs} ms with ${received}/${expect} messages\n`);
        exitCode = 1;
        closeNow();
      }, timeoutMs);
    }
  });
  ws.on('message', (data, flags) => {
    received++;
    if (flags && flags.binary) emit({ type: 'binary', data: Buffer.from(data).toString('base64') });
    else emit({ type: 'text', data: String(data) });
    if (received >= expect) closeNow();
  });
  ws.on('close', () => {
    if (upgradeFailed) return;
    clearTimeout(timer);
    const got = peerClose || { code: 1006, reason: '' };
    emit({ type: 'close', code: got.code, reason: got.reason, sentCode });
    exitAfterFlush(exitCode);
  });
}

main().catch((err) => fail(err.message, 2));
