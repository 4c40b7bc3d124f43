// Package e2e drives Herald's three services, started as real processes, the way
// application servers and user agents do.
package e2e

import (
	"testing"

	"github.com/herald-push/herald/test/internal/cluster"
)

func TestMain(m *testing.M) { cluster.Main(m) }
