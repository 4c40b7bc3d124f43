package pushclient

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// SourceClient's handshakes leave from the source address, hand the connection to
// the WebSocket, keep a frame the server sent right behind its 101, give any other
// answer back whole, and go over TLS for wss://.
func TestSourceClientHandshake(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	remote := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/busy" {
			w.Header().Set("Retry-After", "3")
			http.Error(w, `{"error":"draining"}`, http.StatusServiceUnavailable)
			return
		}
		remote <- r.RemoteAddr
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		// The first frame goes out at once, likely in the 101's segment.
		if err := ws.Write(ctx, websocket.MessageText, []byte("first")); err != nil {
			return
		}
		for {
			typ, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			if err := ws.Write(ctx, typ, b); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	hc := SourceClient("127.0.0.2")

	ws, _, err := websocket.Dial(ctx, url+"/", &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if host, _, _ := net.SplitHostPort(<-remote); host != "127.0.0.2" {
		t.Errorf("the connection came from %s, want 127.0.0.2", host)
	}
	for _, want := range []string{"first", "echo 1", "echo 2"} {
		if want != "first" {
			if err := ws.Write(ctx, websocket.MessageText, []byte(want)); err != nil {
				t.Fatal(err)
			}
		}
		_, b, err := ws.Read(ctx)
		if err != nil || string(b) != want {
			t.Fatalf("read %q, %v; want %q", b, err, want)
		}
	}

	_, resp, err := websocket.Dial(ctx, url+"/busy", &websocket.DialOptions{HTTPClient: hc})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("a refused handshake: %v, %+v", err, resp)
	}
	if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), "draining") {
		t.Errorf("the refusal's body: %q", b)
	}

	// Over wss:// the handshake is TLS's: here the server's certificate is not one
	// the client trusts.
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	var certErr *tls.CertificateVerificationError
	if _, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(tlsSrv.URL, "https"), &websocket.DialOptions{HTTPClient: hc}); !errors.As(err, &certErr) {
		t.Errorf("a wss:// handshake with an untrusted certificate: %v", err)
	}
}

// A handshake the server never answers ends with the caller's context.
func TestSourceClientHandshakeTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered, until the test ends
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, _, err = websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/", &websocket.DialOptions{HTTPClient: SourceClient("127.0.0.1")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's deadline", err)
	}
}
