package token

import (
	"errors"
	"testing"

	"github.com/herald-push/herald/pkg/ids"
)

// fuzzKey is the key the seed corpus in testdata/fuzz/FuzzOpen was sealed with, so
// that its real endpoint tokens and message ids open.
const fuzzKey = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"

// FuzzOpen opens hostile strings as endpoint tokens and message ids: no panic, only
// ErrInvalid, and whatever opens seals again to a value that opens the same.
func FuzzOpen(f *testing.F) {
	c := mustCodec(f, fuzzKey)
	u, ch := ids.NewUAID(), ids.NewChannelID()
	f.Add(c.Endpoint(u, ch))
	f.Add(c.MessageID(u, ch, "1700000000000-0"))
	f.Add("")
	f.Add("not-a-token")
	f.Fuzz(func(t *testing.T, s string) {
		if u, ch, err := c.OpenEndpoint(s); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("OpenEndpoint error %v is not ErrInvalid", err)
			}
		} else if u2, ch2, err := c.OpenEndpoint(c.Endpoint(u, ch)); err != nil || u2 != u || ch2 != ch {
			t.Fatalf("resealed endpoint opens to %v %v %v", u2, ch2, err)
		}
		if u, ch, entry, err := c.OpenMessageID(s); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("OpenMessageID error %v is not ErrInvalid", err)
			}
		} else {
			if entry == "" || len(entry) > maxMessageIDLen {
				t.Fatalf("message id opened to entry %q", entry)
			}
			if u2, ch2, e2, err := c.OpenMessageID(c.MessageID(u, ch, entry)); err != nil || u2 != u || ch2 != ch || e2 != entry {
				t.Fatalf("resealed message id opens to %v %v %q %v", u2, ch2, e2, err)
			}
		}
		// A value of one kind never opens as the other.
		if _, _, err := c.OpenEndpoint(c.MessageID(u, ch, "1-0")); err == nil {
			t.Fatal("a message id opened as an endpoint token")
		}
	})
}
