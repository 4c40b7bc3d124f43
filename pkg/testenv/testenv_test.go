package testenv_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/pkg/testenv"
)

func TestPostgresURL(t *testing.T) {
	ctx := t.Context()
	var dbURL, name string
	t.Run("fresh database", func(t *testing.T) {
		dbURL = testenv.PostgresURL(t)
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatalf("connect to %s: %v", dbURL, err)
		}
		// conn is left open on purpose: the cleanup's DROP ... WITH (FORCE) must cope.

		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
			t.Fatalf("current_database: %v", err)
		}
		if !strings.HasPrefix(name, "herald_test_") {
			t.Errorf("database %q, want the prefix herald_test_", name)
		}
		var relations int
		err = conn.QueryRow(ctx, `
			SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`,
		).Scan(&relations)
		if err != nil {
			t.Fatalf("count relations: %v", err)
		}
		if relations != 0 {
			t.Errorf("new database holds %d relations, want 0", relations)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY)"); err != nil {
			t.Errorf("create table: %v", err)
		}

		if other := testenv.PostgresURL(t); other == dbURL {
			t.Errorf("two calls both returned %s", dbURL)
		}
	})
	if name == "" {
		t.Fatal("the subtest found no database")
	}

	// The subtest's cleanups have run: its databases must be gone.
	admin, err := pgx.Connect(ctx, serverURL())
	if err != nil {
		t.Fatalf("connect to the server: %v", err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) }) // closing is all that is left
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatalf("look for %s: %v", name, err)
	}
	if exists {
		t.Errorf("database %s still exists after the test's cleanup", name)
	}
}

func TestPostgresURLFailsWithoutServer(t *testing.T) {
	// Port 1 on loopback refuses connections.
	t.Setenv(testenv.PostgresURLEnv, "postgres://herald@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=5")
	msg := fatalOf(t, func(tb testing.TB) { testenv.PostgresURL(tb) })
	for _, want := range []string{"does not answer", "make test", testenv.PostgresURLEnv} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure %q does not mention %q", msg, want)
		}
	}
}

func TestRedis(t *testing.T) {
	ctx := t.Context()
	admin := redis.NewClient(mustParseRedisURL(t))
	t.Cleanup(func() { _ = admin.Close() }) // closing is all that is left

	// A parent's prefix must outlive the subtest's cleanup.
	_, keep := testenv.Redis(t)
	if err := admin.Set(ctx, keep+"k", "v", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}

	var prefix string
	t.Run("prefix", func(t *testing.T) {
		client, p := testenv.RedisClient(t)
		prefix = p
		if !strings.HasPrefix(prefix, "t") || !strings.HasSuffix(prefix, ":") {
			t.Errorf("prefix %q, want t<hex>:", prefix)
		}
		if _, other := testenv.Redis(t); other == prefix {
			t.Errorf("two calls both returned %q", prefix)
		}
		// More keys than one SCAN returns, so cleanup must follow the cursor;
		// hash tags spread them over slots as the real key layout does.
		pipe := client.Pipeline()
		for i := range 2500 {
			pipe.Set(ctx, fmt.Sprintf("%s{uaid%d}:k", prefix, i), i, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("set keys: %v", err)
		}
	})
	if prefix == "" {
		t.Fatal("the subtest got no prefix")
	}

	if left := countKeys(t, admin, prefix); left != 0 {
		t.Errorf("%d keys under %q left after the test's cleanup", left, prefix)
	}
	if n, err := admin.Exists(ctx, keep+"k").Result(); err != nil || n != 1 {
		t.Errorf("the parent's key: exists %d, %v; want 1", n, err)
	}
}

func TestRedisFailsWithoutServer(t *testing.T) {
	t.Setenv(testenv.RedisURLEnv, "redis://127.0.0.1:1/0")
	msg := fatalOf(t, func(tb testing.TB) { testenv.Redis(tb) })
	for _, want := range []string{"does not answer", "make test", testenv.RedisURLEnv} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure %q does not mention %q", msg, want)
		}
	}
}

// fatalTB records a Fatalf and ends the goroutine as testing.T does, so that a test
// can check that a helper fails, and how. Everything else goes to the real test.
type fatalTB struct {
	testing.TB
	msg      string
	cleanups []func()
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fatalTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

// fatalOf runs helper and returns what it passed to Fatalf; the test fails if it
// returned instead.
func fatalOf(t *testing.T, helper func(testing.TB)) string {
	t.Helper()
	f := &fatalTB{TB: t}
	// The helper runs in a goroutine of its own, as Goexit must not end this one;
	// receiving from done orders its writes to f before our reads.
	done := make(chan bool)
	go func() {
		returned := false
		defer func() { done <- returned }()
		helper(f)
		returned = true
	}()
	if <-done {
		t.Fatal("the helper returned; want it to call Fatalf")
	}
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	return f.msg
}

func serverURL() string {
	if u := os.Getenv(testenv.PostgresURLEnv); u != "" {
		return u
	}
	return testenv.DefaultPostgresURL
}

func mustParseRedisURL(t *testing.T) *redis.Options {
	t.Helper()
	u := os.Getenv(testenv.RedisURLEnv)
	if u == "" {
		u = testenv.DefaultRedisURL
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("parse %s: %v", testenv.RedisURLEnv, err)
	}
	return opts
}

func countKeys(t *testing.T, c *redis.Client, prefix string) int {
	t.Helper()
	var n int
	iter := c.Scan(t.Context(), 0, prefix+"*", 1000).Iterator()
	for iter.Next(t.Context()) {
		n++
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scan %s*: %v", prefix, err)
	}
	return n
}
