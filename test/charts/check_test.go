package charts

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// What a cluster would refuse or get wrong, checked on rendered objects: names,
// labels, references between objects (Secrets, ConfigMaps, Services, ports,
// selectors), and the settings Herald depends on.

// workload is a pod template with where it came from.
type workload struct {
	kind, name string
	hook       bool // a Helm hook: runs before the release's other objects exist
	selector   *metav1.LabelSelector
	template   *corev1.PodTemplateSpec
}

func (w workload) String() string { return w.kind + "/" + w.name }

func (w workload) matches(sel labels.Selector) bool {
	return !sel.Empty() && sel.Matches(labels.Set(w.template.Labels))
}

func workloads(m *manifests) []workload {
	var ws []workload
	for _, o := range m.All {
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			ws = append(ws, workload{"Deployment", o.Name, isHook(o.Meta), v.Spec.Selector, &v.Spec.Template})
		case *appsv1.StatefulSet:
			ws = append(ws, workload{"StatefulSet", o.Name, isHook(o.Meta), v.Spec.Selector, &v.Spec.Template})
		case *batchv1.Job:
			ws = append(ws, workload{"Job", o.Name, isHook(o.Meta), v.Spec.Selector, &v.Spec.Template})
		}
	}
	return ws
}

func isHook(meta metav1.Object) bool { return meta.GetAnnotations()["helm.sh/hook"] != "" }

// component is the Herald service a container runs, or "" for the trial servers.
func component(c corev1.Container) string {
	switch c.Name {
	case "ingest", "router", "gateway":
		return c.Name
	case "migrate":
		return "ingest"
	}
	return ""
}

// checkManifests runs every generic check. external names the Secrets the values
// say exist outside the chart.
func checkManifests(t *testing.T, m *manifests, external map[string]bool) {
	t.Helper()
	if len(m.All) == 0 {
		t.Fatal("nothing rendered")
	}
	checkNames(t, m)
	ws := workloads(m)
	for _, w := range ws {
		checkWorkload(t, m, w, external)
	}
	checkServices(t, m, ws)
	checkIngresses(t, m)
	checkHPAs(t, m)
	checkPDBs(t, m, ws)
	checkNetworkPolicies(t, m, ws)
	checkServiceMonitors(t, m)
	checkHooks(t, m)
}

func checkNames(t *testing.T, m *manifests) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range m.All {
		key := o.Kind + "/" + o.Name
		if seen[key] {
			t.Errorf("%s rendered twice", key)
		}
		seen[key] = true
		var errs []string
		if o.Kind == "Service" {
			errs = validation.IsDNS1035Label(o.Name)
		} else {
			errs = validation.IsDNS1123Subdomain(o.Name)
		}
		for _, e := range errs {
			t.Errorf("%s: name: %s", o, e)
		}
		if ns := o.Meta.GetNamespace(); ns != namespace {
			t.Errorf("%s: namespace %q, want the release's %q", o, ns, namespace)
		}
		checkLabels(t, o.String(), o.Meta.GetLabels())
		for _, want := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by"} {
			if o.Meta.GetLabels()[want] == "" {
				t.Errorf("%s: no %s label", o, want)
			}
		}
		for k := range o.Meta.GetAnnotations() {
			for _, e := range validation.IsQualifiedName(k) {
				t.Errorf("%s: annotation %q: %s", o, k, e)
			}
		}
	}
}

func checkLabels(t *testing.T, where string, ls map[string]string) {
	t.Helper()
	for k, v := range ls {
		for _, e := range validation.IsQualifiedName(k) {
			t.Errorf("%s: label key %q: %s", where, k, e)
		}
		for _, e := range validation.IsValidLabelValue(v) {
			t.Errorf("%s: label %s=%q: %s", where, k, v, e)
		}
	}
}

func selectorOf(t *testing.T, where string, ls *metav1.LabelSelector) labels.Selector {
	t.Helper()
	if ls == nil {
		t.Errorf("%s: no selector", where)
		return labels.Nothing()
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		t.Errorf("%s: selector: %v", where, err)
		return labels.Nothing()
	}
	return sel
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

func checkWorkload(t *testing.T, m *manifests, w workload, external map[string]bool) {
	t.Helper()
	pod := w.template
	checkLabels(t, w.String()+" pod template", pod.Labels)
	if w.kind != "Job" {
		if !selectorOf(t, w.String(), w.selector).Matches(labels.Set(pod.Labels)) {
			t.Errorf("%s: selector %v does not match its pod template's labels %v", w, w.selector, pod.Labels)
		}
	}
	spec := pod.Spec
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken is not false (nothing here calls the Kubernetes API)", w)
	}
	psc := spec.SecurityContext
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext without seccompProfile RuntimeDefault", w)
	}
	if sa := spec.ServiceAccountName; sa != "" && sa != "default" {
		if get[corev1.ServiceAccount](m, sa) == nil && !w.hook {
			// An existing ServiceAccount (serviceAccount.create=false) is fine; the
			// chart only has to name it.
			t.Logf("%s: ServiceAccount %q is not rendered: it must exist", w, sa)
		}
		if w.hook && get[corev1.ServiceAccount](m, sa) != nil {
			t.Errorf("%s: a hook runs before ServiceAccount %q is created", w, sa)
		}
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
	}
	if w.kind == "StatefulSet" {
		for _, o := range m.All {
			if ss, ok := o.Obj.(*appsv1.StatefulSet); ok && o.Name == w.name {
				for _, c := range ss.Spec.VolumeClaimTemplates {
					volumes[c.Name] = true
				}
			}
		}
	}
	if len(spec.Containers) == 0 {
		t.Errorf("%s: no containers", w)
	}
	for _, c := range spec.Containers {
		where := w.String() + " container " + c.Name
		checkContainerSecurity(t, where, c, psc)
		checkResources(t, where, c.Resources)
		if c.Image == "" || !strings.Contains(c.Image[strings.LastIndex(c.Image, "/")+1:], ":") {
			t.Errorf("%s: image %q has no tag", where, c.Image)
		}
		ports := map[string]bool{}
		for _, p := range c.Ports {
			for _, e := range validation.IsValidPortName(p.Name) {
				t.Errorf("%s: port name %q: %s", where, p.Name, e)
			}
			if ports[p.Name] {
				t.Errorf("%s: port %q twice", where, p.Name)
			}
			ports[p.Name] = true
		}
		for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
			if p != nil && p.HTTPGet != nil {
				checkPortRef(t, where+" probe", p.HTTPGet.Port, c)
			}
		}
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.HTTPGet != nil {
			checkPortRef(t, where+" preStop", c.Lifecycle.PreStop.HTTPGet.Port, c)
		}
		for _, vm := range c.VolumeMounts {
			if !volumes[vm.Name] {
				t.Errorf("%s: mounts volume %q, which the pod does not have", where, vm.Name)
			}
		}
		svc := component(c)
		if svc != "" {
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil {
					cm := get[corev1.ConfigMap](m, ef.ConfigMapRef.Name)
					if cm == nil {
						t.Errorf("%s: envFrom ConfigMap %q is not rendered", where, ef.ConfigMapRef.Name)
						continue
					}
					if w.hook && !isHook(cm) {
						t.Errorf("%s: a hook reads ConfigMap %q, which does not exist yet before install", where, cm.Name)
					}
					for k, v := range cm.Data {
						checkEnv(t, where+" (ConfigMap "+cm.Name+")", svc, k, v, true)
					}
				}
				if ef.SecretRef != nil {
					t.Errorf("%s: envFrom a whole Secret; name the keys instead", where)
				}
			}
			checkArgs(t, where, svc, c.Args)
		}
		defined := map[string]bool{}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef != nil {
				if cm := get[corev1.ConfigMap](m, ef.ConfigMapRef.Name); cm != nil {
					for k := range cm.Data {
						defined[k] = true
					}
				}
			}
		}
		seen := map[string]bool{}
		for _, e := range c.Env {
			for _, msg := range validation.IsEnvVarName(e.Name) {
				t.Errorf("%s: env %q: %s", where, e.Name, msg)
			}
			if seen[e.Name] {
				t.Errorf("%s: env %s given twice", where, e.Name)
			}
			seen[e.Name] = true
			for _, ref := range envRef.FindAllStringSubmatch(e.Value, -1) {
				if !defined[ref[1]] {
					t.Errorf("%s: env %s refers to $(%s), not defined before it (Kubernetes leaves it unexpanded)", where, e.Name, ref[1])
				}
			}
			defined[e.Name] = true
			if svc != "" {
				checkEnv(t, where, svc, e.Name, e.Value, e.ValueFrom == nil && !strings.Contains(e.Value, "$("))
			}
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				checkSecretRef(t, m, where+" env "+e.Name, w.hook, e.ValueFrom.SecretKeyRef, external)
			}
		}
	}
}

func checkPortRef(t *testing.T, where string, port intstr.IntOrString, c corev1.Container) {
	t.Helper()
	for _, p := range c.Ports {
		if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
			return
		}
	}
	t.Errorf("%s: port %s is not a port of the container", where, port.String())
}

func checkSecretRef(t *testing.T, m *manifests, where string, hook bool, ref *corev1.SecretKeySelector, external map[string]bool) {
	t.Helper()
	s := get[corev1.Secret](m, ref.Name)
	if s == nil {
		if !external[ref.Name] {
			t.Errorf("%s: Secret %q is neither rendered nor named as an existing Secret in the values", where, ref.Name)
		}
		return
	}
	if _, ok := s.Data[ref.Key]; !ok {
		t.Errorf("%s: Secret %q has no key %q", where, ref.Name, ref.Key)
	}
	if hook && !isHook(s) {
		t.Errorf("%s: a pre-install hook reads Secret %q, which is created only after the hooks ran", where, ref.Name)
	}
}

func checkContainerSecurity(t *testing.T, where string, c corev1.Container, psc *corev1.PodSecurityContext) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Errorf("%s: no securityContext", where)
		return
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation is not false", where)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: readOnlyRootFilesystem is not true", where)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s: privileged", where)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("%s: capabilities do not drop ALL", where)
	}
	if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: adds capabilities %v", where, sc.Capabilities.Add)
	}
	nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
	if !nonRoot {
		t.Errorf("%s: runAsNonRoot is not true", where)
	}
	uid := sc.RunAsUser
	if uid == nil && psc != nil {
		uid = psc.RunAsUser
	}
	if uid == nil || *uid == 0 {
		t.Errorf("%s: no non-zero runAsUser (distroless images name their user, which runAsNonRoot cannot check)", where)
	}
}

func checkResources(t *testing.T, where string, r corev1.ResourceRequirements) {
	t.Helper()
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := r.Requests[name]
		lim, okLim := r.Limits[name]
		if !okReq || !okLim {
			t.Errorf("%s: %s request and limit must both be set", where, name)
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("%s: %s request %s above its limit %s", where, name, req.String(), lim.String())
		}
	}
}

func checkServices(t *testing.T, m *manifests, ws []workload) {
	t.Helper()
	for _, svc := range all[corev1.Service](m) {
		where := "Service/" + svc.Name
		if len(svc.Spec.Selector) == 0 {
			t.Errorf("%s: no selector", where)
			continue
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		var pods []workload
		for _, w := range ws {
			if !w.hook && w.matches(sel) {
				pods = append(pods, w)
			}
		}
		if len(pods) == 0 {
			t.Errorf("%s: selector %v matches no pods", where, svc.Spec.Selector)
			continue
		}
		if len(pods) > 1 {
			t.Errorf("%s: selector %v matches %v", where, svc.Spec.Selector, pods)
		}
		for _, p := range svc.Spec.Ports {
			for _, w := range pods {
				found := false
				for _, c := range w.template.Spec.Containers {
					for _, cp := range c.Ports {
						if (p.TargetPort.Type == intstr.String && cp.Name == p.TargetPort.StrVal) ||
							(p.TargetPort.Type == intstr.Int && cp.ContainerPort == p.TargetPort.IntVal) {
							found = true
						}
					}
				}
				if !found {
					t.Errorf("%s port %s: targetPort %s is not a port of %s", where, p.Name, p.TargetPort.String(), w)
				}
			}
			if svc.Spec.ClusterIP == corev1.ClusterIPNone && p.TargetPort.Type == intstr.String {
				// Clients of a headless Service dial the pod directly, at the Service's
				// port number, so it must be the container's.
				for _, w := range pods {
					for _, c := range w.template.Spec.Containers {
						for _, cp := range c.Ports {
							if cp.Name == p.TargetPort.StrVal && cp.ContainerPort != p.Port {
								t.Errorf("%s (headless) port %s: %d, but the container listens on %d", where, p.Name, p.Port, cp.ContainerPort)
							}
						}
					}
				}
			}
		}
	}
}

func checkIngresses(t *testing.T, m *manifests) {
	t.Helper()
	for _, in := range all[networkingv1.Ingress](m) {
		for _, rule := range in.Spec.Rules {
			if rule.HTTP == nil {
				t.Errorf("Ingress/%s: rule without http", in.Name)
				continue
			}
			for _, p := range rule.HTTP.Paths {
				b := p.Backend.Service
				if b == nil {
					t.Errorf("Ingress/%s: path %s without a service backend", in.Name, p.Path)
					continue
				}
				svc := get[corev1.Service](m, b.Name)
				if svc == nil {
					t.Errorf("Ingress/%s: backend Service %q is not rendered", in.Name, b.Name)
					continue
				}
				if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
					return (b.Port.Name != "" && sp.Name == b.Port.Name) || (b.Port.Number != 0 && sp.Port == b.Port.Number)
				}) {
					t.Errorf("Ingress/%s: Service %s has no port %v", in.Name, b.Name, b.Port)
				}
				if p.PathType == nil {
					t.Errorf("Ingress/%s: path %s without pathType", in.Name, p.Path)
				}
			}
		}
	}
}

func checkHPAs(t *testing.T, m *manifests) {
	t.Helper()
	for _, h := range all[autoscalingv2.HorizontalPodAutoscaler](m) {
		where := "HorizontalPodAutoscaler/" + h.Name
		ref := h.Spec.ScaleTargetRef
		d := get[appsv1.Deployment](m, ref.Name)
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || d == nil {
			t.Errorf("%s: scaleTargetRef %v is not a rendered Deployment", where, ref)
			continue
		}
		if d.Spec.Replicas != nil {
			t.Errorf("%s: Deployment %s sets replicas, which each upgrade would reset against the autoscaler", where, d.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			t.Errorf("%s: minReplicas %v, maxReplicas %d", where, h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		if len(h.Spec.Metrics) == 0 {
			t.Errorf("%s: no metrics", where)
		}
	}
}

func checkPDBs(t *testing.T, m *manifests, ws []workload) {
	t.Helper()
	for _, p := range all[policyv1.PodDisruptionBudget](m) {
		sel := selectorOf(t, "PodDisruptionBudget/"+p.Name, p.Spec.Selector)
		if !slices.ContainsFunc(ws, func(w workload) bool { return w.kind == "Deployment" && w.matches(sel) }) {
			t.Errorf("PodDisruptionBudget/%s: selector matches no Deployment", p.Name)
		}
		if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
			t.Errorf("PodDisruptionBudget/%s: exactly one of minAvailable and maxUnavailable must be set", p.Name)
		}
	}
}

func checkNetworkPolicies(t *testing.T, m *manifests, ws []workload) {
	t.Helper()
	for _, np := range all[networkingv1.NetworkPolicy](m) {
		where := "NetworkPolicy/" + np.Name
		sel := selectorOf(t, where, &np.Spec.PodSelector)
		var pods []workload
		for _, w := range ws {
			if w.matches(sel) {
				pods = append(pods, w)
			}
		}
		if len(pods) == 0 {
			t.Errorf("%s: podSelector matches no pods", where)
		}
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port == nil || p.Port.Type != intstr.String {
					continue
				}
				for _, w := range pods {
					if !slices.ContainsFunc(w.template.Spec.Containers, func(c corev1.Container) bool {
						return slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.Port.StrVal })
					}) {
						t.Errorf("%s: ingress port %q is not a port of %s", where, p.Port.StrVal, w)
					}
				}
			}
			for _, peer := range rule.From {
				if peer.PodSelector != nil && peer.NamespaceSelector == nil {
					psel := selectorOf(t, where, peer.PodSelector)
					if !slices.ContainsFunc(ws, func(w workload) bool { return w.matches(psel) }) {
						t.Errorf("%s: ingress from %v matches no pod of the release", where, peer.PodSelector.MatchLabels)
					}
				}
			}
		}
		for _, rule := range np.Spec.Egress {
			for _, peer := range rule.To {
				if peer.PodSelector != nil && peer.NamespaceSelector == nil {
					psel := selectorOf(t, where, peer.PodSelector)
					if !slices.ContainsFunc(ws, func(w workload) bool { return w.matches(psel) }) {
						t.Errorf("%s: egress to %v matches no pod of the release", where, peer.PodSelector.MatchLabels)
					}
				}
			}
		}
	}
}

// promDuration is the duration format of the Prometheus Operator's CRDs.
var promDuration = regexp.MustCompile(`^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`)

func checkServiceMonitors(t *testing.T, m *manifests) {
	t.Helper()
	for _, sm := range all[serviceMonitor](m) {
		where := "ServiceMonitor/" + sm.Name
		if len(sm.Spec.Endpoints) == 0 {
			t.Errorf("%s: no endpoints", where)
		}
		sel := selectorOf(t, where, &sm.Spec.Selector)
		for _, ep := range sm.Spec.Endpoints {
			for _, d := range []string{ep.Interval, ep.ScrapeTimeout} {
				if d != "" && !promDuration.MatchString(d) {
					t.Errorf("%s: %q is not a Prometheus duration", where, d)
				}
			}
			if ep.Interval != "" && ep.ScrapeTimeout != "" {
				iv, _ := time.ParseDuration(ep.Interval) // matched promDuration; Go reads these too
				st, _ := time.ParseDuration(ep.ScrapeTimeout)
				if st > iv {
					t.Errorf("%s: scrapeTimeout %s longer than interval %s", where, ep.ScrapeTimeout, ep.Interval)
				}
			}
			// Each component must be scraped through exactly one Service.
			scraped := map[string]int{}
			for _, svc := range all[corev1.Service](m) {
				if !sel.Matches(labels.Set(svc.Labels)) {
					continue
				}
				if slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
					scraped[svc.Labels["app.kubernetes.io/component"]]++
				}
			}
			for _, c := range []string{"ingest", "router", "gateway"} {
				if scraped[c] != 1 {
					t.Errorf("%s: %s is scraped through %d Services on port %q, want 1", where, c, scraped[c], ep.Port)
				}
			}
		}
	}
}

var hookEvents = []string{"pre-install", "post-install", "pre-delete", "post-delete", "pre-upgrade", "post-upgrade", "pre-rollback", "post-rollback", "test"}
var hookPolicies = []string{"before-hook-creation", "hook-succeeded", "hook-failed"}

func checkHooks(t *testing.T, m *manifests) {
	t.Helper()
	for _, o := range m.All {
		a := o.Meta.GetAnnotations()
		if a["helm.sh/hook"] == "" {
			continue
		}
		for _, ev := range strings.Split(a["helm.sh/hook"], ",") {
			if !slices.Contains(hookEvents, strings.TrimSpace(ev)) {
				t.Errorf("%s: hook event %q unknown to Helm", o, ev)
			}
		}
		if w, ok := a["helm.sh/hook-weight"]; ok {
			if _, err := strconv.Atoi(w); err != nil {
				t.Errorf("%s: hook-weight %q is not an integer", o, w)
			}
		}
		for _, p := range strings.Split(a["helm.sh/hook-delete-policy"], ",") {
			if p != "" && !slices.Contains(hookPolicies, strings.TrimSpace(p)) {
				t.Errorf("%s: hook-delete-policy %q unknown to Helm", o, p)
			}
		}
	}
}

// externalSecrets reads the values files for the Secrets they say exist already.
func externalSecrets(t *testing.T, files []string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := yaml.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, k := range []string{"tokenKeys", "postgres", "redis"} {
			if sec, ok := v[k].(map[string]any); ok {
				if name, _ := sec["existingSecret"].(string); name != "" {
					out[name] = true
				}
			}
		}
	}
	return out
}

// seconds reads a Go duration that is a whole number of seconds.
func seconds(t *testing.T, where, d string) int64 {
	t.Helper()
	v, err := time.ParseDuration(d)
	if err != nil {
		t.Fatalf("%s: %q: %v", where, d, err)
	}
	return int64(v / time.Second)
}
