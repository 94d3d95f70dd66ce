package api

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/configsync/configsync/lease"
	"github.com/configsync/configsync/worker"
)

// TestEndToEnd runs a real worker beside the API: blueprints and an integration
// created over HTTP are synced, the entities are visible over HTTP, and a resync
// requested over HTTP runs under the run id the API answered.
func TestEndToEnd(t *testing.T) {
	e := newEnv(t)
	w := worker.New(worker.Config{ID: "w1", LeaseTTL: 2 * time.Second, RetryInitial: 100 * time.Millisecond, RetryMax: time.Second},
		worker.Deps{Redis: e.rdb, Prefix: e.prefix, Queue: e.q, Integrations: e.ints, Runs: e.runs, Catalog: e.cat,
			Leases: lease.New(e.rdb, e.prefix, 2*time.Second), Sources: e.sources,
			Log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("worker: %v", err)
		}
	})

	tok := e.token(true, "acme")
	e.seedCatalog("acme", "nobody") // blueprints, and entities owned by another integration
	data := `[{"name": "billing", "lang": "go", "tier": 1, "team": "platform"},
	  {"name": "search", "lang": "rust", "tier": 2, "team": "platform"}]`
	if err := os.WriteFile(filepath.Join(e.dir, "services.json"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	want(t, e.req("POST", "/v1/tenants/acme/integrations", tok, e.fileIntegration("svc")), http.StatusCreated)

	// The config.patched event of the create runs a sync.
	var firstRun string
	waitFor(t, func() bool {
		r := e.req("GET", "/v1/tenants/acme/integrations/svc/runs", tok, nil)
		runs := r.json(t)["runs"].([]any)
		if len(runs) == 0 {
			return false
		}
		rec := runs[0].(map[string]any)
		firstRun = rec["id"].(string)
		return rec["status"] == "succeeded"
	})
	r := e.req("GET", "/v1/tenants/acme/blueprints/service/entities?filter=lang=rust", tok, nil)
	want(t, r, http.StatusOK)
	if ents := r.json(t)["entities"].([]any); len(ents) != 1 || ents[0].(map[string]any)["identifier"] != "search" ||
		ents[0].(map[string]any)["integration"] != "svc" {
		t.Fatalf("synced entities: %s", r.body)
	}

	// A resync over the API runs under the id it answered.
	r = e.req("POST", "/v1/tenants/acme/integrations/svc/resync", tok, nil)
	want(t, r, http.StatusAccepted)
	runID := r.json(t)["runId"].(string)
	waitFor(t, func() bool {
		r := e.req("GET", "/v1/tenants/acme/integrations/svc/runs/"+runID, tok, nil)
		st := r.json(t)["status"]
		return st == "succeeded" || st == "superseded"
	})
	if runID == firstRun {
		t.Fatal("the resync reused the first run's id")
	}
	r = e.req("GET", "/v1/tenants/acme/integrations/svc/runs", tok, nil)
	if n := len(r.json(t)["runs"].([]any)); n != 2 {
		t.Fatalf("%d run records, want 2 (the resync's queued record is the run): %s", n, r.body)
	}
	if strings.Contains(string(r.body), `"queued"`) {
		t.Fatalf("a run is still queued: %s", r.body)
	}
}

// waitFor polls cond for up to 30 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
