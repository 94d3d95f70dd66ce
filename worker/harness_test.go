package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/configsync/configsync/blueprint"
	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/lease"
	"github.com/configsync/configsync/natstest"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/redistest"
	"github.com/configsync/configsync/run"
	"github.com/configsync/configsync/secrets"
	"github.com/configsync/configsync/source"
)

// env is one test's world: a real NATS (in-process nats-server) and real Redis (under
// a key prefix of its own), the stores, and a folder of files the file source reads.
type env struct {
	t       *testing.T
	ns      *server.Server
	js      jetstream.JetStream
	rdb     redis.UniversalClient
	prefix  string
	q       *queue.Queue
	ints    *integration.Store
	runs    *run.Store
	cat     *catalog.Catalog
	leases  *lease.Manager
	sources *source.Registry
	dir     string
	tenant  string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, tenant: "acme"}
	e.ns = natstest.Server(t)
	e.js = natstest.JetStream(t, e.ns)
	e.rdb, e.prefix = redistest.Client(t)
	q, err := queue.Open(context.Background(), e.js, queue.Options{AckWait: 3 * time.Second, MaxDeliver: -1, ShutdownGrace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.q = q
	key, _ := secrets.GenerateKey()
	kr, err := secrets.ParseKeyring(key, "")
	if err != nil {
		t.Fatal(err)
	}
	e.ints = integration.NewStore(e.rdb, e.prefix, kr)
	e.runs = run.NewStore(e.rdb, e.prefix)
	e.cat = catalog.New(e.rdb, e.prefix, nil)
	e.leases = lease.New(e.rdb, e.prefix, 2*time.Second)
	e.dir = t.TempDir()
	e.sources = source.NewRegistry(source.FileType([]string{e.dir}, source.WithPageSize(50)), slowType())
	return e
}

func (e *env) deps() Deps {
	return Deps{Redis: e.rdb, Prefix: e.prefix, Queue: e.q, Integrations: e.ints, Runs: e.runs, Catalog: e.cat, Leases: e.leases, Sources: e.sources}
}

// startWorker runs a worker until the test ends (or stop is called).
func (e *env) startWorker(id string) (stop func()) {
	e.t.Helper()
	deps := e.deps()
	deps.Log = zaptest.NewLogger(e.t, zaptest.Level(zap.InfoLevel)).With(zap.String("worker", id))
	w := New(Config{ID: id, LeaseTTL: 2 * time.Second, RetryInitial: 100 * time.Millisecond, RetryMax: time.Second, Heartbeat: 500 * time.Millisecond, BatchSize: 40}, deps)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			e.t.Errorf("worker %s: %v", id, err)
		}
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	e.t.Cleanup(stop)
	return stop
}

const blueprintsJSON = `[
 {"identifier": "team", "title": "Team", "schema": {"properties": {"size": {"type": "number"}}}, "relations": {}},
 {"identifier": "service", "title": "Service", "schema": {"properties": {"lang": {"type": "string"}, "tier": {"type": "number"}}},
  "relations": {"team": {"target": "team", "required": true, "many": false}, "db": {"target": "database", "required": false, "many": false}}},
 {"identifier": "database", "title": "Database", "schema": {"properties": {}}, "relations": {}}
]`

func (e *env) putBlueprints() {
	e.t.Helper()
	bps, err := blueprint.Parse([]byte(blueprintsJSON))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, bp := range bps {
		if err := e.cat.PutBlueprint(context.Background(), e.tenant, bp); err != nil {
			e.t.Fatal(err)
		}
	}
}

// serviceConfig maps teams.json and services.json.
func serviceConfig(deleteDependents, createMissing bool, threshold float64) string {
	return fmt.Sprintf(`{
  "deleteDependents": %v, "createMissingRelatedEntities": %v, "entityDeletionThreshold": %v,
  "resources": [
    {"kind": "team", "selector": {"query": "true", "path": "teams.json"},
     "port": {"entity": {"mappings": {"identifier": ".id", "title": ".name", "blueprint": "\"team\"", "properties": {"size": ".size"}}}}},
    {"kind": "service", "selector": {"query": ".archived != true", "path": "services.json"},
     "port": {"entity": {"mappings": {"identifier": ".name", "title": ".name", "blueprint": "\"service\"",
       "properties": {"lang": ".lang", "tier": ".tier"}, "relations": {"team": ".team", "db": ".db"}}}}}
  ]}`, deleteDependents, createMissing, threshold)
}

// writeJSON writes a data file the file source reads.
func (e *env) writeJSON(name string, v any) {
	e.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, name), b, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// createIntegration stores an integration over the test folder.
func (e *env) createIntegration(id string) {
	e.t.Helper()
	in := &integration.Integration{Tenant: e.tenant, ID: id, DisplayName: id, Type: "file", Parameters: map[string]any{"root": e.dir}}
	if _, err := e.ints.Put(context.Background(), in, nil); err != nil {
		e.t.Fatal(err)
	}
}

// patch publishes a config.patched event carrying a full config, as the API will.
func (e *env) patch(id, config string) string {
	e.t.Helper()
	ev, err := queue.NewEnvelope(queue.TypeConfigPatched, e.tenant, id, queue.ConfigPatched{Config: json.RawMessage(`{"config": ` + config + `}`)})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.q.Publish(context.Background(), ev); err != nil {
		e.t.Fatal(err)
	}
	return ev.ID
}

// live publishes a live resources event for integration id.
func (e *env) live(id string, data queue.ResourcesData) {
	e.t.Helper()
	ev, err := queue.NewEnvelope(queue.TypeResources, e.tenant, id, data)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.q.Publish(context.Background(), ev); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) resync(id string) {
	e.t.Helper()
	ev, err := queue.NewEnvelope(queue.TypeResyncRequested, e.tenant, id, queue.ResyncRequested{Reason: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.q.Publish(context.Background(), ev); err != nil {
		e.t.Fatal(err)
	}
}

// waitRuns waits until the integration has n finished runs and returns the newest.
func (e *env) waitRuns(id string, n int) *run.Record {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		recs, _, err := e.runs.List(context.Background(), e.tenant, id, 0, 100)
		if err != nil {
			e.t.Fatal(err)
		}
		done := 0
		for _, r := range recs {
			if r.Status.Done() {
				done++
			}
		}
		if done >= n && len(recs) > 0 && recs[0].Status.Done() {
			return recs[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	recs, _, _ := e.runs.List(context.Background(), e.tenant, id, 0, 100)
	b, _ := json.MarshalIndent(recs, "", " ")
	e.t.Fatalf("timed out waiting for %d finished runs of %s; runs:\n%s", n, id, b)
	return nil
}

// entities lists a blueprint's entities as "id{props}->relations" strings, sorted.
func (e *env) entities(bp string) []string {
	e.t.Helper()
	list, _, err := e.cat.List(context.Background(), e.tenant, bp, "", 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, ent := range list {
		props, _ := json.Marshal(ent.Properties)
		rels, _ := json.Marshal(ent.Relations)
		owner := ent.Integration
		if owner == "" {
			owner = "-"
		}
		out = append(out, fmt.Sprintf("%s %s %s %s", ent.Identifier, owner, props, rels))
	}
	return out
}

func (e *env) wantEntities(bp string, want ...string) {
	e.t.Helper()
	got := e.entities(bp)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		e.t.Fatalf("%s entities:\n got:\n  %s\nwant:\n  %s", bp, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// changes reads every change event published so far for the tenant.
func (e *env) changes() []queue.Change {
	e.t.Helper()
	var out []queue.Change
	for _, m := range e.rawChanges() {
		var c queue.Change
		if err := json.Unmarshal(m.data, &c); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// slowType is a source that yields pages of {"name": "sN", "team": "t"} slowly,
// so that a run can be caught (and killed) in the middle.
func slowType() source.Type {
	return source.Type{
		ID: "slow", DisplayName: "slow test source",
		Parameters: []source.Parameter{{Name: "pages", Type: source.TypeInteger, Required: true}, {Name: "delayMs", Type: source.TypeInteger, Required: true},
			{Name: "stampAtStart", Type: source.TypeBoolean}},
		New: func(params map[string]any, _ map[string]string) (source.Source, error) {
			stamp, _ := params["stampAtStart"].(bool)
			return slowSource{pages: toInt(params["pages"]), delay: time.Duration(toInt(params["delayMs"])) * time.Millisecond, stampAtStart: stamp}, nil
		},
	}
}

func toInt(v any) int {
	switch x := v.(type) {
	case int:
		return x
	case int64:
		return int(x)
	case float64:
		return int(x)
	case json.Number:
		n, _ := x.Int64()
		return int(n)
	}
	return 0
}

type slowSource struct {
	pages int
	delay time.Duration
	// stampAtStart gives every page the time the fetch began, as a source that reads
	// the whole list at once and hands it out slowly would.
	stampAtStart bool
}

func (s slowSource) Fetch(ctx context.Context, r source.Resource, yield func(source.Page) error) error {
	start := time.Now()
	for p := range s.pages {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		items := make([][]byte, 10)
		for i := range items {
			items[i] = fmt.Appendf(nil, `{"name": "s%d", "team": "t"}`, p*10+i)
		}
		at := time.Now()
		if s.stampAtStart {
			at = start
		}
		if err := yield(source.Page{Items: items, FetchedAt: at}); err != nil {
			return err
		}
	}
	return nil
}

func integrationOf(tenant, id, typ string, params map[string]any) *integration.Integration {
	return &integration.Integration{Tenant: tenant, ID: id, DisplayName: id, Type: typ, Parameters: params}
}

// dlqReasons reads the reason header of every dead letter.
func (e *env) dlqReasons() []string {
	e.t.Helper()
	ctx := context.Background()
	cons, err := e.js.OrderedConsumer(ctx, queue.DLQStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		e.t.Fatal(err)
	}
	batch, err := cons.FetchNoWait(100)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for m := range batch.Messages() {
		out = append(out, m.Headers().Get(queue.HeaderDLQReason))
	}
	return out
}
