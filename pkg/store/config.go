package store

import (
	"errors"
	"flag"
	"net/url"
)

// Config selects the database.
type Config struct {
	URL string
}

// RegisterFlags registers -postgres-url.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "postgres-url", "postgres://herald@127.0.0.1:5432/herald?sslmode=disable", "Postgres URL")
}

// Validate checks the URL is set.
func (c *Config) Validate() error {
	if c.URL == "" {
		return errors.New("postgres-url is required")
	}
	return nil
}

// Redacted returns the URL with any password hidden, for logs.
func (c *Config) Redacted() string {
	u, err := url.Parse(c.URL)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
