package pushclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/herald-push/herald/pkg/mozproto"
)

// A notification that arrives once OnNotification is set goes to its function, on
// the reader, and not to Next; frames that are not notifications still answer
// requests.
func TestOnNotification(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	acked := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"push-notification"}})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		// hello → its reply, then two notifications; each ack is reported.
		if _, _, err := ws.Read(ctx); err != nil {
			return
		}
		frames := []string{
			`{"messageType":"hello","uaid":"u","status":200,"use_webpush":true}`,
			`{"messageType":"notification","channelID":"c1","version":"v1","ttl":60}`,
			`{"messageType":"notification","channelID":"c2","version":"v2","ttl":60}`,
		}
		for _, f := range frames {
			if err := ws.Write(ctx, websocket.MessageText, []byte(f)); err != nil {
				return
			}
		}
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			acked <- string(b)
		}
	}))
	defer srv.Close()

	cl, err := Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := make(chan mozproto.Notification, 2)
	cl.OnNotification(func(n mozproto.Notification) {
		got <- n
		if err := cl.Ack(context.Background(), n); err != nil {
			t.Errorf("ack from the reader: %v", err)
		}
	})
	if _, err := cl.Hello(ctx, "", nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"v1", "v2"} {
		select {
		case n := <-got:
			if n.Version != want {
				t.Fatalf("notification %q, want %q", n.Version, want)
			}
		case <-ctx.Done():
			t.Fatalf("notification %q not handed to the function", want)
		}
		select {
		case b := <-acked:
			if !strings.Contains(b, `"version":"`+want+`"`) {
				t.Fatalf("ack %s, want one for %q", b, want)
			}
		case <-ctx.Done():
			t.Fatalf("no ack for %q", want)
		}
	}
	if n, ok := cl.TryNext(); ok {
		t.Fatalf("Next would get %q too", n.Version)
	}
}

// Notifications that arrived before the server closed are all returned by Next, in
// order, and then the close.
func TestNextAfterClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"push-notification"}})
		if err != nil {
			return
		}
		for _, v := range []string{"v1", "v2", "v3"} {
			if err := ws.Write(ctx, websocket.MessageText, []byte(`{"messageType":"notification","channelID":"c","version":"`+v+`","ttl":60}`)); err != nil {
				return
			}
		}
		ws.Close(websocket.StatusGoingAway, "")
	}))
	defer srv.Close()
	cl, err := DialWith(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), SourceClient("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Drop()
	<-cl.Done()
	for _, want := range []string{"v1", "v2", "v3"} {
		n, err := cl.Next(ctx)
		if err != nil || n.Version != want {
			t.Fatalf("Next = %q, %v; want %q", n.Version, err, want)
		}
	}
	if _, err := cl.Next(ctx); !errors.Is(err, ErrClosed) || cl.CloseStatus() != int(websocket.StatusGoingAway) {
		t.Fatalf("after the notifications: %v (close status %d)", err, cl.CloseStatus())
	}
}
