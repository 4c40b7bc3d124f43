package store

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/testenv"
)

func openStore(t *testing.T) *Store {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMigrateConcurrentAndIdempotent(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	var wg sync.WaitGroup
	versions := make([]int, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Go(func() {
			s, err := Open(ctx, url)
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			versions[i], errs[i] = s.Migrate(ctx)
		})
	}
	wg.Wait()
	for i := range 4 {
		if errs[i] != nil || versions[i] != versions[0] || versions[0] < 1 {
			t.Fatalf("migrate %d: version %d, %v", i, versions[i], errs[i])
		}
	}
}

func TestSubscriptions(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	u := ids.NewUAID()
	if _, err := s.Connect(ctx, u, time.Now()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Connect unknown uaid: %v", err)
	}
	if err := s.CreateUserAgent(ctx, u); err != nil {
		t.Fatal(err)
	}
	// Again, as after an insert whose answer was lost: nothing changes.
	if err := s.CreateUserAgent(ctx, u); err != nil {
		t.Fatalf("recording a user agent again: %v", err)
	}
	if subs, err := s.Connect(ctx, u, time.Now()); err != nil || len(subs) != 0 {
		t.Fatalf("Connect a user agent without subscriptions = %v, %v", subs, err)
	}
	ch1, ch2 := ids.NewChannelID(), ids.NewChannelID()
	key := make([]byte, 65)
	key[0] = 4
	if err := s.Subscribe(ctx, Subscription{UAID: u, ChannelID: ch1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Subscribe(ctx, Subscription{UAID: u, ChannelID: ch2, AppServerKey: key}); err != nil {
		t.Fatal(err)
	}
	// Another user agent's subscriptions are not this one's.
	other := ids.NewUAID()
	if err := s.CreateUserAgent(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := s.Subscribe(ctx, Subscription{UAID: other, ChannelID: ids.NewChannelID()}); err != nil {
		t.Fatal(err)
	}
	connected := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	subs, err := s.Connect(ctx, u, connected)
	if err != nil || len(subs) != 2 {
		t.Fatalf("Connect = %v, %v", subs, err)
	}
	// In the order they were made, each with its own key.
	if subs[0].UAID != u || subs[0].ChannelID != ch1 || subs[0].AppServerKey != nil ||
		subs[1].UAID != u || subs[1].ChannelID != ch2 || !bytes.Equal(subs[1].AppServerKey, key) {
		t.Fatalf("Connect = %+v", subs)
	}
	var last time.Time
	if err := s.pool.QueryRow(ctx, `SELECT last_connect FROM user_agents WHERE uaid = $1`, [16]byte(u)).Scan(&last); err != nil || !last.Equal(connected) {
		t.Fatalf("last_connect %v, %v; want %v", last, err, connected)
	}
	got, err := s.Subscription(ctx, u, ch2)
	if err != nil || len(got.AppServerKey) != 65 {
		t.Fatalf("Subscription = %+v, %v", got, err)
	}
	if err := s.Unsubscribe(ctx, u, ch1); err != nil {
		t.Fatal(err)
	}
	if err := s.Unsubscribe(ctx, u, ch1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Unsubscribe: %v", err)
	}
	if _, err := s.Subscription(ctx, u, ch1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Subscription after unsubscribe: %v", err)
	}
	// Another user agent's channel of the same id is a different subscription.
	if _, err := s.Subscription(ctx, ids.NewUAID(), ch2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("foreign uaid found a subscription: %v", err)
	}
}

// ConnectMany answers for each user agent it was given, known or not, with or
// without subscriptions, however often it appears.
func TestConnectMany(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	bare, subscribed, unknown := ids.NewUAID(), ids.NewUAID(), ids.NewUAID()
	for _, u := range []ids.UAID{bare, subscribed} {
		if err := s.CreateUserAgent(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	chs := []ids.ChannelID{ids.NewChannelID(), ids.NewChannelID(), ids.NewChannelID()}
	for _, ch := range chs {
		if err := s.Subscribe(ctx, Subscription{UAID: subscribed, ChannelID: ch}); err != nil {
			t.Fatal(err)
		}
	}
	known, err := s.ConnectMany(ctx, []ids.UAID{unknown, subscribed, bare, subscribed}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(known) != 2 || known[bare] == nil || len(known[bare]) != 0 {
		t.Fatalf("ConnectMany = %v", known)
	}
	if _, ok := known[unknown]; ok {
		t.Fatal("an unknown user agent was found")
	}
	got := known[subscribed]
	if len(got) != len(chs) {
		t.Fatalf("subscriptions %+v", got)
	}
	for i, sub := range got {
		if sub.UAID != subscribed || sub.ChannelID != chs[i] {
			t.Fatalf("subscription %d is %+v, want channel %v", i, sub, chs[i])
		}
	}
}

func TestDeleteUserAgent(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	u, other := ids.NewUAID(), ids.NewUAID()
	ch := ids.NewChannelID()
	for _, x := range []ids.UAID{u, other} {
		if err := s.CreateUserAgent(ctx, x); err != nil {
			t.Fatal(err)
		}
		if err := s.Subscribe(ctx, Subscription{UAID: x, ChannelID: ch}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteUserAgent(ctx, u); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Connect(ctx, u, time.Now()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted user agent still connects: %v", err)
	}
	if _, err := s.Subscription(ctx, u, ch); !errors.Is(err, ErrNotFound) {
		t.Fatalf("its subscription survived: %v", err)
	}
	if _, err := s.Subscription(ctx, other, ch); err != nil {
		t.Fatalf("another user agent's subscription was removed: %v", err)
	}
}
