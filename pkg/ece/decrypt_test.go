package ece

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
)

// sealBody builds a body with the RFC example's keys and salt whose
// records hold exactly the given plaintexts, delimiters and padding
// included, so that tests can write records Encrypt never would.
func sealBody(tb testing.TB, rs uint32, records ...[]byte) []byte {
	tb.Helper()
	ua, as := rfcKeys(tb)
	asPublic := as.PublicKey().Bytes()
	salt := b64(tb, rfcSalt)
	secret, err := as.ECDH(ua.PublicKey())
	if err != nil {
		tb.Fatal(err)
	}
	aead, baseNonce, err := recordKeys(secret, b64(tb, rfcAuthSecret), ua.PublicKey().Bytes(), asPublic, salt)
	if err != nil {
		tb.Fatal(err)
	}
	body := appendHeader(nil, salt, rs, asPublic)
	var nonce [nonceSize]byte
	for seq, r := range records {
		recordNonce(&nonce, baseNonce, uint64(seq))
		body = aead.Seal(body, nonce[:], r, nil)
	}
	return body
}

// encryptRecords encrypts plaintext for the RFC example's user agent in as
// many records of size rs as it needs.
func encryptRecords(tb testing.TB, plaintext []byte, rs uint32) []byte {
	tb.Helper()
	_, as := rfcKeys(tb)
	body, err := encrypt(plaintext, b64(tb, rfcUAPublic), b64(tb, rfcAuthSecret),
		options{salt: b64(tb, rfcSalt), sender: as, recordSize: rs})
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

// record returns content followed by the delimiter and pad zero octets,
// the plaintext of one record.
func record(content string, delimiter byte, pad int) []byte {
	r := append([]byte(content), delimiter)
	return append(r, make([]byte, pad)...)
}

func TestDecryptMultiRecord(t *testing.T) {
	ua, _ := rfcKeys(t)
	auth := b64(t, rfcAuthSecret)
	for _, tc := range []struct {
		size int
		rs   uint32
	}{
		{0, 18},
		{1, 18},
		{5, 18},  // one content octet per record: five records
		{40, 25}, // five records, the last one short
		{24, 25}, // three full records, the last marked final
		{1000, 100},
		{5000, DefaultRecordSize},
	} {
		t.Run(fmt.Sprintf("%d bytes rs %d", tc.size, tc.rs), func(t *testing.T) {
			plaintext := make([]byte, tc.size)
			if _, err := rand.Read(plaintext); err != nil {
				t.Fatal(err)
			}
			body := encryptRecords(t, plaintext, tc.rs)
			chunk := int(tc.rs) - tagSize - 1
			records := max(1, (tc.size+chunk-1)/chunk)
			if want := HeaderSize + tc.size + records*(tagSize+1); len(body) != want {
				t.Errorf("body is %d bytes, want %d (%d records)", len(body), want, records)
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

func TestDecryptPadding(t *testing.T) {
	ua, _ := rfcKeys(t)
	auth := b64(t, rfcAuthSecret)
	const rs = 16 + 8 // records carry eight plaintext octets
	for _, tc := range []struct {
		name    string
		records [][]byte
		want    string
	}{
		{"single record, no padding", [][]byte{record("hello", 2, 0)}, "hello"},
		{"single record, padded", [][]byte{record("hello", 2, 2)}, "hello"},
		{"only padding", [][]byte{record("", 2, 7)}, ""},
		{"content ends in zeros", [][]byte{record("a\x00\x00", 2, 1)}, "a\x00\x00"},
		{"two records, both padded", [][]byte{record("abc", 1, 4), record("de", 2, 3)}, "abcde"},
		{"two records, last short", [][]byte{record("abcdefg", 1, 0), record("h", 2, 0)}, "abcdefgh"},
		{"record of padding in the middle", [][]byte{record("ab", 1, 5), record("", 1, 7), record("c", 2, 0)}, "abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decrypt(sealBody(t, rs, tc.records...), ua, auth)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("plaintext = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDecryptErrors(t *testing.T) {
	ua, as := rfcKeys(t)
	auth := b64(t, rfcAuthSecret)
	body := b64(t, rfcBody)
	other, otherAuth, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	const rs = 16 + 8
	multi := encryptRecords(t, []byte(rfcPlaintext), rs) // six records
	swapped := bytes.Clone(multi)
	copy(swapped[HeaderSize:], multi[HeaderSize+rs:HeaderSize+2*rs])
	copy(swapped[HeaderSize+rs:], multi[HeaderSize:HeaderSize+rs])
	offCurve := withByte(body, fixedHeaderSize+40, body[fixedHeaderSize+40]^1)

	for _, tc := range []struct {
		name    string
		body    []byte
		key     bool // use other's key
		auth    []byte
		wantErr error
	}{
		{name: "empty body", body: nil, wantErr: ErrTruncated},
		{name: "header cut", body: body[:50], wantErr: ErrTruncated},
		{name: "header only", body: body[:HeaderSize], wantErr: ErrTruncated},
		{name: "record shorter than tag", body: body[:HeaderSize+tagSize], wantErr: ErrTruncated},
		{name: "record cut", body: body[:len(body)-1], wantErr: ErrDecrypt},
		{name: "record size 17", body: withRecordSize(body, 17), wantErr: ErrBadHeader},
		{name: "key id length 64", body: withByte(body, SaltSize+4, 64), wantErr: ErrBadHeader},
		{name: "key id off curve", body: offCurve, wantErr: ErrBadHeader},
		{name: "tampered ciphertext", body: withByte(body, len(body)-20, body[len(body)-20]^0x80), wantErr: ErrDecrypt},
		{name: "tampered tag", body: withByte(body, len(body)-1, body[len(body)-1]^1), wantErr: ErrDecrypt},
		{name: "tampered salt", body: withByte(body, 0, body[0]^1), wantErr: ErrDecrypt},
		{name: "record size splits the record", body: withRecordSize(body, 40), wantErr: ErrDecrypt},
		{name: "trailing garbage", body: append(bytes.Clone(body), 0), wantErr: ErrDecrypt},
		{name: "wrong auth secret", body: body, auth: otherAuth, wantErr: ErrDecrypt},
		{name: "wrong private key", body: body, key: true, wantErr: ErrDecrypt},
		{name: "auth secret 15 bytes", body: body, auth: auth[:15], wantErr: ErrBadKey},
		{name: "records reordered", body: swapped, wantErr: ErrDecrypt},
		{name: "cut at a record boundary", body: multi[:HeaderSize+2*rs], wantErr: ErrTruncated},
		{name: "cut inside a record", body: multi[:HeaderSize+2*rs+20], wantErr: ErrDecrypt},
		{name: "no delimiter", body: sealBody(t, rs, make([]byte, 8)), wantErr: ErrPadding},
		{name: "record of only a tag", body: sealBody(t, rs, nil), wantErr: ErrTruncated},
		{name: "last record marked 0x01", body: sealBody(t, rs, record("hi", 1, 0)), wantErr: ErrTruncated},
		{name: "last record marked 0x03", body: sealBody(t, rs, record("hi", 3, 0)), wantErr: ErrPadding},
		{name: "non-zero octet after delimiter", body: sealBody(t, rs, []byte("hi\x02x")), wantErr: ErrPadding},
		{name: "first record marked 0x02", body: sealBody(t, rs, record("abcdefg", 2, 0), record("h", 2, 0)), wantErr: ErrPadding},
		{name: "middle record without delimiter", body: sealBody(t, rs, record("abcdefg", 1, 0), make([]byte, 8), record("h", 2, 0)), wantErr: ErrPadding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := ua
			if tc.key {
				key = other
			}
			a := auth
			if tc.auth != nil {
				a = tc.auth
			}
			got, err := Decrypt(tc.body, key, a)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v (plaintext %q)", err, tc.wantErr, got)
			}
			if got != nil {
				t.Errorf("plaintext %q returned with error", got)
			}
		})
	}

	t.Run("nil key", func(t *testing.T) {
		if _, err := Decrypt(body, nil, auth); !errors.Is(err, ErrBadKey) {
			t.Errorf("err = %v, want %v", err, ErrBadKey)
		}
	})
	t.Run("sender key cannot decrypt", func(t *testing.T) {
		if _, err := Decrypt(body, as, auth); !errors.Is(err, ErrDecrypt) {
			t.Errorf("err = %v, want %v", err, ErrDecrypt)
		}
	})
}

func BenchmarkDecrypt(b *testing.B) {
	ua, auth, err := GenerateKeys()
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 1024)
	body, err := Encrypt(msg, ua.PublicKey().Bytes(), auth)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := Decrypt(body, ua, auth); err != nil {
			b.Fatal(err)
		}
	}
}
