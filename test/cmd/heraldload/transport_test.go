package main

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
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
