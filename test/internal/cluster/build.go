// Package cluster runs Herald's three services as real processes for end-to-end
// tests: it builds the binaries once, starts each on port 0 against a fresh Postgres
// database and Redis key prefix, reads the addresses from their "listening" log lines,
// and stops them in t.Cleanup expecting a clean exit.
package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// binDir holds the binaries built by Main.
var binDir string

// Services are the commands Main builds, by name.
var Services = map[string]string{
	"ingest":     "github.com/herald-push/herald/services/ingest/cmd/ingest",
	"router":     "github.com/herald-push/herald/services/router/cmd/router",
	"gateway":    "github.com/herald-push/herald/services/gateway/cmd/gateway",
	"heraldctl":  "github.com/herald-push/herald/test/cmd/heraldctl",
	"heraldload": "github.com/herald-push/herald/test/cmd/heraldload",
}

// Main builds the binaries, runs the tests and removes the binaries. Call it from
// TestMain.
func Main(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func build(dir string) error {
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, pkg := range Services {
		args = append(args, pkg)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = moduleRoot()
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// Bin returns the path of a built binary.
func Bin(name string) string { return filepath.Join(binDir, name) }

// moduleRoot returns the test module's directory, where go build resolves the workspace.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
