// Package charts tests the Helm chart charts/herald and the deploy/ examples by
// rendering them with a real helm binary and checking every rendered object the way
// a cluster would: decoded strictly into the Kubernetes API types, with references
// between objects resolved. No cluster or container engine is needed.
//
// Helm comes from HERALD_HELM, the repository's bin/helm, or PATH, in that order;
// scripts/test.d/helm.sh (which scripts/test.sh sources) installs it.
package charts

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// repoRoot is the repository root, two levels above this package.
var repoRoot = func() string {
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return dir
}()

var chartDir = filepath.Join(repoRoot, "charts", "herald")

// releaseName and namespace are what every render uses.
const (
	releaseName = "herald"
	namespace   = "push"
)

// testTokenKey is a well-formed token key, for values that need one.
const testTokenKey = "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

var (
	helmOnce sync.Once
	helmPath string
	helmErr  string
)

// helm returns the path of the helm binary, failing the test when there is none:
// a chart that is not checked must not look like a chart that passed.
func helm(t testing.TB) string {
	t.Helper()
	helmOnce.Do(func() {
		if p := os.Getenv("HERALD_HELM"); p != "" {
			if _, err := os.Stat(p); err != nil {
				helmErr = "HERALD_HELM=" + p + ": " + err.Error() + " (unset it to use bin/helm, which scripts/install-helm.sh builds)"
				return
			}
			helmPath = p
			return
		}
		if p := filepath.Join(repoRoot, "bin", "helm"); isExecutable(p) {
			helmPath = p
			return
		}
		if p, err := exec.LookPath("helm"); err == nil {
			helmPath = p
			return
		}
		helmErr = "helm not found (HERALD_HELM unset, no bin/helm, none on PATH): " +
			"run `scripts/install-helm.sh` or `bash scripts/test.d/helm.sh` in the repository root"
	})
	if helmPath == "" {
		t.Fatal(helmErr)
	}
	return helmPath
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// runHelm runs helm with args and returns its stdout, stderr and whether it succeeded.
func runHelm(t testing.TB, args ...string) (stdout, stderr string, ok bool) {
	t.Helper()
	cmd := exec.Command(helm(t), args...)
	// Helm must not read or write the caller's configuration or plugins.
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "kubeconfig"),
	)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		if _, exit := err.(*exec.ExitError); !exit {
			t.Fatalf("run helm %s: %v", strings.Join(args, " "), err)
		}
	}
	return out.String(), errb.String(), err == nil
}

// templateArgs are the arguments of `helm template` for the chart with extra
// arguments (values files, --set) appended.
func templateArgs(extra ...string) []string {
	return append([]string{"template", releaseName, chartDir, "--namespace", namespace}, extra...)
}

// render runs `helm template` and decodes every document strictly. It fails the
// test when helm or a document fails.
func render(t testing.TB, extra ...string) *manifests {
	t.Helper()
	out, errOut, ok := runHelm(t, templateArgs(extra...)...)
	if !ok {
		t.Fatalf("helm template %s failed:\n%s", strings.Join(extra, " "), errOut)
	}
	m, err := decodeAll(out)
	if err != nil {
		t.Fatalf("helm template %s: %v", strings.Join(extra, " "), err)
	}
	return m
}

// renderFails runs `helm template`, expecting it to fail, and returns its error output.
func renderFails(t testing.TB, extra ...string) string {
	t.Helper()
	_, errOut, ok := runHelm(t, templateArgs(extra...)...)
	if ok {
		t.Fatalf("helm template %s succeeded; want an error", strings.Join(extra, " "))
	}
	return errOut
}

func TestHelmVersion(t *testing.T) {
	out, errOut, ok := runHelm(t, "version", "--template", "{{.Version}}")
	if !ok {
		t.Fatalf("helm version: %s", errOut)
	}
	v := strings.TrimSpace(out)
	if !strings.HasPrefix(v, "v3.") && !strings.HasPrefix(v, "v4.") {
		t.Fatalf("helm %s: the chart supports Helm 3 and Helm 4", v)
	}
	t.Logf("helm %s at %s", v, helm(t))
}
