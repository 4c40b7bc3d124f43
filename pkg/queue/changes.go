package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/pkg/ids"
)

// ChangeMemory is how long a subscription change stays recorded in the user agent's
// changes hash (rkey.Keys.Changes). Ingest caches subscriptions for less than this,
// so that whatever a cached subscription missed, the router still sees: a channel
// unregistered (a tombstone) or registered again with another key.
const ChangeMemory = 40 * time.Second

// Change records, the values of the changes hash.
const tombstone = "x"

// changeRecord is what Subscribed records for key, and what a message checked
// against key expects to find, if anything.
func changeRecord(key []byte) string { return "k" + string(key) }

// Unsubscribed records that channels of u were unregistered: for ChangeMemory,
// Append and CheckIn refuse their messages with ErrGone. The gateway calls it after
// the subscriptions left Postgres and before it acknowledges the unregister.
func (q *Queue) Unsubscribed(ctx context.Context, u ids.UAID, chs ...ids.ChannelID) error {
	if len(chs) == 0 {
		return nil
	}
	fields := make([]any, 0, 2*len(chs))
	for _, ch := range chs {
		fields = append(fields, ch.String(), tombstone)
	}
	return q.recordChange(ctx, u, fields)
}

// Subscribed records that channel ch of u was registered with application server
// key key (nil: unrestricted), clearing a tombstone: for ChangeMemory, Append and
// CheckIn refuse with ErrKeyChanged a message checked against another key.
func (q *Queue) Subscribed(ctx context.Context, u ids.UAID, ch ids.ChannelID, key []byte) error {
	return q.recordChange(ctx, u, []any{ch.String(), changeRecord(key)})
}

func (q *Queue) recordChange(ctx context.Context, u ids.UAID, fields []any) error {
	key := q.keys.Changes(u)
	// One transaction, so the hash never lives without its expiry. Every change
	// extends the whole hash's life: a record may outlive ChangeMemory, never
	// fall short of it.
	_, err := q.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, fields...)
		p.PExpire(ctx, key, ChangeMemory)
		return nil
	})
	if err != nil {
		return fmt.Errorf("record subscription change: %w", err)
	}
	return nil
}

// CheckCmd is a check of a message's subscription queued in a pipeline, for a
// message that is not stored (TTL 0) and so does not go through Append.
type CheckCmd struct {
	cmd    *redis.StringCmd
	record string
}

// CheckIn queues in pipeline p the check that Append makes of a message for
// channel ch whose sender was authorized against key.
func (q *Queue) CheckIn(ctx context.Context, p redis.Pipeliner, u ids.UAID, ch ids.ChannelID, key []byte) *CheckCmd {
	return &CheckCmd{cmd: p.HGet(ctx, q.keys.Changes(u), ch.String()), record: changeRecord(key)}
}

// Err returns ErrGone, ErrKeyChanged, another error when the check could not be
// made, or nil.
func (c *CheckCmd) Err() error {
	v, err := c.cmd.Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil
	case err != nil:
		return fmt.Errorf("check subscription: %w", err)
	case v == tombstone:
		return ErrGone
	case v != c.record:
		return ErrKeyChanged
	}
	return nil
}
