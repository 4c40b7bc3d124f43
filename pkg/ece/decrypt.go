package ece

import (
	"crypto/ecdh"
	"fmt"
)

// Decrypt decrypts an aes128gcm body sent to the user agent holding
// uaPrivate and authSecret. It accepts any number of records (RFC 8188 §2),
// not only the single record Encrypt writes, and strips the padding.
//
// Errors wrap ErrTruncated, ErrBadHeader, ErrDecrypt, ErrPadding or
// ErrBadKey.
func Decrypt(body []byte, uaPrivate *ecdh.PrivateKey, authSecret []byte) ([]byte, error) {
	return decrypt(body, uaPrivate, authSecret, p256ECDH)
}

func decrypt(body []byte, uaPrivate *ecdh.PrivateKey, authSecret []byte, secretOf ecdhFunc) ([]byte, error) {
	if uaPrivate == nil || uaPrivate.Curve() != ecdh.P256() {
		return nil, fmt.Errorf("%w: user agent key is not a P-256 key", ErrBadKey)
	}
	if len(authSecret) != AuthSecretSize {
		return nil, fmt.Errorf("%w: auth secret is %d bytes, want %d", ErrBadKey, len(authSecret), AuthSecretSize)
	}
	h, err := ParseHeader(body)
	if err != nil {
		return nil, err
	}
	asPublic, err := parsePublicKey(h.KeyID)
	if err != nil {
		return nil, fmt.Errorf("%w: key id: %w", ErrBadHeader, err)
	}
	records := body[h.Len:]
	if len(records) == 0 {
		return nil, fmt.Errorf("%w: no record after the header", ErrTruncated)
	}

	secret, err := secretOf(uaPrivate, asPublic)
	if err != nil {
		return nil, fmt.Errorf("derive keys: %w", err)
	}
	aead, baseNonce, err := recordKeys(secret, authSecret, uaPrivate.PublicKey().Bytes(), h.KeyID, h.Salt[:])
	if err != nil {
		return nil, fmt.Errorf("derive keys: %w", err)
	}
	rs := uint64(h.RecordSize)
	// Every record carries a tag, so the plaintext is shorter than this.
	out := make([]byte, 0, len(records))
	var nonce [nonceSize]byte
	for seq := uint64(0); ; seq++ {
		// A record shorter than rs, or exactly rs at the end of the body,
		// is the last; its delimiter tells whether the body was cut there.
		last := uint64(len(records)) <= rs
		rec := records
		if !last {
			rec, records = records[:rs], records[rs:]
		}
		if len(rec) < tagSize+1 {
			return nil, fmt.Errorf("%w: record %d is %d bytes, shorter than tag and delimiter", ErrTruncated, seq, len(rec))
		}
		recordNonce(&nonce, baseNonce, seq)
		start := len(out)
		if out, err = aead.Open(out, nonce[:], rec, nil); err != nil {
			return nil, fmt.Errorf("%w: record %d", ErrDecrypt, seq)
		}
		// The delimiter is the last non-zero octet; zeros after it are
		// padding (RFC 8188 §2).
		i := len(out) - 1
		for i >= start && out[i] == 0 {
			i--
		}
		if i < start {
			return nil, fmt.Errorf("%w: record %d has no delimiter", ErrPadding, seq)
		}
		switch d := out[i]; {
		case last && d == 0x02, !last && d == 0x01:
		case last && d == 0x01:
			return nil, fmt.Errorf("%w: record %d ends the body but is not marked last", ErrTruncated, seq)
		default:
			return nil, fmt.Errorf("%w: record %d has delimiter %#02x", ErrPadding, seq, d)
		}
		out = out[:i]
		if last {
			return out, nil
		}
	}
}
