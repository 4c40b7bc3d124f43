// The service worker of the Firefox test: it reports each push message's decrypted
// text to the test server.
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", event => event.waitUntil(self.clients.claim()));

self.addEventListener("push", event => {
  const text = event.data ? event.data.text() : "";
  event.waitUntil(fetch("/push", { method: "POST", body: text }));
});

self.addEventListener("pushsubscriptionchange", event => {
  event.waitUntil(fetch("/log", { method: "POST", body: "pushsubscriptionchange" }));
});
