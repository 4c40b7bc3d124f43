package vapid

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParseAuthorization(f *testing.F) {
	for _, seed := range [][2]string{
		{"vapid t=" + rfcToken + ", k=" + rfcKey, ""},
		{"vapid k=" + rfcKey + ",t=" + rfcToken, ""},
		{`VAPID t="` + rfcToken + `" , k = "` + rfcKey + `"`, ""},
		{"WebPush " + rfcToken, "p256ecdsa=" + rfcKey},
		{"WebPush " + rfcToken, "dh=BNoRDbb84JGm8g5Z5CFxurSqsXWJ11ItfXEWYVLE85Y7;p256ecdsa=" + rfcKey},
		{"webpush " + rfcToken, `keyid=p256dh;dh="abc", p256ecdsa="` + rfcKey + `="`},
		{"vapid t=a.b.c, k=BA1Hxzyi", ""},
		{"Bearer x", ""},
		{"", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	sentinels := []error{ErrMissing, ErrMalformed, ErrBadKey}
	f.Fuzz(func(t *testing.T, authorization, cryptoKey string) {
		c, err := ParseAuthorization(authorization, cryptoKey)
		if err != nil {
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		if c.Scheme != SchemeVAPID && c.Scheme != SchemeWebPush {
			t.Fatalf("scheme %q", c.Scheme)
		}
		if strings.Count(c.Token, ".") != 2 || len(c.Token) > maxTokenSize {
			t.Fatalf("token %q accepted", c.Token)
		}
		if b, err := c.PublicKey(); err != nil || len(b) != publicKeySize {
			t.Fatalf("key %q accepted: %v", c.Key, err)
		}
		// What was parsed, written back in the RFC 8292 form, parses the same.
		again, err := ParseAuthorization("vapid t="+c.Token+", k="+c.Key, "")
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if again.Token != c.Token || again.Key != c.Key {
			t.Fatalf("re-parse gave %+v, want %+v", again, c)
		}
	})
}

func FuzzDecodePublicKey(f *testing.F) {
	f.Add(rfcKey)
	f.Add(rfcKey + "=")
	f.Add("BA1Hxzyi")
	f.Fuzz(func(t *testing.T, s string) {
		pub, err := DecodePublicKey(s)
		if err != nil {
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("error %v does not wrap ErrBadKey", err)
			}
			return
		}
		enc, err := EncodePublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := DecodePublicKey(enc); err != nil || !back.Equal(pub) {
			t.Fatalf("%q re-encoded as %q does not decode back: %v", s, enc, err)
		}
	})
}

func FuzzDecodePrivateKey(f *testing.F) {
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE")
	f.Add("AQ")
	f.Add("_____________________________________w")
	f.Fuzz(func(t *testing.T, s string) {
		key, err := DecodePrivateKey(s)
		if err != nil {
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("error %v does not wrap ErrBadKey", err)
			}
			return
		}
		enc, err := EncodePrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := DecodePrivateKey(enc); err != nil || !back.Equal(key) {
			t.Fatalf("%q re-encoded as %q does not decode back: %v", s, enc, err)
		}
	})
}
