package apierr

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name  string
		err   *Error
		retry string
	}{
		{name: "gone", err: New(http.StatusGone, ErrnoGone, "subscription is gone")},
		{name: "unavailable", err: Unavailable("store down"), retry: "10"},
		{name: "retry rounding", err: &Error{Status: 429, Errno: ErrnoQueueFull, Message: "x", RetryAfter: 2500 * time.Millisecond}, retry: "2"},
		{name: "retry under a second", err: &Error{Status: 429, Errno: ErrnoRateLimited, Message: "x", RetryAfter: time.Millisecond}, retry: "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Write(rec, tt.err, "https://example.com/errors")
			if rec.Code != tt.err.Status {
				t.Fatalf("status %d, want %d", rec.Code, tt.err.Status)
			}
			if got := rec.Header().Get("Content-Type"); got != "application/json" {
				t.Fatalf("Content-Type %q", got)
			}
			if got := rec.Header().Get("Retry-After"); got != tt.retry {
				t.Fatalf("Retry-After %q, want %q", got, tt.retry)
			}
			var b map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
				t.Fatal(err)
			}
			if b["code"] != float64(tt.err.Status) || b["errno"] != float64(tt.err.Errno) ||
				b["error"] != http.StatusText(tt.err.Status) || b["message"] != tt.err.Message ||
				b["more_info"] != "https://example.com/errors" {
				t.Fatalf("body %v", b)
			}
		})
	}
}

func TestWriteWithoutMoreInfo(t *testing.T) {
	rec := httptest.NewRecorder()
	Write(rec, New(http.StatusNotFound, ErrnoInvalidToken, "no"), "")
	var b map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	if _, ok := b["more_info"]; ok {
		t.Fatalf("more_info in %v", b)
	}
}
