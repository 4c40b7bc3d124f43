package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herald-push/herald/test/internal/cluster"
)

// TestHeraldloadOffline runs the load tool's offline catch-up against the three
// services: its user agents leave, are sent messages that Herald stores, come back
// and must each get every one of theirs; the tool exits non-zero when one is lost
// or reaches another user agent.
func TestHeraldloadOffline(t *testing.T) {
	c := cluster.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pids := fmt.Sprintf("ingest=%d,router=%d,gateway=%d", c.Ingest.Pid(), c.Router.Pid(), c.Gateways[0].Pid())
	cmd := exec.CommandContext(ctx, cluster.Bin("heraldload"), "-gateways", c.GatewayURL(0), "-conns", "20", "-offline", "5",
		"-concurrency", "8", "-redis-url", c.RedisURL, "-pids", pids)
	cmd.Env = ctlEnv() // nothing of the test's own HERALD_* settings
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("heraldload: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	report := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^stored: 100 accepted \(201\), 0 refused, 0 transport errors`),
		regexp.MustCompile(`(?m)^redis: used_memory .* -?\d+ bytes per waiting message`),
		regexp.MustCompile(`(?m)^caught up: 100 of 100 delivered .* lost 0, duplicates \d+, to the wrong user agent 0, undecodable 0$`),
		regexp.MustCompile(`(?m)^cost: CPU seconds per 1,000 messages stored`),
		regexp.MustCompile(`(?m)^  ingest +\d+\.\d{4}`),
	} {
		if !want.MatchString(report) {
			t.Errorf("report does not match %s:\n%s", want, report)
		}
	}
	if !strings.Contains(report, "20 user agents over 1 gateway(s) left") {
		t.Errorf("report does not state its conditions:\n%s", report)
	}
}
