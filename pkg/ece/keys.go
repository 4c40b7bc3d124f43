package ece

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
)

// HKDF info strings. The trailing NUL is part of each string.
const (
	keyInfoPrefix = "WebPush: info\x00"               // RFC 8291 §3.4
	cekInfo       = "Content-Encoding: aes128gcm\x00" // RFC 8188 §2.2
	nonceInfo     = "Content-Encoding: nonce\x00"     // RFC 8188 §2.3

	ikmSize   = 32
	cekSize   = 16
	nonceSize = 12
)

// GenerateKeys returns what a user agent creates for a new push
// subscription: a P-256 key pair and a random 16-byte authentication secret.
// The public key to hand out is priv.PublicKey().Bytes().
func GenerateKeys() (priv *ecdh.PrivateKey, authSecret []byte, err error) {
	priv, err = ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate P-256 key: %w", err)
	}
	authSecret = make([]byte, AuthSecretSize)
	if _, err := rand.Read(authSecret); err != nil {
		return nil, nil, fmt.Errorf("generate auth secret: %w", err)
	}
	return priv, authSecret, nil
}

// parsePublicKey parses a 65-byte uncompressed P-256 point, checking that
// it is on the curve.
func parsePublicKey(b []byte) (*ecdh.PublicKey, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("public key is %d bytes, want %d", len(b), KeySize)
	}
	pub, err := ecdh.P256().NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	return pub, nil
}

// inputKey computes the IKM of RFC 8291 §3.3–3.4: HKDF keyed with the auth
// secret over the ECDH secret, bound to both public keys.
func inputKey(ecdhSecret, authSecret, uaPublic, asPublic []byte) ([]byte, error) {
	prk, err := hkdf.Extract(sha256.New, ecdhSecret, authSecret)
	if err != nil {
		return nil, fmt.Errorf("extract PRK_key: %w", err)
	}
	info := make([]byte, 0, len(keyInfoPrefix)+len(uaPublic)+len(asPublic))
	info = append(info, keyInfoPrefix...)
	info = append(info, uaPublic...)
	info = append(info, asPublic...)
	ikm, err := hkdf.Expand(sha256.New, prk, string(info), ikmSize)
	if err != nil {
		return nil, fmt.Errorf("expand IKM: %w", err)
	}
	return ikm, nil
}

// contentKey derives the content-encryption key and base nonce from the
// IKM and the salt (RFC 8188 §2.2–2.3).
func contentKey(ikm, salt []byte) (cek, nonce []byte, err error) {
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, nil, fmt.Errorf("extract PRK: %w", err)
	}
	if cek, err = hkdf.Expand(sha256.New, prk, cekInfo, cekSize); err != nil {
		return nil, nil, fmt.Errorf("expand CEK: %w", err)
	}
	if nonce, err = hkdf.Expand(sha256.New, prk, nonceInfo, nonceSize); err != nil {
		return nil, nil, fmt.Errorf("expand nonce: %w", err)
	}
	return cek, nonce, nil
}

// recordKeys runs the RFC 8291 derivation for one message from its ECDH secret;
// uaPublic and asPublic are the encoded public keys in their fixed roles.
func recordKeys(secret, authSecret, uaPublic, asPublic, salt []byte) (cipher.AEAD, []byte, error) {
	ikm, err := inputKey(secret, authSecret, uaPublic, asPublic)
	if err != nil {
		return nil, nil, err
	}
	cek, nonce, err := contentKey(ikm, salt)
	if err != nil {
		return nil, nil, err
	}
	aead, err := newGCM(cek)
	if err != nil {
		return nil, nil, err
	}
	return aead, nonce, nil
}

// recordNonce writes into dst the nonce for record seq: the base nonce
// XORed with seq as a 96-bit big-endian integer (RFC 8188 §2.3).
func recordNonce(dst *[nonceSize]byte, base []byte, seq uint64) {
	copy(dst[:], base)
	for i := range 8 {
		dst[nonceSize-1-i] ^= byte(seq >> (8 * i))
	}
}

// newGCM returns AES-GCM under a content-encryption key (16 bytes: AES-128-GCM).
func newGCM(cek []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return aead, nil
}
