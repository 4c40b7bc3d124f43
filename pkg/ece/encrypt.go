package ece

import (
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"math"
)

// Option changes how Encrypt builds a message. The defaults (random salt,
// fresh ephemeral key, 4096-byte records) are what production code wants;
// the options exist so that tests can reproduce fixed vectors.
type Option func(*options)

type options struct {
	salt       []byte
	sender     *ecdh.PrivateKey
	recordSize uint32
	secrets    *Secrets
}

// WithSalt makes Encrypt use salt, which must be 16 bytes, instead of a
// random one. Reusing a salt with the same keys reuses the AES-GCM nonce
// and breaks confidentiality: use it in tests only.
func WithSalt(salt []byte) Option {
	return func(o *options) { o.salt = salt }
}

// WithSenderKey makes Encrypt use key, a P-256 key, as the application
// server's key pair instead of a fresh ephemeral one (RFC 8291 §3.1 asks
// for a new key pair per message).
func WithSenderKey(key *ecdh.PrivateKey) Option {
	return func(o *options) { o.sender = key }
}

// WithRecordSize sets the "rs" header field, at least MinRecordSize.
func WithRecordSize(rs uint32) Option {
	return func(o *options) { o.recordSize = rs }
}

// Encrypt encrypts plaintext for the user agent whose subscription holds
// uaPublic (a 65-byte uncompressed P-256 point) and authSecret (16 bytes).
// It returns a complete aes128gcm body: the header, whose key id is the
// application server's public key, followed by a single record with
// padding delimiter 0x02, as RFC 8291 §4 requires.
//
// The record size must exceed the plaintext plus 17 bytes of delimiter and
// tag, else Encrypt returns an error wrapping ErrTooLarge.
func Encrypt(plaintext, uaPublic, authSecret []byte, opts ...Option) ([]byte, error) {
	o := options{recordSize: DefaultRecordSize}
	for _, opt := range opts {
		opt(&o)
	}
	if o.recordSize < MinRecordSize {
		return nil, fmt.Errorf("ece: record size %d is below %d", o.recordSize, MinRecordSize)
	}
	// RFC 8291 §4: rs must be greater than plaintext + delimiter + tag, so
	// the one record is always shorter than rs.
	if uint64(len(plaintext))+1+tagSize >= uint64(o.recordSize) {
		return nil, fmt.Errorf("%w: %d bytes with record size %d", ErrTooLarge, len(plaintext), o.recordSize)
	}
	return encrypt(plaintext, uaPublic, authSecret, o)
}

// encrypt is Encrypt without the single-record limit: plaintext longer
// than a record is split over several, as RFC 8188 allows. Tests use it to
// build multi-record bodies.
func encrypt(plaintext, uaPublic, authSecret []byte, o options) ([]byte, error) {
	ua, err := parsePublicKey(uaPublic)
	if err != nil {
		return nil, fmt.Errorf("%w: user agent key: %w", ErrBadKey, err)
	}
	if len(authSecret) != AuthSecretSize {
		return nil, fmt.Errorf("%w: auth secret is %d bytes, want %d", ErrBadKey, len(authSecret), AuthSecretSize)
	}
	salt := o.salt
	if salt == nil {
		salt = make([]byte, SaltSize)
		if _, err := rand.Read(salt); err != nil {
			return nil, fmt.Errorf("generate salt: %w", err)
		}
	} else if len(salt) != SaltSize {
		return nil, fmt.Errorf("ece: salt is %d bytes, want %d", len(salt), SaltSize)
	}
	sender := o.sender
	if sender == nil {
		if sender, err = ecdh.P256().GenerateKey(rand.Reader); err != nil {
			return nil, fmt.Errorf("generate sender key: %w", err)
		}
	} else if sender.Curve() != ecdh.P256() {
		return nil, fmt.Errorf("%w: sender key is not on P-256", ErrBadKey)
	}
	asPublic := sender.PublicKey().Bytes()

	secret, err := p256ECDH(sender, ua)
	if err != nil {
		return nil, fmt.Errorf("derive keys: %w", err)
	}
	if o.secrets != nil {
		o.secrets.put(asPublic, secret)
	}
	aead, nonce, err := recordKeys(secret, authSecret, uaPublic, asPublic, salt)
	if err != nil {
		return nil, fmt.Errorf("derive keys: %w", err)
	}
	// Content octets per record; capped so that a 4 GiB rs cannot
	// overflow int on 32-bit platforms.
	chunk := int(min(uint64(o.recordSize)-tagSize-1, math.MaxInt32))
	records := 1 + max(0, len(plaintext)-1)/chunk
	out := make([]byte, 0, HeaderSize+len(plaintext)+records*(tagSize+1))
	out = appendHeader(out, salt, o.recordSize, asPublic)
	return sealRecords(out, aead, nonce, plaintext, chunk), nil
}

// sealRecords appends plaintext to dst as records carrying at most chunk
// bytes of content each: every record but the last is full and ends with
// delimiter 0x01, the last ends with 0x02 (RFC 8188 §2). No padding is
// added beyond the delimiter.
func sealRecords(dst []byte, aead cipher.AEAD, baseNonce, plaintext []byte, chunk int) []byte {
	var nonce [nonceSize]byte
	for seq := uint64(0); ; seq++ {
		n := min(chunk, len(plaintext))
		last := n == len(plaintext)
		delimiter := byte(0x01)
		if last {
			delimiter = 0x02
		}
		start := len(dst)
		dst = append(dst, plaintext[:n]...)
		dst = append(dst, delimiter)
		recordNonce(&nonce, baseNonce, seq)
		// Seal in place: the output starts exactly where the record's
		// plaintext does, the one overlap cipher.AEAD allows.
		dst = aead.Seal(dst[:start], nonce[:], dst[start:], nil)
		plaintext = plaintext[n:]
		if last {
			return dst
		}
	}
}
