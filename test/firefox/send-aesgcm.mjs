// send-aesgcm.mjs sends one message in the legacy aesgcm content coding with the npm
// web-push library (which test/interop/webpush-node installs), so that the Firefox
// test checks that Firefox decrypts aesgcm notifications as Herald frames them.
//
//   WEBPUSH_NODE_DIR=test/interop/webpush-node node send-aesgcm.mjs \
//     '<subscription JSON>' '<text>' '<VAPID public key>' '<VAPID private key>'
//
// It prints the push service's status code and exits 0 on 201.
import { createRequire } from 'node:module';
import https from 'node:https';
import net from 'node:net';

const require = createRequire(process.env.WEBPUSH_NODE_DIR + '/');
const webpush = require('web-push');

const [subscription, text, publicKey, privateKey] = process.argv.slice(2);
const sub = JSON.parse(subscription);
const options = {
  TTL: 300,
  contentEncoding: 'aesgcm',
  vapidDetails: { subject: 'mailto:ops@example.com', publicKey, privateKey },
};
// web-push only speaks HTTPS; for the test's http: endpoint, connections are plain TCP.
if (new URL(sub.endpoint).protocol === 'http:') {
  class PlainAgent extends https.Agent {
    createConnection(opts) {
      return net.createConnection({ host: opts.host, port: opts.port });
    }
  }
  options.agent = new PlainAgent({ keepAlive: false });
}
try {
  const res = await webpush.sendNotification(sub, text, options);
  console.log(res.statusCode);
  process.exit(res.statusCode === 201 ? 0 : 1);
} catch (err) {
  console.error(`send-aesgcm.mjs: ${err.statusCode ?? ''} ${err.body ?? err.stack ?? err}`);
  process.exit(1);
}
