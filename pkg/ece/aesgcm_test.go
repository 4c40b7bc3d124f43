package ece

import (
	"bytes"
	"crypto/ecdh"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// Bodies made by http_ece 1.2 (the encrypter of the npm web-push library) with
// version "aesgcm", the keys, auth secret and salt of the RFC 8291 example, and
// the example's application server key as the ephemeral key (dh).
const (
	nodeAESGCMBody = "4qwOLFm_mNy0vf1A8f3Bm6B5UD15y3aV_xZy14pixUhcPTIoZKHzq5i3dZ6PzqSMxBI_-VDUZ4jW04M"
	// rs=25 and pad=3: several records, the first padded.
	nodeAESGCMMultiBody = "4q9ZRDyG0PD6-sYP4a_bnKwsaTEu4ziWvkpZP5PxxuBXKLdB9gTw9KpV7PQ9i3OodU0IrO6xA0SGIdfPZtQMfaOyU5a7pIdBPPhDBjAjHbM"
)

func rfcAESGCMParams(tb testing.TB, rs int) AESGCMParams {
	tb.Helper()
	return AESGCMParams{Salt: b64(tb, rfcSalt), RecordSize: rs, DH: b64(tb, rfcASPublic)}
}

func TestDecryptAESGCMNodeVectors(t *testing.T) {
	ua, _ := rfcKeys(t)
	auth := b64(t, rfcAuthSecret)
	for _, tc := range []struct {
		name string
		body string
		rs   int
	}{
		{"one record", nodeAESGCMBody, AESGCMDefaultRecordSize},
		{"several records", nodeAESGCMMultiBody, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecryptAESGCM(b64(t, tc.body), rfcAESGCMParams(t, tc.rs), ua, auth)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != rfcPlaintext {
				t.Fatalf("decrypted %q", got)
			}
		})
	}
}

func TestDecryptAESGCMFromHeaders(t *testing.T) {
	ua, _ := rfcKeys(t)
	// The headers web-push sends, with a VAPID key in Crypto-Key as well.
	p, err := ParseAESGCMParams("salt="+rfcSalt+";rs=25", "dh="+rfcASPublic+";p256ecdsa=BA1Hxzyi")
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecryptAESGCM(b64(t, nodeAESGCMMultiBody), p, ua, b64(t, rfcAuthSecret))
	if err != nil || string(got) != rfcPlaintext {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestDecryptAESGCMRejects(t *testing.T) {
	ua, _ := rfcKeys(t)
	auth := b64(t, rfcAuthSecret)
	body := b64(t, nodeAESGCMBody)
	multi := b64(t, nodeAESGCMMultiBody)
	other, otherAuth, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		body []byte
		p    AESGCMParams
		ua   *ecdh.PrivateKey
		auth []byte
		want error
	}{
		{"empty body", nil, rfcAESGCMParams(t, 4096), ua, auth, ErrTruncated},
		{"shorter than a tag", body[:17], rfcAESGCMParams(t, 4096), ua, auth, ErrTruncated},
		{"altered", withByte(body, 3, body[3]^1), rfcAESGCMParams(t, 4096), ua, auth, ErrDecrypt},
		{"wrong salt", body, AESGCMParams{Salt: make([]byte, 16), RecordSize: 4096, DH: b64(t, rfcASPublic)}, ua, auth, ErrDecrypt},
		{"wrong record size", multi, rfcAESGCMParams(t, 4096), ua, auth, ErrDecrypt},
		{"cut after a full record", multi[:25+16], rfcAESGCMParams(t, 25), ua, auth, ErrTruncated},
		{"cut inside the last record", multi[:25+16+20], rfcAESGCMParams(t, 25), ua, auth, ErrDecrypt},
		{"other user agent", body, rfcAESGCMParams(t, 4096), other, auth, ErrDecrypt},
		{"other auth secret", body, rfcAESGCMParams(t, 4096), ua, otherAuth, ErrDecrypt},
		{"short auth secret", body, rfcAESGCMParams(t, 4096), ua, auth[:8], ErrBadKey},
		{"dh off the curve", body, AESGCMParams{Salt: b64(t, rfcSalt), RecordSize: 4096, DH: append([]byte{4}, make([]byte, 64)...)}, ua, auth, ErrBadKey},
		{"no salt", body, AESGCMParams{RecordSize: 4096, DH: b64(t, rfcASPublic)}, ua, auth, ErrBadKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecryptAESGCM(tc.body, tc.p, tc.ua, tc.auth)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v (plaintext %q), want %v", err, got, tc.want)
			}
		})
	}
}

func TestDecryptAESGCMPadding(t *testing.T) {
	ua, as := rfcKeys(t)
	auth := b64(t, rfcAuthSecret)
	p := rfcAESGCMParams(t, 4096)
	for _, tc := range []struct {
		name   string
		record []byte // plaintext of the one record, padding length included
		want   error
	}{
		{"padding longer than the record", []byte{0, 9, 0, 0}, ErrPadding},
		{"non-zero padding", []byte{0, 2, 0, 1, 'h', 'i'}, ErrPadding},
		{"only padding", []byte{0, 2, 0, 0}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := sealAESGCM(t, ua.PublicKey().Bytes(), as, auth, p, tc.record)
			_, err := DecryptAESGCM(body, p, ua, auth)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestAESGCMRoundTrip(t *testing.T) {
	ua, auth, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	as, _, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		size, rs, pad int
	}{
		{0, 4096, 0},
		{1, 4096, 0},
		{4078, 4096, 0}, // the largest that fits a 4096-byte body
		{100, 18, 0},
		{100, 20, 5},
		{64, 34, 0}, // data ends on a record boundary: a padding-only record follows
	} {
		t.Run(strconv.Itoa(tc.size)+"/"+strconv.Itoa(tc.rs), func(t *testing.T) {
			plaintext := bytes.Repeat([]byte("abcdefghij"), tc.size/10+1)[:tc.size]
			p := AESGCMParams{Salt: bytes.Repeat([]byte{7}, SaltSize), RecordSize: tc.rs, DH: as.PublicKey().Bytes()}
			body := encryptAESGCM(t, ua.PublicKey().Bytes(), as, auth, p, plaintext, tc.pad)
			got, err := DecryptAESGCM(body, p, ua, auth)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plaintext) {
				t.Fatalf("round trip gave %q", got)
			}
		})
	}
}

func TestParseAESGCMParams(t *testing.T) {
	salt, dh := rfcSalt, rfcASPublic
	for _, tc := range []struct {
		name, encryption, cryptoKey string
		rs                          int
		want                        error
	}{
		{name: "web-push", encryption: "salt=" + salt, cryptoKey: "dh=" + dh, rs: 4096},
		{name: "with VAPID key", encryption: "salt=" + salt, cryptoKey: "dh=" + dh + ";p256ecdsa=BA1Hxzyi", rs: 4096},
		{name: "key ids and rs", encryption: "keyid=p256dh;salt=" + salt + ";rs=24", cryptoKey: "keyid=p256dh;dh=" + dh, rs: 24},
		{name: "lists, spaces, quotes, padding", encryption: ` keyid="a" ; salt="` + salt + `=="`, cryptoKey: "p256ecdsa=BA1Hxzyi, keyid=p256dh; dh=" + dh + "=", rs: 4096},
		{name: "upper-case names", encryption: "SALT=" + salt, cryptoKey: "DH=" + dh, rs: 4096},

		{name: "no Encryption", cryptoKey: "dh=" + dh, want: ErrMissingParam},
		{name: "no salt", encryption: "rs=4096", cryptoKey: "dh=" + dh, want: ErrMissingParam},
		{name: "empty salt", encryption: "salt=", cryptoKey: "dh=" + dh, want: ErrMissingParam},
		{name: "no Crypto-Key", encryption: "salt=" + salt, want: ErrMissingParam},
		{name: "only a VAPID key", encryption: "salt=" + salt, cryptoKey: "p256ecdsa=" + dh, want: ErrMissingParam},
		{name: "short salt", encryption: "salt=AAAA", cryptoKey: "dh=" + dh, want: ErrBadHeader},
		{name: "salt not base64url", encryption: "salt=" + strings.Repeat("+", 22), cryptoKey: "dh=" + dh, want: ErrBadHeader},
		{name: "compressed dh", encryption: "salt=" + salt, cryptoKey: "dh=A" + dh[1:], want: ErrBadHeader},
		{name: "short dh", encryption: "salt=" + salt, cryptoKey: "dh=BA1Hxzyi", want: ErrBadHeader},
		{name: "rs too small", encryption: "salt=" + salt + ";rs=2", cryptoKey: "dh=" + dh, want: ErrBadHeader},
		{name: "rs not a number", encryption: "salt=" + salt + ";rs=big", cryptoKey: "dh=" + dh, want: ErrBadHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseAESGCMParams(tc.encryption, tc.cryptoKey)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				return
			}
			if !bytes.Equal(p.Salt, b64(t, salt)) || !bytes.Equal(p.DH, b64(t, dh)) || p.RecordSize != tc.rs {
				t.Fatalf("got %+v", p)
			}
		})
	}
}

// encryptAESGCM is the sender's side, for tests: records of p.RecordSize
// plaintext bytes (padding length and padding included), pad bytes of padding in
// the first record, and a padding-only record when the data ends on a record
// boundary, as http_ece writes them.
func encryptAESGCM(tb testing.TB, uaPublic []byte, as *ecdh.PrivateKey, auth []byte, p AESGCMParams, plaintext []byte, pad int) []byte {
	tb.Helper()
	var records [][]byte
	for {
		recordPad := min(pad, p.RecordSize-aesgcmPadSize-1)
		pad -= recordPad
		n := min(len(plaintext), p.RecordSize-aesgcmPadSize-recordPad)
		rec := binary.BigEndian.AppendUint16(nil, uint16(recordPad))
		rec = append(rec, make([]byte, recordPad)...)
		rec = append(rec, plaintext[:n]...)
		plaintext = plaintext[n:]
		records = append(records, rec)
		if len(rec) < p.RecordSize && pad == 0 {
			return sealAESGCM(tb, uaPublic, as, auth, p, records...)
		}
	}
}

// sealAESGCM encrypts record plaintexts, padding length included, as they are.
func sealAESGCM(tb testing.TB, uaPublic []byte, as *ecdh.PrivateKey, auth []byte, p AESGCMParams, records ...[]byte) []byte {
	tb.Helper()
	ua, err := parsePublicKey(uaPublic)
	if err != nil {
		tb.Fatal(err)
	}
	aead, baseNonce, err := aesgcmKeys(as, ua, auth, uaPublic, as.PublicKey().Bytes(), p.Salt)
	if err != nil {
		tb.Fatal(err)
	}
	var out []byte
	var nonce [nonceSize]byte
	for seq, rec := range records {
		recordNonce(&nonce, baseNonce, uint64(seq))
		out = aead.Seal(out, nonce[:], rec, nil)
	}
	return out
}
