package flagenv

import (
	"flag"
	"testing"
	"time"
)

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "default", want: "def"},
		{name: "env", env: map[string]string{"HERALD_REDIS_URL": "env"}, want: "env"},
		{name: "flag beats env", args: []string{"-redis-url", "flag"}, env: map[string]string{"HERALD_REDIS_URL": "env"}, want: "flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			got := fs.String("redis-url", "def", "")
			if err := Parse(fs, tt.args, func(k string) string { return tt.env[k] }); err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Fatalf("got %q, want %q", *got, tt.want)
			}
		})
	}
}

func TestBadEnvValue(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Duration("lease-ttl", time.Second, "")
	err := Parse(fs, nil, func(k string) string {
		if k == "HERALD_LEASE_TTL" {
			return "soon"
		}
		return ""
	})
	if err == nil {
		t.Fatal("a malformed environment value was accepted")
	}
}
