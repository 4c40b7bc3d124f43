package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/pkg/rkey"
	"github.com/herald-push/herald/pkg/testenv"
)

func TestParseLimit(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Limit
		wantErr bool
	}{
		{in: "600/1m", want: Limit{600, time.Minute}},
		{in: "10/s", want: Limit{10, time.Second}},
		{in: " 5 / 2h ", want: Limit{5, 2 * time.Hour}},
		{in: "7/90m", want: Limit{7, 90 * time.Minute}},
		{in: "1/1500ms", want: Limit{1, 1500 * time.Millisecond}},
		{in: "0", want: Limit{}},
		{in: "", want: Limit{}},
		{in: "0/1m", want: Limit{}},
		{in: "600", wantErr: true},
		{in: "-1/1m", wantErr: true},
		{in: "x/1m", wantErr: true},
		{in: "10/0s", wantErr: true},
		{in: "10/-1s", wantErr: true},
		{in: "10/fortnight", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseLimit(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("ParseLimit(%q) = %v, %v", tc.in, got, err)
			}
			if err == nil {
				if tc.in == "600/1m" && got.String() != "600/1m" {
					t.Errorf("String() = %q", got.String())
				}
				again, err := ParseLimit(got.String())
				if err != nil || again != got {
					t.Fatalf("%v does not survive String: %v, %v", got, again, err)
				}
			}
		})
	}
}

func TestLimiter(t *testing.T) {
	testenv.EachRedis(t, testLimiter)
}

func testLimiter(t *testing.T, rdb redis.UniversalClient, prefix string) {
	keys := rkey.New(prefix)
	ctx := context.Background()
	// The subscription limit is the router's to count: it must not get in the way.
	l := New(rdb, keys, Config{Subscription: Limit{1, time.Hour}, VAPIDKey: Limit{3, time.Minute}})
	key1, key2, key3 := []byte("application server key one"), []byte("application server key two"), []byte("key three")

	// A burst of Count passes, the next waits about Period/Count.
	for i := range 3 {
		if wait, err := l.VAPIDKey(ctx, key1); err != nil || wait != 0 {
			t.Fatalf("message %d: wait %v, err %v", i+1, wait, err)
		}
	}
	wait, err := l.VAPIDKey(ctx, key1)
	if err != nil || wait <= 19*time.Second || wait > 20*time.Second {
		t.Fatalf("4th message: wait %v, err %v; want about 20s", wait, err)
	}
	// A refused message is not counted: the wait does not grow.
	if again, err := l.VAPIDKey(ctx, key1); err != nil || again > wait {
		t.Fatalf("5th message: wait %v after %v, err %v", again, wait, err)
	}
	// Another key has its own count.
	if wait, err := l.VAPIDKey(ctx, key2); err != nil || wait != 0 {
		t.Fatalf("other key: wait %v, err %v", wait, err)
	}
	// The state expires once it equals a fresh key's: within a minute here.
	ttl, err := rdb.PTTL(ctx, keys.RateVAPIDKey(Fingerprint(key1))).Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("PTTL %v, %v", ttl, err)
	}

	// A refund gives one message back, however often it is asked for more.
	if err := l.RefundVAPIDKey(ctx, key1); err != nil {
		t.Fatal(err)
	}
	if wait, err := l.VAPIDKey(ctx, key1); err != nil || wait != 0 {
		t.Fatalf("after a refund: wait %v, err %v", wait, err)
	}
	if wait, err := l.VAPIDKey(ctx, key1); err != nil || wait == 0 {
		t.Fatalf("after the refunded message: wait %v, err %v", wait, err)
	}
	if _, err := l.VAPIDKey(ctx, key3); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := l.RefundVAPIDKey(ctx, key3); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := rdb.Exists(ctx, keys.RateVAPIDKey(Fingerprint(key3))).Result(); err != nil || n != 0 {
		t.Fatalf("refunds below a fresh state left the key: %d, %v", n, err)
	}
}

func TestLimiterDisabled(t *testing.T) {
	// No limit, no Redis: a nil client would panic if it were used.
	l := New(nil, rkey.New("x:"), Config{})
	for range 3 {
		if wait, err := l.VAPIDKey(context.Background(), []byte("k")); wait != 0 || err != nil {
			t.Fatalf("wait %v, err %v", wait, err)
		}
		if err := l.RefundVAPIDKey(context.Background(), []byte("k")); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLimiterRedisDown(t *testing.T) {
	rdb, _ := testenv.RedisClient(t)
	if err := rdb.Close(); err != nil {
		t.Fatal(err)
	}
	l := New(rdb, rkey.New("x:"), Config{VAPIDKey: Limit{1, time.Second}})
	if _, err := l.VAPIDKey(context.Background(), []byte("k")); err == nil {
		t.Fatal("no error from a closed client")
	}
}
