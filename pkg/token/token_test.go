package token

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/herald-push/herald/pkg/ids"
)

func mustCodec(t testing.TB, keys ...string) *Codec {
	t.Helper()
	ks, err := ParseKeys(strings.Join(keys, ","))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCodec(ks)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEndpointRoundTrip(t *testing.T) {
	c := mustCodec(t, GenerateKey())
	u, ch := ids.NewUAID(), ids.NewChannelID()
	tok := c.Endpoint(u, ch)
	if strings.Contains(tok, u.String()) {
		t.Fatal("token shows the uaid")
	}
	gu, gch, err := c.OpenEndpoint(tok)
	if err != nil || gu != u || gch != ch {
		t.Fatalf("OpenEndpoint = %s %s %v, want %s %s", gu, gch, err, u, ch)
	}
	if c.Endpoint(u, ch) == tok {
		t.Fatal("two tokens for the same subscription are equal: nonce is not random")
	}
}

func TestOpenRejects(t *testing.T) {
	c := mustCodec(t, GenerateKey())
	other := mustCodec(t, GenerateKey())
	u, ch := ids.NewUAID(), ids.NewChannelID()
	good := c.Endpoint(u, ch)
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	tests := map[string]string{
		"empty":          "",
		"not base64":     "!!!!",
		"short":          good[:10],
		"other key":      other.Endpoint(u, ch),
		"flipped nonce":  flip(3),
		"flipped body":   flip(20),
		"flipped tag":    flip(len(raw) - 1),
		"bad version":    flip(0),
		"message id":     c.MessageID(u, ch, "1-0"),
		"too long":       strings.Repeat("A", 2000),
		"truncated":      good[:len(good)-2],
		"trailing chars": good + "AA",
	}
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			if _, _, err := c.OpenEndpoint(tok); !errors.Is(err, ErrInvalid) {
				t.Fatalf("OpenEndpoint(%s) err = %v, want ErrInvalid", name, err)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := GenerateKey(), GenerateKey()
	before := mustCodec(t, oldKey)
	after := mustCodec(t, newKey, oldKey)
	u, ch := ids.NewUAID(), ids.NewChannelID()
	if _, _, err := after.OpenEndpoint(before.Endpoint(u, ch)); err != nil {
		t.Fatalf("token sealed with the old key no longer opens after rotation: %v", err)
	}
	if _, _, err := before.OpenEndpoint(after.Endpoint(u, ch)); err == nil {
		t.Fatal("new tokens must be sealed with the first key")
	}
}

func TestMessageID(t *testing.T) {
	c := mustCodec(t, GenerateKey())
	u, ch := ids.NewUAID(), ids.NewChannelID()
	id := c.MessageID(u, ch, "1700000000000-3")
	gu, gch, entry, err := c.OpenMessageID(id)
	if err != nil || gu != u || gch != ch || entry != "1700000000000-3" {
		t.Fatalf("OpenMessageID = %s %s %q %v", gu, gch, entry, err)
	}
	if _, _, _, err := c.OpenMessageID(c.Endpoint(u, ch)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an endpoint token opened as a message id: %v", err)
	}
}

func TestParseKeys(t *testing.T) {
	tests := []struct {
		in   string
		want int
		err  bool
	}{
		{in: GenerateKey(), want: 1},
		{in: GenerateKey() + ", " + GenerateKey(), want: 2},
		{in: "", err: true},
		{in: "short", err: true},
		{in: "***", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseKeys(tt.in)
			if (err != nil) != tt.err || len(got) != tt.want {
				t.Fatalf("ParseKeys = %d keys, %v", len(got), err)
			}
		})
	}
}

func FuzzOpenEndpoint(f *testing.F) {
	c := mustCodec(f, GenerateKey())
	f.Add(c.Endpoint(ids.NewUAID(), ids.NewChannelID()))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		u, ch, err := c.OpenEndpoint(s)
		if err == nil {
			// Only a sealed token may open: seal again and compare what it carries.
			if u2, ch2, err := c.OpenEndpoint(c.Endpoint(u, ch)); err != nil || u2 != u || ch2 != ch {
				t.Fatalf("round trip failed")
			}
		}
	})
}

func BenchmarkOpenEndpoint(b *testing.B) {
	c := mustCodec(b, GenerateKey())
	tok := c.Endpoint(ids.NewUAID(), ids.NewChannelID())
	for b.Loop() {
		if _, _, err := c.OpenEndpoint(tok); err != nil {
			b.Fatal(err)
		}
	}
}
