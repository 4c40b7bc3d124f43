// Package store keeps user agents and their subscriptions in Postgres.
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-push/herald/pkg/ids"
)

// ErrNotFound is returned when a user agent or subscription does not exist.
var ErrNotFound = errors.New("not found")

// Subscription is one channel of a user agent.
type Subscription struct {
	UAID      ids.UAID
	ChannelID ids.ChannelID
	// AppServerKey is the application server's P-256 public key (65 bytes) for a
	// restricted subscription, nil otherwise.
	AppServerKey []byte
}

// Store reads and writes user agents and subscriptions.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the database at url.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres url: %w", err)
	}
	tracer, err := newQueryMetrics()
	if err != nil {
		return nil, fmt.Errorf("postgres metrics: %w", err)
	}
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &Store{pool: pool}, nil
}

// OpenMigrated opens the database at url and applies the migrations it lacks.
func OpenMigrated(ctx context.Context, url string) (*Store, error) {
	s, err := Open(ctx, url)
	if err != nil {
		return nil, err
	}
	if _, err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// CreateUserAgent records a new user agent. Recording one already recorded changes
// nothing: a gateway tries again after an insert whose answer it lost (Postgres
// unreachable) may have been made.
func (s *Store) CreateUserAgent(ctx context.Context, u ids.UAID) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO user_agents (uaid) VALUES ($1) ON CONFLICT (uaid) DO NOTHING`, [16]byte(u)); err != nil {
		return fmt.Errorf("create user agent: %w", err)
	}
	return nil
}

// Connect records that user agent u connected and returns its subscriptions, or
// ErrNotFound when Herald does not know u.
func (s *Store) Connect(ctx context.Context, u ids.UAID, now time.Time) ([]Subscription, error) {
	known, err := s.ConnectMany(ctx, []ids.UAID{u}, now)
	if err != nil {
		return nil, err
	}
	subs, ok := known[u]
	if !ok {
		return nil, ErrNotFound
	}
	return subs, nil
}

// ConnectMany records that the user agents us connected and returns the
// subscriptions of each one Herald knows, in the order they were made (an empty
// slice for one without any); unknown ones are not in the map. It is one
// statement, one round trip for all: every hello of a returning user agent needs
// it, all of them at once after a gateway is lost.
//
// The uaids go to Postgres sorted, which an index scan follows, so that two calls
// sharing user agents (one saying hello on two connections at once) take their row
// locks in the same order. Should a plan lock them in another, Postgres aborts one
// call after its deadlock timeout: those hellos fail, and their user agents try
// again.
func (s *Store) ConnectMany(ctx context.Context, us []ids.UAID, now time.Time) (map[ids.UAID][]Subscription, error) {
	keys := make([][16]byte, len(us))
	for i, u := range us {
		keys[i] = [16]byte(u)
	}
	slices.SortFunc(keys, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
	keys = slices.Compact(keys)
	// A user agent without subscriptions is one row without a channel.
	rows, err := s.pool.Query(ctx, `
		WITH ua AS (
			UPDATE user_agents SET last_connect = $2 WHERE uaid = ANY($1::uuid[])
			RETURNING uaid
		)
		SELECT ua.uaid, s.channel_id, s.app_server_key
		FROM ua LEFT JOIN subscriptions s ON s.uaid = ua.uaid
		ORDER BY ua.uaid, s.created_at`, keys, now)
	if err != nil {
		return nil, fmt.Errorf("connect user agents: %w", err)
	}
	known := make(map[ids.UAID][]Subscription, len(keys))
	for rows.Next() {
		var u [16]byte
		var ch pgtype.UUID
		var key []byte
		if err := rows.Scan(&u, &ch, &key); err != nil {
			rows.Close()
			return nil, fmt.Errorf("connect user agents: %w", err)
		}
		subs := known[ids.UAID(u)]
		if subs == nil {
			subs = []Subscription{}
		}
		if ch.Valid {
			subs = append(subs, Subscription{UAID: ids.UAID(u), ChannelID: ids.ChannelID(ch.Bytes), AppServerKey: key})
		}
		known[ids.UAID(u)] = subs
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("connect user agents: %w", err)
	}
	return known, nil
}

// Subscribe records a subscription; subscribing an existing channel again replaces
// its key.
func (s *Store) Subscribe(ctx context.Context, sub Subscription) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO subscriptions (uaid, channel_id, app_server_key) VALUES ($1, $2, $3)
		ON CONFLICT (uaid, channel_id) DO UPDATE SET app_server_key = excluded.app_server_key`,
		[16]byte(sub.UAID), [16]byte(sub.ChannelID), sub.AppServerKey)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	return nil
}

// Unsubscribe removes a subscription; it returns ErrNotFound when there was none.
func (s *Store) Unsubscribe(ctx context.Context, u ids.UAID, ch ids.ChannelID) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM subscriptions WHERE uaid = $1 AND channel_id = $2`, [16]byte(u), [16]byte(ch))
	if err != nil {
		return fmt.Errorf("unsubscribe: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteUserAgent removes a user agent and its subscriptions.
func (s *Store) DeleteUserAgent(ctx context.Context, u ids.UAID) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM user_agents WHERE uaid = $1`, [16]byte(u)); err != nil {
		return fmt.Errorf("delete user agent: %w", err)
	}
	return nil
}

// Subscription returns one subscription, or ErrNotFound.
func (s *Store) Subscription(ctx context.Context, u ids.UAID, ch ids.ChannelID) (Subscription, error) {
	sub := Subscription{UAID: u, ChannelID: ch}
	err := s.pool.QueryRow(ctx, `SELECT app_server_key FROM subscriptions WHERE uaid = $1 AND channel_id = $2`,
		[16]byte(u), [16]byte(ch)).Scan(&sub.AppServerKey)
	if errors.Is(err, pgx.ErrNoRows) {
		return sub, ErrNotFound
	}
	if err != nil {
		return sub, fmt.Errorf("get subscription: %w", err)
	}
	return sub, nil
}
