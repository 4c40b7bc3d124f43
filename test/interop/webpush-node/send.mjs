// send.mjs sends one push message to a Herald endpoint with the web-push npm
// library, the way a Node.js application server does. test/e2e/webpush_node_test.go
// runs it to check that Herald interoperates with the library most servers use.
//
//   node send.mjs --subscription <JSON or file> --text <text> \
//     [--ttl 60] [--subject mailto:...] [--vapid-public-key K --vapid-private-key K] \
//     [--content-encoding aes128gcm|aesgcm] [--topic T] [--urgency very-low|low|normal|high]
//
// Without VAPID keys the message is sent unsigned. --content-encoding aesgcm sends
// the legacy coding, with its keys in the Encryption and Crypto-Key headers (and
// VAPID, if any, in the "WebPush" Authorization form with p256ecdsa in Crypto-Key).
//
// Each option may come from the environment instead: WEBPUSH_SUBSCRIPTION,
// WEBPUSH_TEXT, WEBPUSH_TTL, WEBPUSH_CONTENT_ENCODING, WEBPUSH_TOPIC,
// WEBPUSH_URGENCY, VAPID_SUBJECT, VAPID_PUBLIC_KEY, VAPID_PRIVATE_KEY.
//
// On success it prints {"statusCode":..,"headers":{..}} on stdout and exits 0. When
// the push service refuses the message it prints {"statusCode":..,"headers":{..},
// "body":".."} on stdout and exits 1; any other failure is told on stderr and exits 1.

import { readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { parseArgs } from 'node:util';

import webpush from 'web-push';

const { values } = parseArgs({
  options: {
    subscription: { type: 'string', default: process.env.WEBPUSH_SUBSCRIPTION },
    text: { type: 'string', default: process.env.WEBPUSH_TEXT },
    ttl: { type: 'string', default: process.env.WEBPUSH_TTL ?? '60' },
    subject: { type: 'string', default: process.env.VAPID_SUBJECT ?? 'mailto:admin@example.com' },
    'vapid-public-key': { type: 'string', default: process.env.VAPID_PUBLIC_KEY },
    'vapid-private-key': { type: 'string', default: process.env.VAPID_PRIVATE_KEY },
    'content-encoding': { type: 'string', default: process.env.WEBPUSH_CONTENT_ENCODING ?? 'aes128gcm' },
    topic: { type: 'string', default: process.env.WEBPUSH_TOPIC },
    urgency: { type: 'string', default: process.env.WEBPUSH_URGENCY },
  },
  strict: true,
});

function fail(message) {
  console.error(`send.mjs: ${message}`);
  process.exit(1);
}

if (!values.subscription) fail('--subscription (or WEBPUSH_SUBSCRIPTION) is required');
if (values.text === undefined) fail('--text (or WEBPUSH_TEXT) is required');
const ttl = Number(values.ttl);
if (!Number.isInteger(ttl) || ttl < 0) fail(`--ttl ${values.ttl}: want a non-negative integer`);

const raw = values.subscription.trimStart().startsWith('{')
  ? values.subscription
  : readFileSync(values.subscription, 'utf8');
const subscription = JSON.parse(raw);

const contentEncoding = values['content-encoding'];
if (contentEncoding !== 'aes128gcm' && contentEncoding !== 'aesgcm') {
  fail(`--content-encoding ${contentEncoding}: want aes128gcm or aesgcm`);
}
const options = { TTL: ttl, contentEncoding };
if (values.topic) options.topic = values.topic;
if (values.urgency) options.urgency = values.urgency;
const publicKey = values['vapid-public-key'];
const privateKey = values['vapid-private-key'];
if (publicKey || privateKey) {
  if (!publicKey || !privateKey) fail('give both VAPID keys or neither');
  options.vapidDetails = { subject: values.subject, publicKey, privateKey };
}

// web-push only speaks HTTPS: it sends every request with https.request. A local
// push service, as the e2e tests run it, listens on plain HTTP, so for an http:
// endpoint pass an https.Agent (web-push accepts nothing else) whose connections are
// plain TCP. Encryption, VAPID (with the http:// origin as audience) and headers are
// still all web-push's own.
if (new URL(subscription.endpoint).protocol === 'http:') {
  class PlainAgent extends https.Agent {
    // http.Agent uses the socket returned here; no TLS handshake is made.
    createConnection(opts) {
      return net.createConnection({ host: opts.host, port: opts.port });
    }
  }
  options.agent = new PlainAgent({ keepAlive: false });
}

try {
  const res = await webpush.sendNotification(subscription, values.text, options);
  console.log(JSON.stringify({ statusCode: res.statusCode, headers: res.headers }));
} catch (err) {
  if (err instanceof webpush.WebPushError) {
    console.log(JSON.stringify({ statusCode: err.statusCode, headers: err.headers, body: err.body }));
    console.error(`send.mjs: ${err.message}: ${err.statusCode}`);
    process.exit(1);
  }
  fail(err?.stack ?? String(err));
}

