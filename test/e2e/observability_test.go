package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/sender"
	"github.com/herald-push/herald/pkg/vapid"
	"github.com/herald-push/herald/test/internal/cluster"
	"github.com/herald-push/herald/test/internal/otlpsink"
)

// headerTransport adds headers to every request, as an application server that
// propagates its own trace would.
type headerTransport struct{ h http.Header }

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.h {
		r.Header[k] = v
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestOneTracePerMessage(t *testing.T) {
	sink := otlpsink.Start(t)
	c := cluster.Start(t, cluster.WithEnv(
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+sink.Addr,
		"OTEL_EXPORTER_OTLP_INSECURE=true",
		"OTEL_BSP_SCHEDULE_DELAY=50",
	))
	a := newAgent(t, c.GatewayURL(0))
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	client := &http.Client{Transport: headerTransport{http.Header{"Traceparent": {"00-" + traceID + "-00f067aa0ba902b7-01"}}}}
	res, err := sender.Send(ctxT(t), a.sub, []byte("traced"), sender.Options{TTL: 60, Client: client})
	if err != nil || res.Status != http.StatusCreated {
		t.Fatalf("push: %v %+v", err, res)
	}
	a.expect(t, "traced")
	locationID := res.Location[strings.LastIndex(res.Location, "/")+1:]

	want := []struct{ service, name string }{
		{"ingest", "POST /wpush/v2/{token}"},
		{"router", "router.route"},
		{"gateway", "gateway.send"},
		{"gateway", "gateway.ack"},
	}
	defer func() {
		if t.Failed() {
			for _, s := range sink.Spans() {
				t.Logf("span %s %q trace %s id %s parent %s", s.Service, s.Name, s.TraceID, s.SpanID, s.ParentSpanID)
			}
		}
	}()
	var spans map[string]otlpsink.Span
	eventually(t, "the message's spans from all three services", func() bool {
		spans = map[string]otlpsink.Span{}
		for _, s := range sink.Spans() {
			if s.TraceID == traceID {
				spans[s.Service+" "+s.Name] = s
			}
		}
		for _, w := range want {
			if _, ok := spans[w.service+" "+w.name]; !ok {
				return false
			}
		}
		return true
	})
	in, rt, snd, ack := spans["ingest POST /wpush/v2/{token}"], spans["router router.route"], spans["gateway gateway.send"], spans["gateway gateway.ack"]
	if in.ParentSpanID != "00f067aa0ba902b7" {
		t.Errorf("ingest's span does not continue the application server's trace: parent %s", in.ParentSpanID)
	}
	if rt.ParentSpanID != in.SpanID || snd.ParentSpanID != rt.SpanID || ack.ParentSpanID != rt.SpanID {
		t.Errorf("spans not chained ingest → router → gateway: %+v", spans)
	}
	if !(in.StartNano <= rt.StartNano && rt.StartNano <= snd.StartNano && snd.StartNano <= ack.StartNano) {
		t.Errorf("spans out of order: ingest %d router %d send %d ack %d", in.StartNano, rt.StartNano, snd.StartNano, ack.StartNano)
	}
	if in.Attributes["herald.message.location_id"] != locationID {
		t.Errorf("ingest span's location id %q, want the Location's %q", in.Attributes["herald.message.location_id"], locationID)
	}
	for _, s := range sink.Spans() {
		for k, v := range s.Attributes {
			if strings.Contains(v, a.sub.Endpoint[strings.LastIndex(a.sub.Endpoint, "/")+1:]) {
				t.Errorf("span %s %s attribute %s holds the endpoint token", s.Service, s.Name, k)
			}
		}
	}
	if !contains(rt.Events, "stored") || !contains(snd.Events, "delivered") || !contains(ack.Events, "acked") {
		t.Errorf("events missing: router %v send %v ack %v", rt.Events, snd.Events, ack.Events)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// scrape reads a service's /metrics into "name{labels}" → value.
func scrape(t testing.TB, p *cluster.Process) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.Addr("admin") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[dropScopeLabels(line[:i])] = v
	}
	return out
}

// dropScopeLabels keeps only the labels this test asserts on, in a fixed order.
func dropScopeLabels(series string) string {
	name, labels, ok := strings.Cut(series, "{")
	if !ok {
		return name
	}
	var keep []string
	for _, l := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
		for _, k := range []string{"outcome=", "status=", "reason=", "le="} {
			if strings.HasPrefix(l, k) {
				keep = append(keep, l)
			}
		}
	}
	if len(keep) == 0 {
		return name
	}
	return name + "{" + strings.Join(keep, ",") + "}"
}

func TestMetricsMove(t *testing.T) {
	c := cluster.Start(t)
	a := newAgent(t, c.GatewayURL(0))
	const n = 5
	for i := range n {
		send(t, a.sub, "m"+strconv.Itoa(i), 60)
		a.expect(t, "m"+strconv.Itoa(i))
	}
	// One refused request, one message that expires unread, one closed connection.
	gone := a.sub
	gone.Endpoint = c.IngestURL() + "/wpush/v2/not-a-token"
	if res, err := sender.Send(ctxT(t), gone, []byte("x"), sender.Options{TTL: 60}); err != nil || res.Status != 404 {
		t.Fatalf("refused push: %v %+v", err, res)
	}
	a.disconnect(t)
	send(t, a.sub, "expires", 1)
	eventually(t, "the message to expire", func() bool {
		a.connect(t, c.GatewayURL(0))
		a.disconnect(t)
		return scrape(t, c.Gateways[0])["herald_queue_expired_total"] >= 1
	})

	var in, rt, gw map[string]float64
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last scraped: ingest %v\nrouter %v\ngateway %v", in, rt, gw)
		}
	})
	eventually(t, "the counters to show the traffic", func() bool {
		in, rt, gw = scrape(t, c.Ingest), scrape(t, c.Router), scrape(t, c.Gateways[0])
		return in[`herald_ingest_requests_total{status="201"}`] == n+1 &&
			in[`herald_ingest_requests_total{status="404"}`] == 1 &&
			rt[`herald_router_messages_total{outcome="stored"}`] == n+1 &&
			// The expiring one too when it reached the gateway before the
			// disconnected session let its ownership go (an ack's delete ahead of
			// the close may wait -ack-linger): it then waits in the queue.
			rt[`herald_router_deliveries_total{outcome="accepted"}`] >= n &&
			gw[`herald_gateway_messages_total{outcome="sent"}`] >= n && // the expiring one is sent on each reconnect

			gw[`herald_gateway_messages_total{outcome="acked"}`] == n &&
			gw[`herald_message_delivery_duration_seconds_count`] == n &&
			gw[`herald_gateway_connections_opened_total`] >= 2
	})
}

// metricNames picks metric names out of PromQL expressions.
var metricName = regexp.MustCompile(`\b(herald_[a-z_]+|db_client_[a-z_]+|rpc_server_[a-z_]+|http_server_[a-z_]+|process_cpu_seconds_total)\b`)

func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	c := cluster.Start(t)
	a := newAgent(t, c.GatewayURL(0))
	send(t, a.sub, "x", 60)
	a.expect(t, "x")
	a.disconnect(t)
	send(t, a.sub, "expires", 1)
	eventually(t, "an expiry", func() bool {
		a.connect(t, c.GatewayURL(0))
		a.disconnect(t)
		return scrape(t, c.Gateways[0])["herald_queue_expired_total"] >= 1
	})
	exported := map[string]bool{}
	for _, p := range []*cluster.Process{c.Ingest, c.Router, c.Gateways[0]} {
		for series := range scrape(t, p) {
			name, _, _ := strings.Cut(series, "{")
			exported[name] = true
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok {
					exported[base] = true
				}
			}
		}
	}
	root := filepath.Join("..", "..")
	var exprs []string
	dash, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "herald-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(dash, &d); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	alerts, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(alerts), "\n") {
		if strings.Contains(line, "herald_") || strings.Contains(line, "db_client_") {
			exprs = append(exprs, line)
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("found only %d expressions", len(exprs))
	}
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			if !exported[name] {
				t.Errorf("%q is used by the dashboard or alerts but no service exports it", name)
			}
		}
	}
}

func TestNoSecretsInLogs(t *testing.T) {
	c := cluster.Start(t) // every service logs at debug level
	key, err := vapid.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	a := newAgent(t, c.GatewayURL(0))
	aud, _ := sender.Origin(a.sub.Endpoint)
	auth, err := vapid.Sign(key, aud, "mailto:ops@example.com", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	const text = "a secret message"
	res, err := sender.Send(ctxT(t), a.sub, []byte(text), sender.Options{TTL: 60, Authorization: auth})
	if err != nil || res.Status != 201 {
		t.Fatalf("push: %v %+v", err, res)
	}
	n := a.expect(t, text)
	// A refused request with a tampered token and a bad VAPID header, too.
	bad := a.sub
	bad.Endpoint = a.sub.Endpoint + "x"
	_, _ = sender.Send(ctxT(t), bad, []byte(text), sender.Options{TTL: 60, Authorization: auth + "x"})

	token := a.sub.Endpoint[strings.LastIndex(a.sub.Endpoint, "/")+1:]
	jwt := strings.TrimPrefix(strings.Split(auth, ",")[0], "vapid t=")
	secrets := map[string]string{
		"endpoint token":  token,
		"VAPID JWT":       jwt,
		"payload":         n.Data[:40],
		"p256dh key":      a.sub.Keys.P256dh,
		"auth secret":     a.sub.Keys.Auth,
		"plaintext":       text,
		"message id":      res.Location[strings.LastIndex(res.Location, "/")+1:],
		"payload (std64)": base64.StdEncoding.EncodeToString([]byte(text)),
	}
	// Stop the services so their logs are complete.
	for _, p := range append([]*cluster.Process{c.Ingest, c.Router}, c.Gateways...) {
		if err := p.Stop(15 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	lines := 0
	for _, p := range append([]*cluster.Process{c.Ingest, c.Router}, c.Gateways...) {
		for _, line := range p.Lines() {
			lines++
			for what, s := range secrets {
				if strings.Contains(line, s) {
					t.Errorf("%s logged the %s: %s", p.Name, what, line)
				}
			}
		}
	}
	if lines < 10 {
		t.Fatalf("only %d log lines: the services did not log at debug level", lines)
	}
}
