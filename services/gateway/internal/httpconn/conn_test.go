package httpconn

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/services/gateway/internal/uaconn"
)

func testConn(t *testing.T, backlog int, writeTimeout time.Duration) *conn {
	t.Helper()
	s := NewServer(Config{ReadLimit: 1 << 16, IdleTimeout: time.Hour, PollTimeout: time.Second, Keepalive: time.Second,
		Backlog: backlog, WriteTimeout: writeTimeout}, nil, slog.New(slog.DiscardHandler))
	c := newConn(s, newToken(), nil)
	t.Cleanup(func() { c.Close(context.Background(), mozproto.CloseGoingAway) })
	return c
}

func note(version string) mozproto.Notification {
	return mozproto.Notification{Type: mozproto.TypeNotification, ChannelID: "5d6a1c3e-4c1b-4b0e-9a7a-2b1f0f9c8d7e", Version: version}
}

// ids returns the event ids (or "-" for other frames) a reader attached after
// lastID reads.
func ids(c *conn, lastID string) string {
	_, pos := c.attach(lastID)
	events, _, _ := c.read(pos)
	var out []string
	for _, e := range events {
		if e.id == "" {
			out = append(out, "-")
			continue
		}
		out = append(out, e.id)
	}
	return strings.Join(out, ",")
}

func TestResume(t *testing.T) {
	c := testConn(t, 8, time.Second)
	for _, v := range []string{"1-0", "2-0", "3-0"} {
		if err := c.Send(context.Background(), note(v)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name, last, acked, want string
	}{
		{name: "a new reader gets every unacknowledged one", want: "1-0,2-0,3-0"},
		{name: "after the last received", last: "3-0", want: ""},
		{name: "after one in the middle", last: "2-0", want: "3-0"},
		{name: "after an id the log does not hold", last: "9-9", want: "1-0,2-0,3-0"},
		{name: "after an acknowledged one", acked: "1-0", last: "1-0", want: "2-0,3-0"},
		{name: "acknowledged are gone for good", acked: "3-0", want: "2-0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.acked != "" {
				c.acked([]mozproto.Update{{Version: tt.acked}})
			}
			if got := ids(c, tt.last); got != tt.want {
				t.Fatalf("read %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOtherFramesAreReadOnce(t *testing.T) {
	c := testConn(t, 8, time.Second)
	ctx := context.Background()
	if err := c.Send(ctx, note("1-0")); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, mozproto.BroadcastReply{Type: mozproto.TypeBroadcast}); err != nil {
		t.Fatal(err)
	}
	if got := ids(c, ""); got != "1-0,-" {
		t.Fatalf("first read %q", got)
	}
	if got := ids(c, ""); got != "1-0" {
		t.Fatalf("second read %q, want the notification only", got)
	}
}

func TestNewerReaderReplacesOlder(t *testing.T) {
	c := testConn(t, 8, time.Second)
	r1, _ := c.attach("")
	r2, _ := c.attach("")
	select {
	case <-r1.stop:
	default:
		t.Fatal("the older reader was not stopped")
	}
	c.detach(r1) // late: must not take r2's place
	c.mu.Lock()
	cur := c.reader
	c.mu.Unlock()
	if cur != r2 {
		t.Fatal("a stopped reader's detach removed the newer one")
	}
}

func TestBacklog(t *testing.T) {
	c := testConn(t, 2, 200*time.Millisecond)
	ctx := context.Background()
	for _, v := range []string{"1-0", "2-0"} {
		if err := c.Send(ctx, note(v)); err != nil {
			t.Fatal(err)
		}
	}
	// An ack makes room for a Send that waits.
	go func() { c.acked([]mozproto.Update{{Version: "1-0"}}) }()
	if err := c.Send(ctx, note("3-0")); err != nil {
		t.Fatalf("send after an ack: %v", err)
	}
	// Nobody acknowledges: the user agent is a slow consumer.
	start := time.Now()
	if err := c.Send(ctx, note("4-0")); !errors.Is(err, uaconn.ErrSlow) {
		t.Fatalf("send to a full backlog: %v, want ErrSlow", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("gave up after %s, want the write timeout", d)
	}
	if got := ids(c, ""); got != "2-0,3-0" {
		t.Fatalf("log %q", got)
	}
}
