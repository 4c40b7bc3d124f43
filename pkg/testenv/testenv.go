// Package testenv gives a test its own space on the real Postgres and Redis that
// scripts/deps.sh provides: a fresh database, or a key prefix, removed in t.Cleanup.
//
// Run tests through `make test`, or start the servers by hand first:
//
//	eval "$(scripts/deps.sh)"
//	go test ./...
//
// A missing server fails the test rather than skipping it: a storage test that
// silently does not run is worse than one that fails.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"
)

// setupTimeout bounds each call to a server made while setting up or cleaning up.
const setupTimeout = 30 * time.Second

// howToRun ends every "server does not answer" failure.
const howToRun = "run the tests through `make test`, or start the servers with " +
	"`eval \"$(scripts/deps.sh)\"`, or set %s to a server that answers"

// envOr returns the environment variable key, or def when it is unset or empty.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// randomHex returns n random bytes as hex, for names no other test will pick.
func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testenv: random name: %v", err)
	}
	return hex.EncodeToString(b)
}
