// Package chaos sends many messages to many user agents while gateways are killed,
// drained and restarted, and checks Herald's promise: a message that ingest answered
// with 201 (TTL > 0) reaches its user agent at least once, and never another one.
//
// make test runs a short profile; make chaos (HERALD_CHAOS=full) the long one.
package chaos

import (
	"testing"

	"github.com/herald-push/herald/test/internal/cluster"
)

func TestMain(m *testing.M) { cluster.Main(m) }
