// Package logging builds the slog.Logger each Herald service is given: JSON for
// production, text for people.
package logging

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
)

// Config selects the log format and level.
type Config struct {
	Format string
	Level  string
}

// RegisterFlags registers -log-format and -log-level.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Format, "log-format", "json", "log format: json or text")
	fs.StringVar(&c.Level, "log-level", "info", "log level: debug, info, warn or error")
}

// Validate reports an unknown format or level.
func (c *Config) Validate() error {
	if c.Format != "json" && c.Format != "text" {
		return fmt.Errorf("log-format %q: want json or text", c.Format)
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.Level)); err != nil {
		return fmt.Errorf("log-level %q: %w", c.Level, err)
	}
	return nil
}

// New returns a logger writing to w.
func (c *Config) New(w io.Writer, service string) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // checked by Validate; info otherwise
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if c.Format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(withTrace(h)).With("service", service)
}
