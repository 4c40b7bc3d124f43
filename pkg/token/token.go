// Package token seals and opens the opaque values that Herald hands out: push endpoint
// tokens (uaid + channel id) and message ids (uaid + channel id + queue entry id).
//
// Each value is AES-256-GCM sealed with a server key, so it can be neither forged nor
// read by its holder. Several keys may be configured: the first seals, every one opens,
// which lets operators rotate keys without breaking endpoints already handed out.
package token

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/herald-push/herald/pkg/ids"
)

// ErrInvalid is returned for a value that does not open with any key, or whose content
// is malformed. Callers must not tell the two apart to the client.
var ErrInvalid = errors.New("invalid token")

// KeySize is the size of a token key in bytes.
const KeySize = 32

// Kinds of sealed values; the kind is authenticated so one cannot pass for the other.
const (
	kindEndpoint byte = 'e'
	kindMessage  byte = 'm'
	version      byte = 1
)

// maxMessageIDLen bounds the queue entry id inside a message id.
const maxMessageIDLen = 64

var b64 = base64.RawURLEncoding

// Codec seals and opens tokens. It is safe for concurrent use.
type Codec struct {
	aeads []cipher.AEAD
}

// NewCodec returns a Codec that seals with keys[0] and opens with any of keys.
func NewCodec(keys [][]byte) (*Codec, error) {
	if len(keys) == 0 {
		return nil, errors.New("token: no key")
	}
	c := &Codec{}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("token: key %d is %d bytes, want %d", i, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("token: key %d: %w", i, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("token: key %d: %w", i, err)
		}
		c.aeads = append(c.aeads, aead)
	}
	return c, nil
}

// ParseKeys reads a comma-separated list of base64url keys, as in HERALD_TOKEN_KEYS.
func ParseKeys(s string) ([][]byte, error) {
	var keys [][]byte
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, err := b64.DecodeString(strings.TrimRight(part, "="))
		if err != nil {
			return nil, fmt.Errorf("token key %d: not base64url: %w", i, err)
		}
		if len(k) != KeySize {
			return nil, fmt.Errorf("token key %d: %d bytes, want %d", i, len(k), KeySize)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no token key: generate one with `heraldctl token-key`")
	}
	return keys, nil
}

// GenerateKey returns a new random key in the base64url form ParseKeys reads.
func GenerateKey() string {
	k := make([]byte, KeySize)
	_, _ = rand.Read(k) // crypto/rand.Read never fails (Go 1.24+)
	return b64.EncodeToString(k)
}

// Endpoint seals the token of a push endpoint.
func (c *Codec) Endpoint(uaid ids.UAID, ch ids.ChannelID) string {
	var plain [32]byte
	copy(plain[:16], uaid[:])
	copy(plain[16:], ch[:])
	return c.seal(kindEndpoint, plain[:])
}

// OpenEndpoint opens a push endpoint token.
func (c *Codec) OpenEndpoint(tok string) (ids.UAID, ids.ChannelID, error) {
	plain, err := c.open(kindEndpoint, tok)
	if err != nil || len(plain) != 32 {
		return ids.UAID{}, ids.ChannelID{}, ErrInvalid
	}
	return ids.UAID(plain[:16]), ids.ChannelID(plain[16:]), nil
}

// MessageID seals the id of a stored message, as given to the application server in
// the Location of its 201 response.
func (c *Codec) MessageID(uaid ids.UAID, ch ids.ChannelID, entry string) string {
	plain := make([]byte, 0, 32+len(entry))
	plain = append(plain, uaid[:]...)
	plain = append(plain, ch[:]...)
	plain = append(plain, entry...)
	return c.seal(kindMessage, plain)
}

// OpenMessageID opens a message id.
func (c *Codec) OpenMessageID(s string) (ids.UAID, ids.ChannelID, string, error) {
	plain, err := c.open(kindMessage, s)
	if err != nil || len(plain) <= 32 || len(plain) > 32+maxMessageIDLen {
		return ids.UAID{}, ids.ChannelID{}, "", ErrInvalid
	}
	return ids.UAID(plain[:16]), ids.ChannelID(plain[16:32]), string(plain[32:]), nil
}

// seal returns base64url(version | nonce | AES-GCM(plain, ad = version | kind)).
func (c *Codec) seal(kind byte, plain []byte) string {
	aead := c.aeads[0]
	ad := [2]byte{version, kind}
	out := make([]byte, 1, 1+aead.NonceSize()+len(plain)+aead.Overhead())
	out[0] = version
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails (Go 1.24+)
	out = append(out, nonce...)
	out = aead.Seal(out, nonce, plain, ad[:])
	return b64.EncodeToString(out)
}

func (c *Codec) open(kind byte, s string) ([]byte, error) {
	// Bound the work done on hostile input before decoding.
	if len(s) > 512 {
		return nil, ErrInvalid
	}
	raw, err := b64.DecodeString(s)
	if err != nil {
		return nil, ErrInvalid
	}
	ns := c.aeads[0].NonceSize()
	if len(raw) < 1+ns+c.aeads[0].Overhead() || raw[0] != version {
		return nil, ErrInvalid
	}
	ad := [2]byte{version, kind}
	nonce, sealed := raw[1:1+ns], raw[1+ns:]
	for _, aead := range c.aeads {
		if plain, err := aead.Open(nil, nonce, sealed, ad[:]); err == nil {
			return plain, nil
		}
	}
	return nil, ErrInvalid
}
