// Package apierr is ingest's one error type for application servers: an HTTP status,
// an errno in the numbering Mozilla's push service uses, and a message, written as
// the JSON body {code, errno, error, message, more_info}.
package apierr

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Errnos (see docs/errors.md).
const (
	ErrnoMissingCryptoKeys = 101
	ErrnoInvalidToken      = 102
	ErrnoGone              = 103
	ErrnoTooLarge          = 104
	ErrnoUnauthorized      = 109
	ErrnoInvalidCrypto     = 110
	ErrnoMissingTTL        = 111
	ErrnoInvalidHeader     = 112 // an invalid TTL or Urgency value
	ErrnoInvalidTopic      = 113
	ErrnoMethodNotAllowed  = 115
	ErrnoForbidden         = 116
	ErrnoQueueFull         = 117
	ErrnoRateLimited       = 118
	ErrnoUnavailable       = 201
	ErrnoInternal          = 999
)

// Error is an error answered to an application server.
type Error struct {
	Status  int
	Errno   int
	Message string
	// RetryAfter, when set, is sent as Retry-After.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Message }

// New returns an Error.
func New(status, errno int, message string) *Error {
	return &Error{Status: status, Errno: errno, Message: message}
}

// Unavailable is the error for a storage outage: the application server should retry.
func Unavailable(message string) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Errno: ErrnoUnavailable, Message: message, RetryAfter: 10 * time.Second}
}

type body struct {
	Code     int    `json:"code"`
	Errno    int    `json:"errno"`
	Error    string `json:"error"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info,omitempty"`
}

// Write writes e as the response; moreInfo, if not empty, is the URL of the
// documentation of every errno, as Mozilla's push service gives it.
func Write(w http.ResponseWriter, e *Error, moreInfo string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if e.RetryAfter > 0 {
		// Whole seconds (RFC 9110 §10.2.3), never 0: a client told 0 would retry at once.
		h.Set("Retry-After", strconv.Itoa(max(1, int(e.RetryAfter/time.Second))))
	}
	w.WriteHeader(e.Status)
	// A failed write means the client left; there is nobody to tell.
	_ = json.NewEncoder(w).Encode(body{Code: e.Status, Errno: e.Errno, Error: http.StatusText(e.Status), Message: e.Message, MoreInfo: moreInfo})
}
