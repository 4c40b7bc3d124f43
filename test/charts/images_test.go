package charts

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The Dockerfile and deploy/docker-compose.yaml cannot be built or started here
// (no container engine); these tests check what can go wrong without one: targets,
// users, the files a build copies, and the settings compose passes.

// dockerStage is one FROM … AS name stage of the Dockerfile.
type dockerStage struct {
	name, from string
	lines      []string // instructions, continuation lines joined
}

func readDockerfile(t *testing.T) []dockerStage {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []dockerStage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		fields := strings.Fields(line)
		if strings.EqualFold(fields[0], "FROM") {
			s := dockerStage{}
			for i := 1; i < len(fields); i++ {
				switch {
				case strings.HasPrefix(fields[i], "--"):
				case strings.EqualFold(fields[i], "AS") && i+1 < len(fields):
					s.name = fields[i+1]
					i++
				default:
					s.from = fields[i]
				}
			}
			stages = append(stages, s)
			return
		}
		if len(stages) > 0 {
			stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
		}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

func TestDockerfile(t *testing.T) {
	stages := readDockerfile(t)
	byName := map[string]dockerStage{}
	for _, s := range stages {
		byName[s.name] = s
	}
	for _, target := range []string{"ingest", "router", "gateway", "heraldctl"} {
		s, ok := byName[target]
		if !ok {
			t.Errorf("Dockerfile: no target %q", target)
			continue
		}
		if !strings.Contains(s.from, "RUNTIME_IMAGE") {
			t.Errorf("Dockerfile %s: FROM %s, want the runtime image", target, s.from)
		}
		var user, entry string
		for _, l := range s.lines {
			if v, ok := strings.CutPrefix(l, "USER "); ok {
				user = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(l, "ENTRYPOINT "); ok {
				entry = strings.TrimSpace(v)
			}
		}
		// A numeric user lets Kubernetes check runAsNonRoot; the chart runs 65532.
		if user != "65532:65532" {
			t.Errorf("Dockerfile %s: USER %q, want 65532:65532", target, user)
		}
		if entry != `["/`+target+`"]` {
			t.Errorf("Dockerfile %s: ENTRYPOINT %s, want [\"/%s\"] (exec form: the binary gets SIGTERM)", target, entry, target)
		}
	}
	// The runtime image: distroless static, its nonroot variant.
	var runtime string
	f, _ := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if m := regexp.MustCompile(`(?m)^ARG RUNTIME_IMAGE=(\S+)`).FindSubmatch(f); m != nil {
		runtime = string(m[1])
	}
	if !strings.HasPrefix(runtime, "gcr.io/distroless/static") || !strings.HasSuffix(runtime, ":nonroot") {
		t.Errorf("Dockerfile: RUNTIME_IMAGE %q, want gcr.io/distroless/static…:nonroot", runtime)
	}

	// Every file a build copies exists and passes .dockerignore; every package it
	// builds exists.
	allowed := dockerignoreAllowed(t)
	build := regexp.MustCompile(`go build .* -o \S+ (\./\S+)`)
	for _, s := range stages {
		for _, l := range s.lines {
			fields := strings.Fields(l)
			if fields[0] == "COPY" && !strings.Contains(l, "--from=") {
				for _, src := range fields[1 : len(fields)-1] {
					if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
						t.Errorf("Dockerfile %s: COPY %s: %v", s.name, src, err)
					}
					if !slices.ContainsFunc(allowed, func(a string) bool { return src == a || strings.HasPrefix(src, a+"/") }) {
						t.Errorf("Dockerfile %s: COPY %s, which .dockerignore leaves out of the context", s.name, src)
					}
				}
			}
			if m := build.FindStringSubmatch(l); m != nil {
				if _, err := os.Stat(filepath.Join(repoRoot, m[1], "main.go")); err != nil {
					t.Errorf("Dockerfile %s: builds %s: %v", s.name, m[1], err)
				}
			}
		}
	}
	// go.work names every module; the build needs each one's go.mod.
	work, err := os.ReadFile(filepath.Join(repoRoot, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+\./(\S+)$`).FindAllSubmatch(work, -1) {
		mod := string(m[1]) + "/go.mod"
		if !slices.ContainsFunc(stages[0].lines, func(l string) bool { return strings.Contains(l, " "+mod+" ") }) {
			t.Errorf("Dockerfile: the workspace module %s is not copied before `go mod download`", mod)
		}
	}
}

// dockerignoreAllowed returns the paths .dockerignore lets in (its "!" lines); it
// excludes everything else.
func dockerignoreAllowed(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if !slices.Contains(lines, "*") {
		t.Fatalf(".dockerignore: expected an allowlist starting with *")
	}
	var allowed []string
	for _, l := range lines {
		if a, ok := strings.CutPrefix(strings.TrimSpace(l), "!"); ok {
			allowed = append(allowed, strings.TrimSuffix(a, "/"))
		}
	}
	return allowed
}

// composeFile is the part of a compose file these checks read.
type composeFile struct {
	Services map[string]struct {
		Image string `json:"image"`
		Build *struct {
			Context string `json:"context"`
			Target  string `json:"target"`
		} `json:"build"`
		Environment map[string]string `json:"environment"`
	} `json:"services"`
}

func TestDockerCompose(t *testing.T) {
	path := deployFile("docker-compose.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(js, &cf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	stages := map[string]bool{}
	for _, s := range readDockerfile(t) {
		stages[s.name] = true
	}
	for _, svc := range []string{"ingest", "router", "gateway"} {
		s, ok := cf.Services[svc]
		if !ok {
			t.Errorf("compose: no service %s", svc)
			continue
		}
		if s.Build == nil || !stages[s.Build.Target] || filepath.Clean(filepath.Join(filepath.Dir(path), s.Build.Context)) != repoRoot {
			t.Errorf("compose %s: build %+v, want the repository root and a Dockerfile target", svc, s.Build)
		}
		// The image compose tags is the one the chart installs by default.
		if want := "ghcr.io/herald-push/herald-" + svc + ":"; !strings.HasPrefix(s.Image, want) {
			t.Errorf("compose %s: image %q, want %s…", svc, s.Image, want)
		}
		for k, v := range s.Environment {
			checkEnv(t, "compose "+svc, svc, k, v, !strings.Contains(v, "${"))
		}
	}
	if gw := cf.Services["gateway"].Environment["HERALD_GRPC_ADVERTISE"]; gw != "gateway:8082" {
		t.Errorf("compose gateway: HERALD_GRPC_ADVERTISE=%q, want gateway:8082 (routers reach it by its service name)", gw)
	}
}

func TestChartImagesMatchMakefile(t *testing.T) {
	// make images tags ghcr.io/herald-push/herald-<service>, which the chart installs
	// by default (image.registry + <component>.image.repository).
	b, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Image struct {
			Registry string `json:"registry"`
		} `json:"image"`
		Ingest, Router, Gateway struct {
			Image struct {
				Repository string `json:"repository"`
			} `json:"image"`
		}
	}
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	mk, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^IMAGE_REGISTRY \?= (\S+)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("Makefile: no IMAGE_REGISTRY")
	}
	for svc, repo := range map[string]string{"ingest": v.Ingest.Image.Repository, "router": v.Router.Image.Repository, "gateway": v.Gateway.Image.Repository} {
		if got, want := v.Image.Registry+"/"+repo, string(m[1])+"/herald-"+svc; got != want {
			t.Errorf("chart image of %s is %s, make images builds %s", svc, got, want)
		}
	}
}
