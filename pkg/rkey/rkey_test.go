package rkey

import (
	"strings"
	"testing"

	"github.com/herald-push/herald/pkg/ids"
)

// hashTag returns the part of key that Redis Cluster hashes (cluster spec, "Hash tags").
func hashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return key
	}
	return key[open+1 : open+1+end]
}

func TestPerUserAgentKeysShareASlot(t *testing.T) {
	u := ids.NewUAID()
	k := New("herald:")
	for _, key := range []string{k.Queue(u), k.Topics(u), k.Owner(u), k.Changes(u), k.RateSubscription(u, ids.NewChannelID())} {
		if got := hashTag(key); got != u.String() {
			t.Errorf("key %q hashes on %q, want the uaid %s", key, got, u)
		}
		if !strings.HasPrefix(key, "herald:") {
			t.Errorf("key %q lacks the prefix", key)
		}
	}
	if k.Queue(u) == k.Owner(u) || k.Queue(u) == k.Topics(u) || k.Changes(u) == k.Topics(u) || k.Changes(u) == k.Queue(u) {
		t.Error("per-user-agent keys collide")
	}
}

func TestRateKeys(t *testing.T) {
	u := ids.NewUAID()
	a, b := ids.NewChannelID(), ids.NewChannelID()
	k := New("herald:")
	if k.RateSubscription(u, a) == k.RateSubscription(u, b) {
		t.Error("two subscriptions of one user agent share a rate-limit key")
	}
	key := k.RateVAPIDKey("0123abcd")
	if got := hashTag(key); got != "0123abcd" || !strings.HasPrefix(key, "herald:") {
		t.Errorf("key %q hashes on %q", key, got)
	}
	if key == k.RateSubscription(u, a) {
		t.Error("rate-limit keys collide")
	}
}
