package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"
)

// The transport to ingest speaks HTTP/1.1 with a connection per request in flight,
// or with -h2c cleartext HTTP/2 with the requests sharing one connection.
func TestIngestTransport(t *testing.T) {
	for _, tc := range []struct {
		h2c       bool
		wantMajor int
		wantConns int
	}{
		{h2c: false, wantMajor: 1, wantConns: 4},
		{h2c: true, wantMajor: 2, wantConns: 1},
	} {
		t.Run(map[bool]string{false: "http1", true: "h2c"}[tc.h2c], func(t *testing.T) {
			var (
				mu     sync.Mutex
				majors = map[int]bool{}
				conns  = map[string]bool{}
				hold   = make(chan struct{})
				in     = make(chan struct{}, 4)
			)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				majors[r.ProtoMajor] = true
				conns[r.RemoteAddr] = true
				mu.Unlock()
				in <- struct{}{}
				<-hold // all four in flight at once
				w.WriteHeader(http.StatusCreated)
			}))
			srv.Config.Protocols = new(http.Protocols)
			srv.Config.Protocols.SetHTTP1(true)
			srv.Config.Protocols.SetUnencryptedHTTP2(true)
			srv.Start()
			t.Cleanup(srv.Close)

			client := &http.Client{Transport: ingestTransport(config{concurrency: 4, h2c: tc.h2c})}
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for range 4 {
				wg.Go(func() {
					resp, err := client.Post(srv.URL+"/wpush/v2/x", "application/octet-stream", nil)
					if err != nil {
						errs <- err
						return
					}
					resp.Body.Close()
				})
			}
			for range 4 {
				<-in
			}
			close(hold)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if len(majors) != 1 || !majors[tc.wantMajor] {
				t.Fatalf("protocols %v, want HTTP/%d only", majors, tc.wantMajor)
			}
			if len(conns) != tc.wantConns {
				t.Fatalf("%d connections, want %d", len(conns), tc.wantConns)
			}
		})
	}
}

// The load tool's own HTTP/1.1 client sends what net/http would (the headers, the
// body and its length), reuses its connection, and reads every kind of answer:
// with a length, chunked, and one that closes the connection.
func TestRawPoster(t *testing.T) {
	var (
		mu    sync.Mutex
		conns = map[string]int{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr]++
		mu.Unlock()
		body, err := io.ReadAll(r.Body)
		if err != nil || r.Method != http.MethodPost || r.URL.Path != "/wpush/v2/tok" ||
			r.Header.Get("TTL") != "60" || r.Header.Get("Content-Encoding") != "aes128gcm" ||
			r.ContentLength != int64(len(body)) || string(body) != "sealed" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch r.URL.Query().Get("answer") {
		case "chunked":
			w.WriteHeader(http.StatusTooManyRequests)
			w.(http.Flusher).Flush() // no length known: the body goes chunked
			io.WriteString(w, `{"errno":999}`)
		case "close":
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusGone)
		default:
			w.WriteHeader(http.StatusCreated)
		}
	}))
	t.Cleanup(srv.Close)

	header := http.Header{}
	header.Set("TTL", "60")
	header.Set("Content-Encoding", "aes128gcm")
	p := newRawPoster(header, 5*time.Second)
	t.Cleanup(p.close)
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"", http.StatusCreated},
		{"?answer=chunked", http.StatusTooManyRequests},
		{"", http.StatusCreated},
		{"?answer=close", http.StatusGone},
		{"", http.StatusCreated},
	} {
		tg, err := parseTarget(srv.URL + "/wpush/v2/tok" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.post(context.Background(), tg, []byte("sealed"))
		if err != nil || got != tc.want {
			t.Fatalf("post%s: status %d, %v; want %d", tc.query, got, err, tc.want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// The first four requests share a connection; the answer that closed it sends
	// the fifth over a new one.
	counts := make([]int, 0, len(conns))
	for _, n := range conns {
		counts = append(counts, n)
	}
	sort.Ints(counts)
	if len(counts) != 2 || counts[0] != 1 || counts[1] != 4 {
		t.Fatalf("requests per connection %v, want [1 4]", counts)
	}
	if _, err := parseTarget("https://example.com/wpush/v2/tok"); err == nil {
		t.Fatal("an https:// endpoint was taken")
	}
}
