package ece

import (
	"encoding/binary"
	"fmt"
)

// Sizes fixed by RFC 8188 and RFC 8291.
const (
	// SaltSize is the length of the salt that opens every body.
	SaltSize = 16
	// KeySize is the length of an uncompressed P-256 point: the user
	// agent's public key and, in the header, the application server's.
	KeySize = 65
	// AuthSecretSize is the length of the authentication secret.
	AuthSecretSize = 16
	// HeaderSize is the length of a Web Push content-coding header: salt,
	// record size, key id length and a KeySize key id.
	HeaderSize = SaltSize + 4 + 1 + KeySize
	// MinRecordSize is the smallest valid record size (RFC 8188 §2.1):
	// the 16-byte tag, the padding delimiter and one octet of content.
	MinRecordSize = 18
	// DefaultRecordSize is the record size Encrypt writes unless told
	// otherwise, the value used in the RFC 8291 example.
	DefaultRecordSize = 4096
	// MaxPlaintextSize is the largest plaintext that fits a 4096-byte
	// body, the most a push service must accept (RFC 8291 §4).
	MaxPlaintextSize = 4096 - HeaderSize - tagSize - 1

	tagSize = 16 // AES-GCM authentication tag
	// fixedHeaderSize is the part of the header before the key id.
	fixedHeaderSize = SaltSize + 4 + 1
)

// Header is the content-coding header at the start of an aes128gcm body
// (RFC 8188 §2.1).
type Header struct {
	// Salt is the random salt for content key derivation.
	Salt [SaltSize]byte
	// RecordSize is the "rs" field: the size of every record but the last,
	// including its tag and padding.
	RecordSize uint32
	// KeyID is the application server's ephemeral public key. It aliases
	// the body passed to ParseHeader.
	KeyID []byte
	// Len is the length of the header; records start at body[Len:].
	Len int
}

// ParseHeader parses the content-coding header at the start of body, which
// may hold just the header or the whole message. It enforces the RFC 8291
// §4 profile: the key id must be a 65-byte uncompressed point (checked by
// its 0x04 prefix only; Decrypt checks that it is on the curve) and the
// record size at least MinRecordSize. It does not allocate on success.
//
// ParseHeader does not require any record to follow the header: a push
// service that wants a decryptable body should also check that
// len(body) >= h.Len+17, the size of a record holding no content.
func ParseHeader(body []byte) (Header, error) {
	var h Header
	if len(body) < fixedHeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, header needs at least %d", ErrTruncated, len(body), fixedHeaderSize)
	}
	copy(h.Salt[:], body[:SaltSize])
	h.RecordSize = binary.BigEndian.Uint32(body[SaltSize:])
	if h.RecordSize < MinRecordSize {
		return Header{}, fmt.Errorf("%w: record size %d is below %d", ErrBadHeader, h.RecordSize, MinRecordSize)
	}
	idLen := int(body[SaltSize+4])
	if idLen != KeySize {
		return Header{}, fmt.Errorf("%w: key id is %d bytes, want %d", ErrBadHeader, idLen, KeySize)
	}
	h.Len = fixedHeaderSize + idLen
	if len(body) < h.Len {
		return Header{}, fmt.Errorf("%w: %d bytes, header needs %d", ErrTruncated, len(body), h.Len)
	}
	h.KeyID = body[fixedHeaderSize:h.Len:h.Len]
	if h.KeyID[0] != 0x04 {
		return Header{}, fmt.Errorf("%w: key id is not an uncompressed point", ErrBadHeader)
	}
	return h, nil
}

// appendHeader appends the header for the given salt, record size and
// application server public key to dst.
func appendHeader(dst, salt []byte, rs uint32, keyID []byte) []byte {
	dst = append(dst, salt...)
	dst = binary.BigEndian.AppendUint32(dst, rs)
	dst = append(dst, byte(len(keyID)))
	return append(dst, keyID...)
}
