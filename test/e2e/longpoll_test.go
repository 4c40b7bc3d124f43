package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/pushclient"
	"github.com/herald-push/herald/test/internal/cluster"
)

// poll polls once and decodes every event as a notification.
func (a *httpAgent) poll(t testing.TB, last string, wait time.Duration) []mozproto.Notification {
	t.Helper()
	events, err := a.conn.Poll(ctxT(t), last, wait)
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	notes := make([]mozproto.Notification, len(events))
	for i, e := range events {
		if notes[i], err = e.Notification(); err != nil {
			t.Fatalf("poll event %q: %v", e.Data, err)
		}
	}
	return notes
}

func TestLongPoll(t *testing.T) {
	c := cluster.Start(t, cluster.WithEnv("HERALD_HTTP_POLL_TIMEOUT=5s"))
	base := gatewayHTTP(c, 0)

	t.Run("a poll waits for a message, or times out empty", func(t *testing.T) {
		a := newHTTPAgent(t, base)
		start := time.Now()
		if notes := a.poll(t, "", 300*time.Millisecond); len(notes) != 0 {
			t.Fatalf("got %d notifications from an empty queue", len(notes))
		}
		if d := time.Since(start); d < 250*time.Millisecond || d > 4*time.Second {
			t.Fatalf("an empty poll answered after %s, want its 300ms timeout", d)
		}
		type result struct {
			events []pushclient.Event
			err    error
		}
		got := make(chan result, 1)
		go func() {
			events, err := a.conn.Poll(ctxT(t), "", -1) // held for the gateway's 5s
			got <- result{events, err}
		}()
		// Sent while the poll is held (or, on a slow machine, just before the gateway
		// holds it: then it waits in the log): either way the poll answers with it.
		send(t, a.sub, "while polling", 60)
		var r result
		select {
		case r = <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("the held poll did not answer")
		}
		if r.err != nil || len(r.events) != 1 {
			t.Fatalf("poll: %v, %d events", r.err, len(r.events))
		}
		n, err := r.events[0].Notification()
		if err != nil {
			t.Fatal(err)
		}
		if text := a.open(t, n); text != "while polling" {
			t.Fatalf("received %q", text)
		}
	})

	t.Run("unacknowledged come again, after last or all", func(t *testing.T) {
		a := newHTTPAgent(t, base)
		send(t, a.sub, "one", 60)
		send(t, a.sub, "two", 60)
		var notes []mozproto.Notification
		for len(notes) < 2 {
			notes = append(notes, a.poll(t, "", -1)...)
		}
		if got := a.open(t, notes[0]) + "," + a.open(t, notes[1]); got != "one,two" {
			t.Fatalf("received %s", got)
		}
		// After the last received: nothing new.
		if again := a.poll(t, notes[1].Version, 0); len(again) != 0 {
			t.Fatalf("poll after the last version got %d notifications", len(again))
		}
		// Without last, or after the first: what is not acknowledged comes again.
		if again := a.poll(t, "", 0); len(again) != 2 || again[0].Version != notes[0].Version {
			t.Fatalf("poll without last got %+v", again)
		}
		if again := a.poll(t, notes[0].Version, 0); len(again) != 1 || again[0].Version != notes[1].Version {
			t.Fatalf("poll after the first got %+v", again)
		}
		if err := a.conn.Ack(ctxT(t), notes[0]); err != nil {
			t.Fatal(err)
		}
		if again := a.poll(t, "", 0); len(again) != 1 || again[0].Version != notes[1].Version {
			t.Fatalf("after acking one, poll got %+v", again)
		}
		// A new connection gets the unacknowledged one from the queue.
		if err := a.conn.Leave(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		a.hello(t, base)
		again := a.poll(t, "", -1)
		if len(again) != 1 || again[0].Version != notes[1].Version {
			t.Fatalf("after a new hello got %+v, want %s", again, notes[1].Version)
		}
		if err := a.conn.Ack(ctxT(t), again...); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the queue to empty", func() bool { return c.QueueLen(t, a.uaid) == 0 })
	})

	t.Run("a held poll learns of a takeover", func(t *testing.T) {
		a := newHTTPAgent(t, base)
		old := a.conn
		got := make(chan []pushclient.Event, 1)
		go func() {
			events, _ := old.Poll(ctxT(t), "", -1) // an error fails the check below
			got <- events
		}()
		ws := cluster.DialURL(t, c.GatewayURL(0))
		if _, err := ws.Hello(ctxT(t), a.uaid, []string{a.channelID}); err != nil {
			t.Fatal(err)
		}
		select {
		case events := <-got:
			if len(events) != 1 {
				t.Fatalf("poll got %d events, want the close frame", len(events))
			}
			if f, err := events[0].Close(); err != nil || f.Code != mozproto.CloseTakenOver {
				t.Fatalf("poll got %s, %v; want close %d", events[0].Data, err, mozproto.CloseTakenOver)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the held poll did not answer")
		}
		_, err := old.Poll(ctxT(t), "", 0)
		wantHTTPClosed(t, err, http.StatusGone, mozproto.CloseTakenOver)
	})
}

// TestLongPollLimits checks the HTTP transports' clocks and bounds: a connection
// nobody reads is closed as idle, and one whose notifications go unacknowledged past
// the backlog is closed as a slow consumer, losing nothing.
func TestLongPollLimits(t *testing.T) {
	c := cluster.Start(t, cluster.WithEnv("HERALD_HTTP_IDLE_TIMEOUT=500ms", "HERALD_HTTP_BACKLOG=3", "HERALD_HTTP_WRITE_TIMEOUT=300ms"))
	base := gatewayHTTP(c, 0)

	t.Run("idle", func(t *testing.T) {
		a := newHTTPAgent(t, base)
		var err error
		eventually(t, "the unread connection to close", func() bool {
			// A POST does not read the log, so it does not keep the connection.
			err = a.conn.Post(ctxT(t), mozproto.ClientMessage{Type: mozproto.TypeAck}, nil)
			return err != nil
		})
		wantHTTPClosed(t, err, http.StatusGone, mozproto.CloseIdle)
	})

	t.Run("slow consumer", func(t *testing.T) {
		a := newHTTPAgent(t, base)
		got := a.poll(t, "", 0) // keeps the connection read for now
		if len(got) != 0 {
			t.Fatal("unexpected notifications")
		}
		es := a.openStream(t, "")
		for i := range 5 {
			send(t, a.sub, "unacknowledged "+string(rune('a'+i)), 300)
		}
		for range 3 {
			es.note(t)
		}
		if code := es.closed(t); code != mozproto.CloseSlowConsumer {
			t.Fatalf("closed with %d, want %d", code, mozproto.CloseSlowConsumer)
		}
		if n := c.QueueLen(t, a.uaid); n != 5 {
			t.Fatalf("%d messages wait, want the 5 sent: none is lost", n)
		}
	})
}
