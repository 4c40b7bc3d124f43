package ece

import (
	"bytes"
	"errors"
	"testing"
)

// addBodySeeds seeds f with the RFC 8291 example body, a multi-record
// body and cut and altered copies of them.
func addBodySeeds(f *testing.F) {
	body := b64(f, rfcBody)
	multi := encryptRecords(f, []byte(rfcPlaintext), 16+8)
	for _, b := range [][]byte{
		body,
		multi,
		body[:HeaderSize],
		body[:HeaderSize+tagSize+1],
		body[:20],
		withRecordSize(body, 18),
		withByte(body, SaltSize+4, 0),
		withByte(body, len(body)-1, 0),
		sealBody(f, 16+8, record("abc", 1, 4), record("de", 2, 3)),
	} {
		f.Add(b)
	}
}

func FuzzParseHeader(f *testing.F) {
	addBodySeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		h, err := ParseHeader(body)
		if err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrBadHeader) {
				t.Fatalf("error %v wraps no header sentinel", err)
			}
			return
		}
		if h.Len != HeaderSize || len(body) < h.Len {
			t.Fatalf("Len = %d for %d-byte body", h.Len, len(body))
		}
		if h.RecordSize < MinRecordSize {
			t.Fatalf("RecordSize = %d accepted", h.RecordSize)
		}
		if !bytes.Equal(h.Salt[:], body[:SaltSize]) || !bytes.Equal(h.KeyID, body[fixedHeaderSize:HeaderSize]) {
			t.Fatal("salt or key id not taken from the body")
		}
		if re := appendHeader(nil, h.Salt[:], h.RecordSize, h.KeyID); !bytes.Equal(re, body[:h.Len]) {
			t.Fatalf("header re-encodes as %x, was %x", re, body[:h.Len])
		}
	})
}

func FuzzDecrypt(f *testing.F) {
	addBodySeeds(f)
	ua, _ := rfcKeys(f)
	auth := b64(f, rfcAuthSecret)
	sentinels := []error{ErrTruncated, ErrBadHeader, ErrDecrypt, ErrPadding}
	f.Fuzz(func(t *testing.T, body []byte) {
		plaintext, err := Decrypt(body, ua, auth)
		if err != nil {
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		// Every record costs at least a tag and a delimiter.
		if len(plaintext) > len(body)-HeaderSize-tagSize-1 {
			t.Fatalf("%d-byte plaintext from a %d-byte body", len(plaintext), len(body))
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte(rfcPlaintext), uint16(DefaultRecordSize))
	f.Add([]byte(rfcPlaintext), uint16(18))
	f.Add([]byte{}, uint16(0))
	ua, _ := rfcKeys(f)
	auth := b64(f, rfcAuthSecret)
	f.Fuzz(func(t *testing.T, plaintext []byte, rs uint16) {
		body := encryptRecords(t, plaintext, max(MinRecordSize, uint32(rs)))
		got, err := Decrypt(body, ua, auth)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plaintext) {
			t.Fatalf("round trip of %x gave %x", plaintext, got)
		}
	})
}
