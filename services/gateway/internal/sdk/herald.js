// herald.js: Herald's SDK for pages. A dependency-free ES module that lets a page
// receive Web Push messages while it is open, from a Herald gateway, whatever the
// network lets through.
//
//   import { connect } from 'https://push.example.com/sdk/herald.js';
//
//   const herald = await connect({
//     applicationServerKey: 'BEl6…',   // optional: only pushes signed with this VAPID key are taken
//     onMessage(m) { console.log(m.text); },
//   });
//   // Hand the subscription to your application server, which sends to it with any
//   // Web Push library (npm web-push, webpush-go, pywebpush, …).
//   await fetch('/subscriptions', { method: 'POST', body: JSON.stringify(herald.subscription) });
//
// What it does:
//   - subscribes: a P-256 key pair and an auth secret from WebCrypto, kept in
//     IndexedDB with the uaid, channel and endpoint, so a reload resumes the same
//     subscription and gets the messages sent meanwhile;
//   - connects over WebSocket, and when that is refused falls back to Server-Sent
//     Events, and then to long-polling (docs/protocol.md);
//   - reconnects with exponential backoff and jitter; a gateway that drains (close
//     1001) is left for another at once; a connection taken over by another page
//     of the same subscription (4000) is not resumed; 4774 ("nothing to receive")
//     waits for reconnect();
//   - decrypts aes128gcm (RFC 8291) with WebCrypto, calls onMessage, and
//     acknowledges each message, so that it is not sent again.
//
// Options (all optional):
//   server                the gateway's URL (default: where this module was loaded from)
//   applicationServerKey  VAPID public key, base64url
//   name                  names the subscription in IndexedDB, for several per origin ('default')
//   transports            ['websocket', 'sse', 'longpoll'], in the order tried
//   onMessage(m)          m: { text, data (Uint8Array), json(), channelID, version, ttl, transport }
//   onStatus(s)           s: { state: 'connecting' | 'connected' | 'reconnecting' |
//                         'taken-over' | 'backoff' | 'closed', transport, code, delay }
//   onSubscriptionChange(sub)  the subscription was replaced (the gateway no longer had it):
//                         hand the new one to the application server
//   onError(err)          a message that could not be decrypted, a handler that threw
//   minDelay, maxDelay    reconnection backoff bounds in ms (1000, 60000)

const PROTOCOL = 'push-notification';
const DB_NAME = 'herald';
const STORE = 'subscriptions';
const REQUEST_TIMEOUT = 15000;
const SEEN = 256;

// Close codes (docs/protocol.md).
const GOING_AWAY = 1001;
const TAKEN_OVER = 4000;
const BACKOFF = 4774;
const ABNORMAL = 1006;

/** Subscribes the page and connects; resolves once the subscription is ready. */
export async function connect(options = {}) {
  const h = new Herald(options);
  await h.start();
  return h;
}

/** Herald is one subscription of the page and its connection to the gateway. */
export class Herald {
  constructor(options = {}) {
    this.options = options;
    this.server = trimSlash(options.server ?? new URL('..', import.meta.url).href);
    this.name = options.name ?? 'default';
    this.transports = options.transports ?? ['websocket', 'sse', 'longpoll'];
    this.minDelay = options.minDelay ?? 1000;
    this.maxDelay = options.maxDelay ?? 60000;
    this.transport = null; // the kind of the live connection
    this.record = null; // the subscription as kept in IndexedDB
    this.closed = false;
    this.seen = [];
    this.current = null; // the live connection, to close
    this.wakeUp = null;
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
  }

  /** The subscription JSON for the application server: {endpoint, keys: {p256dh, auth}}. */
  get subscription() {
    const r = this.record;
    if (!r?.endpoint) return null;
    return { endpoint: r.endpoint, expirationTime: null, keys: { p256dh: b64url(r.publicKey), auth: b64url(r.auth) } };
  }

  async start() {
    this.record = await load(this.name);
    const r = this.record;
    if (r && (r.server !== this.server || (r.appServerKey ?? '') !== (this.options.applicationServerKey ?? ''))) {
      this.record = null; // another gateway or key: a new subscription
    }
    this.loop = this.run();
    await this.ready;
  }

  /** Ends the connection; the subscription stays for the next page. */
  async close() {
    this.closed = true;
    this.current?.close();
    this.wakeUp?.();
    this.status({ state: 'closed' });
    await this.loop?.catch(() => {});
  }

  /** Reconnects now, after 4774 or a takeover. */
  reconnect() {
    this.wakeUp?.();
  }

  /** Drops the subscription: its endpoint answers 410 Gone from then on. */
  async unsubscribe() {
    const r = this.record;
    if (r && this.current?.request) {
      await this.current.request({ messageType: 'unregister', channelID: r.channelID, code: 200 }, 'unregister').catch(() => {});
    }
    await remove(this.name);
    this.record = null;
    await this.close();
  }

  status(s) {
    try {
      this.options.onStatus?.({ transport: this.transport, ...s });
    } catch (err) {
      this.error(err);
    }
  }

  error(err) {
    if (this.options.onError) this.options.onError(err);
    else console.error('herald:', err);
  }

  // run connects until close, backing off between attempts.
  async run() {
    let attempt = 0;
    while (!this.closed) {
      const { code, identified } = await this.connectOnce();
      this.current = null;
      this.transport = null;
      if (this.closed) break;
      if (identified) attempt = 0;
      let delay;
      if (code === TAKEN_OVER) {
        this.status({ state: 'taken-over', code });
        delay = Infinity;
      } else if (code === BACKOFF) {
        this.status({ state: 'backoff', code });
        delay = Infinity;
      } else if (code === GOING_AWAY) {
        delay = Math.random() * 100; // reconnect now: the load balancer picks another gateway
      } else {
        const cap = Math.min(this.maxDelay, this.minDelay * 2 ** attempt++);
        delay = cap / 2 + Math.random() * (cap / 2);
      }
      if (delay !== Infinity) this.status({ state: 'reconnecting', code, delay });
      await new Promise((resolve) => {
        this.wakeUp = resolve;
        if (delay !== Infinity) setTimeout(resolve, delay);
      });
      this.wakeUp = null;
    }
  }

  // connectOnce tries each transport in order until one connects, and resolves
  // with the close code once that connection ends.
  async connectOnce() {
    for (const kind of this.transports) {
      if (this.closed) break;
      const open = kind === 'websocket' ? openWebSocket : openHTTP;
      this.status({ state: 'connecting', transport: kind });
      const result = await open(this, kind);
      if (!result.refused) return result;
    }
    return { code: ABNORMAL, identified: false };
  }

  // identify says hello over a connection and subscribes when there is no
  // subscription to resume, or the gateway no longer has it.
  async identify(conn) {
    const r = this.record;
    const hello = { messageType: 'hello', use_webpush: true };
    if (r?.uaid && r.channelID) {
      hello.uaid = r.uaid;
      hello.channelIDs = [r.channelID];
    }
    const reply = await conn.hello(hello);
    if (r && reply.uaid === r.uaid && r.endpoint) return;
    const keys = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
    const channelID = uuid();
    const frame = { messageType: 'register', channelID };
    if (this.options.applicationServerKey) frame.key = this.options.applicationServerKey;
    const reg = await conn.request(frame, 'register');
    if (reg.status !== 200) throw new Error(`register: status ${reg.status}`);
    const had = !!r;
    this.record = {
      server: this.server,
      appServerKey: this.options.applicationServerKey ?? '',
      uaid: reply.uaid,
      channelID,
      endpoint: reg.pushEndpoint,
      privateKey: keys.privateKey,
      publicKey: new Uint8Array(await crypto.subtle.exportKey('raw', keys.publicKey)),
      auth: crypto.getRandomValues(new Uint8Array(16)),
    };
    await save(this.name, this.record);
    if (had) {
      try {
        this.options.onSubscriptionChange?.(this.subscription);
      } catch (err) {
        this.error(err);
      }
    }
  }

  connected(kind) {
    this.transport = kind;
    this.status({ state: 'connected', transport: kind });
    this.resolveReady(this);
  }

  // notify decrypts a notification, hands it to the page and acknowledges it.
  async notify(conn, n) {
    const r = this.record;
    let code = 100;
    if (!r || n.channelID !== r.channelID) {
      code = 102; // not ours (any more)
    } else if (this.seen.includes(n.version)) {
      // Sent again: its ack was lost, or a stream resumed. Acknowledge it again.
    } else {
      this.seen.push(n.version);
      if (this.seen.length > SEEN) this.seen.shift();
      let data;
      try {
        data = n.data ? await decrypt(fromB64url(n.data), n.headers ?? {}, r) : new Uint8Array(0);
      } catch (err) {
        code = 101;
        this.error(new Error(`message ${n.version} could not be decrypted: ${err.message}`));
      }
      if (data) {
        const text = new TextDecoder().decode(data);
        const message = {
          channelID: n.channelID,
          version: n.version,
          ttl: n.ttl,
          transport: this.transport,
          data,
          text,
          json: () => JSON.parse(text),
        };
        try {
          await this.options.onMessage?.(message);
        } catch (err) {
          this.error(err);
        }
      }
    }
    await conn.ack([{ channelID: n.channelID, version: n.version, code }]);
  }
}

// openWebSocket runs one WebSocket connection. It resolves {refused} when the
// socket never opened, else {code, identified} when it ends.
function openWebSocket(h, kind) {
  return new Promise((resolve) => {
    let ws;
    try {
      ws = new WebSocket(h.server.replace(/^http/, 'ws') + '/', PROTOCOL);
    } catch {
      resolve({ refused: true });
      return;
    }
    let opened = false;
    let identified = false;
    const waiters = [];
    let chain = Promise.resolve();
    const conn = {
      send(frame) {
        ws.send(JSON.stringify(frame));
      },
      request(frame, type) {
        return new Promise((res, rej) => {
          const w = { type, res, rej };
          waiters.push(w);
          w.timer = setTimeout(() => {
            rej(new Error(`${type}: no answer`));
            ws.close();
          }, REQUEST_TIMEOUT);
          this.send(frame);
        });
      },
      hello(frame) {
        return this.request(frame, 'hello');
      },
      async ack(updates) {
        if (ws.readyState === WebSocket.OPEN) this.send({ messageType: 'ack', updates });
      },
      close() {
        ws.close(1000);
      },
    };
    ws.onopen = async () => {
      opened = true;
      h.current = conn;
      h.transport = kind;
      try {
        await h.identify(conn);
        identified = true;
        h.connected(kind);
      } catch (err) {
        h.error(err);
        ws.close();
      }
    };
    ws.onmessage = (e) => {
      let f;
      try {
        f = JSON.parse(e.data);
      } catch {
        return;
      }
      if (f.messageType === 'notification') {
        // In order, one at a time: the page sees messages as they were sent.
        chain = chain.then(() => h.notify(conn, f)).catch((err) => h.error(err));
        return;
      }
      const i = waiters.findIndex((w) => w.type === f.messageType);
      if (i >= 0) {
        const [w] = waiters.splice(i, 1);
        clearTimeout(w.timer);
        w.res(f);
      }
    };
    ws.onclose = (e) => {
      for (const w of waiters) {
        clearTimeout(w.timer);
        w.rej(new Error(`connection closed (${e.code})`));
      }
      resolve(opened ? { code: e.code, identified } : { refused: true });
    };
  });
}

// ClosedError carries the close code of an HTTP connection that ended.
class ClosedError extends Error {
  constructor(code, reason) {
    super(`connection closed: ${code} ${reason ?? ''}`);
    this.code = code;
  }
}

// openHTTP runs one connection over the HTTP transports: hello and the other frames
// by POST, then an event stream ('sse'), or long-polls ('longpoll', and when the
// stream is refused). It resolves {refused} when hello could not be said.
async function openHTTP(h, kind) {
  const base = h.server + '/ua';
  let uaid;
  let token;
  const controller = new AbortController();
  let closing = false;
  const url = (path, params = {}) => {
    const q = new URLSearchParams({ token, ...params });
    return `${base}/${uaid}${path}?${q}`;
  };
  // post sends one frame; it resolves with the reply, or null for none.
  const post = async (target, frame) => {
    const res = await fetch(target, {
      method: 'POST',
      // text/plain keeps the request simple: no CORS preflight.
      headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
      body: JSON.stringify(frame),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT),
    });
    if (res.status === 204) return null;
    const body = await res.json().catch(() => null);
    if (body?.messageType === 'close') throw new ClosedError(body.code, body.reason);
    if (!res.ok) throw new ClosedError(ABNORMAL, `status ${res.status}`);
    return body;
  };
  const conn = {
    async hello(frame) {
      const reply = await post(base, frame);
      uaid = reply.uaid;
      token = reply.token;
      return reply;
    },
    request(frame) {
      return post(url(''), frame);
    },
    async ack(updates) {
      await post(url(''), { messageType: 'ack', updates }).catch(() => {}); // unacked comes again
    },
    close() {
      closing = true;
      controller.abort();
      if (token) fetch(url(''), { method: 'DELETE', keepalive: true }).catch(() => {});
    },
  };
  h.current = conn;
  try {
    await h.identify(conn);
  } catch (err) {
    if (err instanceof ClosedError) return { code: err.code, identified: false };
    if (!uaid) return { refused: true }; // no gateway answered hello over HTTP
    h.error(err);
    return { code: ABNORMAL, identified: false };
  }
  let chain = Promise.resolve();
  let last = '';
  const deliver = (f) => {
    chain = chain.then(() => h.notify(conn, f)).catch((err) => h.error(err));
    return chain;
  };

  if (kind === 'sse') {
    h.transport = 'sse';
    const result = await new Promise((resolve) => {
      const es = new EventSource(url('/sse'));
      let opened = false;
      conn.close = ((close) => () => {
        es.close();
        close();
        resolve({ code: GOING_AWAY });
      })(conn.close);
      es.onopen = () => {
        if (!opened) h.connected('sse');
        opened = true;
      };
      es.onmessage = (e) => {
        let f;
        try {
          f = JSON.parse(e.data);
        } catch {
          return;
        }
        if (f.messageType === 'close') {
          es.close();
          resolve({ code: f.code });
        } else if (f.messageType === 'notification') {
          last = f.version;
          deliver(f);
        }
      };
      es.onerror = () => {
        // CONNECTING: the browser retries by itself, with Last-Event-ID. CLOSED:
        // the stream was refused (a proxy), or the connection is gone; a poll tells.
        if (es.readyState === EventSource.CLOSED) resolve({ poll: true });
      };
    });
    if (!result.poll) return { ...result, identified: true };
  }

  // Long-polling, also where an event stream was refused.
  h.connected('longpoll');
  for (;;) {
    let res;
    try {
      res = await fetch(url('/poll', last ? { last } : {}), { signal: controller.signal });
    } catch (err) {
      if (closing) return { code: GOING_AWAY, identified: true };
      return { code: ABNORMAL, identified: true };
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) return { code: body?.code ?? ABNORMAL, identified: true };
    for (const f of body ?? []) {
      if (f.messageType === 'close') return { code: f.code, identified: true };
      if (f.messageType === 'notification') {
        last = f.version;
        deliver(f);
      }
    }
    await chain; // acknowledge before asking for more
  }
}

// decrypt opens an aes128gcm body (RFC 8188, with the keys of RFC 8291 §3.4).
async function decrypt(body, headers, r) {
  if ((headers.encoding ?? 'aes128gcm') !== 'aes128gcm') throw new Error(`unsupported encoding ${headers.encoding}`);
  if (body.length < 21) throw new Error('truncated header');
  const salt = body.subarray(0, 16);
  const rs = new DataView(body.buffer, body.byteOffset + 16, 4).getUint32(0);
  const idlen = body[20];
  if (idlen !== 65 || rs < 18 || body.length < 21 + idlen) throw new Error('bad header');
  const senderKey = body.subarray(21, 21 + idlen);
  const senderPublic = await crypto.subtle.importKey('raw', senderKey, { name: 'ECDH', namedCurve: 'P-256' }, false, []);
  const secret = new Uint8Array(await crypto.subtle.deriveBits({ name: 'ECDH', public: senderPublic }, r.privateKey, 256));
  const enc = new TextEncoder();
  const ikm = await hkdf(r.auth, secret, concat(enc.encode('WebPush: info\0'), r.publicKey, senderKey), 32);
  const cek = await hkdf(salt, ikm, enc.encode('Content-Encoding: aes128gcm\0'), 16);
  const nonce = await hkdf(salt, ikm, enc.encode('Content-Encoding: nonce\0'), 12);
  const key = await crypto.subtle.importKey('raw', cek, 'AES-GCM', false, ['decrypt']);
  const parts = [];
  let off = 21 + idlen;
  for (let seq = 0; off < body.length; seq++) {
    const end = Math.min(off + rs, body.length);
    const iv = nonce.slice();
    for (let i = 0, s = seq; i < 6; i++, s = Math.floor(s / 256)) iv[11 - i] ^= s & 0xff;
    const plain = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv }, key, body.subarray(off, end)));
    let i = plain.length - 1;
    while (i >= 0 && plain[i] === 0) i--;
    if (i < 0 || plain[i] !== (end === body.length ? 2 : 1)) throw new Error('bad padding');
    parts.push(plain.subarray(0, i));
    off = end;
  }
  return concat(...parts);
}

async function hkdf(salt, ikm, info, length) {
  const key = await crypto.subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info }, key, length * 8));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function b64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromB64url(s) {
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function trimSlash(s) {
  return s.replace(/\/+$/, '');
}

// IndexedDB: one record per subscription name.
function db() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx(mode, f) {
  const d = await db();
  try {
    return await new Promise((resolve, reject) => {
      const t = d.transaction(STORE, mode);
      const req = f(t.objectStore(STORE));
      t.oncomplete = () => resolve(req.result);
      t.onerror = () => reject(t.error);
    });
  } finally {
    d.close();
  }
}

const load = (name) => tx('readonly', (s) => s.get(name));
const save = (name, record) => tx('readwrite', (s) => s.put(record, name));
const remove = (name) => tx('readwrite', (s) => s.delete(name));
