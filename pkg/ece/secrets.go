package ece

import (
	"crypto/ecdh"
	"fmt"
	"sync"
)

// maxSecrets bounds what a Secrets holds: past it, Encrypt stops remembering and
// Decrypt computes the secret itself.
const maxSecrets = 1 << 18

// Secrets remembers the ECDH secret of each message Encrypt built with
// WithSecrets, under the message's sender key, until Decrypt takes it. It serves a
// process that is both the sender and the receiver of its messages, a load
// generator: the receiving side then derives its keys without a second P-256
// scalar multiplication (the sender's and the receiver's ECDH give the same
// secret). Everything else Decrypt does — the HKDF derivations with the receiver's
// own public key and auth secret, AES-GCM authentication, padding — runs unchanged,
// so a body that reached the wrong user agent or was altered still fails. It is
// safe for concurrent use.
type Secrets struct {
	mu sync.Mutex
	m  map[string][]byte
}

// WithSecrets makes Encrypt remember the message's ECDH secret in s.
func WithSecrets(s *Secrets) Option {
	return func(o *options) { o.secrets = s }
}

func (s *Secrets) put(asPublic, secret []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	if len(s.m) < maxSecrets {
		s.m[string(asPublic)] = secret
	}
}

func (s *Secrets) take(asPublic []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	secret, ok := s.m[string(asPublic)]
	if ok {
		delete(s.m, string(asPublic))
	}
	return secret
}

// Len returns how many secrets s holds.
func (s *Secrets) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// Decrypt is ece.Decrypt, using the secret s remembered for body's sender key
// when there is one (and forgetting it).
func (s *Secrets) Decrypt(body []byte, uaPrivate *ecdh.PrivateKey, authSecret []byte) ([]byte, error) {
	h, err := ParseHeader(body)
	if err != nil {
		return nil, err
	}
	secret := s.take(h.KeyID)
	if secret == nil {
		return Decrypt(body, uaPrivate, authSecret)
	}
	return decrypt(body, uaPrivate, authSecret, func(*ecdh.PrivateKey, *ecdh.PublicKey) ([]byte, error) {
		return secret, nil
	})
}

// ecdhFunc computes the ECDH secret of a private and a public key.
type ecdhFunc func(priv *ecdh.PrivateKey, peer *ecdh.PublicKey) ([]byte, error)

// p256ECDH is the ECDH every path uses unless Secrets supplies the secret.
func p256ECDH(priv *ecdh.PrivateKey, peer *ecdh.PublicKey) ([]byte, error) {
	secret, err := priv.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("ecdh: %w", err)
	}
	return secret, nil
}
