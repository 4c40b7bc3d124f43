package main

import "testing"

// An -offline run is refused before any user agent connects when it cannot be made.
func TestCheckOffline(t *testing.T) {
	base := config{conns: 1000, offline: 10}
	for _, tc := range []struct {
		name string
		edit func(*config)
		ok   bool
	}{
		{"plain", func(*config) {}, true},
		{"off", func(c *config) { c.offline = 0; c.prepare = true }, true},
		{"negative", func(c *config) { c.offline = -1 }, false},
		{"storm", func(c *config) { c.stormKill = "gateway0" }, false},
		{"idle", func(c *config) { c.idle = true }, false},
		{"procs", func(c *config) { c.procs = 2 }, false},
		{"prepare", func(c *config) { c.prepare = true }, false},
		{"too many", func(c *config) { c.conns, c.offline = 100_000, maxPrepared/100_000+1 }, false},
		{"the most", func(c *config) { c.conns, c.offline = 100_000, maxPrepared/100_000 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			if err := checkOffline(cfg); (err == nil) != tc.ok {
				t.Errorf("checkOffline(%+v) = %v, want ok %v", cfg, err, tc.ok)
			}
		})
	}
}
