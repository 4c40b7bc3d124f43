package session

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/ece"
	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/lease"
	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/queue"
	"github.com/herald-push/herald/pkg/store"
	"github.com/herald-push/herald/pkg/token"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// fakeStore keeps user agents and subscriptions in memory.
type fakeStore struct {
	uas map[ids.UAID]map[ids.ChannelID][]byte
	// down, when set, fails every write (Postgres unreachable).
	down error
}

func (f *fakeStore) CreateUserAgent(_ context.Context, u ids.UAID) error {
	if f.down != nil {
		return f.down
	}
	if _, ok := f.uas[u]; !ok { // recording one again changes nothing, as in Postgres
		f.uas[u] = map[ids.ChannelID][]byte{}
	}
	return nil
}

func (f *fakeStore) Connect(_ context.Context, u ids.UAID, _ time.Time) ([]store.Subscription, error) {
	chs, ok := f.uas[u]
	if !ok {
		return nil, store.ErrNotFound
	}
	var subs []store.Subscription
	for ch, key := range chs {
		subs = append(subs, store.Subscription{UAID: u, ChannelID: ch, AppServerKey: key})
	}
	return subs, nil
}

func (f *fakeStore) Subscribe(_ context.Context, sub store.Subscription) error {
	if f.down != nil {
		return f.down
	}
	chs, ok := f.uas[sub.UAID]
	if !ok {
		return errors.New("no such user agent")
	}
	chs[sub.ChannelID] = sub.AppServerKey
	return nil
}

func (f *fakeStore) DeleteUserAgent(_ context.Context, u ids.UAID) error {
	delete(f.uas, u)
	return nil
}

func (f *fakeStore) Unsubscribe(_ context.Context, u ids.UAID, ch ids.ChannelID) error {
	if f.down != nil {
		return f.down
	}
	if _, ok := f.uas[u][ch]; !ok {
		return store.ErrNotFound
	}
	delete(f.uas[u], ch)
	return nil
}

// fakeQueue keeps each user agent's messages in order, and the subscription
// changes recorded: "x" for a tombstone, else "k" and the key. A tombstone written
// while the store still held the subscription is recorded as "early".
type fakeQueue struct {
	seq     uint64
	entries map[ids.UAID][]queue.Entry
	store   *fakeStore
	changes map[ids.UAID]map[ids.ChannelID]string
	// idled are the user agents whose queues Idle was called for.
	idled []ids.UAID
	// deleteErr, when set, fails every Delete (Redis unreachable).
	deleteErr error
}

func (q *fakeQueue) Subscribed(_ context.Context, u ids.UAID, ch ids.ChannelID, key []byte) error {
	q.change(u, ch, "k"+string(key))
	return nil
}

func (q *fakeQueue) Unsubscribed(_ context.Context, u ids.UAID, chs ...ids.ChannelID) error {
	for _, ch := range chs {
		if _, held := q.store.uas[u][ch]; held {
			q.change(u, ch, "early")
			continue
		}
		q.change(u, ch, "x")
	}
	return nil
}

func (q *fakeQueue) change(u ids.UAID, ch ids.ChannelID, v string) {
	if q.changes[u] == nil {
		q.changes[u] = map[ids.ChannelID]string{}
	}
	q.changes[u][ch] = v
}

func (q *fakeQueue) add(u ids.UAID, ch ids.ChannelID, urgency heraldv1.Urgency) string {
	q.seq++
	e := queue.Entry{ID: "1000-" + itoa(q.seq), ChannelID: ch, Data: []byte("x"), Headers: map[string]string{"encoding": "aes128gcm"},
		TTL: time.Hour, Received: time.Now(), Urgency: int32(urgency)}
	q.entries[u] = append(q.entries[u], e)
	return e.ID
}

func itoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func (q *fakeQueue) Range(_ context.Context, u ids.UAID, after string, count int64, _ time.Time) ([]queue.Entry, error) {
	var out []queue.Entry
	for _, e := range q.entries[u] {
		if queue.EntryAfter(e.ID, after) && int64(len(out)) < count {
			out = append(out, e)
		}
	}
	return out, nil
}

func (q *fakeQueue) Delete(_ context.Context, u ids.UAID, entryIDs ...string) (int64, error) {
	if q.deleteErr != nil {
		return 0, q.deleteErr
	}
	var n int64
	for _, id := range entryIDs {
		for i, e := range q.entries[u] {
			if e.ID == id {
				q.entries[u] = append(q.entries[u][:i], q.entries[u][i+1:]...)
				n++
				break
			}
		}
	}
	return n, nil
}

func (q *fakeQueue) Clear(_ context.Context, u ids.UAID) error {
	delete(q.entries, u)
	return nil
}

func (q *fakeQueue) Idle(_ context.Context, u ids.UAID) (bool, error) {
	q.idled = append(q.idled, u)
	return len(q.entries[u]) == 0, nil
}

// fakeLeases hands out epochs, each claim finding prev as the previous owner.
type fakeLeases struct {
	epoch uint64
	prev  lease.Owner
}

func (l *fakeLeases) Claim(context.Context, ids.UAID, string, string) (uint64, lease.Owner, error) {
	l.epoch++
	return l.epoch, l.prev, nil
}

func (l *fakeLeases) Release(context.Context, ids.UAID, uint64) error { return nil }

// fakeEvictor fails every eviction with err (nil: none fails).
type fakeEvictor struct{ err error }

func (e fakeEvictor) Evict(context.Context, lease.Owner, ids.UAID, uint64) error { return e.err }

type world struct {
	hub   *Hub
	store *fakeStore
	queue *fakeQueue
	now   time.Time
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return newWorldWith(t, &fakeLeases{}, fakeEvictor{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// newWorldWith is newWorld with these ownership records, evictions and log.
func newWorldWith(t *testing.T, leases Leases, ev Evictor, log *slog.Logger) *world {
	t.Helper()
	codec, err := token.NewCodec([][]byte{make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	st := &fakeStore{uas: map[ids.UAID]map[ids.ChannelID][]byte{}}
	w := &world{
		store: st,
		queue: &fakeQueue{entries: map[ids.UAID][]queue.Entry{}, store: st, changes: map[ids.UAID]map[ids.ChannelID]string{}},
		now:   time.Unix(1_700_000_000, 0),
	}
	hub, err := NewHub(Config{
		EndpointURL: "http://push.example", GatewayID: "gw", GatewayAddr: "gw:1",
		MaxChannels: 2, InboxSize: 4, DrainPage: 2, MinPingInterval: 30 * time.Second,
		Broadcasts: map[string]string{"known": "v2"},
	}, w.store, w.queue, leases, ev, codec, log)
	if err != nil {
		t.Fatal(err)
	}
	hub.RecordChanges(w.queue)
	w.hub = hub
	w.hub.now = func() time.Time { return w.now }
	return w
}

func (w *world) hello(t *testing.T, m mozproto.ClientMessage) (*Session, mozproto.HelloReply) {
	t.Helper()
	m.Type = mozproto.TypeHello
	s, r, err := w.hub.Hello(context.Background(), m, nil)
	if err != nil {
		t.Fatalf("hello: %v", err)
	}
	return s, r
}

func register(t *testing.T, s *Session, ch, key string) mozproto.RegisterReply {
	t.Helper()
	return s.Register(context.Background(), mozproto.ClientMessage{Type: mozproto.TypeRegister, ChannelID: ch, Key: key})
}

func drainAll(t *testing.T, s *Session) []string {
	t.Helper()
	var versions []string
	for range 100 {
		notes, more, err := s.Drain(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range notes {
			versions = append(versions, n.Version)
		}
		if !more {
			return versions
		}
	}
	t.Fatal("drain does not end")
	return nil
}

func TestHelloReconciliation(t *testing.T) {
	w := newWorld(t)
	s, r := w.hello(t, mozproto.ClientMessage{})
	if _, ok := w.store.uas[s.UAID()]; ok {
		t.Fatal("a new uaid is stored before its first register")
	}
	ch := ids.NewChannelID().String()
	if got := register(t, s, ch, "").Status; got != http.StatusOK {
		t.Fatalf("register: %d", got)
	}
	uaid := r.UAID

	tests := []struct {
		name      string
		hello     mozproto.ClientMessage
		sameUAID  bool
		wantDrops bool
	}{
		{name: "resume as Firefox does, without channelIDs", hello: mozproto.ClientMessage{UAID: uaid}, sameUAID: true},
		{name: "resume listing the channel", hello: mozproto.ClientMessage{UAID: uaid, ChannelIDs: []string{ch}}, sameUAID: true},
		{name: "malformed uaid", hello: mozproto.ClientMessage{UAID: "zz"}},
		{name: "unknown uaid", hello: mozproto.ClientMessage{UAID: ids.NewUAID().String()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, r := w.hello(t, tt.hello)
			if (r.UAID == uaid) != tt.sameUAID {
				t.Fatalf("hello answered uaid %s (sent %q), want same=%v", r.UAID, tt.hello.UAID, tt.sameUAID)
			}
		})
	}

	t.Run("channels the server lost reassign and drop the old uaid", func(t *testing.T) {
		u, _ := ids.ParseUAID(uaid)
		w.queue.add(u, mustChannel(t, ch), heraldv1.Urgency_URGENCY_NORMAL)
		_, r := w.hello(t, mozproto.ClientMessage{UAID: uaid, ChannelIDs: []string{ch, ids.NewChannelID().String()}})
		if r.UAID == uaid {
			t.Fatal("kept a uaid whose hello lists a channel the server does not hold")
		}
		if n := len(w.store.uas[u]); n != 0 {
			t.Fatalf("old uaid keeps %d subscriptions", n)
		}
		if n := len(w.queue.entries[u]); n != 0 {
			t.Fatalf("old uaid keeps %d messages", n)
		}
		if got := w.queue.changes[u][mustChannel(t, ch)]; got != "x" {
			t.Fatalf("old uaid's channel change %q, want a tombstone written after the delete", got)
		}
	})
	t.Run("a uaid without subscriptions is reassigned", func(t *testing.T) {
		_, r := w.hello(t, mozproto.ClientMessage{UAID: uaid})
		if r.UAID == uaid {
			t.Fatal("kept a uaid without subscriptions: Firefox would keep subscriptions that cannot work")
		}
	})
	t.Run("not hello first", func(t *testing.T) {
		_, _, err := w.hub.Hello(context.Background(), mozproto.ClientMessage{Type: mozproto.TypeRegister}, nil)
		if !errors.Is(err, ErrProtocol) {
			t.Fatalf("register before hello: %v, want ErrProtocol", err)
		}
	})
}

func mustChannel(t *testing.T, s string) ids.ChannelID {
	t.Helper()
	ch, err := ids.ParseChannelID(s)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestRegisterStatuses(t *testing.T) {
	w := newWorld(t)
	s, _ := w.hello(t, mozproto.ClientMessage{})
	priv, _, err := ece.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	key := priv.PublicKey().Bytes()
	padded := base64.URLEncoding.EncodeToString(key) // Firefox pads
	other, _, _ := ece.GenerateKeys()
	otherKey := base64.RawURLEncoding.EncodeToString(other.PublicKey().Bytes())
	ch := ids.NewChannelID().String()
	tests := []struct {
		name string
		ch   string
		key  string
		want int
	}{
		{name: "padded key, as Firefox sends it", ch: ch, key: padded, want: 200},
		{name: "again with the same key", ch: ch, key: base64.RawURLEncoding.EncodeToString(key), want: 200},
		{name: "again with another key", ch: ch, key: otherKey, want: 409},
		{name: "again without a key", ch: ch, want: 409},
		{name: "not a uuid", ch: "not-a-uuid", want: 400},
		{name: "uppercase uuid", ch: "B502B227-0F0A-4AE5-9C5A-9DD38842A446", want: 400},
		{name: "uuid without dashes", ch: "b502b2270f0a4ae59c5a9dd38842a446", want: 400},
		{name: "key not base64", ch: ids.NewChannelID().String(), key: "%%%", want: 400},
		{name: "key not a point", ch: ids.NewChannelID().String(), key: "bm90IGEga2V5", want: 400},
		{name: "second channel", ch: ids.NewChannelID().String(), want: 200},
		{name: "past the limit", ch: ids.NewChannelID().String(), want: 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := register(t, s, tt.ch, tt.key)
			if r.Status != tt.want || r.ChannelID != tt.ch || (r.Status == 200) != (r.PushEndpoint != "") {
				t.Fatalf("register %q key %q: %+v, want status %d", tt.ch, tt.key, r, tt.want)
			}
		})
	}
	if un := s.Unregister(context.Background(), mozproto.ClientMessage{ChannelID: "nope"}); un.Status != 400 {
		t.Fatalf("unregister a bad id: %+v", un)
	}
	if un := s.Unregister(context.Background(), mozproto.ClientMessage{ChannelID: ids.NewChannelID().String()}); un.Status != 200 {
		t.Fatalf("unregister an unknown channel: %+v", un)
	}
}

// TestSubscriptionChanges checks what the router learns of registers and
// unregisters, for ingest's cached subscriptions.
func TestSubscriptionChanges(t *testing.T) {
	w := newWorld(t)
	s, _ := w.hello(t, mozproto.ClientMessage{})
	priv, _, err := ece.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	key := priv.PublicKey().Bytes()
	chs := ids.NewChannelID().String()
	ch := mustChannel(t, chs)
	changes := func() string { return w.queue.changes[s.UAID()][ch] }

	if r := register(t, s, chs, base64.RawURLEncoding.EncodeToString(key)); r.Status != http.StatusOK {
		t.Fatalf("register: %+v", r)
	}
	if got := changes(); got != "k"+string(key) {
		t.Fatalf("after register: change %q, want the key", got)
	}
	if un := s.Unregister(context.Background(), mozproto.ClientMessage{ChannelID: chs}); un.Status != http.StatusOK {
		t.Fatalf("unregister: %+v", un)
	}
	if got := changes(); got != "x" {
		t.Fatalf("after unregister: change %q, want a tombstone written after the delete", got)
	}
	// The same channel again, now unrestricted: the tombstone gives way.
	if r := register(t, s, chs, ""); r.Status != http.StatusOK {
		t.Fatalf("register again: %+v", r)
	}
	if got := changes(); got != "k" {
		t.Fatalf("after register without a key: change %q, want %q", got, "k")
	}
}

func TestPingInterval(t *testing.T) {
	w := newWorld(t)
	s, _ := w.hello(t, mozproto.ClientMessage{})
	if r, code := s.Ping(); code != 0 || r != (mozproto.Ping{}) {
		t.Fatalf("first ping: %#v %d", r, code)
	}
	w.now = w.now.Add(10 * time.Second)
	r, code := s.Ping()
	soon, ok := r.(mozproto.PingTooSoon)
	if code != 0 || !ok || soon.Status != 429 || soon.RetryAfter != 20 || soon.Type != mozproto.TypePing {
		t.Fatalf("early ping: %#v %d", r, code)
	}
	if _, code := s.Ping(); code != mozproto.CloseTooManyPings {
		t.Fatalf("second early ping: close %d, want %d", code, mozproto.CloseTooManyPings)
	}
	s2, _ := w.hello(t, mozproto.ClientMessage{})
	for range 3 {
		if r, code := s2.Ping(); code != 0 || r != (mozproto.Ping{}) {
			t.Fatalf("ping at the interval: %#v %d", r, code)
		}
		w.now = w.now.Add(30 * time.Second)
	}
}

func TestBroadcasts(t *testing.T) {
	w := newWorld(t)
	s, r := w.hello(t, mozproto.ClientMessage{Broadcasts: map[string]string{"known": "v1", "other": "x"}})
	if r.Broadcasts["known"] != "v2" {
		t.Fatalf("hello broadcasts %v: want known at v2", r.Broadcasts)
	}
	if errs, _ := r.Broadcasts[mozproto.BroadcastErrors].(map[string]any); errs["other"] == nil {
		t.Fatalf("hello broadcasts %v: want other under errors", r.Broadcasts)
	}
	if s.Idle() {
		t.Fatal("a user agent following a broadcast is idle")
	}
	s2, r := w.hello(t, mozproto.ClientMessage{})
	if len(r.Broadcasts) != 0 || !s2.Idle() {
		t.Fatalf("no broadcasts asked: %v idle=%v", r.Broadcasts, s2.Idle())
	}
	res, err := s2.Handle(context.Background(), mozproto.ClientMessage{Type: mozproto.TypeBroadcastSubscribe, Broadcasts: map[string]string{"known": "v2"}})
	if err != nil || len(res.Replies) != 0 {
		t.Fatalf("subscribing at the current version: %+v %v", res, err)
	}
}

func TestUrgencyHoldsAndReleases(t *testing.T) {
	w := newWorld(t)
	s, _ := w.hello(t, mozproto.ClientMessage{MinUrgency: mozproto.UrgencyHigh})
	ch := ids.NewChannelID()
	register(t, s, ch.String(), "")
	u := s.UAID()
	low := w.queue.add(u, ch, heraldv1.Urgency_URGENCY_LOW)
	high := w.queue.add(u, ch, heraldv1.Urgency_URGENCY_HIGH)
	normal := w.queue.add(u, ch, heraldv1.Urgency_URGENCY_UNSPECIFIED)
	if got := drainAll(t, s); len(got) != 1 || got[0] != high {
		t.Fatalf("drain with the bar at high sent %v, want [%s]", got, high)
	}
	// A live message below the bar is held too; one that cannot wait is refused.
	live := w.queue.add(u, ch, heraldv1.Urgency_URGENCY_VERY_LOW)
	if _, ok := s.Take(context.Background(), &heraldv1.Message{ChannelId: ch.String(), Id: live, Stored: true, Urgency: heraldv1.Urgency_URGENCY_VERY_LOW}); ok {
		t.Fatal("took a live message below the bar")
	}
	if s.Offer(&heraldv1.Message{ChannelId: ch.String(), Id: "u1", Urgency: heraldv1.Urgency_URGENCY_LOW}) {
		t.Fatal("accepted a TTL 0 message below the bar")
	}

	r, drain := s.SetUrgency(mozproto.UrgencyNormal)
	if r.Status != 200 || r.Min != mozproto.UrgencyNormal || !drain {
		t.Fatalf("lowering the bar: %+v drain=%v", r, drain)
	}
	if got := drainAll(t, s); len(got) != 1 || got[0] != normal {
		t.Fatalf("bar at normal released %v, want [%s]", got, normal)
	}
	if r, _ := s.SetUrgency("urgent"); r.Status != 400 || r.Min != mozproto.UrgencyNormal {
		t.Fatalf("bad urgency: %+v", r)
	}
	s.SetUrgency(mozproto.UrgencyVeryLow)
	got := drainAll(t, s)
	sort.Strings(got)
	want := []string{low, live}
	sort.Strings(want)
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("bar at very-low released %v, want %v", got, want)
	}
	if got := drainAll(t, s); len(got) != 0 {
		t.Fatalf("released twice: %v", got)
	}
}

func TestNotificationHeaders(t *testing.T) {
	n := notification(ids.NewChannelID(), "1-0", []byte{1, 2, 3}, map[string]string{
		"encoding":   "aesgcm",
		"encryption": `salt="E2oFC4ktsvlBzjY8eOvGYQ=="; rs=4096`,
		"crypto_key": `dh=BPgr9Wh1USlG==;p256ecdsa=BNx5ea8n=, keyid=a;dh=Zm9v`,
	}, 60)
	if got, want := n.Headers["encryption"], "salt=E2oFC4ktsvlBzjY8eOvGYQ;rs=4096"; got != want {
		t.Errorf("encryption %q, want %q", got, want)
	}
	if got, want := n.Headers["crypto_key"], "dh=BPgr9Wh1USlG;p256ecdsa=BNx5ea8n,keyid=a;dh=Zm9v"; got != want {
		t.Errorf("crypto_key %q, want %q", got, want)
	}
	if n.Data != "AQID" {
		t.Errorf("data %q", n.Data)
	}
	// aes128gcm's headers have nothing to strip, and go as they are.
	n = notification(ids.NewChannelID(), "1-0", []byte{1}, map[string]string{"encoding": "aes128gcm"}, 60)
	if len(n.Headers) != 1 || n.Headers["encoding"] != "aes128gcm" {
		t.Errorf("aes128gcm headers %v", n.Headers)
	}
}

// TestEventsWakeTheConnection checks that what the connection must handle, and
// waits on no channel for, calls the wake function Hello was given.
func TestEventsWakeTheConnection(t *testing.T) {
	w := newWorld(t)
	var woken int
	s, _, err := w.hub.Hello(context.Background(), mozproto.ClientMessage{Type: mozproto.TypeHello}, func() { woken++ })
	if err != nil {
		t.Fatal(err)
	}
	ch := ids.NewChannelID()
	register(t, s, ch.String(), "")
	for i := range 4 { // the inbox holds 4
		if !s.Offer(&heraldv1.Message{ChannelId: ch.String(), Id: "u" + string(rune('0'+i))}) {
			t.Fatal("an offer with room refused")
		}
	}
	if woken != 4 {
		t.Fatalf("woken %d times by 4 messages", woken)
	}
	if !s.Offer(&heraldv1.Message{ChannelId: ch.String(), Id: "1-0", Stored: true}) || woken != 5 {
		t.Fatalf("a stored message past the inbox's room: woken %d times, want a resync's wake", woken)
	}
	s.Kick(mozproto.CloseTakenOver)
	if woken != 6 {
		t.Fatalf("a kick did not wake the connection (%d)", woken)
	}
	select {
	case <-s.Kicked():
	default:
		t.Fatal("Kicked not closed")
	}
}

// TestLiveMessagesOutOfOrder: two routers store a message each for one user agent
// (the entry ids come out in the order stored) and deliver them in separate calls,
// which reach the gateway in either order. Each stored message goes to the user
// agent once, whether a live delivery or a drain (a resync) comes to it first.
func TestLiveMessagesOutOfOrder(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (*world, *Session, ids.ChannelID) {
		w := newWorld(t)
		s, _ := w.hello(t, mozproto.ClientMessage{})
		ch := ids.NewChannelID()
		register(t, s, ch.String(), "")
		if got := drainAll(t, s); len(got) != 0 { // the drain after hello
			t.Fatalf("a new user agent was sent %v", got)
		}
		return w, s, ch
	}
	take := func(s *Session, ch ids.ChannelID, id string) bool {
		_, ok := s.Take(ctx, &heraldv1.Message{ChannelId: ch.String(), Id: id, Stored: true})
		return ok
	}
	ack := func(t *testing.T, s *Session, ch ids.ChannelID, versions ...string) {
		t.Helper()
		m := mozproto.ClientMessage{Type: mozproto.TypeAck}
		for _, v := range versions {
			m.Updates = append(m.Updates, mozproto.Update{ChannelID: ch.String(), Version: v, Code: mozproto.AckDelivered})
		}
		s.Ack(ctx, m)
	}

	t.Run("older delivered after newer", func(t *testing.T) {
		w, s, ch := setup(t)
		older := w.queue.add(s.UAID(), ch, heraldv1.Urgency_URGENCY_NORMAL)
		newer := w.queue.add(s.UAID(), ch, heraldv1.Urgency_URGENCY_NORMAL)
		if !take(s, ch, newer) {
			t.Fatal("the newer message was not sent")
		}
		if !take(s, ch, older) {
			t.Fatal("the older message, delivered after the newer one, was not sent")
		}
		if take(s, ch, older) || take(s, ch, newer) {
			t.Fatal("a message delivered twice was sent twice")
		}
		if got := drainAll(t, s); len(got) != 0 {
			t.Fatalf("a resync sent again %v", got)
		}
		ack(t, s, ch, newer, older)
		if n := len(w.queue.entries[s.UAID()]); n != 0 {
			t.Fatalf("%d messages left after the acks", n)
		}
	})

	t.Run("older left to a resync", func(t *testing.T) {
		// The older message's delivery found the inbox full: the resync asked for
		// must find it, though a newer one was sent live.
		w, s, ch := setup(t)
		older := w.queue.add(s.UAID(), ch, heraldv1.Urgency_URGENCY_NORMAL)
		newer := w.queue.add(s.UAID(), ch, heraldv1.Urgency_URGENCY_NORMAL)
		if !take(s, ch, newer) {
			t.Fatal("the newer message was not sent")
		}
		if got := drainAll(t, s); len(got) != 1 || got[0] != older {
			t.Fatalf("the resync sent %v, want [%s]", got, older)
		}
		if take(s, ch, older) || take(s, ch, newer) {
			t.Fatal("the inbox's copy of a message sent was sent again")
		}
	})

	t.Run("newer deleted before the resync", func(t *testing.T) {
		// The application server deletes the newer message after it was sent: the
		// resync, which never meets it, ends all the same and forgets it.
		w, s, ch := setup(t)
		older := w.queue.add(s.UAID(), ch, heraldv1.Urgency_URGENCY_NORMAL)
		newer := w.queue.add(s.UAID(), ch, heraldv1.Urgency_URGENCY_NORMAL)
		if !take(s, ch, newer) {
			t.Fatal("the newer message was not sent")
		}
		if _, err := w.queue.Delete(ctx, s.UAID(), newer); err != nil {
			t.Fatal(err)
		}
		if got := drainAll(t, s); len(got) != 1 || got[0] != older {
			t.Fatalf("the resync sent %v, want [%s]", got, older)
		}
	})

	t.Run("resync over several pages", func(t *testing.T) {
		// Live messages sent ahead of the drains, one acknowledged already; the
		// resync reads two at a time (DrainPage), and sends only the others.
		w, s, ch := setup(t)
		var stored []string
		for range 6 {
			stored = append(stored, w.queue.add(s.UAID(), ch, heraldv1.Urgency_URGENCY_NORMAL))
		}
		for _, i := range []int{5, 2, 3} {
			if !take(s, ch, stored[i]) {
				t.Fatalf("message %d was not sent", i)
			}
		}
		ack(t, s, ch, stored[3])
		want := []string{stored[0], stored[1], stored[4]}
		if got := drainAll(t, s); !slices.Equal(got, want) {
			t.Fatalf("the resync sent %v, want %v", got, want)
		}
		for i, id := range stored {
			if take(s, ch, id) {
				t.Fatalf("message %d was sent again", i)
			}
		}
	})

	t.Run("many unacknowledged", func(t *testing.T) {
		// A user agent that does not acknowledge: the session asks for a resync
		// before it remembers too many messages sent ahead of the drains, and the
		// resync sends none of them again.
		w, s, ch := setup(t)
		var sent []string
		for len(s.Resync()) == 0 {
			if len(sent) > 100 {
				t.Fatal("no resync after 100 messages sent live and not acknowledged")
			}
			id := w.queue.add(s.UAID(), ch, heraldv1.Urgency_URGENCY_NORMAL)
			if !take(s, ch, id) {
				t.Fatalf("message %s was not sent", id)
			}
			sent = append(sent, id)
		}
		<-s.Resync()
		if got := drainAll(t, s); len(got) != 0 {
			t.Fatalf("the resync sent again %v", got)
		}
		for _, id := range sent {
			if take(s, ch, id) {
				t.Fatalf("message %s was sent again", id)
			}
		}
		// The resync passed them, and they are forgotten.
		if !take(s, ch, w.queue.add(s.UAID(), ch, heraldv1.Urgency_URGENCY_NORMAL)) || len(s.Resync()) != 0 {
			t.Fatal("after the resync, the next message was not sent, or asked for another resync")
		}
	})

	t.Run("older held below the bar", func(t *testing.T) {
		// The older message comes live below the bar and is held; lowering the bar
		// sends it once, though no drain has passed it yet.
		w, s, ch := setup(t)
		s.SetUrgency(mozproto.UrgencyHigh)
		older := w.queue.add(s.UAID(), ch, heraldv1.Urgency_URGENCY_NORMAL)
		newer := w.queue.add(s.UAID(), ch, heraldv1.Urgency_URGENCY_HIGH)
		if _, ok := s.Take(ctx, &heraldv1.Message{ChannelId: ch.String(), Id: newer, Stored: true, Urgency: heraldv1.Urgency_URGENCY_HIGH}); !ok {
			t.Fatal("the newer message was not sent")
		}
		if take(s, ch, older) {
			t.Fatal("the older message was sent below the bar")
		}
		if _, drain := s.SetUrgency(mozproto.UrgencyNormal); !drain {
			t.Fatal("lowering the bar over a held message asked for no drain")
		}
		if got := drainAll(t, s); len(got) != 1 || got[0] != older {
			t.Fatalf("lowering the bar sent %v, want [%s]", got, older)
		}
		if got := drainAll(t, s); len(got) != 0 {
			t.Fatalf("a resync sent again %v", got)
		}
	})
}

// A failed eviction of the previous connection is a warning, unless its gateway is
// gone: then each of its user agents says hello elsewhere, and each would warn of it.
func TestEvictFailureLogged(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want slog.Level
	}{
		{"gateway gone", fmt.Errorf("evict on gw2: %w: connection refused", ErrOwnerGone), slog.LevelDebug},
		{"other failure", errors.New("evict on gw2: permission denied"), slog.LevelWarn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			w := newWorldWith(t, &fakeLeases{prev: lease.Owner{Gateway: "gw2", Addr: "gw2:1"}}, fakeEvictor{err: tc.err}, log)
			w.hello(t, mozproto.ClientMessage{})
			var line struct {
				Level slog.Level `json:"level"`
				Msg   string     `json:"msg"`
			}
			found := false
			for _, l := range bytes.Split(buf.Bytes(), []byte("\n")) {
				if json.Unmarshal(l, &line) == nil && line.Msg == "evict previous connection" {
					found = true
					if line.Level != tc.want {
						t.Errorf("logged at %v, want %v", line.Level, tc.want)
					}
				}
			}
			if !found {
				t.Fatalf("the failed eviction was not logged:\n%s", buf.String())
			}
		})
	}
}

// Closing a session gives its queue a short life if nothing waits in it (the queue
// decides, in Redis): the session asks for its own user agent, once.
func TestCloseIdlesTheQueue(t *testing.T) {
	w := newWorld(t)
	s, hello := w.hello(t, mozproto.ClientMessage{})
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(w.queue.idled) != 1 || w.queue.idled[0].String() != hello.UAID {
		t.Fatalf("Idle called for %v, want once for %s", w.queue.idled, hello.UAID)
	}
}

// An ack whose delete fails (Redis unreachable) is no error of the user agent's: the
// frame is answered as usual, the message is not sent again on this connection, and
// it is deleted with the next ack that goes through, or when the session closes.
func TestAckWhileRedisIsAway(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (*world, *Session, ids.ChannelID) {
		t.Helper()
		w := newWorld(t)
		s, _ := w.hello(t, mozproto.ClientMessage{})
		ch := ids.NewChannelID()
		if r := register(t, s, ch.String(), ""); r.Status != 200 {
			t.Fatalf("register: %+v", r)
		}
		return w, s, ch
	}
	ack := func(t *testing.T, s *Session, ch ids.ChannelID, version string) {
		t.Helper()
		res, err := s.Handle(ctx, mozproto.ClientMessage{Type: mozproto.TypeAck,
			Updates: []mozproto.Update{{ChannelID: ch.String(), Version: version, Code: mozproto.AckDelivered}}})
		if err != nil || res.Close != 0 {
			t.Fatalf("ack answered %+v, %v; want the connection kept", res, err)
		}
	}
	waiting := func(w *world, s *Session) int { return len(w.queue.entries[s.UAID()]) }

	t.Run("deleted with the next ack", func(t *testing.T) {
		w, s, ch := setup(t)
		first := w.queue.add(s.UAID(), ch, heraldv1.Urgency_URGENCY_NORMAL)
		if got := drainAll(t, s); len(got) != 1 || got[0] != first {
			t.Fatalf("sent %v, want %s", got, first)
		}
		w.queue.deleteErr = errors.New("queue delete: EOF")
		ack(t, s, ch, first)
		if n := waiting(w, s); n != 1 {
			t.Fatalf("%d waiting, want the acknowledged message still stored", n)
		}
		if got := drainAll(t, s); len(got) != 0 {
			t.Fatalf("a drain sent %v again on the same connection", got)
		}
		w.queue.deleteErr = nil
		second := w.queue.add(s.UAID(), ch, heraldv1.Urgency_URGENCY_NORMAL)
		if got := drainAll(t, s); len(got) != 1 || got[0] != second {
			t.Fatalf("sent %v, want %s", got, second)
		}
		ack(t, s, ch, second)
		if n := waiting(w, s); n != 0 {
			t.Fatalf("%d waiting after the next ack, want both deleted", n)
		}
	})

	t.Run("deleted when the session closes", func(t *testing.T) {
		w, s, ch := setup(t)
		id := w.queue.add(s.UAID(), ch, heraldv1.Urgency_URGENCY_NORMAL)
		drainAll(t, s)
		w.queue.deleteErr = errors.New("queue delete: EOF")
		ack(t, s, ch, id)
		w.queue.deleteErr = nil
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if n := waiting(w, s); n != 0 {
			t.Fatalf("%d waiting after Close, want the acknowledged message deleted", n)
		}
	})
}

// A register or unregister that storage fails is answered 500 on an open connection:
// the user agent is not at fault. Nothing is recorded, and the same frame succeeds
// once storage is back.
func TestRegisterWhileStorageIsAway(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	s, _ := w.hello(t, mozproto.ClientMessage{})
	frame := func(m mozproto.ClientMessage) int {
		t.Helper()
		res, err := s.Handle(ctx, m)
		if err != nil || res.Close != 0 || len(res.Replies) != 1 {
			t.Fatalf("%s answered %+v, %v; want one reply and the connection kept", m.Type, res, err)
		}
		switch r := res.Replies[0].(type) {
		case mozproto.RegisterReply:
			return r.Status
		case mozproto.UnregisterReply:
			return r.Status
		}
		t.Fatalf("%s answered %T", m.Type, res.Replies[0])
		return 0
	}
	ch := ids.NewChannelID().String()
	reg := mozproto.ClientMessage{Type: mozproto.TypeRegister, ChannelID: ch}
	unreg := mozproto.ClientMessage{Type: mozproto.TypeUnregister, ChannelID: ch}

	w.store.down = errors.New("dial tcp: connection refused")
	if st := frame(reg); st != http.StatusInternalServerError {
		t.Fatalf("register while Postgres is away: status %d, want 500", st)
	}
	if !s.Idle() {
		t.Fatal("a failed register left a channel on the session")
	}
	w.store.down = nil
	if st := frame(reg); st != http.StatusOK {
		t.Fatalf("register once Postgres is back: status %d", st)
	}
	w.store.down = errors.New("dial tcp: connection refused")
	if st := frame(unreg); st != http.StatusInternalServerError {
		t.Fatalf("unregister while Postgres is away: status %d, want 500", st)
	}
	if s.Idle() {
		t.Fatal("a failed unregister dropped the channel")
	}
	w.store.down = nil
	if st := frame(unreg); st != http.StatusOK {
		t.Fatalf("unregister once Postgres is back: status %d", st)
	}
}
