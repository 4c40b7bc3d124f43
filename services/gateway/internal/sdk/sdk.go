// Package sdk serves Herald's JavaScript SDK for pages, herald.js, at
// /sdk/herald.js, and the demo page that uses it at /demo/. The SDK is a
// dependency-free ES module: it subscribes the page, connects over WebSocket,
// Server-Sent Events or long-polling, decrypts aes128gcm messages with WebCrypto
// and hands them to the page (see the comment at its top).
package sdk

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"time"
)

//go:embed herald.js
var heraldJS []byte

//go:embed demo
var demoFS embed.FS

// loaded is the modification time the files are served with: the process start.
var loaded = time.Now()

// Register adds /sdk/herald.js, and /demo/ when demo is set, to mux.
func Register(mux *http.ServeMux, demo bool) {
	mux.HandleFunc("GET /sdk/herald.js", serveSDK)
	if demo {
		sub, err := fs.Sub(demoFS, "demo")
		if err != nil {
			panic(err) // the embedded tree always has demo/
		}
		mux.Handle("GET /demo/", http.StripPrefix("/demo/", http.FileServerFS(sub)))
	}
}

// serveSDK serves the module to pages of any origin: a cross-origin module script
// needs CORS.
func serveSDK(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "herald.js", loaded, bytes.NewReader(heraldJS))
}
