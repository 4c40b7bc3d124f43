package queue

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/pkg/ids"
)

// Limit is a subscription's rate limit: Count messages per Period, up to Count of
// them at once (the generic cell rate algorithm lets a quiet sender burst, then
// spaces messages Period/Count apart). Append and Admit count a message against
// it in the same script that stores or admits the message, so that a message costs
// no Redis call of its own, and a refused one counts nothing. A zero Count means
// no limit.
type Limit struct {
	Count  int64
	Period time.Duration
}

// Enabled reports whether l limits anything.
func (l Limit) Enabled() bool { return l.Count > 0 && l.Period > 0 }

// gcra returns the arguments of checks.lua's limit_check: the emission interval
// (the time one message occupies) and the burst window, in µs.
func (l Limit) gcra() (interval, window int64) {
	interval = max(l.Period.Microseconds()/l.Count, 1)
	return interval, interval * l.Count
}

// RateLimitError is the error of Append and Admit for a message its subscription's
// rate limit refused.
type RateLimitError struct {
	// RetryAfter is how long until the limit would allow a message.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return "subscription over its rate limit: retry after " + e.RetryAfter.String()
}

var (
	//go:embed checks.lua
	checksLua string
	//go:embed admit.lua
	admitLua string

	admitScript = redis.NewScript(checksLua + admitLua)
)

// AdmitCmd is an Admit queued in a pipeline; its Err is known once the pipeline
// has run.
type AdmitCmd struct {
	check *CheckCmd  // without a rate limit
	cmd   *redis.Cmd // with one
}

// AdmitIn queues in pipeline p the checks Append makes of a message that is not
// stored (TTL 0): whether e's subscription changed since its sender was checked
// (e.AppServerKey), and whether e.Limit allows it, counting it if so. Only e's
// ChannelID, AppServerKey and Limit are read. A command that fails with
// ErrNoScript counted nothing and may be retried with Admit.
func (q *Queue) AdmitIn(ctx context.Context, p redis.Pipeliner, u ids.UAID, e Entry) *AdmitCmd {
	if !e.Limit.Enabled() {
		return &AdmitCmd{check: q.CheckIn(ctx, p, u, e.ChannelID, e.AppServerKey)}
	}
	keys, args := q.admitArgs(u, e)
	return &AdmitCmd{cmd: admitScript.EvalSha(ctx, p, keys, args...)}
}

// Admit is AdmitIn run at once, loading the script if Redis does not know it.
func (q *Queue) Admit(ctx context.Context, u ids.UAID, e Entry) error {
	if !e.Limit.Enabled() {
		p := q.rdb.Pipeline()
		c := q.CheckIn(ctx, p, u, e.ChannelID, e.AppServerKey)
		_, _ = p.Exec(ctx) // c reports its own error
		return c.Err()
	}
	keys, args := q.admitArgs(u, e)
	_, err := scriptResult("queue admit", admitScript.Run(ctx, q.rdb, keys, args...))
	return err
}

func (q *Queue) admitArgs(u ids.UAID, e Entry) ([]string, []any) {
	ch := e.ChannelID.String()
	interval, window := e.Limit.gcra()
	return []string{q.keys.Changes(u), q.keys.RateSubscription(u, e.ChannelID)},
		[]any{ch, changeRecord(e.AppServerKey), interval, window}
}

// Err returns ErrGone, ErrKeyChanged, a *RateLimitError, ErrNoScript, another
// error when the checks could not be made, or nil: the message is admitted.
func (c *AdmitCmd) Err() error {
	if c.check != nil {
		return c.check.Err()
	}
	if err := c.cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		return ErrNoScript
	}
	_, err := scriptResult("queue admit", c.cmd)
	return err
}

// scriptResult reads what append.lua and admit.lua return: a string on success
// (append.lua's entry id), false (nil) when the queue is full, 0 when the channel
// was unregistered, 1 when it was registered again with another key, minus the µs
// to wait when the rate limit refused. what names the script in errors.
func scriptResult(what string, cmd *redis.Cmd) (string, error) {
	v, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrFull
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case int64:
		switch {
		case v == 0:
			return "", ErrGone
		case v == 1:
			return "", ErrKeyChanged
		case v < 0:
			return "", &RateLimitError{RetryAfter: time.Duration(-v) * time.Microsecond}
		}
		return "", fmt.Errorf("%s: unexpected result %d", what, v)
	}
	return "", fmt.Errorf("%s: unexpected result %T", what, v)
}
