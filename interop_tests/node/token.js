'use strict';
// Print a SAS token made by hyco-https's createRelayToken(uri, keyName, key, expirationSeconds).
//
// Usage: node token.js URI KEYNAME KEY [TTL_SECONDS]
//   e.g. node token.js ws://127.0.0.1:9350/\$hc/payroll?sb-hc-action=listen RootManageSharedAccessKey s3cr3t 60
// Output: the token on one line ("SharedAccessSignature sr=...&sig=...&se=...&skn=...").
// One-shot script: no READY line. TTL defaults to 3600 (the package treats 0 as 3600 too).

const https = require('hyco-https');

const [uri, keyName, key, ttl] = process.argv.slice(2);
if (!uri || !keyName || key === undefined) {
  process.stderr.write('usage: node token.js URI KEYNAME KEY [TTL_SECONDS]\n');
  process.exit(2);
}
if (ttl !== undefined && !/^\d+$/.test(ttl)) {
  process.stderr.write(`error: TTL_SECONDS must be a whole number, got ${JSON.stringify(ttl)}\n`);
  process.exit(2);
}
try {
  process.stdout.write(https.createRelayToken(uri, keyName, key, ttl === undefined ? undefined : Number(ttl)) + '\n');
} catch (err) {
  process.stderr.write(`error: ${err.message}\n`);
  process.exit(1);
}
