package ece

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"strings"
	"testing"
)

// The example of RFC 8291 §5 with the intermediate values of its
// Appendix A. All values are base64url without padding, as printed there.
const (
	rfcPlaintext  = "When I grow up, I want to be a watermelon"
	rfcASPublic   = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
	rfcASPrivate  = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
	rfcUAPublic   = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
	rfcUAPrivate  = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
	rfcSalt       = "DGv6ra1nlYgDCS1FRnbzlw"
	rfcAuthSecret = "BTBZMqHH6r4Tts7J_aSIgg"
	rfcECDHSecret = "kyrL1jIIOHEzg3sM2ZWRHDRB62YACZhhSlknJ672kSs"
	rfcIKM        = "S4lYMb_L0FxCeq0WhDx813KgSYqU26kOyzWUdsXYyrg"
	rfcCEK        = "oIhVW04MRdy2XN9CiKLxTg"
	// rfcNoncePrefix is the start of the NONCE value: the copy of the
	// appendix this test was written from is cut after these characters,
	// which fix the first 8 of its 12 bytes. The expected body below
	// checks the whole nonce.
	rfcNoncePrefix = "4h_95klXJ5E"
	rfcBody        = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)

func b64(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		tb.Fatalf("decode %q: %v", s, err)
	}
	return b
}

func privateKey(tb testing.TB, s string) *ecdh.PrivateKey {
	tb.Helper()
	k, err := ecdh.P256().NewPrivateKey(b64(tb, s))
	if err != nil {
		tb.Fatalf("private key %q: %v", s, err)
	}
	return k
}

// rfcKeys returns the example's user agent and application server keys.
func rfcKeys(tb testing.TB) (ua, as *ecdh.PrivateKey) {
	tb.Helper()
	return privateKey(tb, rfcUAPrivate), privateKey(tb, rfcASPrivate)
}

func TestRFC8291Keys(t *testing.T) {
	ua, as := rfcKeys(t)
	for _, tc := range []struct {
		name string
		key  *ecdh.PrivateKey
		want string
	}{
		{"user agent", ua, rfcUAPublic},
		{"application server", as, rfcASPublic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := base64.RawURLEncoding.EncodeToString(tc.key.PublicKey().Bytes()); got != tc.want {
				t.Errorf("public key = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestRFC8291IntermediateValues(t *testing.T) {
	ua, as := rfcKeys(t)
	secret, err := as.ECDH(ua.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(secret, b64(t, rfcECDHSecret)) {
		t.Fatalf("ecdh_secret = %x", secret)
	}
	ikm, err := inputKey(secret, b64(t, rfcAuthSecret), b64(t, rfcUAPublic), b64(t, rfcASPublic))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ikm, b64(t, rfcIKM)) {
		t.Fatalf("IKM = %s", base64.RawURLEncoding.EncodeToString(ikm))
	}
	cek, nonce, err := contentKey(ikm, b64(t, rfcSalt))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cek, b64(t, rfcCEK)) {
		t.Errorf("CEK = %s", base64.RawURLEncoding.EncodeToString(cek))
	}
	if got := base64.RawURLEncoding.EncodeToString(nonce); !strings.HasPrefix(got, rfcNoncePrefix) {
		t.Errorf("NONCE = %s, want prefix %s", got, rfcNoncePrefix)
	}
}

func TestRFC8291EncryptExample(t *testing.T) {
	_, as := rfcKeys(t)
	got, err := Encrypt([]byte(rfcPlaintext), b64(t, rfcUAPublic), b64(t, rfcAuthSecret),
		WithSalt(b64(t, rfcSalt)), WithSenderKey(as))
	if err != nil {
		t.Fatal(err)
	}
	if want := b64(t, rfcBody); !bytes.Equal(got, want) {
		t.Errorf("body =\n%s\nwant\n%s", base64.RawURLEncoding.EncodeToString(got), rfcBody)
	}
}

func TestRFC8291DecryptExample(t *testing.T) {
	ua, _ := rfcKeys(t)
	got, err := Decrypt(b64(t, rfcBody), ua, b64(t, rfcAuthSecret))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != rfcPlaintext {
		t.Errorf("plaintext = %q, want %q", got, rfcPlaintext)
	}
}
