package vapid

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// The public key of the RFC 8292 §2.4 example.
const rfcKey = "BA1Hxzyi1RUM1b5wjxsn7nGxAszw2u61m164i3MrAIxHF6YK5h4SDYic-dRuU_RCPCfA5aq9ojSwk5Y2EmClBPs"

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

func encodedPublic(tb testing.TB, key *ecdsa.PrivateKey) string {
	tb.Helper()
	s, err := EncodePublicKey(&key.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestKeyEncodingRoundTrip(t *testing.T) {
	key := newKey(t)
	priv, err := EncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if len(priv) != 43 || strings.ContainsAny(priv, "+/=") {
		t.Errorf("private key %q is not 43 base64url characters", priv)
	}
	pub := encodedPublic(t, key)
	if len(pub) != 87 || pub[0] != 'B' {
		t.Errorf("public key %q is not an 87-character uncompressed point", pub)
	}

	gotPriv, err := DecodePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if !gotPriv.Equal(key) {
		t.Error("private key changed in the round trip")
	}
	gotPub, err := DecodePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !gotPub.Equal(&key.PublicKey) {
		t.Error("public key changed in the round trip")
	}
}

func TestDecodePrivateKey(t *testing.T) {
	one := make([]byte, 32)
	one[31] = 1
	n := elliptic.P256().Params().N.FillBytes(make([]byte, 32))
	for _, tc := range []struct {
		name    string
		in      string
		wantErr bool
		wantD   []byte
	}{
		{name: "scalar 1", in: base64.RawURLEncoding.EncodeToString(one), wantD: one},
		{name: "scalar 1, padded", in: base64.URLEncoding.EncodeToString(one), wantD: one},
		{name: "scalar 1, leading zeros dropped", in: base64.RawURLEncoding.EncodeToString(one[1:]), wantD: one},
		{name: "empty", in: "", wantErr: true},
		{name: "33 bytes", in: base64.RawURLEncoding.EncodeToString(append([]byte{0}, one...)), wantErr: true},
		{name: "zero", in: base64.RawURLEncoding.EncodeToString(make([]byte, 32)), wantErr: true},
		{name: "group order", in: base64.RawURLEncoding.EncodeToString(n), wantErr: true},
		{name: "standard base64", in: "ab+/" + strings.Repeat("A", 39), wantErr: true},
		{name: "wrong padding", in: base64.RawURLEncoding.EncodeToString(one) + "==", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := DecodePrivateKey(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrBadKey) {
					t.Fatalf("err = %v, want %v", err, ErrBadKey)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := key.Bytes(); !bytes.Equal(d, tc.wantD) {
				t.Errorf("scalar = %x, want %x", d, tc.wantD)
			}
		})
	}
}

func TestDecodePublicKey(t *testing.T) {
	raw, err := base64.RawURLEncoding.DecodeString(rfcKey)
	if err != nil {
		t.Fatal(err)
	}
	offCurve := bytes.Clone(raw)
	offCurve[64] ^= 1
	compressed := bytes.Clone(raw)
	compressed[0] = 0x02
	enc := base64.RawURLEncoding.EncodeToString
	for _, tc := range []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "rfc 8292 key", in: rfcKey},
		{name: "padded", in: base64.URLEncoding.EncodeToString(raw)},
		{name: "empty", in: "", wantErr: true},
		{name: "64 bytes", in: enc(raw[:64]), wantErr: true},
		{name: "compressed prefix", in: enc(compressed), wantErr: true},
		{name: "compressed point", in: enc(compressed[:33]), wantErr: true},
		{name: "off curve", in: enc(offCurve), wantErr: true},
		{name: "standard base64", in: base64.StdEncoding.EncodeToString(raw), wantErr: true},
		{name: "not base64", in: "not a key", wantErr: true},
		{name: "line break", in: rfcKey[:40] + "\r\n" + rfcKey[40:], wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, err := DecodePublicKey(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrBadKey) {
					t.Fatalf("err = %v, want %v", err, ErrBadKey)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := pub.Bytes(); !bytes.Equal(b, raw) {
				t.Errorf("point = %x, want %x", b, raw)
			}
		})
	}
}

func TestEncodeRejectsOtherCurves(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EncodePrivateKey(p384); !errors.Is(err, ErrBadKey) {
		t.Errorf("EncodePrivateKey(P-384) err = %v, want %v", err, ErrBadKey)
	}
	if _, err := EncodePublicKey(&p384.PublicKey); !errors.Is(err, ErrBadKey) {
		t.Errorf("EncodePublicKey(P-384) err = %v, want %v", err, ErrBadKey)
	}
	if _, err := EncodePrivateKey(nil); !errors.Is(err, ErrBadKey) {
		t.Errorf("EncodePrivateKey(nil) err = %v, want %v", err, ErrBadKey)
	}
}
