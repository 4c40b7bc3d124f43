package charts

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// valuesCase is one way of installing the chart.
type valuesCase struct {
	name  string
	files []string // values files, in order
	set   []string // --set arguments
	// want counts some kinds the case must render (a missing kind is 0).
	want map[string]int
}

func (c valuesCase) args() []string {
	var a []string
	for _, f := range c.files {
		a = append(a, "-f", f)
	}
	for _, s := range c.set {
		a = append(a, "--set", s)
	}
	return a
}

// required is what the chart cannot default: with these alone it renders.
var required = []string{
	"tokenKeys.value=" + testTokenKey,
	"postgres.url=postgres://herald:secret@postgres:5432/herald?sslmode=disable",
	"redis.url=redis://redis:6379/0",
}

func ciFile(name string) string     { return filepath.Join(chartDir, "ci", name) }
func deployFile(name string) string { return filepath.Join(repoRoot, "deploy", name) }

// valuesCases are the defaults, every ci/ values file and every deploy/ example.
// Files found on disk and not listed here fail TestEveryValuesFileRendered.
func valuesCases() []valuesCase {
	return []valuesCase{
		{name: "defaults", set: required, want: map[string]int{
			"Deployment": 3, "Service": 5, "ConfigMap": 3, "Secret": 2, "ServiceAccount": 1,
			"PodDisruptionBudget": 3, "Job": 1, "HorizontalPodAutoscaler": 0, "Ingress": 0,
			"NetworkPolicy": 0, "ServiceMonitor": 0, "StatefulSet": 0,
		}},
		{name: "ci/minimal", files: []string{ciFile("minimal-values.yaml")}, want: map[string]int{"Deployment": 3, "Job": 1}},
		{name: "ci/all-features", files: []string{ciFile("all-features-values.yaml")}, want: map[string]int{
			"Deployment": 3, "HorizontalPodAutoscaler": 3, "Ingress": 2, "PodDisruptionBudget": 3,
			"NetworkPolicy": 3, "ServiceMonitor": 1, "Job": 1,
			// Token keys and Postgres come from existing Secrets: the chart's Secret
			// holds only the Redis URL, and the migrations need no hook Secret.
			"Secret": 1, "StatefulSet": 0,
		}},
		{name: "ci/trial-persistent", files: []string{ciFile("trial-persistent-values.yaml")}, want: map[string]int{
			"StatefulSet": 2, "Job": 0, "NetworkPolicy": 5, "Service": 7, "Ingress": 1,
		}},
		{name: "deploy/small", files: []string{deployFile("values-small.yaml")}, want: map[string]int{
			"Deployment": 3, "Ingress": 2, "HorizontalPodAutoscaler": 0, "Job": 1, "Secret": 0,
		}},
		{name: "deploy/large", files: []string{deployFile("values-large.yaml")}, want: map[string]int{
			"Deployment": 3, "Ingress": 2, "HorizontalPodAutoscaler": 3, "ServiceMonitor": 1, "NetworkPolicy": 3, "Job": 1,
		}},
		{name: "deploy/trial", files: []string{deployFile("values-trial.yaml")}, set: required[:1], want: map[string]int{
			"StatefulSet": 2, "Job": 0, "PodDisruptionBudget": 0,
		}},
	}
}

func TestEveryValuesFileRendered(t *testing.T) {
	listed := map[string]bool{}
	for _, c := range valuesCases() {
		for _, f := range c.files {
			listed[f] = true
		}
	}
	ci, _ := filepath.Glob(ciFile("*.yaml"))
	examples, _ := filepath.Glob(deployFile("values-*.yaml"))
	if len(ci) == 0 || len(examples) == 0 {
		t.Fatalf("no values files found (ci: %d, deploy: %d)", len(ci), len(examples))
	}
	for _, f := range append(ci, examples...) {
		if !listed[f] {
			t.Errorf("%s is not rendered by TestRender: add it to valuesCases", f)
		}
	}
}

func TestRender(t *testing.T) {
	for _, c := range valuesCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m := render(t, c.args()...)
			t.Logf("rendered %s", m.kindsRendered())
			for kind, n := range c.want {
				got := 0
				for _, o := range m.All {
					if o.Kind == kind {
						got++
					}
				}
				if got != n {
					t.Errorf("%d %s rendered, want %d", got, kind, n)
				}
			}
			checkManifests(t, m, externalSecrets(t, c.files))
			checkHerald(t, m)
		})
	}
}

// checkHerald asserts what Herald itself depends on, whatever the values.
func checkHerald(t *testing.T, m *manifests) {
	t.Helper()
	deps := map[string]*appsv1.Deployment{}
	for _, d := range all[appsv1.Deployment](m) {
		c := d.Spec.Template.Spec.Containers[0]
		deps[component(c)] = d
	}
	for _, name := range []string{"ingest", "router", "gateway"} {
		if deps[name] == nil {
			t.Fatalf("no %s Deployment", name)
		}
	}
	for name, d := range deps {
		checkDrain(t, m, name, d)
		if d.Spec.Template.Annotations["checksum/config"] == "" || d.Spec.Template.Annotations["checksum/secret"] == "" {
			t.Errorf("%s: pod template without checksum annotations: a changed value would not roll the pods", name)
		}
	}
	checkGatewayAddressing(t, m, deps["gateway"])
	checkRouterAddressing(t, m, deps["ingest"])
	checkHeraldHPAs(t, m)
	checkMigrations(t, m)
	for _, svc := range all[corev1.Service](m) {
		if svc.Spec.Type == corev1.ServiceTypeClusterIP || svc.Spec.Type == "" {
			continue
		}
		for _, p := range svc.Spec.Ports {
			if p.Name != "http" && p.Name != "websocket" {
				t.Errorf("Service/%s (%s) exposes port %s outside the cluster", svc.Name, svc.Spec.Type, p.Name)
			}
		}
	}
	for _, ss := range all[appsv1.StatefulSet](m) {
		if ss.Labels["herald/trial"] != "true" || ss.Spec.Template.Labels["herald/trial"] != "true" {
			t.Errorf("StatefulSet/%s: the only StatefulSets are the trial servers, labelled herald/trial=true", ss.Name)
		}
	}
}

// envOf returns a container's effective environment: its ConfigMaps, then env.
func envOf(t *testing.T, m *manifests, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			if cm := get[corev1.ConfigMap](m, ef.ConfigMapRef.Name); cm != nil {
				for k, v := range cm.Data {
					env[k] = v
				}
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		} else {
			env[e.Name] = "(from " + e.ValueFrom.String() + ")"
		}
	}
	return env
}

// checkDrain: a pod stops being ready before it stops taking work, and Kubernetes
// lets its drain finish before killing it.
func checkDrain(t *testing.T, m *manifests, name string, d *appsv1.Deployment) {
	t.Helper()
	spec := d.Spec.Template.Spec
	c := spec.Containers[0]
	env := envOf(t, m, c)
	delay := seconds(t, name+" HERALD_DRAIN_DELAY", env["HERALD_DRAIN_DELAY"])
	timeout := seconds(t, name+" HERALD_DRAIN_TIMEOUT", env["HERALD_DRAIN_TIMEOUT"])
	var window int64
	if name == "gateway" {
		window = seconds(t, name+" HERALD_DRAIN_WINDOW", env["HERALD_DRAIN_WINDOW"])
		if window <= 0 {
			t.Errorf("gateway: drain window %ds: user agents would all reconnect at once", window)
		}
	}
	if spec.TerminationGracePeriodSeconds == nil {
		t.Fatalf("%s: no terminationGracePeriodSeconds", name)
	}
	grace := *spec.TerminationGracePeriodSeconds
	if grace <= delay+window {
		t.Errorf("%s: terminationGracePeriodSeconds %d ≤ drain delay %d + window %d: the drain is killed", name, grace, delay, window)
	}
	if grace <= timeout {
		t.Errorf("%s: terminationGracePeriodSeconds %d ≤ drain timeout %d: the drain is killed before its own deadline", name, grace, timeout)
	}
	if timeout <= delay+window {
		t.Errorf("%s: drain timeout %d ≤ delay %d + window %d: the drain cuts itself short", name, timeout, delay, window)
	}

	rp := c.ReadinessProbe
	if rp == nil || rp.HTTPGet == nil || rp.HTTPGet.Path != "/readyz" || rp.HTTPGet.Port.StrVal != "admin" {
		t.Errorf("%s: readiness probe %v, want GET /readyz on the admin port", name, rp)
	} else if notice := int64(rp.PeriodSeconds * rp.FailureThreshold); notice > delay {
		// Readiness goes false at the first moment of the drain; Kubernetes must see
		// it (period × failures) before intake stops (the drain delay).
		t.Errorf("%s: readiness is noticed false only after %ds, longer than the drain delay %ds", name, notice, delay)
	}
	lp := c.LivenessProbe
	if lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/livez" {
		t.Errorf("%s: liveness probe %v, want GET /livez", name, lp)
	}
	sp := c.StartupProbe
	if sp == nil || sp.HTTPGet == nil || sp.HTTPGet.Path != "/livez" {
		t.Errorf("%s: startup probe %v, want GET /livez (migrations run before the admin port opens)", name, sp)
	} else if lp != nil && lp.InitialDelaySeconds > 0 {
		t.Errorf("%s: liveness has an initial delay although a startup probe guards the start", name)
	}

	if name != "gateway" {
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
			t.Errorf("%s: a preStop hook; SIGTERM starts its drain", name)
		}
		return
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		ps := c.Lifecycle.PreStop
		if ps.HTTPGet == nil || ps.HTTPGet.Path != "/drain" || ps.HTTPGet.Port.StrVal != "admin" {
			t.Errorf("gateway: preStop %v, want GET /drain on the admin port", ps)
		}
	}
	// Kubernetes goes on with a rollout while the old pod still drains; waiting the
	// drain's length keeps the drains of a rollout apart.
	if int64(d.Spec.MinReadySeconds) < delay+window {
		t.Errorf("gateway: minReadySeconds %d < drain delay %d + window %d: a rollout drains several gateways at once", d.Spec.MinReadySeconds, delay, window)
	}
	rs := d.Spec.Strategy
	if rs.Type != appsv1.RollingUpdateDeploymentStrategyType || rs.RollingUpdate == nil ||
		rs.RollingUpdate.MaxUnavailable == nil || rs.RollingUpdate.MaxUnavailable.String() != "0" {
		t.Errorf("gateway: strategy %v, want a RollingUpdate with maxUnavailable 0 (a new gateway before an old one drains)", rs)
	}
}

// checkGatewayAddressing: routers reach the owning gateway pod itself.
func checkGatewayAddressing(t *testing.T, m *manifests, d *appsv1.Deployment) {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	podIP := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_IP" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP"
	})
	adv := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "HERALD_GRPC_ADVERTISE" })
	switch {
	case podIP < 0:
		t.Errorf("gateway: no POD_IP from the downward API (status.podIP)")
	case adv < 0:
		t.Errorf("gateway: no HERALD_GRPC_ADVERTISE: routers would be told the listener's address")
	case adv < podIP:
		t.Errorf("gateway: HERALD_GRPC_ADVERTISE comes before POD_IP, so $(POD_IP) is not expanded")
	case !strings.Contains(c.Env[adv].Value, "$(POD_IP)") || !strings.HasSuffix(c.Env[adv].Value, ":8082"):
		t.Errorf("gateway: HERALD_GRPC_ADVERTISE=%q, want the pod IP and the gRPC port 8082", c.Env[adv].Value)
	}
	env := envOf(t, m, c)
	if env["HERALD_GRPC_LISTEN"] != ":8082" {
		t.Errorf("gateway: HERALD_GRPC_LISTEN=%q, want :8082 on every interface", env["HERALD_GRPC_LISTEN"])
	}
	var grpcSvc *corev1.Service
	for _, s := range all[corev1.Service](m) {
		if s.Labels["app.kubernetes.io/component"] == "gateway" && s.Spec.ClusterIP == corev1.ClusterIPNone {
			grpcSvc = s
		}
	}
	if grpcSvc == nil {
		t.Errorf("gateway: no headless Service for the per-pod gRPC port")
	} else if !grpcSvc.Spec.PublishNotReadyAddresses {
		t.Errorf("Service/%s: draining gateways still hold user agents; publishNotReadyAddresses must be true", grpcSvc.Name)
	}
	ingestEnv := map[string]string{}
	for _, d := range all[appsv1.Deployment](m) {
		if ic := d.Spec.Template.Spec.Containers[0]; ic.Name == "ingest" {
			ingestEnv = envOf(t, m, ic)
		}
	}
	if env["HERALD_ENDPOINT_URL"] == "" || env["HERALD_ENDPOINT_URL"] != ingestEnv["HERALD_PUBLIC_URL"] {
		t.Errorf("gateway HERALD_ENDPOINT_URL=%q, ingest HERALD_PUBLIC_URL=%q: push endpoints must name ingest's public URL on both",
			env["HERALD_ENDPOINT_URL"], ingestEnv["HERALD_PUBLIC_URL"])
	}
}

// checkRouterAddressing: ingest balances over every router pod.
func checkRouterAddressing(t *testing.T, m *manifests, ingest *appsv1.Deployment) {
	t.Helper()
	addr := envOf(t, m, ingest.Spec.Template.Spec.Containers[0])["HERALD_ROUTER_ADDR"]
	rest, ok := strings.CutPrefix(addr, "dns:///")
	if !ok {
		t.Errorf("ingest: HERALD_ROUTER_ADDR=%q, want dns:/// so that gRPC resolves every router", addr)
		return
	}
	host, port, _ := strings.Cut(rest, ":")
	svcName, _, _ := strings.Cut(host, ".")
	if !strings.HasPrefix(host, svcName+"."+namespace+".svc.") {
		t.Errorf("ingest: HERALD_ROUTER_ADDR host %q is not a Service of namespace %s", host, namespace)
	}
	svc := get[corev1.Service](m, svcName)
	if svc == nil || svc.Labels["app.kubernetes.io/component"] != "router" {
		t.Errorf("ingest: HERALD_ROUTER_ADDR names %q, not the router Service", svcName)
		return
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service/%s: not headless: every ingest would hold one connection to one router", svc.Name)
	}
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "grpc" && port == "8090" && p.Port == 8090 }) {
		t.Errorf("ingest: HERALD_ROUTER_ADDR port %s is not the router's gRPC port", port)
	}
}

func checkHeraldHPAs(t *testing.T, m *manifests) {
	t.Helper()
	for _, h := range all[autoscalingv2.HorizontalPodAutoscaler](m) {
		comp := h.Labels["app.kubernetes.io/component"]
		var pods, cpu bool
		for _, mt := range h.Spec.Metrics {
			switch mt.Type {
			case autoscalingv2.PodsMetricSourceType:
				p := mt.Pods
				if p == nil || p.Metric.Name == "" || p.Target.Type != autoscalingv2.AverageValueMetricType ||
					p.Target.AverageValue == nil || p.Target.AverageValue.Sign() <= 0 {
					t.Errorf("HorizontalPodAutoscaler/%s: Pods metric %v needs a name and a positive AverageValue", h.Name, p)
				}
				pods = true
			case autoscalingv2.ResourceMetricSourceType:
				r := mt.Resource
				if r == nil || r.Name != corev1.ResourceCPU || r.Target.Type != autoscalingv2.UtilizationMetricType ||
					r.Target.AverageUtilization == nil || *r.Target.AverageUtilization <= 0 {
					t.Errorf("HorizontalPodAutoscaler/%s: resource metric %v, want CPU utilization", h.Name, r)
				}
				cpu = true
			default:
				t.Errorf("HorizontalPodAutoscaler/%s: unexpected metric type %s", h.Name, mt.Type)
			}
		}
		switch comp {
		case "gateway":
			// Gateways scale on connections: their CPU is low while they hold many.
			if !pods {
				t.Errorf("HorizontalPodAutoscaler/%s: no Pods metric of connections per gateway", h.Name)
			}
			if b := h.Spec.Behavior; b == nil || b.ScaleDown == nil || b.ScaleDown.StabilizationWindowSeconds == nil ||
				*b.ScaleDown.StabilizationWindowSeconds < 300 {
				t.Errorf("HorizontalPodAutoscaler/%s: scale-down without a stabilization window of 5 min or more: every removed gateway makes its user agents reconnect", h.Name)
			}
		case "ingest", "router":
			if !cpu || pods {
				t.Errorf("HorizontalPodAutoscaler/%s: want CPU utilization only", h.Name)
			}
		default:
			t.Errorf("HorizontalPodAutoscaler/%s: for unknown component %q", h.Name, comp)
		}
	}
}

func checkMigrations(t *testing.T, m *manifests) {
	t.Helper()
	for _, j := range all[batchv1.Job](m) {
		where := "Job/" + j.Name
		a := j.Annotations
		events := strings.Split(a["helm.sh/hook"], ",")
		if !slices.Contains(events, "pre-install") || !slices.Contains(events, "pre-upgrade") {
			t.Errorf("%s: helm.sh/hook %q, want pre-install and pre-upgrade", where, a["helm.sh/hook"])
		}
		if !strings.Contains(a["helm.sh/hook-delete-policy"], "before-hook-creation") {
			t.Errorf("%s: without before-hook-creation the next upgrade fails on the old Job", where)
		}
		spec := j.Spec.Template.Spec
		if spec.RestartPolicy != corev1.RestartPolicyNever && spec.RestartPolicy != corev1.RestartPolicyOnFailure {
			t.Errorf("%s: restartPolicy %q", where, spec.RestartPolicy)
		}
		if j.Spec.BackoffLimit == nil || j.Spec.ActiveDeadlineSeconds == nil {
			t.Errorf("%s: needs a backoffLimit and an activeDeadlineSeconds, or a failing migration holds the upgrade until Helm's timeout", where)
		}
		c := spec.Containers[0]
		if !slices.Contains(c.Args, "-migrate-only") {
			t.Errorf("%s: args %v, want -migrate-only", where, c.Args)
		}
		if !strings.Contains(c.Image, "ingest") {
			t.Errorf("%s: image %s, want ingest's", where, c.Image)
		}
		pg := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "HERALD_POSTGRES_URL" })
		if pg < 0 {
			t.Errorf("%s: no HERALD_POSTGRES_URL", where)
			continue
		}
		// The hook's own Secret must exist before the Job: Helm creates hooks in
		// order of weight.
		if vf := c.Env[pg].ValueFrom; vf != nil && vf.SecretKeyRef != nil {
			if s := get[corev1.Secret](m, vf.SecretKeyRef.Name); s != nil {
				sw, _ := strconv.Atoi(s.Annotations["helm.sh/hook-weight"]) // checkHooks checked both are integers
				jw, _ := strconv.Atoi(a["helm.sh/hook-weight"])
				if sw >= jw {
					t.Errorf("%s: its Secret %s has hook-weight %d, not below the Job's %d", where, s.Name, sw, jw)
				}
			}
		}
	}
}

func TestDefaultsNeedCredentials(t *testing.T) {
	for _, c := range []struct {
		set  []string
		want string
	}{
		{nil, "set tokenKeys.value"},
		{required[:1], "set postgres.url or postgres.existingSecret"},
		{required[:2], "set redis.url or redis.existingSecret"},
	} {
		var args []string
		for _, s := range c.set {
			args = append(args, "--set", s)
		}
		if out := renderFails(t, args...); !strings.Contains(out, c.want) {
			t.Errorf("helm template %v: error %q does not say %q", args, out, c.want)
		}
	}
}

// TestSchemaRejects: a wrong value fails at install time with a message naming it.
func TestSchemaRejects(t *testing.T) {
	for _, c := range []struct {
		set  string
		want []string
	}{
		{"gateway.drain.windowSeconds=half-a-minute", []string{"/gateway/drain/windowSeconds", "want integer"}},
		{"gateway.config.max-channel=5", []string{"/gateway/config", "max-channel"}},
		{"ingest.replicas=3", []string{"/ingest", "replicas"}},
		{"tokenKeys.value=not-a-key", []string{"/tokenKeys/value"}},
		{"log.level=verbose", []string{"/log/level"}},
		{"leaseTTL=30 seconds", []string{"/leaseTTL"}},
		{"gateway.preStop=sleep", []string{"/gateway/preStop"}},
		{"gateway.autoscaling.connectionsPerPod=0", []string{"/gateway/autoscaling/connectionsPerPod"}},
		{"ingest.config.rate-limit-subscription=lots", []string{"/ingest/config/rate-limit-subscription"}},
		{"ingest.service.type=External", []string{"/ingest/service/type"}},
		{"redis.url=localhost:6379", []string{"/redis/url"}},
		{"ingest.resources.limits.memory=lots", []string{"/ingest/resources/limits/memory"}},
	} {
		t.Run(c.set, func(t *testing.T) {
			t.Parallel()
			args := []string{"--set", required[0], "--set", required[1], "--set", required[2], "--set", c.set}
			out := renderFails(t, args...)
			if !strings.Contains(out, "values don't meet the specifications of the schema") {
				t.Errorf("--set %s: not refused by the schema: %s", c.set, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("--set %s: error does not name %q:\n%s", c.set, w, out)
				}
			}
		})
	}
}

// TestTemplateRejects: combinations the schema cannot express fail with a sentence.
func TestTemplateRejects(t *testing.T) {
	for _, c := range []struct {
		set  []string
		want string
	}{
		{[]string{"gateway.drain.windowSeconds=120"}, "gateway.drain.timeoutSeconds (60) must exceed drain.delaySeconds + drain.windowSeconds (125)"},
		{[]string{"gateway.terminationGracePeriodSeconds=60"}, "gateway.terminationGracePeriodSeconds (60) must exceed gateway.drain.timeoutSeconds (60)"},
		{[]string{"router.terminationGracePeriodSeconds=10"}, "router.terminationGracePeriodSeconds (10) must exceed router.drain.timeoutSeconds (30)"},
		{[]string{"postgres.existingSecret=pg"}, "set only one of postgres.url and postgres.existingSecret"},
		{[]string{"trialRedis.enabled=true"}, "trialRedis.enabled is set together with redis.url"},
		{[]string{"ingest.podDisruptionBudget.minAvailable=1"}, "set only one of ingest.podDisruptionBudget.minAvailable and maxUnavailable"},
		{[]string{`commonLabels.app\.kubernetes\.io/component=x`}, "commonLabels sets app.kubernetes.io/component, which the chart sets itself"},
		{[]string{`gateway.podLabels.app\.kubernetes\.io/name=x`}, "gateway.podLabels sets app.kubernetes.io/name, which the chart sets itself"},
		{[]string{"gateway.autoscaling.enabled=true", "gateway.autoscaling.minReplicas=5", "gateway.autoscaling.maxReplicas=2"}, "gateway.autoscaling.minReplicas is above maxReplicas"},
	} {
		t.Run(c.want, func(t *testing.T) {
			t.Parallel()
			var args []string
			for _, s := range append(slices.Clone(required), c.set...) {
				args = append(args, "--set", s)
			}
			if out := renderFails(t, args...); !strings.Contains(out, c.want) {
				t.Errorf("--set %v: error does not say %q:\n%s", c.set, c.want, out)
			}
		})
	}
}

func TestLint(t *testing.T) {
	for _, c := range valuesCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"lint", chartDir, "--strict", "--namespace", namespace}, c.args()...)
			if out, errOut, ok := runHelm(t, args...); !ok {
				t.Errorf("helm %s:\n%s%s", strings.Join(args, " "), out, errOut)
			}
		})
	}
}

func TestKubeVersion(t *testing.T) {
	// Chart.yaml's kubeVersion is the oldest Kubernetes the chart's API versions
	// and fields (matchLabelKeys in topology spread) are for.
	args := []string{"--kube-version", "1.27.0"}
	for _, s := range required {
		args = append(args, "--set", s)
	}
	render(t, args...)
	args[1] = "1.26.0"
	if out := renderFails(t, args...); !strings.Contains(out, "kubeVersion") {
		t.Errorf("Kubernetes 1.26: error does not mention kubeVersion: %s", out)
	}
}

// TestConfigChangeRollsPods: a changed setting changes the pod template, so that
// `helm upgrade` rolls the pods that read it, and only those.
func TestConfigChangeRollsPods(t *testing.T) {
	args := func(extra ...string) []string {
		var a []string
		for _, s := range append(slices.Clone(required), extra...) {
			a = append(a, "--set", s)
		}
		return a
	}
	checksums := func(m *manifests) map[string]string {
		out := map[string]string{}
		for _, d := range all[appsv1.Deployment](m) {
			a := d.Spec.Template.Annotations
			out[d.Spec.Template.Spec.Containers[0].Name] = a["checksum/config"] + a["checksum/secret"]
		}
		return out
	}
	base := checksums(render(t, args()...))
	gw := checksums(render(t, args("gateway.config.max-channels=100")...))
	if gw["gateway"] == base["gateway"] || gw["ingest"] != base["ingest"] || gw["router"] != base["router"] {
		t.Errorf("gateway.config changed: checksums %v → %v, want only the gateway's to change", base, gw)
	}
	key := checksums(render(t, args(`tokenKeys.value=`+testTokenKey+`\,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`)...))
	if key["gateway"] == base["gateway"] || key["ingest"] == base["ingest"] {
		t.Errorf("token keys changed: checksums %v → %v, want ingest's and the gateway's to change", base, key)
	}
}

func TestGatewayPreStop(t *testing.T) {
	for _, c := range []struct {
		set  string
		want bool
	}{{"gateway.preStop=drain", true}, {"gateway.preStop=none", false}} {
		var args []string
		for _, s := range append(slices.Clone(required), c.set) {
			args = append(args, "--set", s)
		}
		m := render(t, args...)
		var gw *appsv1.Deployment
		for _, d := range all[appsv1.Deployment](m) {
			if d.Spec.Template.Spec.Containers[0].Name == "gateway" {
				gw = d
			}
		}
		if gw == nil {
			t.Fatal("no gateway Deployment")
		}
		lc := gw.Spec.Template.Spec.Containers[0].Lifecycle
		if got := lc != nil && lc.PreStop != nil; got != c.want {
			t.Errorf("%s: preStop rendered %v, want %v", c.set, got, c.want)
		}
	}
}

// TestSchemaDocumented: every value in values.yaml is in the schema (which refuses
// unknown keys) and named in the chart README.
func TestSchemaDocumented(t *testing.T) {
	var schema map[string]any
	b, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range schemaKeys(schema, schema, "") {
		// The three components share their keys; the README documents those once
		// as <component>.key.
		generic := key
		for _, c := range []string{"ingest.", "router.", "gateway."} {
			if rest, ok := strings.CutPrefix(key, c); ok {
				generic = "<component>." + rest
			}
		}
		if !strings.Contains(string(readme), "`"+key+"`") && !strings.Contains(string(readme), "`"+generic+"`") {
			t.Errorf("README.md does not document `%s`", key)
		}
	}
}

// leafDefinitions are schema definitions documented as one value (`resources`),
// not key by key.
var leafDefinitions = []string{"resources", "probe", "readinessProbe", "strategy", "k8sObject", "k8sList", "stringMap", "extraEnv"}

// schemaKeys lists the dotted paths of every property the schema declares, down to
// free-form objects (resources, affinity, …), which the README documents as one.
func schemaKeys(root, node map[string]any, prefix string) []string {
	if ref, ok := node["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/definitions/")
		if slices.Contains(leafDefinitions, name) {
			return nil
		}
		node = root["definitions"].(map[string]any)[name].(map[string]any)
	}
	props, ok := node["properties"].(map[string]any)
	if !ok {
		return nil
	}
	var keys []string
	for name, p := range props {
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		if key == "global" {
			continue
		}
		keys = append(keys, key)
		keys = append(keys, schemaKeys(root, p.(map[string]any), key)...)
	}
	slices.Sort(keys)
	return keys
}
