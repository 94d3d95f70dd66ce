package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/run"
)

type obj = map[string]any

func (e *env) seedTeamsAndServices() {
	e.writeJSON("teams.json", []obj{{"id": "payments", "name": "Payments", "size": 3}, {"id": "search", "name": "Search", "size": 2}})
	e.writeJSON("services.json", []obj{
		{"name": "checkout", "lang": "Go", "tier": 1, "team": "payments", "db": "pg-main"},
		{"name": "indexer", "lang": "Python", "tier": 2, "team": "search"},
		{"name": "old", "archived": true, "team": "search"},
	})
}

func counts(r *run.Record, kind string) run.Counts {
	if c := r.Counts[kind]; c != nil {
		return *c
	}
	return run.Counts{}
}

// TestSyncLifecycle: a patch produces exactly the expected entities; an identical
// resync writes nothing; a removed resource is deleted; a live event updates one
// entity without a run.
func TestSyncLifecycle(t *testing.T) {
	e := newEnv(t)
	e.putBlueprints()
	e.seedTeamsAndServices()
	e.createIntegration("inv")
	e.startWorker("w1")

	e.patch("inv", serviceConfig(false, true, 0.9))
	r := e.waitRuns("inv", 1)
	if r.Status != run.Succeeded || r.Trigger != "config.patched" || r.ConfigVersion != 1 {
		t.Fatalf("run 1: %+v", r)
	}
	if c := counts(r, "service"); c != (run.Counts{Fetched: 3, Selected: 2, Upserted: 2}) {
		t.Errorf("service counts: %+v", c)
	}
	if c := counts(r, "team"); c != (run.Counts{Fetched: 2, Selected: 2, Upserted: 2}) {
		t.Errorf("team counts: %+v", c)
	}
	e.wantEntities("team", `payments inv {"size":3} {}`, `search inv {"size":2} {}`)
	e.wantEntities("service",
		`checkout inv {"lang":"Go","tier":1} {"db":"pg-main","team":"payments"}`,
		`indexer inv {"lang":"Python","tier":2} {"db":null,"team":"search"}`)
	e.wantEntities("database", `pg-main - {} {}`) // barebones: owned by no one
	if n := len(e.changes()); n != 5 {
		t.Fatalf("%d change events after the first run, want 5 (2 teams, 2 services, 1 barebones)", n)
	}

	// The same data again: nothing written, no change event.
	e.resync("inv")
	r = e.waitRuns("inv", 2)
	if r.Status != run.Succeeded || r.Trigger != "resync.requested" {
		t.Fatalf("run 2: %+v", r)
	}
	if c := counts(r, "service"); c.Upserted != 0 || c.Unchanged != 2 || c.Deleted != 0 {
		t.Errorf("identical resync wrote: %+v", c)
	}
	if n := len(e.changes()); n != 5 {
		t.Fatalf("%d change events after an identical resync, want still 5", n)
	}

	// indexer disappears from the tool: it is deleted.
	e.writeJSON("services.json", []obj{{"name": "checkout", "lang": "Go", "tier": 1, "team": "payments", "db": "pg-main"}})
	e.resync("inv")
	r = e.waitRuns("inv", 3)
	if c := counts(r, "service"); r.Status != run.Succeeded || c.Deleted != 1 || c.Unchanged != 1 {
		t.Fatalf("run 3: %s %+v %v", r.Status, c, r.Errors)
	}
	e.wantEntities("service", `checkout inv {"lang":"Go","tier":1} {"db":"pg-main","team":"payments"}`)
	last := e.changes()
	if len(last) != 6 || last[5].Op != "deleted" || last[5].Identifier != "indexer" {
		t.Fatalf("want a deleted change for indexer, got %+v", last[len(last)-1])
	}

	// A live event updates one entity, without a run.
	item := json.RawMessage(`{"name": "checkout", "lang": "Zig", "tier": 1, "team": "payments", "db": "pg-main"}`)
	e.live("inv", queue.ResourcesData{Kind: "service", Upsert: []json.RawMessage{item}})
	waitFor(t, func() bool {
		got := e.entities("service")
		return len(got) == 1 && got[0] == `checkout inv {"lang":"Zig","tier":1} {"db":"pg-main","team":"payments"}`
	})
	if recs, _, _ := e.runs.List(context.Background(), e.tenant, "inv", 0, 10); len(recs) != 3 {
		t.Fatalf("a live event started a run: %d runs", len(recs))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("condition not met within 20s")
}

// TestDeleteDependents: a team that left the tool has a service whose required
// relation points at it. false keeps the team and reports it; true deletes the team
// and, recursively, its dependents.
func TestDeleteDependents(t *testing.T) {
	tests := []struct {
		deleteDependents bool
		teams, services  []string
		teamCounts       run.Counts
		serviceDeleted   int
	}{
		{false, []string{`payments inv {"size":3} {}`, `search inv {"size":2} {}`},
			[]string{`checkout inv {"lang":"Go","tier":1} {"db":"pg-main","team":"payments"}`, `indexer inv {"lang":"Python","tier":2} {"db":null,"team":"search"}`},
			run.Counts{Fetched: 1, Selected: 1, Unchanged: 1, KeptForDependents: 1}, 0},
		{true, []string{`payments inv {"size":3} {}`},
			[]string{`checkout inv {"lang":"Go","tier":1} {"db":"pg-main","team":"payments"}`},
			run.Counts{Fetched: 1, Selected: 1, Unchanged: 1, Deleted: 1}, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("deleteDependents=%v", tt.deleteDependents), func(t *testing.T) {
			e := newEnv(t)
			e.putBlueprints()
			e.seedTeamsAndServices()
			e.createIntegration("inv")
			e.startWorker("w1")
			e.patch("inv", serviceConfig(tt.deleteDependents, true, 0.9))
			e.waitRuns("inv", 1)

			e.writeJSON("teams.json", []obj{{"id": "payments", "name": "Payments", "size": 3}})
			e.resync("inv")
			r := e.waitRuns("inv", 2)
			if r.Status != run.Succeeded {
				t.Fatalf("run: %s %s %v", r.Status, r.Message, r.Errors)
			}
			if c := counts(r, "team"); c != tt.teamCounts {
				t.Errorf("team counts %+v, want %+v", c, tt.teamCounts)
			}
			if c := counts(r, "service"); c.Deleted != tt.serviceDeleted {
				t.Errorf("service deleted %d, want %d", c.Deleted, tt.serviceDeleted)
			}
			e.wantEntities("team", tt.teams...)
			e.wantEntities("service", tt.services...)
		})
	}
}

// TestCreateMissingRelatedEntities: a relation to a team that does not exist creates
// a barebones team when true; when false the service waits to the end of the run, then
// fails and is reported.
func TestCreateMissingRelatedEntities(t *testing.T) {
	for _, create := range []bool{true, false} {
		t.Run(fmt.Sprintf("create=%v", create), func(t *testing.T) {
			e := newEnv(t)
			e.putBlueprints()
			e.writeJSON("teams.json", []obj{{"id": "payments", "name": "Payments", "size": 3}})
			e.writeJSON("services.json", []obj{
				{"name": "checkout", "lang": "Go", "tier": 1, "team": "payments"},
				{"name": "orphan", "lang": "Go", "tier": 3, "team": "ghost"},
			})
			e.createIntegration("inv")
			e.startWorker("w1")
			e.patch("inv", serviceConfig(false, create, 0.9))
			r := e.waitRuns("inv", 1)
			c := counts(r, "service")
			if create {
				if r.Status != run.Succeeded || c.Upserted != 2 || c.Failed != 0 {
					t.Fatalf("run: %s %+v %v", r.Status, c, r.Errors)
				}
				e.wantEntities("team", `ghost - {} {}`, `payments inv {"size":3} {}`)
				e.wantEntities("service", `checkout inv {"lang":"Go","tier":1} {"db":null,"team":"payments"}`, `orphan inv {"lang":"Go","tier":3} {"db":null,"team":"ghost"}`)
				return
			}
			if r.Status != run.Partial || c.Upserted != 1 || c.Failed != 1 {
				t.Fatalf("run: %s %+v", r.Status, c)
			}
			found := false
			for _, msg := range r.Errors {
				found = found || msg == "service/orphan: relation targets do not exist and createMissingRelatedEntities is false"
			}
			if !found {
				t.Errorf("failure not reported: %v", r.Errors)
			}
			e.wantEntities("team", `payments inv {"size":3} {}`)
			e.wantEntities("service", `checkout inv {"lang":"Go","tier":1} {"db":null,"team":"payments"}`)
		})
	}
}

// TestNoDeletionOnIncompleteData: the deletion threshold stops a mass deletion, and a
// source failure midway deletes nothing.
func TestNoDeletionOnIncompleteData(t *testing.T) {
	tests := []struct {
		name     string
		services func(e *env)
		message  string
	}{
		{"threshold", func(e *env) {
			e.writeJSON("teams.json", []obj{})
			e.writeJSON("services.json", []obj{})
		}, "4 of 4 owned entities are stale, more than entityDeletionThreshold 0.5: nothing was deleted"},
		{"source fails midway", func(e *env) {
			// checkout is still there, indexer is gone, and a broken record follows:
			// the kind is not fetched whole, so indexer is not deleted either.
			body := `{"name": "checkout", "lang": "Go", "tier": 1, "team": "payments", "db": "pg-main"}` + "\n" + `{"name": "broken", ` + "\n"
			if err := os.WriteFile(filepath.Join(e.dir, "services.json"), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not every kind was fetched whole: nothing was deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.putBlueprints()
			e.seedTeamsAndServices()
			e.createIntegration("inv")
			e.startWorker("w1")
			e.patch("inv", serviceConfig(false, true, 0.5))
			e.waitRuns("inv", 1)
			before := e.entities("service")
			tt.services(e)
			e.resync("inv")
			r := e.waitRuns("inv", 2)
			if r.Status != run.Partial || r.Message != tt.message {
				t.Fatalf("run: %s %q, want partial %q (errors %v)", r.Status, r.Message, tt.message, r.Errors)
			}
			if after := e.entities("service"); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("entities changed:\n%v\n%v", before, after)
			}
			if len(e.entities("team")) != 2 {
				t.Fatal("teams were deleted")
			}
		})
	}
}

// TestTwoWorkersNeverOverlap: many resync events for one integration on two workers:
// the runs never overlap in time, and the burst coalesces into few runs.
func TestTwoWorkersNeverOverlap(t *testing.T) {
	e := newEnv(t)
	e.putBlueprints()
	in := slowIntegration(e, "slow", 5, 40)
	_ = in
	e.startWorker("w1")
	e.startWorker("w2")
	e.patch("slow", slowConfig)
	for range 8 {
		e.resync("slow")
	}
	// Wait until the queue is drained and the last run is done.
	waitFor(t, func() bool {
		info, err := e.js.Stream(context.Background(), queue.CommandsStream)
		if err != nil {
			return false
		}
		st, _ := info.Info(context.Background())
		latest, err := e.runs.Latest(context.Background(), e.tenant, "slow")
		return st != nil && st.State.Msgs == 0 && err == nil && latest.Status.Done()
	})
	recs, _, err := e.runs.List(context.Background(), e.tenant, "slow", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].StartedAt.Before(*recs[j].StartedAt) })
	workers := map[string]bool{}
	for i, r := range recs {
		if r.Status != run.Succeeded {
			t.Errorf("run %s: %s %s", r.ID, r.Status, r.Message)
		}
		workers[r.Worker] = true
		if i > 0 && r.StartedAt.Before(*recs[i-1].FinishedAt) {
			t.Fatalf("runs overlap: %s started %v before %s finished %v", r.ID, r.StartedAt, recs[i-1].ID, recs[i-1].FinishedAt)
		}
	}
	if len(recs) > 5 {
		t.Errorf("9 events made %d runs: the burst did not coalesce", len(recs))
	}
	t.Logf("9 events, %d runs, workers %v", len(recs), workers)
	if n := len(e.entities("service")); n != 50 {
		t.Fatalf("%d services, want 50", n)
	}
}

const slowConfig = `{"resources": [{"kind": "service", "selector": {"query": "true"},
  "port": {"entity": {"mappings": {"identifier": ".name", "blueprint": "\"service\"", "properties": {"lang": "\"Go\""}, "relations": {"team": ".team"}}}}}]}`

func slowIntegration(e *env, id string, pages, delayMs int) string {
	e.t.Helper()
	if _, err := e.ints.Put(context.Background(), integrationOf(e.tenant, id, "slow", map[string]any{"pages": pages, "delayMs": delayMs}), nil); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// TestDroppedKindIsDeleted: a config patch that drops a resource makes that kind's
// entities stale as a whole; the patch starts a run that deletes them.
func TestDroppedKindIsDeleted(t *testing.T) {
	e := newEnv(t)
	e.putBlueprints()
	e.seedTeamsAndServices()
	e.createIntegration("inv")
	e.startWorker("w1")
	e.patch("inv", serviceConfig(false, true, 0.9))
	e.waitRuns("inv", 1)
	teamsOnly := `{"resources": [{"kind": "team", "selector": {"query": "true", "path": "teams.json"},
	  "port": {"entity": {"mappings": {"identifier": ".id", "title": ".name", "blueprint": "\"team\"", "properties": {"size": ".size"}}}}}]}`
	e.patch("inv", teamsOnly)
	r := e.waitRuns("inv", 2)
	if r.Status != run.Succeeded || r.ConfigVersion != 2 {
		t.Fatalf("run 2: %s v%d %s %v", r.Status, r.ConfigVersion, r.Message, r.Errors)
	}
	e.wantEntities("service")
	e.wantEntities("team", `payments inv {"size":3} {}`, `search inv {"size":2} {}`)
}

// TestBadEventsAreDeadLettered: an event that can never succeed (unknown integration,
// invalid config) goes to the dead-letter stream at once, with its reason, and starts
// no run.
func TestBadEventsAreDeadLettered(t *testing.T) {
	e := newEnv(t)
	e.putBlueprints()
	e.createIntegration("inv")
	e.startWorker("w1")
	e.patch("ghost", serviceConfig(false, true, 0.9))
	e.patch("inv", `{"resources": [{"kind": "k", "selector": {"query": ".a |"}, "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": "\"b\""}}}}]}`)
	waitFor(t, func() bool {
		n, err := e.q.DLQSize(context.Background())
		return err == nil && n == 2
	})
	reasons := e.dlqReasons()
	want := []string{"unknown integration acme/ghost", "resources[0].selector.query: jq: unexpected EOF"}
	for _, w := range want {
		found := false
		for _, r := range reasons {
			found = found || strings.Contains(r, w)
		}
		if !found {
			t.Errorf("no dead letter says %q: %q", w, reasons)
		}
	}
	if recs, _, _ := e.runs.List(context.Background(), e.tenant, "inv", 0, 10); len(recs) != 0 {
		t.Fatalf("a bad event started %d runs", len(recs))
	}
	if in, _ := e.ints.Get(context.Background(), e.tenant, "inv"); in.ConfigVersion != 0 {
		t.Fatalf("an invalid config was stored as version %d", in.ConfigVersion)
	}
}

// TestPatchBurstCoalesces: ten patches at once, each stored as the next version with
// an event naming it (as the API does), end in one run of the newest config: the
// events of older versions are acked without work. (Events that carry a config inline
// are stored as they are processed, so a burst of those coalesces only as far as they
// were stored before a run started.)
func TestPatchBurstCoalesces(t *testing.T) {
	e := newEnv(t)
	e.putBlueprints()
	e.seedTeamsAndServices()
	e.createIntegration("inv")
	for range 10 {
		v, err := e.ints.AddConfig(context.Background(), e.tenant, "inv", []byte(serviceConfig(false, true, 0.9)))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := queue.NewEnvelope(queue.TypeConfigPatched, e.tenant, "inv", queue.ConfigPatched{ConfigVersion: v})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.q.Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	e.startWorker("w1")
	waitFor(t, func() bool {
		in, err := e.ints.Get(context.Background(), e.tenant, "inv")
		latest, lerr := e.runs.Latest(context.Background(), e.tenant, "inv")
		info, _ := e.js.Stream(context.Background(), queue.CommandsStream)
		st, _ := info.Info(context.Background())
		return err == nil && lerr == nil && in.ConfigVersion == 10 && latest.Status.Done() && latest.ConfigVersion == 10 && st.State.Msgs == 0
	})
	recs, _, _ := e.runs.List(context.Background(), e.tenant, "inv", 0, 100)
	if len(recs) != 1 {
		t.Errorf("10 patches made %d runs, want 1", len(recs))
	}
	for _, r := range recs {
		if r.Status != run.Succeeded && r.Status != run.Superseded {
			t.Errorf("run %s: %s %s", r.ID, r.Status, r.Message)
		}
	}
	t.Logf("10 patches, %d runs", len(recs))
	e.wantEntities("team", `payments inv {"size":3} {}`, `search inv {"size":2} {}`)
}

// TestOutboxLeftoversArePublished: changes written to the catalog by a worker that died
// before publishing them wait in the tenant's outbox; a worker publishes them on start.
func TestOutboxLeftoversArePublished(t *testing.T) {
	e := newEnv(t)
	e.putBlueprints()
	writes := []catalog.Write{
		{Entity: catalog.Entity{Identifier: "payments", Blueprint: "team", Properties: map[string]any{"size": 3}, Relations: map[string]any{}}, Integration: "inv", Kind: "team", FetchedAt: time.Now()},
		{Entity: catalog.Entity{Identifier: "search", Blueprint: "team", Properties: map[string]any{"size": 2}, Relations: map[string]any{}}, Integration: "inv", Kind: "team", FetchedAt: time.Now()},
	}
	if _, err := e.cat.Upsert(context.Background(), e.tenant, nil, writes); err != nil {
		t.Fatal(err)
	}
	if n := len(e.changes()); n != 0 {
		t.Fatalf("%d changes published before any worker ran", n)
	}
	e.startWorker("w1")
	waitFor(t, func() bool { return len(e.changes()) == 2 })
	waitFor(t, func() bool {
		pending, err := e.cat.PendingChanges(context.Background(), e.tenant, 10)
		return err == nil && len(pending) == 0
	})
	got := e.changes()
	if got[0].Identifier != "payments" || got[1].Identifier != "search" || got[0].Op != "created" {
		t.Fatalf("changes: %+v", got)
	}
}

// TestSearchQueryRelation: a relation given as a search query is resolved against
// the catalog (teams are synced first, in config order).
func TestSearchQueryRelation(t *testing.T) {
	e := newEnv(t)
	e.putBlueprints()
	e.writeJSON("teams.json", []obj{{"id": "payments", "name": "Payments", "size": 3}, {"id": "search", "name": "Search", "size": 2}})
	e.writeJSON("services.json", []obj{{"name": "checkout", "lang": "Go", "tier": 1, "teamSize": 3}, {"name": "indexer", "lang": "Python", "tier": 2, "teamSize": 2}})
	e.createIntegration("inv")
	e.startWorker("w1")
	cfg := `{"resources": [
	  {"kind": "team", "selector": {"query": "true", "path": "teams.json"},
	   "port": {"entity": {"mappings": {"identifier": ".id", "title": ".name", "blueprint": "\"team\"", "properties": {"size": ".size"}}}}},
	  {"kind": "service", "selector": {"query": "true", "path": "services.json"},
	   "port": {"entity": {"mappings": {"identifier": ".name", "title": ".name", "blueprint": "\"service\"", "properties": {"lang": ".lang", "tier": ".tier"},
	     "relations": {"team": {"combinator": "\"and\"", "rules": [{"property": "\"size\"", "operator": "\"=\"", "value": ".teamSize"}]}}}}}}]}`
	e.patch("inv", cfg)
	r := e.waitRuns("inv", 1)
	if r.Status != run.Succeeded {
		t.Fatalf("run: %s %s %v", r.Status, r.Message, r.Errors)
	}
	e.wantEntities("service",
		`checkout inv {"lang":"Go","tier":1} {"team":"payments"}`,
		`indexer inv {"lang":"Python","tier":2} {"team":"search"}`)
}

// TestLiveWriteDuringRunIsNotStale: an entity a live event writes while a run is going
// is not deleted by that run, though the tool's listing does not hold it; the next run
// deletes it.
func TestLiveWriteDuringRunIsNotStale(t *testing.T) {
	e := newEnv(t)
	e.putBlueprints()
	slowIntegration(e, "slow", 10, 100)
	e.startWorker("w1")
	e.startWorker("w2")
	e.patch("slow", slowConfig)
	waitFor(t, func() bool {
		r, err := e.runs.Latest(context.Background(), e.tenant, "slow")
		return err == nil && r.Status == run.Running && len(e.entities("service")) >= 20
	})
	item := json.RawMessage(`{"name": "live-only", "team": "t"}`)
	e.live("slow", queue.ResourcesData{Kind: "service", Upsert: []json.RawMessage{item}})
	r := e.waitRuns("slow", 1)
	if r.Status != run.Succeeded || counts(r, "service").Deleted != 0 {
		t.Fatalf("run: %s deleted %d", r.Status, counts(r, "service").Deleted)
	}
	if n := len(e.entities("service")); n != 101 {
		t.Fatalf("%d services after the run, want 100 fetched + 1 live", n)
	}
	e.resync("slow")
	r = e.waitRuns("slow", 2)
	if c := counts(r, "service"); c.Deleted != 1 {
		t.Fatalf("next run deleted %d, want the live-only entity", c.Deleted)
	}
}

// TestLiveDeleteIsNotUndoneByARun: a run that fetched an item before the tool deleted
// it (its pages carry the fetch's start time) writes it after the live delete was
// applied; the item must stay deleted, while the rest of the run is written, and the
// run neither fails nor counts the skipped item as upserted.
func TestLiveDeleteIsNotUndoneByARun(t *testing.T) {
	e := newEnv(t)
	e.putBlueprints()
	if _, err := e.ints.Put(context.Background(), integrationOf(e.tenant, "slow", "slow", map[string]any{"pages": 10, "delayMs": 100, "stampAtStart": true}), nil); err != nil {
		t.Fatal(err)
	}
	e.startWorker("w1")
	e.startWorker("w2")
	e.patch("slow", slowConfig)
	waitFor(t, func() bool {
		r, err := e.runs.Latest(context.Background(), e.tenant, "slow")
		return err == nil && r.Status == run.Running && len(e.entities("service")) >= 20
	})
	// s95 is on the last page: the run has fetched it (at its start) but not written it.
	e.live("slow", queue.ResourcesData{Kind: "service", Delete: []json.RawMessage{json.RawMessage(`{"name": "s95"}`)}})
	r := e.waitRuns("slow", 1)
	if r.Status != run.Succeeded {
		t.Fatalf("run %s: %v", r.Status, r.Errors)
	}
	got := e.entities("service")
	has95 := slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "s95 ") })
	if len(got) != 99 || has95 {
		t.Fatalf("%d services after the run (s95 present: %v), want the 99 the tool still has", len(got), has95)
	}
	if c := counts(r, "service"); c.Upserted != 99 {
		t.Fatalf("run upserted %d, want 99 (s95 skipped as older than its delete)", c.Upserted)
	}
}

// TestQueuedRunRecordIsUsed: a resync requested with a queued run record (as the API
// creates) runs under that record's id.
func TestQueuedRunRecordIsUsed(t *testing.T) {
	e := newEnv(t)
	e.putBlueprints()
	e.seedTeamsAndServices()
	e.createIntegration("inv")
	if _, err := e.ints.AddConfig(context.Background(), e.tenant, "inv", []byte(serviceConfig(false, true, 0.9))); err != nil {
		t.Fatal(err)
	}
	queued := &run.Record{ID: "run-from-api", Tenant: e.tenant, Integration: "inv", Trigger: "api", Status: run.Queued, QueuedAt: time.Now().UTC(), Counts: map[string]*run.Counts{}, Errors: []string{}}
	if err := e.runs.Put(context.Background(), queued); err != nil {
		t.Fatal(err)
	}
	ev, err := queue.NewEnvelope(queue.TypeResyncRequested, e.tenant, "inv", queue.ResyncRequested{Reason: "api", RunID: "run-from-api"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.q.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	e.startWorker("w1")
	waitFor(t, func() bool {
		r, err := e.runs.Get(context.Background(), e.tenant, "run-from-api")
		return err == nil && r.Status == run.Succeeded && counts(r, "service").Upserted == 2
	})
	if recs, _, _ := e.runs.List(context.Background(), e.tenant, "inv", 0, 10); len(recs) != 1 {
		t.Fatalf("%d run records, want the queued one reused", len(recs))
	}
}

// TestWaitingEntitiesAreBounded: with createMissingRelatedEntities false, entities
// whose targets do not exist wait to the end of the run only up to a bound; past it
// they fail at once, and the run deletes nothing.
func TestWaitingEntitiesAreBounded(t *testing.T) {
	e := newEnv(t)
	e.putBlueprints()
	e.writeJSON("teams.json", []obj{{"id": "payments", "name": "Payments", "size": 3}})
	e.writeJSON("services.json", []obj{
		{"name": "a", "lang": "Go", "tier": 1, "team": "ghost"},
		{"name": "b", "lang": "Go", "tier": 1, "team": "ghost"},
		{"name": "c", "lang": "Go", "tier": 1, "team": "ghost"},
	})
	e.createIntegration("inv")
	deps := e.deps()
	w := New(Config{ID: "bounded", LeaseTTL: 2 * time.Second, MaxWaiting: 1, BatchSize: 40}, deps)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.patch("inv", serviceConfig(false, false, 0.9))
	r := e.waitRuns("inv", 1)
	if c := counts(r, "service"); r.Status != run.Partial || c.Failed != 3 || c.Upserted != 0 {
		t.Fatalf("run: %s %+v %v", r.Status, c, r.Errors)
	}
	bounded := 0
	for _, msg := range r.Errors {
		if strings.Contains(msg, "more than 1 entities already wait") {
			bounded++
		}
	}
	if bounded != 2 {
		t.Fatalf("%d entities failed at the bound, want 2: %v", bounded, r.Errors)
	}
}

// TestLostRunBehindAQueuedOneIsFound: a dead worker's "running" record is marked lost
// even when a newer queued record (an API resync) is the integration's newest.
func TestLostRunBehindAQueuedOneIsFound(t *testing.T) {
	e := newEnv(t)
	e.putBlueprints()
	e.seedTeamsAndServices()
	e.createIntegration("inv")
	started := time.Now().Add(-time.Minute).UTC()
	lost := &run.Record{ID: "run-lost", Tenant: e.tenant, Integration: "inv", Status: run.Running, LeaseToken: 0,
		QueuedAt: started, StartedAt: &started, Counts: map[string]*run.Counts{}, Errors: []string{}}
	queued := &run.Record{ID: "run-queued", Tenant: e.tenant, Integration: "inv", Status: run.Queued,
		QueuedAt: time.Now().UTC(), Counts: map[string]*run.Counts{}, Errors: []string{}}
	for _, r := range []*run.Record{lost, queued} {
		if err := e.runs.Put(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	e.startWorker("w1")
	e.patch("inv", serviceConfig(false, true, 0.9))
	waitFor(t, func() bool {
		r, err := e.runs.Get(context.Background(), e.tenant, "run-lost")
		return err == nil && r.Status == run.Failed && r.Message == "worker lost"
	})
}

// TestRunEndsEarly: a cancel request, or a newer config, ends a run between pages
// with its own status, and the run deletes nothing, although most of the catalog it
// wrote last time was not fetched again.
func TestRunEndsEarly(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(e *env, r *run.Record)
		want run.Status
	}{
		{"cancel requested", func(e *env, r *run.Record) {
			if err := e.runs.RequestCancel(context.Background(), e.tenant, r.ID); err != nil {
				t.Fatal(err)
			}
		}, run.Cancelled},
		{"newer config", func(e *env, r *run.Record) { e.patch("slow", slowConfig) }, run.Superseded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.putBlueprints()
			slowIntegration(e, "slow", 20, 60)
			e.startWorker("w1")
			e.patch("slow", slowConfig)
			if first := e.waitRuns("slow", 1); first.Status != run.Succeeded || len(e.entities("service")) != 200 {
				t.Fatalf("first run %s with %d services", first.Status, len(e.entities("service")))
			}
			e.resync("slow")
			var second *run.Record
			waitFor(t, func() bool {
				r, err := e.runs.Latest(context.Background(), e.tenant, "slow")
				if err != nil || r.Status != run.Running || counts(r, "service").Fetched < 30 {
					return false
				}
				second = r
				return true
			})
			tc.stop(e, second)
			waitFor(t, func() bool {
				r, err := e.runs.Get(context.Background(), e.tenant, second.ID)
				if err != nil || !r.Status.Done() {
					return false
				}
				second = r
				return true
			})
			if second.Status != tc.want {
				t.Fatalf("run ended %s (%s), want %s", second.Status, second.Message, tc.want)
			}
			if c := counts(second, "service"); c.Fetched >= 200 || c.Deleted != 0 {
				t.Fatalf("the stopped run fetched %d of 200 and deleted %d", c.Fetched, c.Deleted)
			}
			if n := len(e.entities("service")); n != 200 {
				t.Fatalf("%d services after the stopped run, want all 200", n)
			}
		})
	}
}
