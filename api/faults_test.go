package api

// Fault tests (issue #6): the API with Redis unreachable answers 503 problems within
// a bound, /readyz says not ready, and everything answers again once Redis is back.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/natstest"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/redistest"
	"github.com/configsync/configsync/run"
	"github.com/configsync/configsync/secrets"
	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/httpsource"
)

// newEnvThroughProxy is newEnv with the API's stores on a Redis client that goes
// through a redistest.Proxy, built with the options `configsync api` gives its client
// (redis.ParseURL's defaults). The keys are cleaned up by redistest's direct client.
func newEnvThroughProxy(t *testing.T) (*env, *redistest.Proxy) {
	t.Helper()
	e := &env{t: t}
	e.ns = natstest.Server(t)
	e.js = natstest.JetStream(t, e.ns)
	_, e.prefix = redistest.Client(t)
	raw := os.Getenv(redistest.EnvURL)
	if raw == "" {
		raw = redistest.DefaultURL
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	p := redistest.NewProxy(t, opts.Addr)
	opts.Addr = p.Addr()
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	e.rdb = rdb
	q, err := queue.Open(context.Background(), e.js, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.q = q
	key, _ := secrets.GenerateKey()
	kr, err := secrets.ParseKeyring(key, "")
	if err != nil {
		t.Fatal(err)
	}
	e.ints = integration.NewStore(rdb, e.prefix, kr)
	e.runs = run.NewStore(rdb, e.prefix)
	e.cat = catalog.New(rdb, e.prefix, nil)
	e.dir = t.TempDir()
	hopts := httpsource.Options{AllowPrivate: true, MaxRetries: -1}
	e.sources = source.NewRegistry(source.FileType([]string{e.dir}), httpsource.Type(hopts))
	e.secret = make([]byte, 32)
	copy(e.secret, "fault-test-secret-of-32-bytes-ok")
	e.cfg = Config{JWTSecret: e.secret, HTTPSourceOptions: hopts, Log: zap.NewNop()}
	h, err := New(e.cfg, Deps{
		Integrations: e.ints, Catalog: e.cat, Runs: e.runs, Queue: e.q, Sources: e.sources,
		Ready: func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e, p
}

// TestFaultAPIRedisUnavailable: with Redis down (refused) or frozen (connections
// never answered), every route that needs it answers 503 with a problem document of
// type "unavailable" instead of hanging or answering 500: within 5 s when refused,
// within the Redis client's own time-outs (10 s bound; about 5 s measured) when
// frozen; /readyz says not
// ready within 5 s (its own bound is 3 s); /healthz stays up. Once Redis is back, the same requests succeed.
func TestFaultAPIRedisUnavailable(t *testing.T) {
	for _, mode := range []string{"refuse", "blackhole"} {
		t.Run(mode, func(t *testing.T) {
			start := time.Now()
			e, proxy := newEnvThroughProxy(t)
			tok := e.token(true, "acme")
			base := "/v1/tenants/acme"
			e.seedCatalog("acme", "inv")
			r := e.req("POST", base+"/integrations", tok, e.fileIntegration("inv"))
			want(t, r, http.StatusCreated)
			config := map[string]any{"config": json.RawMessage(fileConfig)}
			requests := []struct {
				method, path string
				body         any
				ok           int
			}{
				{"GET", base + "/integrations", nil, http.StatusOK},
				{"GET", base + "/integrations/inv", nil, http.StatusOK},
				{"GET", base + "/blueprints/service/entities", nil, http.StatusOK},
				{"GET", base + "/blueprints/service/entities/api", nil, http.StatusOK},
				{"GET", base + "/integrations/inv/runs", nil, http.StatusOK},
				{"PATCH", base + "/integrations/inv/config", config, http.StatusOK},
				{"POST", base + "/integrations/inv/resync", nil, http.StatusAccepted},
			}
			for _, rq := range requests {
				want(t, e.req(rq.method, rq.path, tok, rq.body), rq.ok)
			}
			want(t, e.req("GET", "/readyz", "", nil), http.StatusOK)

			if mode == "blackhole" {
				proxy.Blackhole()
			} else {
				proxy.Refuse()
			}
			cutAt := time.Now()
			// Refused connections fail at once (the client's retries take about 1 s);
			// a frozen Redis is bounded by the client's own time-outs (ParseURL's
			// defaults: dial 5 s, read 3 s), which the API does not shorten. /readyz
			// keeps its own 3 s bound whatever the client does.
			bound := 5 * time.Second
			if mode == "blackhole" {
				bound = 10 * time.Second
			}
			var slowest time.Duration
			check := func(method, path string, body any) {
				t.Helper()
				began := time.Now()
				r := e.req(method, path, tok, body)
				took := time.Since(began)
				slowest = max(slowest, took)
				if took > bound {
					t.Errorf("%s %s with Redis %s: answered after %v, more than %v", method, path, mode, took.Round(time.Millisecond), bound)
				}
				if r.status != http.StatusServiceUnavailable || r.header.Get("Content-Type") != problemContentType {
					t.Errorf("%s %s with Redis %s: %d %s %s, want a 503 problem", method, path, mode, r.status, r.header.Get("Content-Type"), r.body)
					return
				}
				if m := r.json(t); m["type"] != ProblemTypePrefix+"unavailable" || m["status"] != float64(503) {
					t.Errorf("%s %s: problem %s", method, path, r.body)
				}
			}
			for _, rq := range requests {
				check(rq.method, rq.path, rq.body)
			}
			bound = 5 * time.Second
			readyBegan := time.Now()
			check("GET", "/readyz", nil)
			readyTook := time.Since(readyBegan)
			want(t, e.req("GET", "/healthz", "", nil), http.StatusOK)
			outage := time.Since(cutAt)

			proxy.Restore()
			// The client reconnects on its own; give it generous time under load.
			deadline := time.Now().Add(30 * time.Second)
			for e.req("GET", "/readyz", "", nil).status != http.StatusOK {
				if time.Now().After(deadline) {
					t.Fatal("/readyz not ready within 30s of Redis coming back")
				}
				time.Sleep(100 * time.Millisecond)
			}
			for _, rq := range requests {
				want(t, e.req(rq.method, rq.path, tok, rq.body), rq.ok)
			}
			t.Logf("Redis %s: %d requests answered 503 while away for %v (slowest %v, /readyz %v); took %v",
				mode, len(requests)+1, outage.Round(time.Millisecond), slowest.Round(time.Millisecond), readyTook.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		})
	}
}
