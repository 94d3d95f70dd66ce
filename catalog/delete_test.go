package catalog

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestDeleteStaleThreshold(t *testing.T) {
	e := setup(t)
	var ws []Write
	for i := range 10 {
		ws = append(ws, e.w("githubRepository", fmt.Sprintf("r%02d", i), repo("r"), nil))
	}
	e.upsert(nil, ws...)

	// A run starts; it sees only r00..r03 (and a live event refreshes r04 during it).
	runStart := e.clock.Add(time.Hour)
	e.clock.Add(time.Minute)
	for i := range 4 {
		e.one(ws[i], Unchanged) // unchanged, but its ownership is refreshed
	}
	live := ws[4]
	live.FetchedAt = e.clock.Now()
	live.Entity.Properties = repo("live")
	e.one(live, Updated)

	cases := []struct {
		threshold   float64
		exceeded    bool
		wantDeleted int
	}{
		{threshold: 0.3, exceeded: true},
		{threshold: 0.49, exceeded: true},
		{threshold: 0.5, wantDeleted: 5}, // 5 of 10 is not above 0.5
	}
	for _, tc := range cases {
		rep, err := e.cat.DeleteStale(e.ctx, e.tenant, nil, "gh", []string{"repository"}, runStart, tc.threshold, false)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Owned != 10 || rep.Stale != 5 || rep.ThresholdExceeded != tc.exceeded || len(rep.Deleted) != tc.wantDeleted {
			t.Errorf("threshold %v: %+v", tc.threshold, rep)
		}
		if tc.exceeded {
			for _, w := range ws {
				if !e.exists("githubRepository", w.Entity.Identifier) {
					t.Fatalf("threshold %v exceeded, yet %s was deleted", tc.threshold, w.Entity.Identifier)
				}
			}
		}
	}
	for i, w := range ws {
		if got, want := e.exists("githubRepository", w.Entity.Identifier), i < 5; got != want {
			t.Errorf("%s exists = %v, want %v", w.Entity.Identifier, got, want)
		}
	}
	if n, _ := e.cat.CountOwned(e.ctx, e.tenant, "gh", "repository"); n != 5 {
		t.Errorf("CountOwned = %d, want 5", n)
	}
	if ids, _ := e.rdb.ZRange(e.ctx, idsKey(e.T(), "githubRepository"), 0, -1).Result(); len(ids) != 5 {
		t.Errorf("ids index %v", ids)
	}
	if err := func() error {
		_, err := e.cat.DeleteStale(e.ctx, e.tenant, nil, "gh", []string{"repository"}, runStart, 1.5, false)
		return err
	}(); err == nil {
		t.Error("threshold 1.5 accepted")
	}
}

// chain builds repo ← pull request ← comment (each a required relation), plus a
// service whose optional relations point at the repository.
func chain(e *env) {
	e.one(e.w("githubRepository", "api", repo("api"), nil), Created)
	e.clock.Add(time.Minute)
	pr := e.w("githubPullRequest", "api-1", map[string]any{"status": "open"}, map[string]any{"repository": "api"})
	e.one(pr, Created)
	c := e.w("prComment", "api-1-c1", map[string]any{"body": "lgtm"}, map[string]any{"pullRequest": "api-1"})
	c.Integration = "reviewbot" // owned by someone else: dependents go whoever owns them
	e.one(c, Created)
	s := e.w("service", "api-svc", nil, map[string]any{"repos": []any{"api", "web"}, "mainRepo": "api"})
	s.Integration = "catalog-ui"
	e.one(s, Created)
}

func TestDeleteDependents(t *testing.T) {
	cases := []struct {
		name             string
		deleteDependents bool
		wantDeleted      []Ref
		wantKept         []Ref
		wantCleared      []Ref
		wantServiceRepos any
		wantServiceMain  any
		wantChangeOps    []string
	}{
		{
			name: "true deletes dependents recursively, first", deleteDependents: true,
			wantDeleted:      refsOf("prComment", "api-1-c1", "githubPullRequest", "api-1", "githubRepository", "api"),
			wantCleared:      refsOf("service", "api-svc"),
			wantServiceRepos: []string{"web"}, wantServiceMain: nil,
			wantChangeOps: []string{OpDeleted, OpDeleted, OpDeleted, OpUpdated},
		},
		{
			name: "false keeps what has dependents", deleteDependents: false,
			wantKept:         refsOf("githubRepository", "api"),
			wantServiceRepos: []string{"api", "web"}, wantServiceMain: "api",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			chain(e)
			// Only the repository is stale: the run that wrote the PRs is of another kind.
			runStart := e.clock.Add(time.Hour)
			rep, err := e.cat.DeleteStale(e.ctx, e.tenant, nil, "gh", []string{"repository"}, runStart, 1, tc.deleteDependents)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rep.Deleted, tc.wantDeleted) || !reflect.DeepEqual(rep.KeptForDependents, tc.wantKept) || !reflect.DeepEqual(rep.Cleared, tc.wantCleared) {
				t.Errorf("report deleted %v kept %v cleared %v", rep.Deleted, rep.KeptForDependents, rep.Cleared)
			}
			var ops []string
			for _, c := range rep.Changes {
				ops = append(ops, c.Op)
				if c.Entity == nil || c.ChangeID == "" {
					t.Errorf("change without entity or id: %+v", c)
				}
			}
			if !slices.Equal(ops, tc.wantChangeOps) {
				t.Errorf("change ops %v, want %v", ops, tc.wantChangeOps)
			}
			for _, r := range tc.wantDeleted {
				if e.exists(r.Blueprint, r.Identifier) || len(e.rev(r.Blueprint, r.Identifier)) != 0 {
					t.Errorf("%s or its reverse index survived", r)
				}
			}
			svc := e.get("service", "api-svc")
			if !reflect.DeepEqual(svc.Relations["repos"], tc.wantServiceRepos) || !reflect.DeepEqual(svc.Relations["mainRepo"], tc.wantServiceMain) {
				t.Errorf("service relations %v", svc.Relations)
			}
			if tc.deleteDependents {
				// The cleared relation's hash was updated: writing the same content again is unchanged.
				s := e.w("service", "api-svc", nil, map[string]any{"repos": []any{"web"}, "mainRepo": nil})
				s.Integration, s.FetchedAt = "catalog-ui", e.clock.Now()
				e.one(s, Unchanged)
				if got := e.rev("githubRepository", "web"); len(got) != 1 {
					t.Errorf("rev(web) = %q", got)
				}
				if n, _ := e.cat.CountOwned(e.ctx, e.tenant, "reviewbot", "prComment"); n != 0 {
					t.Errorf("reviewbot still owns %d comments", n)
				}
			}
		})
	}
}

// TestDeleteStaleWithDependentsAlsoStale: without deleteDependents, an entity whose
// dependents are deleted in the same run is not kept for them.
func TestDeleteStaleWithDependentsAlsoStale(t *testing.T) {
	e := setup(t)
	chain(e)
	runStart := e.clock.Add(time.Hour)
	rep, err := e.cat.DeleteStale(e.ctx, e.tenant, nil, "gh", []string{"repository", "pull-request"}, runStart, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	// The PR is stale too, but the comment (reviewbot's) depends on it: both stay.
	if !reflect.DeepEqual(rep.KeptForDependents, refsOf("githubRepository", "api", "githubPullRequest", "api-1")) && !reflect.DeepEqual(rep.KeptForDependents, refsOf("githubPullRequest", "api-1", "githubRepository", "api")) {
		t.Errorf("kept %v", rep.KeptForDependents)
	}
	if len(rep.Deleted) != 0 {
		t.Errorf("deleted %v", rep.Deleted)
	}
	// Remove the comment: now the PR and the repository go together.
	if _, err := e.cat.Delete(e.ctx, e.tenant, nil, Ref{"prComment", "api-1-c1"}, false); err != nil {
		t.Fatal(err)
	}
	rep, err = e.cat.DeleteStale(e.ctx, e.tenant, nil, "gh", []string{"repository", "pull-request"}, runStart, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rep.Deleted, refsOf("githubPullRequest", "api-1", "githubRepository", "api")) || len(rep.KeptForDependents) != 0 {
		t.Errorf("deleted %v kept %v", rep.Deleted, rep.KeptForDependents)
	}
}

func TestDeleteOne(t *testing.T) {
	e := setup(t)
	chain(e)
	rep, err := e.cat.Delete(e.ctx, e.tenant, nil, Ref{"githubRepository", "api"}, false)
	if err != nil || len(rep.Deleted) != 0 || !reflect.DeepEqual(rep.KeptForDependents, refsOf("githubRepository", "api")) {
		t.Fatalf("Delete without dependents: %+v, %v", rep, err)
	}
	rep, err = e.cat.Delete(e.ctx, e.tenant, nil, Ref{"githubRepository", "api"}, true)
	if err != nil || len(rep.Deleted) != 3 {
		t.Fatalf("Delete with dependents: %+v, %v", rep, err)
	}
	if _, err := e.cat.Delete(e.ctx, e.tenant, nil, Ref{"githubRepository", "api"}, true); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting again: %v, want ErrNotFound", err)
	}
}

func TestDeleteOwned(t *testing.T) {
	e := setup(t)
	chain(e)
	rep, err := e.cat.DeleteOwned(e.ctx, e.tenant, "gh", false)
	if err != nil {
		t.Fatal(err)
	}
	// gh owns the repo and the PR; reviewbot's comment depends on the PR.
	if rep.Owned != 2 || len(rep.Deleted) != 0 || len(rep.KeptForDependents) != 2 {
		t.Errorf("report %+v", rep)
	}
	rep, err = e.cat.DeleteOwned(e.ctx, e.tenant, "gh", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Deleted) != 3 || !e.exists("service", "api-svc") {
		t.Errorf("report %+v", rep)
	}
	if kinds, _ := e.cat.OwnedKinds(e.ctx, e.tenant, "gh"); len(kinds) != 0 {
		t.Errorf("gh still owns %v", kinds)
	}
}

// TestDeleteRechecksInsideScript: the script, not the plan, has the last word. An
// entity refreshed after the plan was read is not deleted, and a dependent that
// appeared after the plan blocks its target.
func TestDeleteRechecksInsideScript(t *testing.T) {
	e := setup(t)
	e.one(e.w("githubRepository", "a", repo("a"), nil), Created)
	e.one(e.w("githubRepository", "b", repo("b"), nil), Created)
	runStart := e.clock.Add(time.Hour)
	t3 := e.T()
	sel := selector{mode: "stale", integration: "gh", before: runStart.UnixMilli(), kinds: []string{"repository"}}

	// Refresh a after "planning".
	e.clock.Add(time.Minute)
	wa := e.w("githubRepository", "a", repo("a"), nil)
	e.one(wa, Unchanged)
	// Add a dependent of b after "planning", bypassing the plan.
	pr := e.w("githubPullRequest", "b-1", nil, map[string]any{"repository": "b"})
	e.one(pr, Created)

	e.drainOutbox()
	args := []any{t3, "", fmt.Sprint(e.clock.Now().UnixMilli()), sel.mode, sel.integration, fmt.Sprint(sel.before),
		newChangeID(), OutboxLimit, TombstoneTTL.Milliseconds(), 1, "repository", "githubRepository", "a", "1", "githubRepository", "b", "1"}
	res, err := deleteScript.Run(e.ctx, e.rdb, []string{t3 + ":bpgen", outboxKey(t3)}, args...).Slice()
	if err != nil {
		t.Fatal(err)
	}
	if len(res[1].([]any)) != 0 {
		t.Errorf("deleted %v", res[1])
	}
	if got := strs(res[2]); !slices.Equal(got, []string{"githubRepository", "b"}) {
		t.Errorf("blocked %v", got)
	}
	if got := strs(res[4]); !slices.Equal(got, []string{"githubRepository", "a"}) {
		t.Errorf("fresh %v", got)
	}
	if !e.exists("githubRepository", "a") || !e.exists("githubRepository", "b") {
		t.Error("deleted despite the checks")
	}
	if got := e.outbox(); len(got) != 0 {
		t.Errorf("nothing was deleted, yet the outbox has %d changes", len(got))
	}
}
