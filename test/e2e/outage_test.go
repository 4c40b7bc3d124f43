package e2e

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/pushclient"
	"github.com/herald-push/herald/test/internal/cluster"
	"github.com/herald-push/herald/test/internal/netcut"
)

// TestStorageOutage cuts the services off from Redis, then from Postgres, through
// proxies on real sockets: application servers get 503 with Retry-After, user agents
// keep their connections (an ack or a register made meanwhile included), and service
// resumes by itself once storage is back.
func TestStorageOutage(t *testing.T) {
	var redisCut, postgresCut *netcut.Proxy
	via := func(redisURL, postgresURL string) (string, string) {
		redisCut = netcut.New(t, hostPort(t, redisURL))
		postgresCut = netcut.New(t, hostPort(t, postgresURL))
		return withHost(t, redisURL, redisCut.Addr()), withHost(t, postgresURL, postgresCut.Addr())
	}
	// Leases renewed every 3 s, so that the gateway tries (and fails) within an
	// outage, and lasting 10 s, so that the outage ends before they do.
	c := cluster.Start(t, cluster.WithStorageVia(via), cluster.WithEnv("HERALD_LEASE_TTL=10s"))
	gw := c.GatewayURL(0)

	t.Run("redis", func(t *testing.T) {
		a := newAgent(t, gw)
		send(t, a.sub, "before", 60)
		got, n := a.next(t)
		if got != "before" {
			t.Fatalf("received %q", got)
		}

		redisCut.Cut()
		t.Cleanup(redisCut.Restore) // for the next subtest, should this one fail
		// Acknowledged while its delete cannot be made.
		if err := a.cl.Ack(ctxT(t), n); err != nil {
			t.Fatal(err)
		}
		wantUnavailable(t, a, "while redis is away")
		stillReady(t, c)
		stillConnected(t, a)
		eventually(t, "the gateway to fail renewing its leases", func() bool {
			return strings.Contains(c.Gateways[0].Log(), `"msg":"renew leases"`)
		})
		stillConnected(t, a)
		redisCut.Restore()

		// The acknowledged message is not sent again, and goes with the next ack.
		resumes(t, a, "redis is back")
		queueSettles(t, c, a.uaid, 0, "the ack made during the outage is deleted with the next")
	})

	t.Run("postgres", func(t *testing.T) {
		a := newAgent(t, gw)
		// A subscription ingest has not looked up yet: ingest must ask Postgres.
		fresh := newAgent(t, gw)
		postgresCut.Cut()
		t.Cleanup(postgresCut.Restore)
		wantUnavailable(t, fresh, "while postgres is away")
		stillReady(t, c)
		// A subscribe fails with a server error, on a connection that stays.
		another := ids.NewChannelID().String()
		if reg, err := a.cl.Register(ctxT(t), another, ""); err != nil || reg.Status != http.StatusInternalServerError {
			t.Fatalf("register while postgres is away: %+v, %v; want status 500", reg, err)
		}
		stillConnected(t, a)
		stillConnected(t, fresh)
		postgresCut.Restore()

		resumes(t, fresh, "postgres is back")
		eventually(t, "a register to succeed again", func() bool {
			reg, err := a.cl.Register(ctxT(t), another, "")
			return err == nil && reg.Status == http.StatusOK
		})
		send(t, a.sub, "and for the others", 60)
		a.expect(t, "and for the others")
	})
}

// TestRedisOutageOutlastsLeases cuts the services off from Redis for longer than a
// lease lives: the gateway's ownership records expire meanwhile. Once Redis is back
// the gateway holds them again instead of closing its connections, and a message sent
// right away, while the user agent may still have no owner, is delivered all the same.
func TestRedisOutageOutlastsLeases(t *testing.T) {
	var redisCut *netcut.Proxy
	via := func(redisURL, postgresURL string) (string, string) {
		redisCut = netcut.New(t, hostPort(t, redisURL))
		return withHost(t, redisURL, redisCut.Addr()), postgresURL
	}
	c := cluster.Start(t, cluster.WithStorageVia(via), cluster.WithEnv("HERALD_LEASE_TTL=2s"))
	a := newAgent(t, c.GatewayURL(0))
	eventually(t, "the user agent's lease", func() bool { return c.OwnerGateway(t, a.uaid) != "" })

	redisCut.Cut()
	t.Cleanup(redisCut.Restore)
	eventually(t, "the lease to expire", func() bool { return c.OwnerGateway(t, a.uaid) == "" })
	redisCut.Restore()

	resumes(t, a, "after the leases expired")
	stillConnected(t, a)
	eventually(t, "the lease held again", func() bool { return c.OwnerGateway(t, a.uaid) != "" })
}

// wantUnavailable pushes text to a and expects 503 with a Retry-After.
func wantUnavailable(t *testing.T, a *agent, text string) {
	t.Helper()
	resp, body := a.push(t, text, nil)
	wantAPIError(t, resp, body, http.StatusServiceUnavailable, 201)
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
}

// stillReady checks that every service still answers its readiness probe: an outage
// of what all replicas share must not take them all out of their load balancers,
// which would refuse application servers instead of answering 503, and could cut
// the user agents' connections.
func stillReady(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	for _, p := range append([]*cluster.Process{c.Ingest, c.Router}, c.Gateways...) {
		resp, err := http.Get("http://" + p.Addr("admin") + "/readyz")
		if err != nil {
			t.Fatalf("%s readyz: %v", p.Name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s readyz answered %d during the outage", p.Name, resp.StatusCode)
		}
	}
}

// stillConnected checks that a's connection is open and answered: a ping and its
// pong (or, soon after another ping, the gateway's "too soon", an answer all the same).
func stillConnected(t *testing.T, a *agent) {
	t.Helper()
	select {
	case <-a.cl.Done():
		t.Fatalf("the gateway closed the connection: %v", a.cl.Err())
	default:
	}
	if err := a.cl.Ping(ctxT(t)); err != nil && !errors.Is(err, pushclient.ErrPingTooSoon) {
		t.Fatalf("ping: %v", err)
	}
}

// resumes waits until a push to a is accepted again, without restarting anything,
// and expects it delivered on a's open connection.
func resumes(t *testing.T, a *agent, text string) {
	t.Helper()
	eventually(t, "a push to be accepted again", func() bool {
		resp, _ := a.push(t, text, nil)
		return resp.StatusCode == http.StatusCreated
	})
	a.expect(t, text)
}

func hostPort(t testing.TB, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func withHost(t testing.TB, raw, host string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = host
	return u.String()
}
