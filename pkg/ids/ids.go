// Package ids holds the identifiers of the Mozilla Push Service protocol: user agent
// ids (uaid) and channel ids, both 128-bit values with a canonical text form.
package ids

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
)

// ErrInvalid is returned for text that is not a valid id.
var ErrInvalid = errors.New("invalid id")

// UAID identifies a user agent. Its text form is 32 lowercase hex digits, as Mozilla's
// push service writes it.
type UAID [16]byte

// NewUAID returns a random (version 4) UAID.
func NewUAID() UAID { return UAID(newV4()) }

// ParseUAID accepts 32 hex digits, or a UUID with dashes.
func ParseUAID(s string) (UAID, error) {
	b, err := parse(s)
	return UAID(b), err
}

// String returns the 32-hex-digit form.
func (u UAID) String() string { return hex.EncodeToString(u[:]) }

// ChannelID identifies one subscription of a user agent. Its text form is a UUID with
// dashes in lowercase, the form Firefox generates.
type ChannelID [16]byte

// NewChannelID returns a random (version 4) channel id.
func NewChannelID() ChannelID { return ChannelID(newV4()) }

// ParseChannelID accepts a UUID with dashes, or 32 hex digits.
func ParseChannelID(s string) (ChannelID, error) {
	b, err := parse(s)
	return ChannelID(b), err
}

// String returns the canonical UUID form.
func (c ChannelID) String() string {
	var buf [36]byte
	hex.Encode(buf[0:8], c[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], c[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], c[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], c[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], c[10:])
	return string(buf[:])
}

func newV4() [16]byte {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return b
}

// parse reads 32 hex digits, with or without the four dashes of the UUID form.
func parse(s string) ([16]byte, error) {
	var out [16]byte
	switch len(s) {
	case 32:
	case 36:
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return out, ErrInvalid
		}
		s = s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	default:
		return out, ErrInvalid
	}
	if _, err := hex.Decode(out[:], []byte(s)); err != nil {
		return out, ErrInvalid
	}
	return out, nil
}
