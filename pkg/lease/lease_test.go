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
		lost, reheld, err := l.Renew(ctx, "gw-b", "10.0.0.2:8082", []Held{{UAID: u, Epoch: e1}, {UAID: u, Epoch: e2}})
		if err != nil || len(lost) != 1 || lost[0].Epoch != e1 || len(reheld) != 0 {
			t.Fatalf("Renew lost = %+v, held again %+v, %v; want only the old epoch lost", lost, reheld, err)
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

// A lease whose record expired while its gateway could not renew it (Redis
// unreachable) is held again at the same epoch by the next renewal, unless another
// gateway claimed the user agent meanwhile; a released one is not.
func TestRenewAfterExpiry(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		keys := rkey.New(prefix)
		l := New(rdb, keys, time.Minute)
		expire := func(u ids.UAID) {
			t.Helper()
			if err := rdb.Del(ctx, keys.Owner(u)).Err(); err != nil {
				t.Fatal(err)
			}
		}

		u := ids.NewUAID()
		e, _, err := l.Claim(ctx, u, "gw-a", "10.0.0.1:8082")
		if err != nil {
			t.Fatal(err)
		}
		expire(u)
		lost, reheld, err := l.Renew(ctx, "gw-a", "10.0.0.1:8082", []Held{{UAID: u, Epoch: e}})
		if err != nil || len(lost) != 0 || len(reheld) != 1 || reheld[0].Epoch != e {
			t.Fatalf("Renew after expiry: lost %+v, held again %+v, %v", lost, reheld, err)
		}
		if owner, err := l.Lookup(ctx, u); err != nil || owner != (Owner{Gateway: "gw-a", Addr: "10.0.0.1:8082", Epoch: e}) {
			t.Fatalf("owner after holding again: %+v, %v", owner, err)
		}
		if d, err := rdb.PTTL(ctx, keys.Owner(u)).Result(); err != nil || d <= 0 || d > time.Minute {
			t.Fatalf("the record held again lives %s, %v", d, err)
		}
		if lost, reheld, err := l.Renew(ctx, "gw-a", "10.0.0.1:8082", []Held{{UAID: u, Epoch: e}}); err != nil || len(lost)+len(reheld) != 0 {
			t.Fatalf("the next renewal: lost %+v, held again %+v, %v; want a plain renewal", lost, reheld, err)
		}

		// Claimed elsewhere after it expired: lost, not taken back.
		expire(u)
		e2, _, err := l.Claim(ctx, u, "gw-b", "10.0.0.2:8082")
		if err != nil || e2 <= e {
			t.Fatalf("claim after expiry: epoch %d after %d, %v", e2, e, err)
		}
		lost, reheld, err = l.Renew(ctx, "gw-a", "10.0.0.1:8082", []Held{{UAID: u, Epoch: e}})
		if err != nil || len(lost) != 1 || len(reheld) != 0 {
			t.Fatalf("Renew of a lease claimed elsewhere: lost %+v, held again %+v, %v", lost, reheld, err)
		}
		if owner, _ := l.Lookup(ctx, u); owner.Gateway != "gw-b" || owner.Epoch != e2 {
			t.Fatalf("the old holder took the user agent back: %+v", owner)
		}

		// Released: the record keeps its epoch, and a renewal does not revive it.
		if err := l.Release(ctx, u, e2); err != nil {
			t.Fatal(err)
		}
		lost, reheld, err = l.Renew(ctx, "gw-b", "10.0.0.2:8082", []Held{{UAID: u, Epoch: e2}})
		if err != nil || len(lost) != 1 || len(reheld) != 0 {
			t.Fatalf("Renew of a released lease: lost %+v, held again %+v, %v", lost, reheld, err)
		}
	})
}
