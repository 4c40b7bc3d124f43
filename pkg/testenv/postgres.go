package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// PostgresURLEnv names the server PostgresURL creates databases on. The URL's
	// user must be allowed to create databases.
	PostgresURLEnv = "HERALD_POSTGRES_URL"
	// DefaultPostgresURL is used when PostgresURLEnv is unset; scripts/deps.sh
	// serves it.
	DefaultPostgresURL = "postgres://herald@127.0.0.1:5432/postgres?sslmode=disable"
)

// PostgresURL creates an empty database for this test on the server named by
// HERALD_POSTGRES_URL, returns a URL to it, and drops it in t.Cleanup. It fails the
// test if the server does not answer.
func PostgresURL(t testing.TB) string {
	t.Helper()
	serverURL := envOr(PostgresURLEnv, DefaultPostgresURL)
	cfg, err := pgx.ParseConfig(serverURL)
	if err != nil {
		t.Fatalf("testenv: parse %s: %v", PostgresURLEnv, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), setupTimeout)
	defer cancel()
	conn, err := connectPostgres(ctx, cfg)
	if err != nil {
		t.Fatalf("testenv: Postgres at %s does not answer: %v\n"+howToRun,
			describePostgres(cfg), err, PostgresURLEnv)
	}
	defer func() {
		// The database is made; a failed goodbye to the server changes nothing.
		_ = conn.Close(context.Background())
	}()

	name := "herald_test_" + randomHex(t, 8)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: create database %s on %s: %v", name, describePostgres(cfg), err)
	}
	t.Cleanup(func() {
		// t.Context is already done when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		if err := dropDatabase(ctx, cfg, name); err != nil {
			t.Errorf("testenv: drop database %s on %s: %v", name, describePostgres(cfg), err)
		}
	})

	dbURL, err := withDatabase(serverURL, name)
	if err != nil {
		t.Fatalf("testenv: %s: %v", PostgresURLEnv, err)
	}
	return dbURL
}

// connectPostgres connects, polling until ctx ends while the server says it is
// starting up or full: both pass, while a refused connection will not.
func connectPostgres(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			return conn, nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || (pgErr.Code != "57P03" && pgErr.Code != "53300") {
			return nil, err // not cannot_connect_now or too_many_connections
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-tick.C:
		}
	}
}

// dropDatabase drops the database name, forcing out connections the test left open.
func dropDatabase(ctx context.Context, cfg *pgx.ConnConfig, name string) error {
	conn, err := connectPostgres(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		// Nothing is left to do on this connection whichever way Close goes.
		_ = conn.Close(context.Background())
	}()
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// withDatabase returns the connection string serverURL with its database set to name.
// It takes both forms pgx does: a postgres:// URL, or keyword=value pairs.
func withDatabase(serverURL, name string) (string, error) {
	if !strings.HasPrefix(serverURL, "postgres://") && !strings.HasPrefix(serverURL, "postgresql://") {
		// In keyword=value form the last dbname wins.
		return serverURL + " dbname=" + name, nil
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("parse URL: %w", err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	q := u.Query()
	if q.Has("dbname") {
		q.Del("dbname")
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// describePostgres names a server for messages, leaving out the password.
func describePostgres(cfg *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d (user %s, database %s)", cfg.Host, cfg.Port, cfg.User, cfg.Database)
}
