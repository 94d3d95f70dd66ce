package worker

import (
	"context"
	"testing"

	"github.com/configsync/configsync/blueprint"
	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/run"
)

// TestUnchangedPagesAreReused: a resync that fetches the same pages settles their
// entities without mapping or writing them (counted as reused), and still keeps them
// from stale deletion. A page is mapped again when one of its entities was deleted
// meanwhile (it comes back), when the config changed, and when the blueprints did.
func TestUnchangedPagesAreReused(t *testing.T) {
	e := newEnv(t)
	e.putBlueprints()
	slowIntegration(e, "pg", 3, 1)
	e.startWorker("w1")
	ctx := context.Background()
	steps := []struct {
		name   string
		before func()
		want   run.Counts
	}{
		{name: "first sync", before: func() { e.patch("pg", slowConfig) },
			want: run.Counts{Fetched: 30, Selected: 30, Upserted: 30}},
		{name: "nothing changed", before: func() { e.resync("pg") },
			want: run.Counts{Fetched: 30, Selected: 30, Unchanged: 30, Reused: 30}},
		{name: "an entity deleted by someone", before: func() {
			if _, err := e.cat.Delete(ctx, e.tenant, nil, catalog.Ref{Blueprint: "service", Identifier: "s13"}, false); err != nil {
				t.Fatal(err)
			}
			e.resync("pg")
		}, want: run.Counts{Fetched: 30, Selected: 30, Upserted: 1, Unchanged: 29, Reused: 20}},
		{name: "the config changed", before: func() {
			e.patch("pg", `{"resources": [{"kind": "service", "selector": {"query": "true"},
  "port": {"entity": {"mappings": {"identifier": ".name", "blueprint": "\"service\"", "properties": {"lang": "\"Rust\""}, "relations": {"team": ".team"}}}}}]}`)
		}, want: run.Counts{Fetched: 30, Selected: 30, Upserted: 30}},
		{name: "the blueprints changed", before: func() {
			bps, err := blueprint.Parse([]byte(`[{"identifier": "unrelated", "schema": {"properties": {}}}]`))
			if err != nil {
				t.Fatal(err)
			}
			if err := e.cat.PutBlueprint(ctx, e.tenant, bps[0]); err != nil {
				t.Fatal(err)
			}
			e.resync("pg")
		}, want: run.Counts{Fetched: 30, Selected: 30, Unchanged: 30}},
		{name: "nothing changed again", before: func() { e.resync("pg") },
			want: run.Counts{Fetched: 30, Selected: 30, Unchanged: 30, Reused: 30}},
	}
	for i, st := range steps {
		st.before()
		r := e.waitRuns("pg", i+1)
		if r.Status != run.Succeeded {
			t.Fatalf("%s: run %s %s %v", st.name, r.Status, r.Message, r.Errors)
		}
		if got := counts(r, "service"); got != st.want {
			t.Errorf("%s: counts %+v, want %+v", st.name, got, st.want)
		}
		if n := len(e.entities("service")); n != 30 {
			t.Errorf("%s: %d services, want 30", st.name, n)
		}
	}
}
