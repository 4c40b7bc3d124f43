package charts

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// object is one rendered document, decoded into its API type.
type object struct {
	Kind   string // "Deployment"
	Name   string
	Source string // the template it came from, as in helm's "# Source:" line
	Meta   metav1.Object
	Obj    any // the same object: *appsv1.Deployment, *serviceMonitor, …
}

func (o *object) String() string { return o.Kind + "/" + o.Name + " (" + o.Source + ")" }

// manifests is everything one `helm template` rendered.
type manifests struct {
	All []*object
}

// kinds maps apiVersion/kind to the Go type a document must decode into. A kind
// not listed here fails the test: the chart renders nothing it does not check.
var kinds = map[string]func() metav1.Object{
	"v1/ConfigMap":                            kind[corev1.ConfigMap],
	"v1/Secret":                               kind[corev1.Secret],
	"v1/Service":                              kind[corev1.Service],
	"v1/ServiceAccount":                       kind[corev1.ServiceAccount],
	"apps/v1/Deployment":                      kind[appsv1.Deployment],
	"apps/v1/StatefulSet":                     kind[appsv1.StatefulSet],
	"batch/v1/Job":                            kind[batchv1.Job],
	"autoscaling/v2/HorizontalPodAutoscaler":  kind[autoscalingv2.HorizontalPodAutoscaler],
	"policy/v1/PodDisruptionBudget":           kind[policyv1.PodDisruptionBudget],
	"networking.k8s.io/v1/Ingress":            kind[networkingv1.Ingress],
	"networking.k8s.io/v1/NetworkPolicy":      kind[networkingv1.NetworkPolicy],
	"monitoring.coreos.com/v1/ServiceMonitor": kind[serviceMonitor],
}

// kind returns a new, empty object of type T.
func kind[T any, P interface {
	*T
	metav1.Object
}]() metav1.Object {
	return P(new(T))
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)
var sourceLine = regexp.MustCompile(`(?m)^# Source: (\S+)`)

// decodeAll splits helm's output into documents and decodes each strictly: YAML
// with duplicate keys, a field the API type does not have (or spelt in another
// case), or a value of the wrong type is an error, as it is for
// `kubectl apply --validate=strict`.
func decodeAll(out string) (*manifests, error) {
	m := &manifests{}
	var errs []error
	for _, doc := range docSeparator.Split(out, -1) {
		source := ""
		if s := sourceLine.FindStringSubmatch(doc); s != nil {
			source = strings.TrimPrefix(s[1], "herald/")
		}
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		o, err := decodeDoc([]byte(doc))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", source, err))
			continue
		}
		o.Source = source
		m.All = append(m.All, o)
	}
	return m, errors.Join(errs...)
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func decodeDoc(doc []byte) (*object, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("not YAML: %w", err)
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return nil, fmt.Errorf("no apiVersion/kind: %w", err)
	}
	newT, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("%s %s: a kind this test does not know; add it to kinds", tm.APIVersion, tm.Kind)
	}
	obj := newT()
	// The API server's own strict decoder (kubectl apply --validate=strict):
	// field names match case-sensitively, and an unknown or duplicate field is an
	// error naming its full path.
	strict, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", tm.APIVersion, tm.Kind, err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%s %s: %w", tm.APIVersion, tm.Kind, errors.Join(strict...))
	}
	if obj.GetName() == "" {
		return nil, fmt.Errorf("%s without metadata.name", tm.Kind)
	}
	return &object{Kind: tm.Kind, Name: obj.GetName(), Meta: obj, Obj: obj}, nil
}

// get returns the object of type T named name, or nil.
func get[T any](m *manifests, name string) *T {
	for _, o := range m.All {
		if v, ok := o.Obj.(*T); ok && o.Name == name {
			return v
		}
	}
	return nil
}

// all returns every object of type T, sorted by name.
func all[T any](m *manifests) []*T {
	type named struct {
		name string
		v    *T
	}
	var ns []named
	for _, o := range m.All {
		if v, ok := o.Obj.(*T); ok {
			ns = append(ns, named{o.Name, v})
		}
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i].name < ns[j].name })
	out := make([]*T, len(ns))
	for i, n := range ns {
		out[i] = n.v
	}
	return out
}

// kindsRendered lists the kinds rendered, with counts, for test logs.
func (m *manifests) kindsRendered() string {
	n := map[string]int{}
	for _, o := range m.All {
		n[o.Kind]++
	}
	var parts []string
	for k, c := range n {
		parts = append(parts, fmt.Sprintf("%s×%d", k, c))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor
// (monitoring.coreos.com/v1) the chart uses. It is a CRD, absent from k8s.io/api;
// every field the chart may render is here, so strict decoding still catches a
// misspelt one.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		JobLabel          string               `json:"jobLabel,omitempty"`
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port              string          `json:"port"`
			Path              string          `json:"path,omitempty"`
			Scheme            string          `json:"scheme,omitempty"`
			Interval          string          `json:"interval,omitempty"`
			ScrapeTimeout     string          `json:"scrapeTimeout,omitempty"`
			Relabelings       []relabelConfig `json:"relabelings,omitempty"`
			MetricRelabelings []relabelConfig `json:"metricRelabelings,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// relabelConfig is the Prometheus Operator's RelabelConfig.
type relabelConfig struct {
	SourceLabels []string `json:"sourceLabels,omitempty"`
	Separator    *string  `json:"separator,omitempty"`
	TargetLabel  string   `json:"targetLabel,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	Modulus      uint64   `json:"modulus,omitempty"`
	Replacement  *string  `json:"replacement,omitempty"`
	Action       string   `json:"action,omitempty"`
}

// TestDecodeRejects: the strict decoding fails on what a cluster would refuse or
// silently drop, so that TestRender can be trusted to.
func TestDecodeRejects(t *testing.T) {
	for _, c := range []struct{ name, doc, want string }{
		{"misspelt field", `
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  template:
    spec:
      containers:
        - name: x
          imagePullPolice: Always
`, `unknown field "spec.template.spec.containers[0].imagePullPolice"`},
		{"wrong type", `
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec: {replicas: two}
`, "cannot unmarshal string"},
		{"duplicate key", `
apiVersion: v1
kind: ConfigMap
metadata: {name: x}
data: {A: "1", A: "2"}
`, `key "A" already set`},
		{"field in another case", `
apiVersion: v1
kind: Service
metadata: {name: x}
spec: {ClusterIP: None}
`, `unknown field "spec.ClusterIP"`},
		{"unknown kind", `
apiVersion: example.com/v1
kind: Widget
metadata: {name: x}
`, "a kind this test does not know"},
		{"misspelt ServiceMonitor field", `
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: x}
spec:
  selector: {}
  endpoint: [{port: admin}]
`, `unknown field "spec.endpoint"`},
		{"no name", `
apiVersion: v1
kind: Service
metadata: {}
`, "without metadata.name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeAll("---\n# Source: herald/templates/x.yaml" + c.doc)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("decode: %v, want an error with %q", err, c.want)
			}
		})
	}
}
