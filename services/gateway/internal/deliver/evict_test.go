package deliver

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/gwpool"
	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/lease"
	"github.com/herald-push/herald/services/gateway/internal/session"
)

// Evicting on a gateway nobody answers for (its process died) says the owner is
// gone, so that hellos do not warn of it once per user agent.
func TestEvictOnGoneGateway(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	pool := gwpool.New()
	defer pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = Evictor{Pool: pool}.Evict(ctx, lease.Owner{Gateway: "gone", Addr: addr}, ids.NewUAID(), 7)
	if !errors.Is(err, session.ErrOwnerGone) {
		t.Fatalf("evict on a gateway that is gone: %v", err)
	}
}
