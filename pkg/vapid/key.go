package vapid

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

const (
	publicKeySize  = 65 // uncompressed P-256 point
	privateKeySize = 32 // P-256 scalar
)

// GenerateKey returns a new P-256 key pair for signing VAPID tokens.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate P-256 key: %w", err)
	}
	return key, nil
}

// EncodePrivateKey returns key's 32-byte scalar as unpadded base64url.
func EncodePrivateKey(key *ecdsa.PrivateKey) (string, error) {
	if key == nil || key.Curve != elliptic.P256() {
		return "", fmt.Errorf("%w: not a P-256 private key", ErrBadKey)
	}
	b, err := key.Bytes()
	if err != nil {
		return "", fmt.Errorf("%w: encode private key: %w", ErrBadKey, err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// DecodePrivateKey parses a base64url P-256 scalar, with or without
// padding. Scalars shorter than 32 bytes are left-padded with zeros: some
// old tools dropped leading zero bytes.
func DecodePrivateKey(s string) (*ecdsa.PrivateKey, error) {
	b, err := decodeBase64URL(s)
	if err != nil {
		return nil, fmt.Errorf("%w: private key: %w", ErrBadKey, err)
	}
	if len(b) == 0 || len(b) > privateKeySize {
		return nil, fmt.Errorf("%w: private key is %d bytes, want %d", ErrBadKey, len(b), privateKeySize)
	}
	if len(b) < privateKeySize {
		b = append(make([]byte, privateKeySize-len(b), privateKeySize), b...)
	}
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b)
	if err != nil {
		return nil, fmt.Errorf("%w: private key: %w", ErrBadKey, err)
	}
	return key, nil
}

// EncodePublicKey returns pub as an unpadded base64url uncompressed point,
// the form of the "k" parameter and of applicationServerKey.
func EncodePublicKey(pub *ecdsa.PublicKey) (string, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return "", fmt.Errorf("%w: not a P-256 public key", ErrBadKey)
	}
	b, err := pub.Bytes()
	if err != nil {
		return "", fmt.Errorf("%w: encode public key: %w", ErrBadKey, err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// DecodePublicKey parses a base64url uncompressed P-256 point, with or
// without padding, and checks that it is on the curve.
func DecodePublicKey(s string) (*ecdsa.PublicKey, error) {
	b, err := decodePublicKeyBytes(s)
	if err != nil {
		return nil, err
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), b)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %w", ErrBadKey, err)
	}
	return pub, nil
}

// decodePublicKeyBytes decodes s and checks the length and prefix of an
// uncompressed point, leaving the curve check to the caller.
func decodePublicKeyBytes(s string) ([]byte, error) {
	b, err := decodeBase64URL(s)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %w", ErrBadKey, err)
	}
	if len(b) != publicKeySize || b[0] != 0x04 {
		return nil, fmt.Errorf("%w: public key is not a %d-byte uncompressed point", ErrBadKey, publicKeySize)
	}
	return b, nil
}

// decodeBase64URL decodes base64url with its padding optional: RFC 8292
// says to drop it, but legacy Crypto-Key values often keep it.
func decodeBase64URL(s string) ([]byte, error) {
	// encoding/base64 skips CR and LF; a key has none.
	if i := strings.IndexFunc(strings.TrimRight(s, "="), func(r rune) bool { return r > 0x7f || !isBase64URL(byte(r)) }); i >= 0 {
		return nil, fmt.Errorf("base64url: illegal character at %d", i)
	}
	enc := base64.RawURLEncoding
	if strings.HasSuffix(s, "=") {
		enc = base64.URLEncoding
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("base64url: %w", err)
	}
	return b, nil
}
