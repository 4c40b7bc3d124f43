package webpush

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc"

	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// discardRouter accepts every message without keeping it.
type discardRouter struct{}

func (discardRouter) Route(context.Context, *heraldv1.RouteRequest, ...grpc.CallOption) (*heraldv1.RouteResponse, error) {
	return &heraldv1.RouteResponse{Id: "1700000000000-0", Stored: true}, nil
}

func (discardRouter) DeleteMessage(context.Context, *heraldv1.DeleteMessageRequest, ...grpc.CallOption) (*heraldv1.DeleteMessageResponse, error) {
	return &heraldv1.DeleteMessageResponse{Deleted: true}, nil
}

// BenchmarkPush measures the handler's own cost per accepted message: token,
// headers, a 4096-byte aes128gcm body (what webpush-go sends), VAPID and the 201,
// with the subscription store, rate limiter and router faked in-process. It runs
// with one VAPID token reused for every message and verified once (cached), with
// the same token checked afresh each time (the verifier's cache off: the cost of
// a token's first use, an ES256 verification), and without VAPID.
//
//	go test -run '^$' -bench BenchmarkPush -benchmem ./services/ingest/internal/webpush
func BenchmarkPush(b *testing.B) {
	for _, bc := range []struct {
		name       string
		restricted bool
		cacheSize  int
	}{
		{"vapid-cached", true, 10000},
		{"vapid-fresh", true, 0},
		{"no-vapid", false, 10000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFixture(b, bc.restricted, bc.cacheSize)
			f.h.router = discardRouter{}
			body := aes128gcmBody(b, 4096)
			auth := ""
			if bc.restricted {
				auth = f.sign(b, f.appKey)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, f.endpoint, bytes.NewReader(body))
				req.Header.Set("TTL", "3600")
				req.Header.Set("Content-Encoding", "aes128gcm")
				req.Header.Set("Urgency", "normal")
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				rec := httptest.NewRecorder()
				f.h.ServeHTTP(rec, req)
				if rec.Code != http.StatusCreated {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
