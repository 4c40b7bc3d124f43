package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/herald-push/herald/pkg/testenv"
	"github.com/herald-push/herald/test/internal/cluster"
)

// TestMigrateOnly runs ingest as the chart's migrations Job does: with only a
// database URL, it applies the migrations and exits 0.
func TestMigrateOnly(t *testing.T) {
	url := testenv.PostgresURL(t)
	cmd := exec.Command(cluster.Bin("ingest"), "-migrate-only")
	cmd.Env = []string{"HERALD_POSTGRES_URL=" + url}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ingest -migrate-only: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"msg":"migrated"`) {
		t.Fatalf("no migrated line:\n%s", out)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var tables int
	if err := conn.QueryRow(context.Background(),
		`SELECT count(*) FROM information_schema.tables WHERE table_name IN ('user_agents', 'subscriptions', 'schema_migrations')`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 3 {
		t.Fatalf("%d of the 3 tables exist after -migrate-only", tables)
	}
}
