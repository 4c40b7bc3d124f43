// Package queue holds each user agent's waiting messages in a Redis Stream, keyed by
// its uaid hash tag. The router appends, and deletes on an application server's
// request (through ingest); the gateway reads and acknowledges.
//
// Expired messages are removed when a reader meets them, and each stream key expires
// with its longest-lived message, so a user agent that never returns leaves nothing;
// a queue emptied by acknowledgements expires soon after its user agent leaves (Idle).
//
// The script that appends a message (or, TTL 0, admits it unstored) also makes the
// checks that touch only the user agent's keys: the subscription's recent changes
// (changes.go) and its rate limit (limit.go), all in one round trip.
package queue

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/rkey"
)

// ErrFull is returned by Append when the user agent's queue holds its maximum.
var ErrFull = errors.New("queue full")

// ErrGone is returned by Append and CheckCmd when the message's channel was
// unregistered lately (see Unsubscribed).
var ErrGone = errors.New("subscription gone")

// ErrKeyChanged is returned by Append and CheckCmd when the message's channel was
// registered again lately, with another application server key than the one the
// sender was checked against (see Subscribed).
var ErrKeyChanged = errors.New("subscription key changed")

//go:embed append.lua
var appendLua string

var appendScript = redis.NewScript(checksLua + appendLua)

// expiredCounter counts messages removed because their TTL ran out before delivery.
// An instrument of the global meter provider: created before the service installs
// its provider, it delegates to it once installed. Its error is for invalid names
// only, and this one is valid.
var expiredCounter, _ = otel.GetMeterProvider().Meter("herald/queue").Int64Counter("herald.queue.expired",
	metric.WithUnit("{message}"), metric.WithDescription("Messages removed from queues because their TTL ran out before delivery"))

// Entry is one waiting message.
type Entry struct {
	// ID is the stream entry id; set by Append and by Range.
	ID        string
	ChannelID ids.ChannelID
	Data      []byte
	// Headers are the encryption headers in protocol form (encoding, encryption, crypto_key).
	Headers  map[string]string
	TTL      time.Duration
	Received time.Time
	Urgency  int32
	Topic    string
	// TraceParent is the W3C traceparent of the request that sent the message, so
	// that its delivery, however late, joins the same trace.
	TraceParent string
	// AppServerKey is the application server key of the subscription the sender
	// was authorized against (nil: unrestricted). Not stored: Append compares it
	// with the channel's recent changes.
	AppServerKey []byte
	// Limit is the rate limit of the message's subscription, which Append counts
	// the message against. Not stored.
	Limit Limit
}

// Expires returns when the message's TTL runs out.
func (e Entry) Expires() time.Time { return e.Received.Add(e.TTL) }

// Queue reads and writes user agents' queues.
type Queue struct {
	rdb    redis.UniversalClient
	keys   rkey.Keys
	maxLen int64
}

// New returns a Queue whose streams hold at most maxLen messages each.
func New(rdb redis.UniversalClient, keys rkey.Keys, maxLen int64) *Queue {
	return &Queue{rdb: rdb, keys: keys, maxLen: maxLen}
}

// Stream field names; short because they are stored once per message.
const (
	fChannel  = "c"
	fData     = "d"
	fTTL      = "t"
	fReceived = "r"
	fUrgency  = "u"
	fTopic    = "p"
	fTrace    = "tp"
	fHeader   = "h:" // prefix of each header field
)

// Append stores e in its user agent's queue and returns its entry id. A waiting message
// of the same channel with the same Topic is replaced (RFC 8030 §5.4). It stores
// nothing and returns ErrGone or ErrKeyChanged when the channel's recent changes
// say e's sender was checked against a subscription that no longer holds, a
// *RateLimitError when e.Limit refuses it, and ErrFull when the queue is full; a
// message it refuses counts nothing against e.Limit.
func (q *Queue) Append(ctx context.Context, u ids.UAID, e Entry) (string, error) {
	keys, args, err := q.appendArgs(u, e)
	if err != nil {
		return "", err
	}
	return scriptResult("queue append", appendScript.Run(ctx, q.rdb, keys, args...))
}

// AppendCmd is an Append queued in a pipeline; its Result is known once the pipeline
// has run.
type AppendCmd struct {
	cmd *redis.Cmd
	err error
}

// AppendIn queues an Append in pipeline p, so that many messages are stored in one
// round trip. A command that fails with ErrNoScript (Redis did not know the script
// yet) stored nothing and may be retried with Append.
func (q *Queue) AppendIn(ctx context.Context, p redis.Pipeliner, u ids.UAID, e Entry) *AppendCmd {
	keys, args, err := q.appendArgs(u, e)
	if err != nil {
		return &AppendCmd{err: err}
	}
	return &AppendCmd{cmd: appendScript.EvalSha(ctx, p, keys, args...)}
}

// ErrNoScript is returned by an AppendCmd or AdmitCmd that ran before Redis knew
// its script.
var ErrNoScript = errors.New("queue: script not loaded")

// Result returns the new entry id.
func (c *AppendCmd) Result() (string, error) {
	if c.err != nil {
		return "", c.err
	}
	if err := c.cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		return "", ErrNoScript
	}
	return scriptResult("queue append", c.cmd)
}

func (q *Queue) appendArgs(u ids.UAID, e Entry) ([]string, []any, error) {
	if e.TTL <= 0 {
		return nil, nil, errors.New("queue: append needs a positive TTL")
	}
	ch := e.ChannelID.String()
	topicField := ""
	if e.Topic != "" {
		topicField = ch + ":" + e.Topic
	}
	keys := make([]string, 3, 4)
	keys[0], keys[1], keys[2] = q.keys.Queue(u), q.keys.Topics(u), q.keys.Changes(u)
	var interval, window int64
	if e.Limit.Enabled() {
		keys = append(keys, q.keys.RateSubscription(u, e.ChannelID))
		interval, window = e.Limit.gcra()
	}
	args := make([]any, 0, 20+2*len(e.Headers))
	args = append(args, e.TTL.Milliseconds(), q.maxLen, topicField, ch, changeRecord(e.AppServerKey), interval, window,
		fChannel, ch,
		fData, e.Data,
		fTTL, int64(e.TTL/time.Second),
		fReceived, e.Received.UnixMilli(),
		fUrgency, e.Urgency,
	)
	if e.Topic != "" {
		args = append(args, fTopic, e.Topic)
	}
	if e.TraceParent != "" {
		args = append(args, fTrace, e.TraceParent)
	}
	for k, v := range e.Headers {
		args = append(args, fHeader+k, v)
	}
	return keys, args, nil
}

//go:embed idle.lua
var idleLua string

var idleScript = redis.NewScript(idleLua)

// IdleLife is how long a queue that nothing waits in is kept after its user agent's
// connection ended (Idle).
const IdleLife = 10 * time.Minute

// Idle shortens the life of u's queue to IdleLife if nothing waits in it, and drops
// its topics: call it when u's connection ends. An emptied queue would otherwise stay
// until the TTL of the last message it held ends, weeks for senders' usual TTLs. It
// reports whether the queue was empty; a message appended later gives it its full
// life back.
func (q *Queue) Idle(ctx context.Context, u ids.UAID) (bool, error) {
	n, err := idleScript.Run(ctx, q.rdb, []string{q.keys.Queue(u), q.keys.Topics(u)}, IdleLife.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("queue idle: %w", err)
	}
	return n == 1, nil
}

// Range returns up to count waiting messages after entry id after ("" for the start),
// oldest first. Expired messages it meets are deleted, not returned.
func (q *Queue) Range(ctx context.Context, u ids.UAID, after string, count int64, now time.Time) ([]Entry, error) {
	start := "-"
	if after != "" {
		start = "(" + after
	}
	key := q.keys.Queue(u)
	msgs, err := q.rdb.XRangeN(ctx, key, start, "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("queue range: %w", err)
	}
	out := make([]Entry, 0, len(msgs))
	var expired []string
	for _, m := range msgs {
		e, err := decode(m)
		if err != nil {
			// A malformed entry can never be delivered; drop it rather than block the queue.
			expired = append(expired, m.ID)
			continue
		}
		if !now.Before(e.Expires()) {
			expired = append(expired, m.ID)
			continue
		}
		out = append(out, e)
	}
	if len(expired) > 0 {
		if err := q.rdb.XDel(ctx, key, expired...).Err(); err != nil {
			return nil, fmt.Errorf("queue drop expired: %w", err)
		}
		expiredCounter.Add(ctx, int64(len(expired)))
	}
	return out, nil
}

// Delete removes messages by entry id and reports how many were still there.
func (q *Queue) Delete(ctx context.Context, u ids.UAID, entryIDs ...string) (int64, error) {
	valid := validEntryIDs(entryIDs)
	if len(valid) == 0 {
		return 0, nil
	}
	n, err := q.rdb.XDel(ctx, q.keys.Queue(u), valid...).Result()
	if err != nil {
		return 0, fmt.Errorf("queue delete: %w", err)
	}
	return n, nil
}

// Len returns the number of messages in the user agent's queue, expired ones included.
func (q *Queue) Len(ctx context.Context, u ids.UAID) (int64, error) {
	n, err := q.rdb.XLen(ctx, q.keys.Queue(u)).Result()
	if err != nil {
		return 0, fmt.Errorf("queue len: %w", err)
	}
	return n, nil
}

// Clear removes a user agent's whole queue.
func (q *Queue) Clear(ctx context.Context, u ids.UAID) error {
	if err := q.rdb.Del(ctx, q.keys.Queue(u), q.keys.Topics(u)).Err(); err != nil {
		return fmt.Errorf("queue clear: %w", err)
	}
	return nil
}

func decode(m redis.XMessage) (Entry, error) {
	e := Entry{ID: m.ID}
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	var err error
	if e.ChannelID, err = ids.ParseChannelID(str(fChannel)); err != nil {
		return e, fmt.Errorf("entry %s: channel: %w", m.ID, err)
	}
	ttl, err := strconv.ParseInt(str(fTTL), 10, 64)
	if err != nil {
		return e, fmt.Errorf("entry %s: ttl: %w", m.ID, err)
	}
	e.TTL = time.Duration(ttl) * time.Second
	recv, err := strconv.ParseInt(str(fReceived), 10, 64)
	if err != nil {
		return e, fmt.Errorf("entry %s: received: %w", m.ID, err)
	}
	e.Received = time.UnixMilli(recv)
	if u, err := strconv.ParseInt(str(fUrgency), 10, 32); err == nil {
		e.Urgency = int32(u)
	}
	if d := str(fData); d != "" {
		e.Data = []byte(d)
	}
	e.Topic = str(fTopic)
	e.TraceParent = str(fTrace)
	for k, v := range m.Values {
		if len(k) > len(fHeader) && k[:len(fHeader)] == fHeader {
			if e.Headers == nil {
				e.Headers = map[string]string{}
			}
			e.Headers[k[len(fHeader):]], _ = v.(string)
		}
	}
	return e, nil
}
