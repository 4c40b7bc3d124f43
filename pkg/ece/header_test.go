package ece

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// withByte returns a copy of b with b[i] set to v.
func withByte(b []byte, i int, v byte) []byte {
	c := bytes.Clone(b)
	c[i] = v
	return c
}

// withRecordSize returns a copy of body with the rs field set to rs.
func withRecordSize(body []byte, rs uint32) []byte {
	c := bytes.Clone(body)
	binary.BigEndian.PutUint32(c[SaltSize:], rs)
	return c
}

func TestParseHeader(t *testing.T) {
	body := b64(t, rfcBody)
	for _, tc := range []struct {
		name    string
		body    []byte
		wantErr error
		wantRS  uint32
	}{
		{name: "rfc example", body: body, wantRS: 4096},
		{name: "header only", body: body[:HeaderSize], wantRS: 4096},
		{name: "minimum record size", body: withRecordSize(body, 18), wantRS: 18},
		{name: "largest record size", body: withRecordSize(body, 1<<32-1), wantRS: 1<<32 - 1},
		{name: "empty", body: nil, wantErr: ErrTruncated},
		{name: "salt only", body: body[:SaltSize], wantErr: ErrTruncated},
		{name: "no key id length", body: body[:SaltSize+4], wantErr: ErrTruncated},
		{name: "key id cut", body: body[:HeaderSize-1], wantErr: ErrTruncated},
		{name: "record size 17", body: withRecordSize(body, 17), wantErr: ErrBadHeader},
		{name: "record size 0", body: withRecordSize(body, 0), wantErr: ErrBadHeader},
		{name: "key id length 0", body: withByte(body, SaltSize+4, 0), wantErr: ErrBadHeader},
		{name: "key id length 64", body: withByte(body, SaltSize+4, 64), wantErr: ErrBadHeader},
		{name: "key id length 66", body: withByte(body, SaltSize+4, 66), wantErr: ErrBadHeader},
		{name: "compressed key id", body: withByte(body, fixedHeaderSize, 0x02), wantErr: ErrBadHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHeader(tc.body)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if h.Len != 0 || h.KeyID != nil {
					t.Errorf("header %+v returned with error", h)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.RecordSize != tc.wantRS {
				t.Errorf("RecordSize = %d, want %d", h.RecordSize, tc.wantRS)
			}
			if h.Len != HeaderSize {
				t.Errorf("Len = %d, want %d", h.Len, HeaderSize)
			}
			if !bytes.Equal(h.Salt[:], b64(t, rfcSalt)) {
				t.Errorf("Salt = %x", h.Salt)
			}
			if !bytes.Equal(h.KeyID, b64(t, rfcASPublic)) {
				t.Errorf("KeyID = %x", h.KeyID)
			}
		})
	}
}

func TestParseHeaderDoesNotAllocate(t *testing.T) {
	body := b64(t, rfcBody)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ParseHeader(body); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ParseHeader allocates %v times", allocs)
	}
}

func BenchmarkParseHeader(b *testing.B) {
	body := b64(b, rfcBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHeader(body); err != nil {
			b.Fatal(err)
		}
	}
}
