package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/rkey"
	"github.com/herald-push/herald/pkg/testenv"
)

func TestClaimLookupRelease(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		l := New(rdb, rkey.New(prefix), time.Minute)
		u := ids.NewUAID()
		if _, err := l.Lookup(ctx, u); !errors.Is(err, ErrNoOwner) {
			t.Fatalf("Lookup before claim: %v", err)
		}
		e1, prev, err := l.Claim(ctx, u, "gw-a", "10.0.0.1:8082")
		if err != nil || prev.Gateway != "" {
			t.Fatalf("first claim: %v, prev %+v", err, prev)
		}
		owner, err := l.Lookup(ctx, u)
		if err != nil || owner != (Owner{Gateway: "gw-a", Addr: "10.0.0.1:8082", Epoch: e1}) {
			t.Fatalf("Lookup = %+v, %v", owner, err)
		}
		e2, prev, err := l.Claim(ctx, u, "gw-b", "10.0.0.2:8082")
		if err != nil || e2 <= e1 || prev.Gateway != "gw-a" || prev.Epoch != e1 {
			t.Fatalf("takeover: epoch %d after %d, prev %+v, %v", e2, e1, prev, err)
		}
		// The old connection's release must not remove the new owner.
		if err := l.Release(ctx, u, e1); err != nil {
			t.Fatal(err)
		}
		if owner, _ := l.Lookup(ctx, u); owner.Gateway != "gw-b" {
			t.Fatalf("stale release removed the new owner: %+v", owner)
		}
		lost, err := l.Renew(ctx, []Held{{UAID: u, Epoch: e1}, {UAID: u, Epoch: e2}})
		if err != nil || len(lost) != 1 || lost[0].Epoch != e1 {
			t.Fatalf("Renew lost = %+v, %v; want only the old epoch", lost, err)
		}
		if err := l.Release(ctx, u, e2); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Lookup(ctx, u); !errors.Is(err, ErrNoOwner) {
			t.Fatalf("Lookup after release: %v", err)
		}
		// Epochs keep growing after a release.
		e3, _, err := l.Claim(ctx, u, "gw-a", "10.0.0.1:8082")
		if err != nil || e3 <= e2 {
			t.Fatalf("epoch after release %d, previous %d, %v", e3, e2, err)
		}
	})
}

func TestLeaseExpires(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		l := New(rdb, rkey.New(prefix), 50*time.Millisecond)
		u := ids.NewUAID()
		if _, _, err := l.Claim(ctx, u, "gw", "addr"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := l.Lookup(ctx, u)
			if errors.Is(err, ErrNoOwner) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("lease of a gateway that stopped renewing never expired: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func TestRegistry(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		r := NewRegistry(rdb, rkey.New(prefix))
		if err := r.Announce(ctx, "gw-a", "a:1", time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := r.Announce(ctx, "gw-b", "b:1", time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := r.Leave(ctx, "gw-a"); err != nil {
			t.Fatal(err)
		}
		live, err := r.Live(ctx, time.Minute)
		if err != nil || len(live) != 1 || live[0] != "gw-b" {
			t.Fatalf("Live = %v, %v", live, err)
		}
	})
}
