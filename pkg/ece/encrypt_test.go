package ece

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
)

func TestGenerateKeys(t *testing.T) {
	priv, auth, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	if priv.Curve() != ecdh.P256() {
		t.Errorf("curve = %v, want P-256", priv.Curve())
	}
	if len(priv.PublicKey().Bytes()) != KeySize {
		t.Errorf("public key is %d bytes", len(priv.PublicKey().Bytes()))
	}
	if len(auth) != AuthSecretSize {
		t.Errorf("auth secret is %d bytes", len(auth))
	}
	priv2, auth2, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	if priv.Equal(priv2) || bytes.Equal(auth, auth2) {
		t.Error("two calls returned the same keys")
	}
}

func TestEncryptRoundTrip(t *testing.T) {
	ua, auth, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		size int
		rs   uint32
	}{
		{0, DefaultRecordSize},
		{1, DefaultRecordSize},
		{41, DefaultRecordSize},
		{MaxPlaintextSize, DefaultRecordSize},
		{4096 - HeaderSize, DefaultRecordSize},
		{DefaultRecordSize - tagSize - 2, DefaultRecordSize}, // largest that fits
		{0, MinRecordSize},
		{100, 118},
		{10000, 1 << 20},
	} {
		t.Run(fmt.Sprintf("%d bytes rs %d", tc.size, tc.rs), func(t *testing.T) {
			plaintext := make([]byte, tc.size)
			if _, err := rand.Read(plaintext); err != nil {
				t.Fatal(err)
			}
			body, err := Encrypt(plaintext, ua.PublicKey().Bytes(), auth, WithRecordSize(tc.rs))
			if err != nil {
				t.Fatal(err)
			}
			if want := HeaderSize + tc.size + 1 + tagSize; len(body) != want {
				t.Errorf("body is %d bytes, want %d (one record)", len(body), want)
			}
			h, err := ParseHeader(body)
			if err != nil {
				t.Fatal(err)
			}
			if h.RecordSize != tc.rs {
				t.Errorf("rs = %d, want %d", h.RecordSize, tc.rs)
			}
			got, err := Decrypt(body, ua, auth)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plaintext) {
				t.Error("round trip changed the plaintext")
			}
		})
	}
}

func TestEncryptIsRandomized(t *testing.T) {
	ua, auth, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte(rfcPlaintext)
	a, err := Encrypt(msg, ua.PublicKey().Bytes(), auth)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encrypt(msg, ua.PublicKey().Bytes(), auth)
	if err != nil {
		t.Fatal(err)
	}
	ha, _ := ParseHeader(a)
	hb, _ := ParseHeader(b)
	if ha.Salt == hb.Salt {
		t.Error("two messages share a salt")
	}
	if bytes.Equal(ha.KeyID, hb.KeyID) {
		t.Error("two messages share a sender key")
	}
}

func TestEncryptErrors(t *testing.T) {
	ua, as := rfcKeys(t)
	uaPublic := ua.PublicKey().Bytes()
	auth := b64(t, rfcAuthSecret)
	p384, err := ecdh.P384().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	offCurve := bytes.Clone(uaPublic)
	offCurve[40] ^= 1

	for _, tc := range []struct {
		name      string
		plaintext []byte
		uaPublic  []byte
		auth      []byte
		opts      []Option
		wantErr   error // nil: any error
	}{
		{name: "short public key", uaPublic: uaPublic[:64], auth: auth, wantErr: ErrBadKey},
		{name: "public key off curve", uaPublic: offCurve, auth: auth, wantErr: ErrBadKey},
		{name: "compressed public key", uaPublic: withByte(uaPublic, 0, 0x02)[:33], auth: auth, wantErr: ErrBadKey},
		{name: "no auth secret", uaPublic: uaPublic, wantErr: ErrBadKey},
		{name: "auth secret 15 bytes", uaPublic: uaPublic, auth: auth[:15], wantErr: ErrBadKey},
		{name: "sender key on P-384", uaPublic: uaPublic, auth: auth, opts: []Option{WithSenderKey(p384)}, wantErr: ErrBadKey},
		{name: "salt 15 bytes", uaPublic: uaPublic, auth: auth, opts: []Option{WithSalt(make([]byte, 15))}},
		{name: "record size 17", uaPublic: uaPublic, auth: auth, opts: []Option{WithRecordSize(17)}},
		{
			name: "plaintext fills the record", plaintext: make([]byte, 1), uaPublic: uaPublic, auth: auth,
			opts: []Option{WithRecordSize(18)}, wantErr: ErrTooLarge,
		},
		{
			name: "plaintext over default record", plaintext: make([]byte, DefaultRecordSize-tagSize-1),
			uaPublic: uaPublic, auth: auth, wantErr: ErrTooLarge,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := append([]Option{WithSenderKey(as)}, tc.opts...)
			body, err := Encrypt(tc.plaintext, tc.uaPublic, tc.auth, opts...)
			if err == nil {
				t.Fatalf("no error; body %x", body)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func BenchmarkEncrypt(b *testing.B) {
	ua, auth, err := GenerateKeys()
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := Encrypt(msg, ua.PublicKey().Bytes(), auth); err != nil {
			b.Fatal(err)
		}
	}
}
