package token

import (
	"errors"
	"flag"
)

// Config holds the token keys.
type Config struct {
	// Keys is a comma-separated list of base64url 32-byte keys; the first seals.
	Keys string
}

// RegisterFlags registers -token-keys.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Keys, "token-keys", "", "comma-separated base64url 32-byte keys sealing endpoint tokens; the first seals, all open (required; `heraldctl token-key` makes one)")
}

// Validate checks the keys parse.
func (c *Config) Validate() error {
	if c.Keys == "" {
		return errors.New("token-keys is required: set HERALD_TOKEN_KEYS (generate one with `heraldctl token-key`)")
	}
	_, err := ParseKeys(c.Keys)
	return err
}

// Codec returns the codec for the configured keys.
func (c *Config) Codec() (*Codec, error) {
	keys, err := ParseKeys(c.Keys)
	if err != nil {
		return nil, err
	}
	return NewCodec(keys)
}
