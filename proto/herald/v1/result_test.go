package heraldv1

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRouteResultErr(t *testing.T) {
	if err := (&RouteResult{Response: &RouteResponse{Id: "1-0"}}).Err(); err != nil {
		t.Fatalf("a success fails: %v", err)
	}
	limited := (&RouteResult{Code: int32(codes.ResourceExhausted), Error: "rate", RetryAfterMs: 1500}).Err()
	if st := status.Convert(limited); st.Code() != codes.ResourceExhausted || st.Message() != "rate" {
		t.Fatalf("rate-limited: %v", limited)
	}
	if d, ok := RetryAfter(limited); !ok || d != 1500*time.Millisecond {
		t.Fatalf("RetryAfter = %v, %v; want 1.5s", d, ok)
	}
	full := (&RouteResult{Code: int32(codes.ResourceExhausted), Error: "full"}).Err()
	// A full queue carries no retry-after.
	if _, ok := RetryAfter(full); ok || status.Code(full) != codes.ResourceExhausted {
		t.Fatalf("full queue: %v, retry-after %v", full, ok)
	}
	if _, ok := RetryAfter(errors.New("not a status")); ok {
		t.Fatal("RetryAfter of a plain error")
	}
}
