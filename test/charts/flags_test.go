package charts

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The chart configures the services through environment variables, each the twin
// of a flag (-redis-url ↔ HERALD_REDIS_URL). A misspelt variable would be ignored
// by the service without a word, so the test reads the flags each service really
// registers from its source and checks every HERALD_ variable the chart sets
// against them, and its value against the flag's type.

// flagKind is the type of a flag: "String", "Duration", "Int", "Int64", "Bool", …
type flagKind string

// serviceFlags is the flags one service registers, by name.
type serviceFlags map[string]flagKind

// pendingFlags are flags the chart uses that a service is about to gain; each is
// accepted while its service does not register it yet. Remove an entry once it is
// implemented.
var pendingFlags = map[string][]string{}

var (
	flagsOnce sync.Once
	flagsBy   map[string]serviceFlags
	flagsErr  error
)

// flagsOf returns the flags of service (ingest, router or gateway): those its
// internal/app package registers, and those of the packages it imports from pkg/
// and from its own internal/ (their Config.RegisterFlags).
func flagsOf(t testing.TB, service string) serviceFlags {
	t.Helper()
	flagsOnce.Do(func() {
		flagsBy = map[string]serviceFlags{}
		for _, s := range []string{"ingest", "router", "gateway"} {
			f, err := readServiceFlags(s)
			if err != nil {
				flagsErr = err
				return
			}
			flagsBy[s] = f
		}
	})
	if flagsErr != nil {
		t.Fatalf("read the services' flags: %v", flagsErr)
	}
	f, ok := flagsBy[service]
	if !ok {
		t.Fatalf("no service %q", service)
	}
	return f
}

const modulePrefix = "github.com/herald-push/herald/"

func readServiceFlags(service string) (serviceFlags, error) {
	flags := serviceFlags{}
	appDir := filepath.Join(repoRoot, "services", service, "internal", "app")
	imports, err := collectFlags(appDir, flags)
	if err != nil {
		return nil, err
	}
	for _, imp := range imports {
		// Shared packages and the service's own internal ones: each may hold a
		// Config with its RegisterFlags.
		rel, ok := strings.CutPrefix(imp, modulePrefix)
		if !ok || !(strings.HasPrefix(rel, "pkg/") || strings.HasPrefix(rel, "services/"+service+"/")) {
			continue
		}
		if _, err := collectFlags(filepath.Join(repoRoot, filepath.FromSlash(rel)), flags); err != nil {
			return nil, err
		}
	}
	if len(flags) == 0 {
		return nil, fmt.Errorf("%s: no flags found in %s", service, appDir)
	}
	return flags, nil
}

// flagFuncs are the flag.FlagSet methods that define a flag, with the position of
// the flag's name among their arguments.
var flagFuncs = map[string]int{
	"StringVar": 1, "BoolVar": 1, "IntVar": 1, "Int64Var": 1, "UintVar": 1, "Uint64Var": 1,
	"Float64Var": 1, "DurationVar": 1, "TextVar": 1, "Var": 1, "Func": 0, "BoolFunc": 0,
	"String": 0, "Bool": 0, "Int": 0, "Int64": 0, "Uint": 0, "Uint64": 0, "Float64": 0, "Duration": 0,
}

// collectFlags adds to flags every flag defined with a literal name by the
// RegisterFlags methods in the non-test Go files of dir, and returns the packages
// those files import.
func collectFlags(dir string, flags serviceFlags) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	var imports []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value) // the parser accepted it, so it unquotes
			imports = append(imports, p)
		}
		for _, d := range f.Decls {
			// Flags are defined in RegisterFlags methods (STYLE.md: Config);
			// other calls such as slog.String("error", …) only look alike.
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Name.Name != "RegisterFlags" || fn.Body == nil {
				continue
			}
			inspectFlags(fn.Body, flags)
		}
	}
	return imports, nil
}

// inspectFlags adds the flags defined in body.
func inspectFlags(body *ast.BlockStmt, flags serviceFlags) {
	ast.Inspect(body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		at, ok := flagFuncs[sel.Sel.Name]
		if !ok || len(call.Args) <= at {
			return true
		}
		lit, ok := call.Args[at].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		flagName, err := strconv.Unquote(lit.Value)
		if err != nil || flagName == "" || strings.ContainsAny(flagName, " \t") {
			return true
		}
		flags[flagName] = flagKind(strings.TrimSuffix(sel.Sel.Name, "Var"))
		return true
	})
}

// flagForEnv turns HERALD_REDIS_URL back into redis-url.
func flagForEnv(env string) (string, bool) {
	rest, ok := strings.CutPrefix(env, "HERALD_")
	if !ok {
		return "", false
	}
	return strings.ReplaceAll(strings.ToLower(rest), "_", "-"), true
}

// checkFlagValue reports whether value parses as a flag of kind k would parse it.
func checkFlagValue(k flagKind, value string) error {
	var err error
	switch k {
	case "Duration":
		_, err = time.ParseDuration(value)
	case "Int", "Int64":
		_, err = strconv.ParseInt(value, 0, 64)
	case "Uint", "Uint64":
		_, err = strconv.ParseUint(value, 0, 64)
	case "Float64":
		_, err = strconv.ParseFloat(value, 64)
	case "Bool", "BoolFunc":
		_, err = strconv.ParseBool(value)
	}
	return err
}

// checkEnv checks one HERALD_ variable a service is given.
func checkEnv(t testing.TB, where, service, env, value string, literal bool) {
	t.Helper()
	name, ok := flagForEnv(env)
	if !ok {
		return
	}
	k, ok := flagsOf(t, service)[name]
	if !ok {
		t.Errorf("%s: %s is the twin of -%s, which %s does not have", where, env, name, service)
		return
	}
	if !literal {
		return
	}
	if err := checkFlagValue(k, value); err != nil {
		t.Errorf("%s: %s=%q is not a valid %s for -%s: %v", where, env, value, strings.ToLower(string(k)), name, err)
	}
}

// checkArgs checks the flags given on a container's command line.
func checkArgs(t testing.TB, where, service string, args []string) {
	t.Helper()
	known := flagsOf(t, service)
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if _, ok := known[name]; ok {
			continue
		}
		pending := false
		for _, p := range pendingFlags[service] {
			pending = pending || p == name
		}
		if pending {
			t.Logf("%s: -%s is not a flag of %s yet (pending)", where, name, service)
			continue
		}
		t.Errorf("%s: -%s is not a flag of %s", where, name, service)
	}
}

func TestServiceFlagsFound(t *testing.T) {
	// The source reading must find what the services document, or every env check
	// above passes for the wrong reason.
	want := map[string][]string{
		"ingest":  {"listen", "admin-listen", "public-url", "router-addr", "postgres-url", "token-keys", "drain-delay", "drain-timeout", "log-level"},
		"router":  {"grpc-listen", "admin-listen", "lease-ttl", "redis-url", "redis-cluster", "drain-delay"},
		"gateway": {"listen", "grpc-listen", "grpc-advertise", "endpoint-url", "drain-window", "drain-delay", "drain-timeout", "redis-url", "postgres-url", "token-keys"},
	}
	for svc, names := range want {
		f := flagsOf(t, svc)
		for _, n := range names {
			if _, ok := f[n]; !ok {
				t.Errorf("%s: flag -%s not found in its source", svc, n)
			}
		}
	}
	if k := flagsOf(t, "gateway")["drain-window"]; k != "Duration" {
		t.Errorf("gateway -drain-window is a %q, want Duration", k)
	}
	if _, ok := flagsOf(t, "router")["postgres-url"]; ok {
		t.Errorf("router has -postgres-url: the per-service flag sets are not apart")
	}
}

// notInChart are the service flags the chart neither sets nor offers, and why.
var notInChart = map[string]map[string]string{
	"gateway": {"id": "the default, the pod's hostname with a random suffix, is unique per pod and per restart"},
}

// TestEveryFlagReachable: each flag of each service is set by the chart, offered
// as <service>.config.<flag> (typed in values.schema.json), or listed in notInChart,
// so that a flag added to a service is not silently out of an SRE's reach.
func TestEveryFlagReachable(t *testing.T) {
	configKeys := schemaConfigKeys(t)
	// Defaults, plus the options that set flags of their own.
	args := []string{"--set", "ingest.tls.secretName=tls"}
	for _, s := range required {
		args = append(args, "--set", s)
	}
	m := render(t, args...)
	set := map[string]map[string]bool{}
	for _, w := range workloads(m) {
		for _, c := range w.template.Spec.Containers {
			svc := component(c)
			if svc == "" {
				continue
			}
			if set[svc] == nil {
				set[svc] = map[string]bool{}
			}
			for env := range envOf(t, m, c) {
				if name, ok := flagForEnv(env); ok {
					set[svc][name] = true
				}
			}
			for _, a := range c.Args {
				name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
				set[svc][name] = true
			}
		}
	}
	for _, svc := range []string{"ingest", "router", "gateway"} {
		flags := flagsOf(t, svc)
		for name := range flags {
			_, offered := configKeys[svc][name]
			_, excluded := notInChart[svc][name]
			if set[svc][name] && offered {
				t.Errorf("%s.config.%s: the chart sets -%s itself; remove it from the schema", svc, name, name)
			}
			if !set[svc][name] && !offered && !excluded {
				t.Errorf("%s has -%s, which the chart neither sets nor offers as %s.config.%s: add it to values.schema.json and the chart README (or to notInChart, with the reason)", svc, name, svc, name)
			}
		}
		for name := range configKeys[svc] {
			if _, ok := flags[name]; !ok {
				t.Errorf("values.schema.json offers %s.config.%s, but %s has no -%s", svc, name, svc, name)
			}
		}
	}
}

// schemaConfigKeys reads the keys values.schema.json allows under <service>.config.
func schemaConfigKeys(t *testing.T) map[string]map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]struct {
			Properties struct {
				Config struct {
					AdditionalProperties *bool          `json:"additionalProperties"`
					Properties           map[string]any `json:"properties"`
				} `json:"config"`
			} `json:"properties"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	out := map[string]map[string]any{}
	for _, svc := range []string{"ingest", "router", "gateway"} {
		cfg := schema.Properties[svc].Properties.Config
		if cfg.AdditionalProperties == nil || *cfg.AdditionalProperties {
			t.Errorf("values.schema.json: %s.config accepts unknown keys; a misspelt flag would be ignored", svc)
		}
		out[svc] = cfg.Properties
	}
	return out
}
