package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/ece"
)

func TestCheckPrepare(t *testing.T) {
	load := config{prepare: true, rate: 1000, warmup: 2 * time.Second, duration: 20 * time.Second, payload: 64, procs: 1}
	tests := []struct {
		name    string
		change  func(*config)
		wantErr string
	}{
		{name: "off", change: func(c *config) { c.prepare = false; c.rate = 1_000_000 }},
		{name: "load run", change: func(*config) {}},
		{name: "at the bound", change: func(c *config) { c.rate = 100_000; c.warmup = 0 }},
		{name: "too many messages", change: func(c *config) { c.rate = 100_000 }, wantErr: "more than the 2000000"},
		{name: "too many bytes", change: func(c *config) { c.rate = 80_000; c.warmup = 0; c.payload = 4000 }, wantErr: "MiB"},
		{name: "idle", change: func(c *config) { c.rate = 0 }, wantErr: "for load runs"},
		{name: "storm", change: func(c *config) { c.stormKill = "gateway0" }, wantErr: "for load runs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := load
			tt.change(&cfg)
			err := checkPrepare(cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("checkPrepare: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("checkPrepare: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestPrepare builds a run's bodies, posts them (with the load tool's own HTTP/1.1
// client and with net/http's, in turn), and decrypts each with its own user agent's
// keys and remembered secret, as the receiving side does.
func TestPrepare(t *testing.T) {
	const n = 10
	got := make(chan []byte, n)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for h, want := range map[string]string{"TTL": "60", "Content-Encoding": "aes128gcm", "Authorization": "vapid t=x, k=y"} {
			if v := r.Header.Get(h); v != want {
				t.Errorf("%s = %q, want %q", h, v, want)
			}
		}
		if !strings.HasPrefix(r.URL.Path, "/wpush/v2/ua") {
			t.Errorf("posted to %s", r.URL.Path)
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		got <- b
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()

	agents := make([]*agent, 3)
	for i := range agents {
		priv, auth, err := ece.GenerateKeys()
		if err != nil {
			t.Fatal(err)
		}
		agents[i] = &agent{priv: priv, auth: auth}
		agents[i].sub.Endpoint = fmt.Sprintf("%s/wpush/v2/ua%d", srv.URL, i)
	}
	cfg := config{prepare: true, ttl: 60, payload: 64}
	p, err := prepare(context.Background(), cfg, agents, n, "vapid t=x, k=y")
	if err != nil {
		t.Fatal(err)
	}
	if p.unremembered != 0 {
		t.Errorf("unremembered = %d, want 0", p.unremembered)
	}

	tl := &tally{sentAt: make([]atomic.Int64, n)}
	rp := newRawPoster(p.header, 5*time.Second)
	defer rp.close()
	for seq := range uint64(n) {
		a := agents[seq%uint64(len(agents))]
		var status int
		if seq%2 == 0 {
			status, err = p.postRaw(context.Background(), rp, seq)
		} else {
			status, err = p.post(context.Background(), srv.Client(), a.sub.Endpoint, seq)
		}
		if err != nil || status != http.StatusCreated {
			t.Fatalf("post %d: %d, %v", seq, status, err)
		}
		plain, err := tl.secretsFor(a).Decrypt(<-got, a.priv, a.auth)
		if err != nil {
			t.Fatalf("decrypt %d: %v", seq, err)
		}
		if s := binary.BigEndian.Uint64(plain); s != seq || len(plain) != cfg.payload {
			t.Fatalf("message %d: got seq %d, %d bytes", seq, s, len(plain))
		}
	}
	for i, a := range agents {
		if a.secrets.Len() != 0 {
			t.Errorf("agent %d still holds %d secrets", i, a.secrets.Len())
		}
	}
	// A body decrypted with another user agent's keys fails: it reached the wrong one.
	if _, err := tl.secretsFor(agents[1]).Decrypt(p.body(0), agents[1].priv, agents[1].auth); err == nil {
		t.Error("message 0 decrypted with user agent 1's keys")
	}
}
