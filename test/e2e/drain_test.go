package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/test/internal/cluster"
)

// TestDrainEndpoint drains a gateway the way the chart's preStop hook does: GET
// /drain on its admin port answers once its user agents are gone, and the
// process then ends by itself, cleanly.
func TestDrainEndpoint(t *testing.T) {
	c := cluster.Start(t)
	c.AddGateway()
	a := newAgent(t, c.GatewayURL(0))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Gateways[0].Addr("admin")+"/drain", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /drain: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "drained") {
		t.Fatalf("GET /drain: %d %q", resp.StatusCode, body)
	}
	// The user agent was told to reconnect (the gateway closed its side before
	// answering; the client may read the close frame a moment later).
	if got := waitClosed(t, a.cl); got != mozproto.CloseGoingAway {
		t.Fatalf("close code %d, want %d", got, mozproto.CloseGoingAway)
	}
	if err := c.Gateways[0].WaitExit(ctx); err != nil {
		t.Fatalf("gateway exit after /drain: %v", err)
	}
	// Its user agent goes on elsewhere.
	send(t, a.sub, "after /drain", 300)
	a.connect(t, c.GatewayURL(1))
	a.expect(t, "after /drain")
}
