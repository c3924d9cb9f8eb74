'use strict';
// Relay connection options shared by the interop scripts: argv/env parsing and the
// Hybrid Connections URLs built from them.
//
// Options (flag, then env fallback):
//   --relay HOST:PORT      SOAPRELAY_RELAY        default 127.0.0.1:9350
//   --path ENTITY          SOAPRELAY_PATH         entity path, e.g. "echo" or "a/b"
//   --key-name NAME        SOAPRELAY_KEY_NAME     default RootManageSharedAccessKey
//   --key KEY              SOAPRELAY_KEY          SAS key text (used as-is, not base64-decoded)
//   --token TOKEN          SOAPRELAY_TOKEN        use this exact token (no key needed)
//   --token-ttl SECONDS    SOAPRELAY_TOKEN_TTL    default 3600
//   --token-in header|query                       default header (ServiceBusAuthorization)
//   --no-token                                    send no token at all
//   --tls                  SOAPRELAY_TLS=1        wss:// and https:// instead of ws:// and http://
//   --insecure             SOAPRELAY_INSECURE=1   accept any TLS certificate
//                          (sets NODE_TLS_REJECT_UNAUTHORIZED=0 in this process; prefer
//                          NODE_EXTRA_CA_CERTS=cert.pem in the environment instead)
//
// The packages' own URL helpers (createRelayListenUri etc.) hard-code "wss://NS:443", so
// the URLs are built here; see NOTES.md.

const https = require('hyco-https');

// Parse "--name value", "--name=value" and bare "--flag" arguments. Flags listed in
// `booleans` never take a value; names listed in `multi` collect every occurrence in an
// array. Returns {opts, positional}.
function parseArgs(argv, { booleans = [], multi = [] } = {}) {
  const opts = {};
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const m = /^--([^=]+)(?:=(.*))?$/s.exec(arg);
    if (!m) {
      positional.push(arg);
      continue;
    }
    const name = m[1];
    let value;
    if (booleans.includes(name)) {
      value = m[2] === undefined ? true : !['0', 'false', 'no'].includes(m[2]);
    } else if (m[2] !== undefined) {
      value = m[2];
    } else if (i + 1 < argv.length) {
      value = argv[++i];
    } else {
      throw new Error(`option --${name} needs a value`);
    }
    if (multi.includes(name)) {
      (opts[name] = opts[name] || []).push(value);
    } else {
      opts[name] = value;
    }
  }
  return { opts, positional };
}

const RELAY_BOOLEANS = ['tls', 'insecure', 'no-token'];

function envFlag(name) {
  return ['1', 'true', 'yes'].includes(String(process.env[name] || '').toLowerCase());
}

// Build the relay configuration from parsed options + environment.
function relayConfig(opts) {
  const cfg = {
    relay: opts.relay || process.env.SOAPRELAY_RELAY || '127.0.0.1:9350',
    path: (opts.path || process.env.SOAPRELAY_PATH || '').replace(/^\/+/, ''),
    keyName: opts['key-name'] || process.env.SOAPRELAY_KEY_NAME || 'RootManageSharedAccessKey',
    key: opts.key || process.env.SOAPRELAY_KEY || null,
    token: opts.token || process.env.SOAPRELAY_TOKEN || null,
    tokenTtl: Number(opts['token-ttl'] || process.env.SOAPRELAY_TOKEN_TTL || 3600),
    tokenIn: opts['token-in'] || 'header',
    noToken: Boolean(opts['no-token']),
    tls: Boolean(opts.tls) || envFlag('SOAPRELAY_TLS'),
    insecure: Boolean(opts.insecure) || envFlag('SOAPRELAY_INSECURE'),
  };
  if (!cfg.path) throw new Error('missing --path (or SOAPRELAY_PATH)');
  if (!['header', 'query'].includes(cfg.tokenIn)) throw new Error('--token-in must be header or query');
  if (!cfg.noToken && !cfg.token && !cfg.key) {
    throw new Error('missing --key (or SOAPRELAY_KEY), --token or --no-token');
  }
  if (cfg.insecure) {
    // Read by Node's TLS layer on every connect, so setting it here is enough.
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  }
  return cfg;
}

// ws[s]://HOST:PORT/$hc/PATH?sb-hc-action=ACTION
function hcUri(cfg, action) {
  return `${cfg.tls ? 'wss' : 'ws'}://${cfg.relay}/$hc/${cfg.path}?sb-hc-action=${action}`;
}

// http[s]://HOST:PORT/PATH  (the HTTP sender address; no $hc)
function httpUri(cfg) {
  return `${cfg.tls ? 'https' : 'http'}://${cfg.relay}/${cfg.path}`;
}

// A function returning a fresh token for `uri`, or null when no token is to be sent.
function tokenFactory(cfg, uri) {
  if (cfg.noToken) return null;
  if (cfg.token) return () => cfg.token;
  return () => https.createRelayToken(uri, cfg.keyName, cfg.key, cfg.tokenTtl);
}

// Put the token into the query (sb-hc-token) when asked; returns the URI to open.
function withQueryToken(cfg, uri, token) {
  if (cfg.tokenIn !== 'query' || !token) return uri;
  return `${uri}&sb-hc-token=${encodeURIComponent(token)}`;
}

// Remove sb-hc-token from a URI before printing it.
function redact(uri) {
  return uri.replace(/([?&]sb-hc-token=)[^&]*/, '$1REDACTED');
}

// Print one JSON line on stdout.
function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function fail(message, code = 1) {
  process.stderr.write(`error: ${message}\n`);
  process.exit(code);
}

module.exports = {
  parseArgs, RELAY_BOOLEANS, relayConfig, hcUri, httpUri, tokenFactory, withQueryToken,
  redact, emit, fail,
};
